#!/bin/bash
# dom0's half of the end-to-end test plan, run by /sbin/e2e-init from the work tree (virtio-9p at /jtap).
#
# Reads /jtap/e2e/cache/run-<backend>/params.sh (written by e2e/run.sh): E2E_BACKEND=kernel|jtap|none and the
# jtap command. Writes to the results disk (/dev/vdb, mounted at /results/e2e):
#   results.txt   one line per assertion: PASS|FAIL <name> [detail]; INFO and TIME lines; DONE at the end
#   *.log         the plan's own log, the guest's console, dmesg, xl and Xen logs, xenstore dumps
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
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
# the run's directory under e2e/cache, from the kernel argument e2e.run=
E2E_RUN=$(sed -n 's/.*e2e\.run=\([^ ]*\).*/\1/p' /proc/cmdline)
[ -f "$E2E/cache/${E2E_RUN:-run}/params.sh" ] && . "$E2E/cache/${E2E_RUN:-run}/params.sh"

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
wait_for() { # wait_for SECONDS COMMAND...
    local n=$(( $1 * 2 )); shift
    while [ $n -gt 0 ]; do "$@" && return 0; sleep 0.5; n=$((n - 1)); done
    return 1
}

mkdir -p /jtap-tree
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro jtaptree /jtap-tree || say "no jtaptree share"
record "INFO backend=$E2E_BACKEND kernel=$(uname -r) dom0-up=$(up)s"
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
sed -i '\|^exec 2>>/var/log/xen/xen-hotplug.log|r /jtap/e2e/dom0/hotplug-trace.sh' /etc/xen/scripts/xen-hotplug-common.sh
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
cat > /run/udhcpd.conf <<CONF
start 10.0.0.2
end 10.0.0.20
interface xenbr0
lease_file /run/udhcpd.leases
option subnet 255.255.255.0
static_lease $GUEST_MAC $GUEST_IP
CONF
touch /run/udhcpd.leases
# (daemons get their own stdout: the plan's log is a pipe to tee, which must see its end)
busybox udhcpd /run/udhcpd.conf > /dev/null 2>&1
iperf3 -s -D --logfile "$R/iperf3-server.log" > /dev/null 2>&1

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
                install -m 0755 /jtap/e2e/dom0/block-e2e /etc/xen/scripts/block-e2e
                DISK_LINE="format=raw, vdev=xvda, access=rw, script=block-e2e, target=/dev/vdc"
            fi ;;
    *)      DISK_LINE="format=raw, vdev=xvda, access=rw, script=block-jtap, target=/var/lib/e2e/disk.img"
            install -m 0755 /jtap/scripts/xen/block-jtap /etc/xen/scripts/block-jtap ;;
esac
VIF_LINE="mac=$GUEST_MAC, bridge=xenbr0"
GUEST_NET=1
if [ "$E2E_BACKEND" != kernel ] && [ "$JTAP_SERVES_NET" != 1 ]; then GUEST_NET=0; fi
cat > /run/g1.cfg <<CFG
name = "g1"
type = "pv"
kernel = "/var/lib/e2e/vmlinuz"
ramdisk = "/var/lib/e2e/initrd.img"
extra = "console=hvc0 loglevel=6 panic=-1 e2e.net=$GUEST_NET"
memory = 512
vcpus = 2
disk = [ "$DISK_LINE" ]
vif = [ $( [ $GUEST_NET = 1 ] && echo "\"$VIF_LINE\"" ) ]
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
cp /run/g1.cfg "$R/g1.cfg"
record "INFO disk-line: $DISK_LINE"
if [ $GUEST_NET = 1 ]; then record "INFO vif-line: $VIF_LINE"; else record "INFO vif-line: none (jtap does not serve backend/vif yet: JTAP_SERVES_NET=0)"; fi

