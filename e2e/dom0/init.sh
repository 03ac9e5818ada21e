#!/bin/bash
# dom0's half of the end-to-end test plan, run by /sbin/e2e-init from the work tree (virtio-9p at /jtap).
#
# Reads /jtap/e2e/cache/run-<backend>/params.sh (written by e2e/run.sh): E2E_BACKEND=kernel|jtap|none and the
# jtap command. Writes to the results disk (/dev/vdb, mounted at /results/e2e):
#   results.txt   one line per assertion: PASS|FAIL <name> [detail]; INFO and TIME lines; DONE at the end
#   *.log         the plan's own log, the guest's console, dmesg, xl and Xen logs, xenstore dumps
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# Run from a copy: the work tree is shared live over 9p, and bash reads a script as it goes, so editing the
# plan on the host during a run would change the rest of this run.
if [ -z "${E2E_PLAN_COPY:-}" ]; then
    rm -rf /run/e2e-dom0 && cp -r /jtap/e2e/dom0 /run/e2e-dom0 && E2E_PLAN_COPY=1 exec /bin/bash /run/e2e-dom0/init.sh "$@"
fi
E2E=/jtap/e2e
E2E_BACKEND=kernel
# The jtap daemon as the plan starts it (one place; the CLI may still change). /jtap-tree is the jtap
# build under test (run.sh's E2E_JTAP_TREE, by default the same work tree as /jtap).
JTAP_SERVE="/jtap-tree/bin/jtap serve --xen=linux"
# a line of jtap's log that says it watches xenstore (until then the plan waits, up to 120 s)
JTAP_READY_REGEX='^jtap serve: .* on .*grants='
JTAP_READY_TIMEOUT=120
# Whether `jtap serve` also serves backend/vif (it does since --net=tap became the default).
JTAP_SERVES_NET=1
# The parts of the plan beyond the basic disk and network tests (guest/test.sh lists them), by mode; run.sh's
# E2E_FEATURES replaces the list. jtapattach runs only when bin/jtap has an attach command.
E2E_FEATURES_kernel="peer save"
E2E_FEATURES_jtap="qcow2 ro peer detach jtapattach save"
# the run's directory under e2e/cache, from the kernel argument e2e.run=
E2E_RUN=$(sed -n 's/.*e2e\.run=\([^ ]*\).*/\1/p' /proc/cmdline)
[ -f "$E2E/cache/${E2E_RUN:-run}/params.sh" ] && . "$E2E/cache/${E2E_RUN:-run}/params.sh"

FEATURES_VAR=E2E_FEATURES_$E2E_BACKEND
E2E_FEATURES="${E2E_FEATURES-${!FEATURES_VAR:-}}"
has() { [[ " $E2E_FEATURES " == *" $1 "* ]]; }

mkdir -p /results && mount /dev/vdb /results && mkdir -p /results/e2e || echo "init.sh: FAILED: no results disk"
R=/results/e2e
exec > >(tee -a "$R/dom0-plan.log") 2>&1

up() { cut -d' ' -f1 /proc/uptime; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
say() { echo "E2E-STEP [$(up)] $*"; }
record() { echo "$*" >> "$R/results.txt"; echo "E2E-$*"; }
pass() { record "PASS $*"; }
fail() { record "FAIL $*"; }
check() { # check NAME CONDITION-COMMAND... : PASS or FAIL on the command's status
    local name="$1"; shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}
xs() { xenstore-read "$1" 2>/dev/null; }
wait_every() { # wait_every INTERVAL SECONDS COMMAND...: until COMMAND succeeds, trying every INTERVAL seconds
    local interval="$1" n; n=$(awk -v s="$2" -v i="$1" 'BEGIN{print int(s / i)}'); shift 2
    while [ "$n" -gt 0 ]; do "$@" && return 0; sleep "$interval"; n=$((n - 1)); done
    return 1
}
wait_for() { wait_every 0.5 "$@"; } # wait_for SECONDS COMMAND...

mkdir -p /jtap-tree
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro jtaptree /jtap-tree || say "no jtaptree share"
if has jtapattach && ! /jtap-tree/bin/jtap --help 2>&1 | grep -qE '^ +attach'; then
    E2E_FEATURES="${E2E_FEATURES/jtapattach/}"; JTAPATTACH_NOTE=" (jtapattach left out: bin/jtap has no attach command)"
fi
record "INFO backend=$E2E_BACKEND kernel=$(uname -r) dom0-up=$(up)s features=[$E2E_FEATURES]${JTAPATTACH_NOTE:-}"
record "TIME dom0-boot $(up)"
say "backend mode: $E2E_BACKEND"

hostname dom0
ip link set lo up

# --- kernel modules: the Xen device drivers dom0 needs; the kernel's PV backends only in kernel mode
modprobe -a xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd loop bridge tun 2>/dev/null
case "$E2E_BACKEND" in
    kernel) modprobe -a xen-blkback xen-netback ;;
    *)
        # keep them out even if something asks (libxl does not modprobe, but a hotplug script could)
        printf 'install xen-blkback /bin/false\ninstall xen-netback /bin/false\n' > /etc/modprobe.d/e2e-no-kernel-backends.conf
        ;;
