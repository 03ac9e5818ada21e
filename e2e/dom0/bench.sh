# Sourced by dom0/init.sh in bench mode (bench/xen-bench.sh), which provides record/pass/fail, wait_for, pv_cfg and
# jtap_start/jtap_stop: the same fio jobs and iperf3 runs in a PV guest whose disk is served by jtap, by the
# kernel's xen-blkback and by QEMU's qdisk, and whose NIC is served by jtap's netback and by the kernel's
# xen-netback, all in this one boot. The backends take turns, round after
# round, so that a slow phase of the (shared, emulated) machine hits them alike.
#
# Images: three raw images with identical content, on one ext4 filesystem on dom0's /dev/vdc (the host's
# run-bench/guest-disk.img). The kernel's blkback serves its image through a loop device (it serves block
# devices only); jtap and qdisk open their files. dom0's page cache is dropped before each guest.
# Writes BENCH <backend> <round> <job> <value> <unit> lines to $R/bench.txt, and PASS/FAIL lines as usual.
#
# Parameters (run.sh's environment, through params.sh): BENCH_ROUNDS (2), BENCH_SECONDS per fio job (10),
# BENCH_BACKENDS ("jtap kernel qdisk").
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_BACKENDS=${BENCH_BACKENDS:-jtap kernel qdisk}
BENCH_MIB=256
record "INFO bench: rounds=$BENCH_ROUNDS seconds-per-job=$BENCH_SECONDS backends=[$BENCH_BACKENDS] image=${BENCH_MIB}MiB raw"

mkfs.ext4 -q -F /dev/vdc && mkdir -p /bench && mount /dev/vdc /bench || fail bench-images "cannot make /bench on /dev/vdc"
t=$(now)
dd if=/dev/urandom of=/bench/jtap.img bs=1M count=$BENCH_MIB 2>/dev/null
cp /bench/jtap.img /bench/kernel.img; cp /bench/jtap.img /bench/qdisk.img; sync
record "TIME bench-images $(since "$t")"
record "INFO qemu dom0 device model: $(pgrep -a -f xen-qemu-system | head -1 | cut -c1-80)"

kernel_backends() { # kernel_backends on|off
    if [ "$1" = on ]; then
        rm -f /etc/modprobe.d/e2e-no-kernel-backends.conf; modprobe -a xen-blkback xen-netback
    else
        rmmod xen_blkback xen_netback 2>/dev/null
        ! grep -qE '^xen_(blk|net)back ' /proc/modules
    fi
}

# bench_one BACKEND ROUND: one guest on BACKEND, its figures appended to bench.txt
bench_one() {
    local b="$1" round="$2" name="b-$1-$2" disk net=1 loop=
    case "$b" in
        jtap)   jtap_start || { fail "bench-$name" "jtap did not start"; return; }
                kernel_backends off || { fail "bench-$name" "cannot unload the kernel backends"; return; }
                disk="format=raw, vdev=xvda, access=rw, script=block-jtap, target=/bench/jtap.img" ;;
        kernel) jtap_stop; kernel_backends on
                loop=$(losetup --find --show /bench/kernel.img) || { fail "bench-$name" "losetup"; return; }
                disk="format=raw, vdev=xvda, access=rw, script=block-e2e, target=$loop" ;;
        qdisk)  jtap_stop; kernel_backends on; net=0   # QEMU 7.2 has no PV network backend
                disk="format=raw, vdev=xvda, access=rw, backendtype=qdisk, target=/bench/qdisk.img" ;;
    esac
    sync; echo 3 > /proc/sys/vm/drop_caches
    pv_cfg "$name" 384 2 "e2e.role=bench e2e.label=$b e2e.net=$net e2e.benchsec=$BENCH_SECONDS" "\"$disk\"" \
        "$( [ $net = 1 ] && echo "\"mac=$GUEST_MAC, bridge=xenbr0\"" )"
    say "bench: $name"
    local t0; t0=$(now)
    if ! timeout 240 xl create /run/$name.cfg > "$R/xl-create-$name.log" 2>&1; then
        fail "bench-$name" "xl create failed"; tail -20 "$R/xl-create-$name.log"
        xl destroy "$name" 2>/dev/null
    elif ! wait_for $(( BENCH_SECONDS * 3 * 2 + 300 )) eval "! xl domid $name >/dev/null 2>&1"; then
        fail "bench-$name" "still running"; xl destroy "$name"
    fi
    local log=/var/log/xen/console/guest-$name.log
    tr -d '\r' < "$log" > "$R/console-$name.log" 2>/dev/null
    grep -E '^E2E-BENCH ' "$R/console-$name.log" | while read -r _ label job value unit; do
        echo "BENCH $label $round $job $value $unit" >> "$R/bench.txt"
    done
    grep -E '^E2E-RESULT FAIL' "$R/console-$name.log" | sed "s/^E2E-RESULT FAIL /FAIL $name:/" >> "$R/results.txt"
    local jobs; jobs=$(grep -c '^E2E-BENCH ' "$R/console-$name.log")
    local want=3; [ $net = 1 ] && want=5
    if [ "$jobs" -eq $want ]; then pass "bench-$name" "$jobs figures in $(since "$t0") s"
    else fail "bench-$name" "$jobs of $want figures"; tail -20 "$R/console-$name.log"; fi
    [ -n "$loop" ] && { wait_for 30 eval "! xenstore-list /local/domain/0/backend/vbd 2>/dev/null | grep -q ."; losetup -d "$loop"; }
}

: > "$R/bench.txt"
for round in $(seq 1 "$BENCH_ROUNDS"); do
    for b in $BENCH_BACKENDS; do bench_one "$b" "$round"; done
done
jtap_stop
cp "$R/bench.txt" "$R/bench-figures.txt"
check jtap-log-clean bash -c "! grep -E '(^| )(ERROR|SEVERE)( |:)' '$R/jtap.log'"
