#!/usr/bin/env bash
# Boots the end-to-end testbed (Xen 4.17 + Debian dom0, nested in QEMU with TCG) and checks its results.
#
# Usage: e2e/run.sh [--backend kernel|jtap|none|bench] [--no-build] [--timeout SECONDS]
#   kernel  the kernel's xen-blkback/xen-netback serve the guest (proves the harness)
#   jtap    `jtap serve` serves it; the kernel backends are not loaded
#   none    no backend at all: xl create must fail and the disk must never reach InitWait
#   bench   the same-boot benchmark (bench/xen-bench.sh): jtap, kernel and qdisk backends take turns
# Environment:
#   E2E_JTAP_TREE   the jtap build dom0 runs (a tree with bin/jtap and daemon/target), default this work
#                   tree; shared read-only into dom0 over virtio-9p (tag jtaptree, at /jtap-tree)
#   E2E_JTAP_SERVE  the daemon command dom0 runs (default in dom0/init.sh)
#   E2E_XENSTORED   oxenstored (Debian's default) or xenstored (the C one)
#   E2E_KERNEL_BLOCK_SCRIPT  lean (default: e2e/dom0/block-e2e) or stock (Xen's block script), kernel mode
#   E2E_FEATURES    the parts of the plan to run beyond the basic tests (default per mode in dom0/init.sh):
#                   any of qcow2 ro peer detach jtapattach save, space-separated; "" runs none
#   E2E_TCG_THREAD  single (default) or multi: QEMU's TCG runs both virtual CPUs on one host thread, or one
#                   thread each (MTTCG). Multi-threaded TCG can decode an instruction that another vCPU is
#                   patching from a mix of old and new bytes, which real x86 never does: a JVM in dom0 then
#                   dies with SIGSEGV when HotSpot patches a compiled method's entry (see e2e/README.md).
#
# Exit codes: 0 all assertions passed, 1 an assertion or a step failed, 77 cannot run here (skipped).
set -euo pipefail
E2E="$(cd "$(dirname "$(readlink -f "$0")")" && pwd)"
REPO="$(cd "$E2E/.." && pwd)"
CACHE="$E2E/cache"
BACKEND=kernel
BUILD=1
TIMEOUT=2400          # whole QEMU run, seconds
BOOT_TIMEOUT=300      # QEMU start -> dom0's init running
TCG_THREAD="${E2E_TCG_THREAD:-single}"
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) BACKEND="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument: $1" >&2; exit 1 ;;
    esac
done
case "$BACKEND" in kernel|jtap|none|bench) ;; *) echo "run.sh: --backend kernel|jtap|none|bench" >&2; exit 1 ;; esac
case "$TCG_THREAD" in single|multi) ;; *) echo "run.sh: E2E_TCG_THREAD must be single or multi, got: $TCG_THREAD" >&2; exit 1 ;; esac

log() { printf '[run %s] %s\n' "$(date +%T)" "$*" >&2; }
skip() { echo "e2e: SKIPPED: $*" >&2; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "needs root (builds a root filesystem with debootstrap; installs qemu-system-x86)"
[ "$(uname -m)" = x86_64 ] || skip "needs an x86_64 host, this is $(uname -m)"
if ! command -v qemu-system-x86_64 >/dev/null; then
    log "installing qemu-system-x86"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86; } >/dev/null 2>&1 \
        || skip "qemu-system-x86_64 is missing and apt-get cannot install qemu-system-x86"
fi
command -v debugfs >/dev/null || skip "debugfs (e2fsprogs) is missing"

if [ "$BUILD" = 1 ]; then
    t=$(date +%s)
    rc=0; "$E2E/build.sh" || rc=$?
    [ $rc -eq 77 ] && exit 77
    [ $rc -eq 0 ] || { log "FAILED: build"; exit 1; }
    log "build took $(( $(date +%s) - t )) s"
fi
for f in boot/xen boot/vmlinuz boot/initrd.img guest/vmlinuz guest/initrd.img root.img; do
    [ -f "$CACHE/$f" ] || { log "FAILED: $CACHE/$f is missing; run e2e/build.sh"; exit 1; }