esac
lsmod > "$R/lsmod.txt"
if [ "$E2E_BACKEND" = kernel ]; then
    check kernel-backends-loaded grep -q '^xen_blkback ' "$R/lsmod.txt"
else
    check kernel-backends-absent bash -c "! grep -qE '^xen_(blk|net)back ' '$R/lsmod.txt'"
fi

# --- hotplug scripts traced with timestamps (bash's $EPOCHREALTIME costs no fork): libxl kills a
# hotplug script after 40 s, and under TCG on a loaded host the stock scripts come close
sed -i '\|^exec 2>>/var/log/xen/xen-hotplug.log|r /run/e2e-dom0/hotplug-trace.sh' /etc/xen/scripts/xen-hotplug-common.sh
grep -q EPOCHREALTIME /etc/xen/scripts/xen-hotplug-common.sh || say "could not enable hotplug tracing"
# how slow is this dom0 at what hotplug scripts do most: fork+exec
t=$(now); for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true; done
record "INFO fork-exec-ms $(awk -v s="$(since "$t")" 'BEGIN{printf "%.0f", s*100}') (mean of 10 /bin/true)"

# --- Xen's daemons (Debian's init script: xenfs, oxenstored, xenconsoled), guest consoles logged
mkdir -p /var/log/xen/console
echo 'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"' >> /etc/default/xen
# E2E_XENSTORED=xenstored runs the C xenstored instead of Debian's default oxenstored
case "${E2E_XENSTORED:-oxenstored}" in
    xenstored) echo "XENSTORED=/usr/lib/xen-4.17/bin/xenstored" >> /etc/default/xen
               echo "XENSTORED_ARGS=\"-T /var/log/xen/xenstored-trace.log\"" >> /etc/default/xen ;;
esac
record "INFO xenstored=${E2E_XENSTORED:-oxenstored}"
t=$(now)
timeout 120 /etc/init.d/xen start < /dev/null > "$R/xen-start.log" 2>&1
check xen-daemons timeout 30 xl info > "$R/xl-info.txt"
record "TIME xen-start $(since "$t")"

# --- the guests' network: a bridge with dom0 at 10.0.0.1, DHCP (busybox udhcpd), iperf3 server
ip link add xenbr0 type bridge
ip addr add 10.0.0.1/24 dev xenbr0
ip link set xenbr0 up
GUEST_MAC=00:16:3e:e2:00:01
GUEST_IP=10.0.0.2
PEER_MAC=00:16:3e:e2:00:02
PEER_IP=10.0.0.3
cat > /run/udhcpd.conf <<CONF
start 10.0.0.2
end 10.0.0.20
interface xenbr0
lease_file /run/udhcpd.leases
option subnet 255.255.255.0
static_lease $GUEST_MAC $GUEST_IP
static_lease $PEER_MAC $PEER_IP
CONF
touch /run/udhcpd.leases
# (daemons get their own stdout: the plan's log is a pipe to tee, which must see its end)
busybox udhcpd /run/udhcpd.conf > /dev/null 2>&1
iperf3 -s -D --logfile "$R/iperf3-server.log" > /dev/null 2>&1
# the guest's sync points (guest/test.sh: sync_point): dom0 publishes a file named after a point once it has
# done its part, and the guest polls for it over HTTP
SYNC=/run/e2e-sync
mkdir -p $SYNC
busybox httpd -p 10.0.0.1:8000 -h $SYNC > /dev/null 2>&1