# --- jtap, before xl create (libxl waits only ~10 s for a backend to reach InitWait)
JTAP_PID=
if [ "$E2E_BACKEND" = jtap ]; then
    say "starting: $JTAP_SERVE"
    t=$(now)
    JTAP_JAVA_OPTS="-Djava.util.logging.config.file=$E2E/dom0/jtap-logging.properties" $JTAP_SERVE > "$R/jtap.log" 2>&1 &
    JTAP_PID=$!
    jtap_ready() { grep -qE "$JTAP_READY_REGEX" "$R/jtap.log"; }
    jtap_gone() { ! kill -0 "$JTAP_PID" 2>/dev/null; }
    wait_for "$JTAP_READY_TIMEOUT" eval 'jtap_ready || jtap_gone'
    if jtap_ready && ! jtap_gone; then
        pass jtap-started "$(grep -E "$JTAP_READY_REGEX" "$R/jtap.log" | head -1)"; record "TIME jtap-ready $(since "$t")"
    else
        fail jtap-started "no line matching /$JTAP_READY_REGEX/ within $JTAP_READY_TIMEOUT s, or it exited"; tail -20 "$R/jtap.log"
    fi
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
    vbd_connected() { test "$(xs $FE/vbd/51712/state)" = 4; }
    vif_connected() { test "$(xs $FE/vif/0/state)" = 4; }
    wait_for 120 eval 'vbd_connected || guest_gone'
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
    [ $GUEST_NET = 1 ] && wait_for 60 eval 'vif_connected || guest_gone'
    if [ $GUEST_NET = 0 ]; then
        :
    elif vif_connected; then
        pass vif-connected
        xenstore-ls -fp $FE/vif > "$R/xenstore-frontend-vif.txt" 2>&1
        xenstore-ls -fp $BE/vif/$DOMID > "$R/xenstore-backend-vif.txt" 2>&1
        f=$FE/vif/0; b=$(xs $f/backend)
        record "INFO netif frontend: rx-copy=$(xs $f/request-rx-copy) gso-tcpv4=$(xs $f/feature-gso-tcpv4) gso-tcpv6=$(xs $f/feature-gso-tcpv6) sg=$(xs $f/feature-sg) csum-offload=$(xs $f/feature-no-csum-offload) queues=$(xs $f/multi-queue-num-queues)"
        record "INFO netif backend $b: rx-copy=$(xs $b/feature-rx-copy) gso-tcpv4=$(xs $b/feature-gso-tcpv4) sg=$(xs $b/feature-sg) max-queues=$(xs $b/multi-queue-max-queues)"
    else
        fail vif-connected "frontend state $(xs $FE/vif/0/state) after 60 s"
    fi
    # the guest powers itself off when its plan is done
    say "waiting for the guest's test plan"
    if wait_for 600 guest_gone; then
        pass guest-finished "after $(since "$t") s"
    else
        fail guest-finished "still running after 600 s"; xl destroy g1
    fi
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

# --- jtap's log, dom0's kernel log
if [ -n "$JTAP_PID" ]; then
    kill "$JTAP_PID" 2>/dev/null; wait "$JTAP_PID" 2>/dev/null
    check jtap-log-clean bash -c "! grep -E '(^| )(ERROR|SEVERE)( |:)' '$R/jtap.log'"
fi
dmesg > "$R/dmesg.txt"
check dom0-kernel-log-clean bash -c "! grep -iE '(grant|gnttab|evtchn|event.channel).*(fail|warn|error|leak)|(fail|warn|error).*(grant|gnttab|evtchn|event.channel)' '$R/dmesg.txt'"

# --- logs for whoever reads a failure
xl dmesg > "$R/xen-dmesg.txt" 2>&1
cp -r /var/log/xen "$R/var-log-xen" 2>/dev/null
record "TIME plan-total $(up)"
echo DONE >> "$R/results.txt"
say "plan done: $(grep -c '^PASS' "$R/results.txt") passed, $(grep -c '^FAIL' "$R/results.txt") failed"
exec > /dev/console 2>&1
sync; sleep 1
umount /results 2>/dev/null || umount -l /results