done
JTAP_TREE="$(cd "${E2E_JTAP_TREE:-$REPO}" && pwd)"
if [ "$BACKEND" != kernel ] && [ "$BACKEND" != none ] && [ ! -f "$JTAP_TREE/daemon/target/jtap-daemon.jar" ]; then
    log "FAILED: jtap is not built ($JTAP_TREE/daemon/target/jtap-daemon.jar); run: mvn -DskipTests package"; exit 1
fi

# --- per-run state: a copy-on-write overlay over the cached root, a fresh results disk, parameters
RUN="$CACHE/run-$BACKEND"        # dom0 finds it through its kernel argument e2e.run=
rm -rf "$RUN"; mkdir -p "$RUN"
qemu-img create -q -f qcow2 -b "$CACHE/root.img" -F raw "$RUN/root.qcow2"
truncate -s 1G "$RUN/guest-disk.img"     # dom0's /dev/vdc: the guest's disk in kernel mode
truncate -s 256M "$RUN/results.img"; mkfs.ext4 -q -F -L e2e-results "$RUN/results.img"
{
    echo "E2E_BACKEND=$BACKEND"
    [ -n "${E2E_JTAP_SERVE:-}" ] && printf 'JTAP_SERVE=%q\n' "$E2E_JTAP_SERVE"
    [ -n "${E2E_XENSTORED:-}" ] && printf 'E2E_XENSTORED=%q\n' "$E2E_XENSTORED"
    [ -n "${E2E_KERNEL_BLOCK_SCRIPT:-}" ] && printf 'E2E_KERNEL_BLOCK_SCRIPT=%q\n' "$E2E_KERNEL_BLOCK_SCRIPT"
    [ -n "${E2E_FEATURES+set}" ] && printf 'E2E_FEATURES=%q\n' "$E2E_FEATURES"
    for v in BENCH_ROUNDS BENCH_SECONDS BENCH_BACKENDS; do [ -n "${!v:-}" ] && printf '%s=%q\n' "$v" "${!v}"; done
} > "$RUN/params.sh"
SERIAL="$RUN/serial.log"

# Xen's command line; dom0's kernel and initramfs are multiboot modules (a comma inside a module's
# arguments is written twice).
XEN_ARGS="dom0_mem=2G,max:2G dom0_max_vcpus=2 console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all"
DOM0_ARGS="root=/dev/vda rw console=hvc0 earlyprintk=xen rootwait init=/sbin/e2e-init e2e.run=run-$BACKEND"
QEMU=(qemu-system-x86_64 -accel "tcg,thread=$TCG_THREAD" -cpu qemu64 -m 6G -smp 2
    -display none -monitor none -parallel none -serial "file:$SERIAL" -no-reboot -net none
    -kernel "$CACHE/boot/xen" -append "$XEN_ARGS"
    -initrd "$CACHE/boot/vmlinuz $DOM0_ARGS,$CACHE/boot/initrd.img"
    -drive "file=$RUN/root.qcow2,if=virtio,format=qcow2"
    -drive "file=$RUN/results.img,if=virtio,format=raw"
    -drive "file=$RUN/guest-disk.img,if=virtio,format=raw,cache=unsafe"
    -virtfs "local,path=$REPO,mount_tag=jtap,security_model=none,readonly=on"
    -virtfs "local,path=$JTAP_TREE,mount_tag=jtaptree,security_model=none,readonly=on")
printf '%q ' "${QEMU[@]}" > "$RUN/qemu-command"