# --- the guest: kernel and initramfs from the build, a fresh sparse raw disk
mkdir -p /var/lib/e2e
cp "$E2E/cache/guest/vmlinuz" "$E2E/cache/guest/initrd.img" /var/lib/e2e/
rm -f /var/lib/e2e/disk.img; truncate -s 1G /var/lib/e2e/disk.img
case "$E2E_BACKEND" in
    # the kernel's blkback: dom0's /dev/vdc, a raw image on the host that e2e/run.sh checks afterwards.
    # (A file target works too, but Xen's `block` script then sets up a loop device, and under TCG on a
    # loaded machine that overran libxl's 40 s hotplug timeout.)
    # E2E_KERNEL_BLOCK_SCRIPT=stock uses Xen's `block` script, lean (default) e2e's dom0/block-e2e.
    kernel) if [ "${E2E_KERNEL_BLOCK_SCRIPT:-lean}" = stock ]; then
                DISK_LINE="format=raw, vdev=xvda, access=rw, target=/dev/vdc"
            else
                install -m 0755 /run/e2e-dom0/block-e2e /etc/xen/scripts/block-e2e
                DISK_LINE="format=raw, vdev=xvda, access=rw, script=block-e2e, target=/dev/vdc"
            fi ;;
    *)      DISK_LINE="format=raw, vdev=xvda, access=rw, script=block-jtap, target=/var/lib/e2e/disk.img"
            install -m 0755 /jtap/scripts/xen/block-jtap /etc/xen/scripts/block-jtap ;;
esac
DISK_LINES="\"$DISK_LINE\""
# xvdb: a qcow2 image (the target's format prefix tells jtap; format=raw only satisfies libxl)
QCOW2=/var/lib/e2e/disk.qcow2
QCOW2_LINE="format=raw, vdev=xvdb, access=rw, script=block-jtap, target=qcow2:$QCOW2"
if has qcow2; then
    rm -f $QCOW2; qemu-img create -q -f qcow2 $QCOW2 1G
    DISK_LINES="$DISK_LINES, \"$QCOW2_LINE\""
fi
# xvdc: a read-only backing chain with known content: a qcow2 overlay holding 1 MiB of its own over a raw base
# (reads of the rest go through to the base)
RO_BASE=/var/lib/e2e/ro-base.img
RO_IMG=/var/lib/e2e/ro.qcow2
if has ro; then
    dd if=/dev/urandom of=$RO_BASE bs=1M count=16 2>/dev/null
    rm -f $RO_IMG; qemu-img create -q -f qcow2 -b $RO_BASE -F raw $RO_IMG
    qemu-io -c "write -q -P 0x5a 4M 1M" $RO_IMG >/dev/null
    qemu-img convert -O raw $RO_IMG /var/lib/e2e/ro-flat.img
    RO_MD5=$(md5sum < /var/lib/e2e/ro-flat.img | cut -d' ' -f1); rm -f /var/lib/e2e/ro-flat.img
    RO_FILES_MD5=$(cat $RO_IMG $RO_BASE | md5sum | cut -d' ' -f1)
    DISK_LINES="$DISK_LINES, \"format=raw, vdev=xvdc, access=ro, script=block-jtap, target=qcow2:$RO_IMG\""
fi
# xvdd: attached later with `jtap attach`
EXTRA_IMG=/var/lib/e2e/extra.img
has jtapattach && { rm -f $EXTRA_IMG; truncate -s 64M $EXTRA_IMG; }
GUEST_FLAGS=""
for f in qcow2 ro detach jtapattach peer save; do has $f && GUEST_FLAGS="$GUEST_FLAGS e2e.$f=1"; done
VIF_LINE="mac=$GUEST_MAC, bridge=xenbr0"
GUEST_NET=1
if [ "$E2E_BACKEND" != kernel ] && [ "$JTAP_SERVES_NET" != 1 ]; then GUEST_NET=0; fi
# pv_cfg NAME MEMORY-MIB VCPUS GUEST-ARGS DISK-LINES VIF-LINES: /run/NAME.cfg for a PV guest of the e2e kernel and
# initramfs; the lines are xl's list items, already quoted ("..." , "...")
pv_cfg() {
    cat > "/run/$1.cfg" <<CFG
name = "$1"
type = "pv"
kernel = "/var/lib/e2e/vmlinuz"
ramdisk = "/var/lib/e2e/initrd.img"
extra = "console=hvc0 loglevel=6 panic=-1 $4"
memory = $2
vcpus = $3
disk = [ $5 ]
vif = [ $6 ]
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
}
# blkfront with persistent grants preallocates (segments + indirect pages) x ring slots pages per queue: with
# 32 segments and 512 slots (ring order 4) 66 MiB per queue, so 400 MiB for three disks of two queues
pv_cfg g1 768 2 "e2e.role=main e2e.net=$GUEST_NET$GUEST_FLAGS" "$DISK_LINES" \
    "$( [ $GUEST_NET = 1 ] && echo "\"$VIF_LINE\"" )"
cp /run/g1.cfg "$R/g1.cfg"
# the second guest: network only
pv_cfg g2 256 1 "e2e.role=peer e2e.net=1" "" "\"mac=$PEER_MAC, bridge=xenbr0\""
record "INFO disk-lines: $DISK_LINES"
if [ $GUEST_NET = 1 ]; then record "INFO vif-line: $VIF_LINE"; else record "INFO vif-line: none (jtap does not serve backend/vif yet: JTAP_SERVES_NET=0)"; fi

# --- logs for whoever reads a failure; then the results disk is unmounted (e2e-init powers off)
finish_plan() {
    xl dmesg > "$R/xen-dmesg.txt" 2>&1
    cp -r /var/log/xen "$R/var-log-xen" 2>/dev/null
    record "TIME plan-total $(up)"
    echo DONE >> "$R/results.txt"
    say "plan done: $(grep -c '^PASS' "$R/results.txt") passed, $(grep -c '^FAIL' "$R/results.txt") failed"
    exec > /dev/console 2>&1
    sync; sleep 1
    umount /results 2>/dev/null || umount -l /results
}
# --- jtap, before xl create (libxl waits only ~10 s for a backend to reach InitWait)
JTAP_PID=
# jtap_start: starts `jtap serve` (unless it runs), its output appended to jtap.log; true once it printed one more
# ready line, false if it exited or took longer than JTAP_READY_TIMEOUT
jtap_start() {
    [ -n "$JTAP_PID" ] && return 0
    touch "$R/jtap.log"
    local ready0; ready0=$(grep -cE "$JTAP_READY_REGEX" "$R/jtap.log")
    # A JVM crash leaves its report with the results (the run keeps them; dom0's root filesystem is thrown away).
    JTAP_JAVA_OPTS="-Djava.util.logging.config.file=/run/e2e-dom0/jtap-logging.properties -XX:ErrorFile=$R/hs_err.log" \
        $JTAP_SERVE >> "$R/jtap.log" 2>&1 &
    JTAP_PID=$!
    jtap_ready() { [ "$(grep -cE "$JTAP_READY_REGEX" "$R/jtap.log")" -gt "$ready0" ]; }
    jtap_gone() { ! kill -0 "$JTAP_PID" 2>/dev/null; }
    wait_for "$JTAP_READY_TIMEOUT" eval 'jtap_ready || jtap_gone'
    jtap_ready && ! jtap_gone
}
jtap_stop() {
    [ -z "$JTAP_PID" ] && return 0
    kill "$JTAP_PID" 2>/dev/null; wait "$JTAP_PID" 2>/dev/null; JTAP_PID=
}
if [ "$E2E_BACKEND" = jtap ]; then
    say "starting: $JTAP_SERVE"
    t=$(now)
    if jtap_start; then
        pass jtap-started "$(grep -E "$JTAP_READY_REGEX" "$R/jtap.log" | head -1)"; record "TIME jtap-ready $(since "$t")"
    else
        fail jtap-started "no line matching /$JTAP_READY_REGEX/ within $JTAP_READY_TIMEOUT s, or it exited"; tail -20 "$R/jtap.log"
    fi
fi
# bench mode (bench/xen-bench.sh) has its own plan from here on
if [ "$E2E_BACKEND" = bench ]; then
    install -m 0755 /run/e2e-dom0/block-e2e /etc/xen/scripts/block-e2e
    . /run/e2e-dom0/bench.sh
    dmesg > "$R/dmesg.txt"
    finish_plan
    exit 0
fi