log "booting Xen under QEMU/TCG (thread=$TCG_THREAD), backend=$BACKEND, jtap tree $JTAP_TREE (serial log: $SERIAL)"
T0=$(date +%s)
"${QEMU[@]}" > "$RUN/qemu.log" 2>&1 &
QPID=$!
trap 'kill $QPID 2>/dev/null || true' EXIT
# watch the serial log: every step of dom0's plan prints a line; give up on the first missed deadline
reason=""
booted=0
while kill -0 $QPID 2>/dev/null; do
    el=$(( $(date +%s) - T0 ))
    if [ $booted = 0 ] && grep -q 'e2e-init: dom0 up' "$SERIAL" 2>/dev/null; then
        booted=1; log "dom0 init running after $el s"
    fi
    if [ $booted = 0 ] && [ $el -ge $BOOT_TIMEOUT ]; then reason="dom0 did not start its init within $BOOT_TIMEOUT s"; break; fi
    if [ $el -ge "$TIMEOUT" ]; then reason="the run did not finish within $TIMEOUT s"; break; fi
    sleep 2
done
if [ -n "$reason" ]; then
    log "FAILED: $reason; stopping QEMU"
    kill $QPID 2>/dev/null || true; sleep 2; kill -9 $QPID 2>/dev/null || true
fi
wait $QPID 2>/dev/null || true
trap - EXIT
ELAPSED=$(( $(date +%s) - T0 ))
log "QEMU exited after $ELAPSED s"

# --- results: replay the journal (dom0 powered off without a clean unmount), then copy them out
OUT="$RUN/results"
mkdir -p "$OUT"
e2fsck -fy "$RUN/results.img" > "$RUN/results-fsck.log" 2>&1 || true
debugfs -R "rdump /e2e $OUT" "$RUN/results.img" > "$RUN/debugfs.log" 2>&1 || true
RES="$OUT/e2e/results.txt"

status=0
if [ -n "$reason" ]; then status=1; fi
if [ ! -f "$RES" ]; then
    log "FAILED: no results.txt on the results disk"; status=1
else
    echo "==== results (backend=$BACKEND) ===="
    grep -vE '^DONE$' "$RES"
    echo "TIME qemu-total $ELAPSED"
    # the guest's disk as the host sees it (kernel mode: dom0's /dev/vdc): a clean ext4 holding the
    # file the guest wrote, byte for byte
    if [ "$BACKEND" = kernel ] && grep -q '^PASS guest:fsck' "$RES"; then
        if e2fsck -fn "$RUN/guest-disk.img" > "$RUN/guest-disk-fsck.log" 2>&1; then echo "PASS host:guest-disk-fsck"
        else echo "FAIL host:guest-disk-fsck"; status=1; fi
        want=$(awk '$1=="INFO" && $2=="guest:data-md5" {print $3}' "$RES")
        debugfs -R "dump /data $RUN/guest-data" "$RUN/guest-disk.img" > /dev/null 2>&1 || true
        got=$(md5sum < "$RUN/guest-data" 2>/dev/null | cut -d' ' -f1)
        if [ -n "$want" ] && [ "$want" = "$got" ]; then echo "PASS host:guest-data-matches md5=$got"
        else echo "FAIL host:guest-data-matches guest=$want host=$got"; status=1; fi
        rm -f "$RUN/guest-data"
    fi
    grep -q '^DONE$' "$RES" || { log "FAILED: the plan did not finish (no DONE)"; status=1; }
    grep -q '^FAIL' "$RES" && status=1
    grep -q '^PASS' "$RES" || status=1
fi
if [ $status -ne 0 ]; then
    echo "==== serial log, last 60 lines ($SERIAL) ===="
    tail -60 "$SERIAL" 2>/dev/null | tr -d '\r'
    for f in guest-console.log jtap.log xl-create.log; do
        [ -f "$OUT/e2e/$f" ] && { echo "==== $f, last 40 lines ===="; tail -40 "$OUT/e2e/$f"; }
    done
    # jtap's JVM crash report, if it crashed: the summary and the crashing thread's stacks are at its top
    [ -f "$OUT/e2e/hs_err.log" ] && { echo "==== hs_err.log, first 80 lines ===="; head -80 "$OUT/e2e/hs_err.log"; }
    echo "==== all logs: $OUT/e2e ===="
    log "e2e FAILED (backend=$BACKEND)"
else
    log "e2e passed: $(grep -c '^PASS' "$RES") assertions (backend=$BACKEND), $ELAPSED s in QEMU"
fi
exit $status