# backend state of the guest's disk, sampled every half second while xl create runs
sample_states() {
    while :; do
        local dom dev d
        for dom in $(xenstore-list /local/domain/0/backend/vbd 2>/dev/null); do
            for dev in $(xenstore-list /local/domain/0/backend/vbd/$dom 2>/dev/null); do
                d=/local/domain/0/backend/vbd/$dom/$dev
                echo "$(up) $d state=$(xs "$d/state") hotplug-status=$(xs "$d/hotplug-status")"
            done
        done
        sleep 0.5
    done
}
# (only where it is asserted on: every sample forks, and hotplug scripts racing libxl's 40 s timeout
# need the CPU more)
SAMPLER=
if [ "$E2E_BACKEND" = none ]; then sample_states > "$R/backend-states.log" 2>&1 & SAMPLER=$!; fi

say "xl create"
t=$(now)
timeout 240 xl -vvv create /run/g1.cfg > "$R/xl-create.log" 2>&1
XL_RC=$?
record "TIME xl-create $(since "$t")"
[ -n "$SAMPLER" ] && kill $SAMPLER 2>/dev/null
DOMID=$(xl domid g1 2>/dev/null)

if [ "$E2E_BACKEND" = none ]; then
    # Nothing serves backend/vbd: libxl must give up waiting for InitWait, and the backend must never
    # have left state 1 (Initialising). Proves that the kernel's blkback is not serving in this dom0.
    check xl-create-refused test "$XL_RC" -ne 0
    # (5 Closing and 6 Closed are libxl's own writes when it gives up and removes the device)
    check backend-never-initwait bash -c "! grep -qE 'state=[234]( |$)' '$R/backend-states.log'"
    grep -qE 'state=1' "$R/backend-states.log" && pass backend-stayed-initialising || fail backend-stayed-initialising "no sample saw state=1"
    tail -5 "$R/xl-create.log"
else
    if [ "$XL_RC" -eq 0 ] && [ -n "$DOMID" ]; then pass xl-create "domid=$DOMID"; else fail xl-create "rc=$XL_RC"; tail -30 "$R/xl-create.log"; fi
fi

if [ -n "$DOMID" ]; then
    t=$(now)
    FE=/local/domain/$DOMID/device
    BE=/local/domain/0/backend
    # ping the guest from dom0 while it runs (it takes its address early)
    ( wait_for 400 busybox ping -c 1 -W 1 $GUEST_IP && echo ok > /run/ping-guest ) > /dev/null 2>&1 &
    # the handshake, as negotiated in xenstore
    guest_gone() { ! xl domid g1 >/dev/null 2>&1; }
    # the same from xenstore, without xl (which costs a second of CPU under TCG); DOMID changes with xl restore
    guest_gone_cheap() { ! xenstore-read "/local/domain/$DOMID/name" > /dev/null 2>&1; }
    vbd_connected() { test "$(xs $FE/vbd/51712/state)" = 4; }
    vif_connected() { test "$(xs $FE/vif/0/state)" = 4; }
    wait_for 120 eval 'vbd_connected || guest_gone_cheap'
    if vbd_connected; then
        pass vbd-connected "after $(since "$t") s"
        xenstore-ls -fp $FE/vbd > "$R/xenstore-frontend-vbd.txt" 2>&1
        xenstore-ls -fp $BE/vbd/$DOMID > "$R/xenstore-backend-vbd.txt" 2>&1
        f=$FE/vbd/51712; b=$(xs $f/backend)
        record "INFO blkif frontend: persistent=$(xs $f/feature-persistent) ring-page-order=$(xs $f/ring-page-order) queues=$(xs $f/multi-queue-num-queues) protocol=$(xs $f/protocol)"
        record "INFO blkif backend $b: persistent=$(xs $b/feature-persistent) max-indirect=$(xs $b/feature-max-indirect-segments) max-ring-page-order=$(xs $b/max-ring-page-order) max-queues=$(xs $b/multi-queue-max-queues) flush=$(xs $b/feature-flush-cache) discard=$(xs $b/feature-discard)"
        check blkif-persistent-grants test "$(xs $f/feature-persistent)" = 1 -a "$(xs $b/feature-persistent)" = 1
        check blkif-indirect-segments test "$(xs $b/feature-max-indirect-segments)" -gt 0 2>/dev/null
        check blkif-multi-page-ring test "$(xs $f/ring-page-order)" -ge 1 2>/dev/null
        check blkif-multi-queue test "$(xs $f/multi-queue-num-queues)" -ge 2 2>/dev/null
    else
        fail vbd-connected "frontend state $(xs $FE/vbd/51712/state), backend state $(xs $BE/vbd/$DOMID/51712/state) after 120 s"
        xenstore-ls -fp /local/domain/$DOMID > "$R/xenstore-guest.txt" 2>&1
        xenstore-ls -fp $BE > "$R/xenstore-backend.txt" 2>&1
        sed 's/^/  | /' "$R/xenstore-backend.txt" | grep vbd | head -40
        grep -E 'device/vbd' "$R/xenstore-guest.txt" | sed 's/^/  | /' | head -40
    fi
    [ $GUEST_NET = 1 ] && wait_for 60 eval 'vif_connected || guest_gone_cheap'
    if [ $GUEST_NET = 0 ]; then
        :
    elif vif_connected; then
        pass vif-connected
        xenstore-ls -fp $FE/vif > "$R/xenstore-frontend-vif.txt" 2>&1
        xenstore-ls -fp $BE/vif/$DOMID > "$R/xenstore-backend-vif.txt" 2>&1
        f=$FE/vif/0; b=$(xs $f/backend)
        record "INFO netif frontend: rx-copy=$(xs $f/request-rx-copy) gso-tcpv4=$(xs $f/feature-gso-tcpv4) gso-tcpv6=$(xs $f/feature-gso-tcpv6) sg=$(xs $f/feature-sg) csum-offload=$(xs $f/feature-no-csum-offload) queues=$(xs $f/multi-queue-num-queues)"
        record "INFO netif backend $b: rx-copy=$(xs $b/feature-rx-copy) gso-tcpv4=$(xs $b/feature-gso-tcpv4) sg=$(xs $b/feature-sg) max-queues=$(xs $b/multi-queue-max-queues)"
        # what iperf3 runs over: GSO and checksum offload negotiated (netif.h: the frontend asks for GSO with
        # feature-gso-tcpv4 when the backend offers it; checksum offload is on unless feature-no-csum-offload=1)
        check netif-gso-negotiated test "$(xs $f/feature-gso-tcpv4)" = 1 -a "$(xs $b/feature-gso-tcpv4)" = 1
        check netif-csum-offload-on test "$(xs $f/feature-no-csum-offload)" != 1
        check netif-multi-queue test "$(xs $f/multi-queue-num-queues)" -ge 2 2>/dev/null
    else
        fail vif-connected "frontend state $(xs $FE/vif/0/state) after 60 s"
    fi
    # dom0's part of the guest's sync points, in the guest's order (guest/test.sh); then the guest powers off
    say "waiting for the guest's test plan"
    GLOG=/var/log/xen/console/guest-g1.log
    # the guest's progress, echoed into this plan's log (and so onto the serial console the host watches)
    ( tail -n +1 -F "$GLOG" 2>/dev/null | grep --line-buffered -E '^E2E-(RESULT|SYNC|GUEST)' \
        | sed -u -e 's/\r$//' -e 's/^/  guest| /' ) &
    GTAIL=$!
    # dom0's busiest processes every 30 s (top.log), the busiest one on the serial console too: a backend that
    # spins takes the CPU the emulated guest needs
    ( while :; do
          top -bn1 -w 160 | sed -n '7,14p' > /run/top.now
          { echo "--- $(up)"; cat /run/top.now; } >> "$R/top.log"
          echo "E2E-LOAD [$(up)] $(sed -n 2p /run/top.now | awk '{print $12, $9 "%"}') | $(sed -n 3p /run/top.now | awk '{print $12, $9 "%"}')"
          sleep 30
      done ) &
    LOADMON=$!
    synced() { grep -qa "E2E-SYNC $1 \." "$GLOG" 2>/dev/null; }
    # await POINT SECONDS: until the guest reaches POINT; false (and FAIL) if it is gone or the time runs out.
    # Polls every 2 s with two cheap commands: dom0's CPU is the emulated guest's CPU too.
    await() {
        local t0 n=$(( $2 / 2 )); t0=$(now)
        wait_every 2 "$2" eval "synced $1 || guest_gone_cheap"
        if synced "$1"; then say "guest at $1 after $(since "$t0") s"; return 0; fi
        fail "sync-$1" "the guest did not reach it within $2 s"; return 1
    }
    release() { touch "$SYNC/$1"; }
    allocated_kib() { du -k "$1" | cut -f1; }
    if has qcow2 && await trim-filled 900; then
        A1=$(allocated_kib $QCOW2); record "INFO qcow2 allocated after the guest filled it: $A1 KiB"
        release trim-filled
        if await trimmed 300; then
            A2=$(allocated_kib $QCOW2); record "INFO qcow2 allocated after fstrim: $A2 KiB"
            # the guest wrote and deleted 96 MiB: at least 64 MiB of it must have gone from the image file
            check fstrim-shrinks-image test "$A2" -le $(( A1 - 65536 ))
            release trimmed
        fi
    fi
    if has peer && [ $GUEST_NET = 1 ] && await peer 600; then
        t2=$(now)
        if timeout 240 xl create /run/g2.cfg > "$R/xl-create-g2.log" 2>&1; then
            PEER_DOMID=$(xl domid g2); pass xl-create-peer "domid=$PEER_DOMID"
            wait_every 2 300 eval '! xenstore-read "/local/domain/$PEER_DOMID/name" > /dev/null 2>&1'
            if ! xl domid g2 > /dev/null 2>&1; then pass peer-finished "after $(since "$t2") s"
            else fail peer-finished "still running after 300 s"; xl destroy g2; fi
        else
            fail xl-create-peer; tail -20 "$R/xl-create-g2.log"
        fi
        release peer
    fi
    if has detach && await detach-xvdb 300; then
        check xl-block-detach timeout 120 xl block-detach g1 xvdb
        release detach-xvdb
        if await attach-xvdb 200; then
            check xl-block-attach timeout 120 xl block-attach g1 "$QCOW2_LINE"
            release attach-xvdb
        fi
    fi
    if has jtapattach && await jtap-attach 300; then
        JTAP_BIN=/jtap-tree/bin/jtap
        check jtap-attach timeout 120 $JTAP_BIN attach --xen=linux --domid "$(xl domid g1)" --target "raw:$EXTRA_IMG" --vdev xvdd --timeout 60
        release jtap-attach
        if await jtap-detach 200; then
            G1=$(xl domid g1)
            check jtap-detach timeout 120 $JTAP_BIN detach --xen=linux --domid "$G1" --vdev xvdd --timeout 60
            # what a failure here (seen once) needs: both directories' states afterwards, the daemon's lines on xvdd
            record "INFO jtap-detach-after: backend-state=$(xs "/local/domain/0/backend/vbd/$G1/51760/state" ||
                echo gone) frontend-state=$(xs "/local/domain/$G1/device/vbd/51760/state" || echo gone)"
            grep 'vbd/[0-9]*/51760' "$R/jtap.log" | tail -8 | sed 's/^/jtap-log| /'
            release jtap-detach
        fi
    fi
    if has save && await save 900; then
        t2=$(now)
        if timeout 400 xl save g1 /var/lib/e2e/g1.save > "$R/xl-save.log" 2>&1; then
            pass xl-save "in $(since "$t2") s, $(du -m /var/lib/e2e/g1.save | cut -f1) MiB"
            t2=$(now)
            if timeout 400 xl restore /var/lib/e2e/g1.save > "$R/xl-restore.log" 2>&1; then
                DOMID=$(xl domid g1); pass xl-restore "in $(since "$t2") s, domid=$DOMID"
                FE=/local/domain/$DOMID/device
                if wait_for 120 eval 'vbd_connected || guest_gone_cheap'; vbd_connected; then pass vbd-reconnected-after-restore
                else fail vbd-reconnected-after-restore "frontend state $(xs $FE/vbd/51712/state)"; fi
            else
                fail xl-restore; tail -20 "$R/xl-restore.log"
            fi
            rm -f /var/lib/e2e/g1.save
        else
            fail xl-save; tail -20 "$R/xl-save.log"
        fi
        release save
    fi
    wait_every 2 600 guest_gone_cheap
    if guest_gone; then
        pass guest-finished "after $(since "$t") s"
    else
        fail guest-finished "still running after 600 s"; xl destroy g1
    fi
    pkill -P "$GTAIL" 2>/dev/null; kill "$GTAIL" "$LOADMON" 2>/dev/null
    record "TIME guest-run $(since "$t")"
    if [ $GUEST_NET = 0 ]; then :
    elif [ -f /run/ping-guest ]; then pass ping-guest; else fail ping-guest "dom0 never reached $GUEST_IP"; fi
fi

# --- the guest's own assertions, from its console log
GLOG=/var/log/xen/console/guest-g1.log
if [ -f "$GLOG" ]; then
    tr -d '\r' < "$GLOG" > "$R/guest-console.log"
    grep -E '^E2E-RESULT ' "$R/guest-console.log" | sed -e 's/^E2E-RESULT //' -e 's/^\(PASS\|FAIL\) /\1 guest:/' >> "$R/results.txt"
    grep -E '^E2E-INFO ' "$R/guest-console.log" | sed 's/^E2E-INFO /INFO guest:/' >> "$R/results.txt"
    if [ "$E2E_BACKEND" != none ]; then
        check guest-plan-complete grep -q '^E2E-GUEST-DONE' "$R/guest-console.log"
    fi
elif [ "$E2E_BACKEND" != none ]; then
    fail guest-console "no $GLOG"
fi
PLOG=/var/log/xen/console/guest-g2.log
if [ -f "$PLOG" ]; then
    tr -d '\r' < "$PLOG" > "$R/peer-console.log"
    grep -E '^E2E-RESULT ' "$R/peer-console.log" | sed -e 's/^E2E-RESULT //' -e 's/^\(PASS\|FAIL\) /\1 peer:/' >> "$R/results.txt"
    grep -E '^E2E-INFO ' "$R/peer-console.log" | sed 's/^E2E-INFO /INFO peer:/' >> "$R/results.txt"
    check peer-plan-complete grep -q '^E2E-GUEST-DONE' "$R/peer-console.log"
elif has peer && [ "${GUEST_NET:-0}" = 1 ] && [ -n "${DOMID:-}" ]; then
    fail peer-console "no $PLOG"
fi
ginfo() { sed -n "s/^E2E-INFO $1 //p" "$R/guest-console.log" 2>/dev/null | tail -1; }

# --- the images afterwards, as dom0 sees them (jtap has let go of them: the guests are gone)
if [ "$E2E_BACKEND" = jtap ] && [ -n "${DOMID:-}" ]; then
    wait_for 30 eval '! xenstore-list /local/domain/0/backend/vbd 2>/dev/null | grep -q .'
    # debugfs_md5 IMAGE: md5 of /data in the ext4 filesystem of a raw image
    debugfs_md5() { rm -f /tmp/e2e-data; debugfs -R "dump /data /tmp/e2e-data" "$1" > /dev/null 2>&1; md5sum < /tmp/e2e-data 2>/dev/null | cut -d' ' -f1; rm -f /tmp/e2e-data; }
    want=$(ginfo data-md5); got=$(debugfs_md5 /var/lib/e2e/disk.img)
    check raw-image-matches-guest test -n "$want" -a "$want" = "$got"
    if has qcow2; then
        if qemu-img check $QCOW2 > "$R/qemu-img-check.txt" 2>&1; then pass qcow2-qemu-img-check "$(grep -E 'allocated|fragmented' "$R/qemu-img-check.txt" | head -1)"
        else fail qcow2-qemu-img-check "exit $?"; cat "$R/qemu-img-check.txt"; fi
        qemu-img info $QCOW2 > "$R/qemu-img-info.txt" 2>&1
        qemu-img convert -O raw $QCOW2 /var/lib/e2e/qcow2-export.raw
        want=$(ginfo qcow2-data-md5); got=$(debugfs_md5 /var/lib/e2e/qcow2-export.raw)
        check qcow2-image-matches-guest test -n "$want" -a "$want" = "$got"
        rm -f /var/lib/e2e/qcow2-export.raw
    fi
    if has ro; then
        check ro-guest-read-matches test "$(ginfo ro-md5)" = "$RO_MD5"
        check ro-images-unchanged test "$(cat $RO_IMG $RO_BASE | md5sum | cut -d' ' -f1)" = "$RO_FILES_MD5"
    fi
    if has jtapattach; then
        check jtap-attached-image-matches-guest test "$(ginfo xvdd-md5)" = "$(head -c 4M $EXTRA_IMG | md5sum | cut -d' ' -f1)"
    fi
fi

# --- jtap's log, dom0's kernel log
if [ -n "$JTAP_PID" ]; then
    jtap_stop
    check jtap-log-clean bash -c "! grep -E '(^| )(ERROR|SEVERE)( |:)' '$R/jtap.log'"
    check jtap-no-jvm-crash test ! -e "$R/hs_err.log"
fi
dmesg > "$R/dmesg.txt"
check dom0-kernel-log-clean bash -c "! grep -iE '(grant|gnttab|evtchn|event.channel).*(fail|warn|error|leak)|(fail|warn|error).*(grant|gnttab|evtchn|event.channel)' '$R/dmesg.txt'"

finish_plan
