#!/bin/sh
# The guest's half of the end-to-end test plan. Prints one line per assertion on the console:
#   E2E-RESULT PASS|FAIL <name> [detail]     E2E-INFO <name> <detail>
# dom0's plan reads them from xenconsoled's log of this guest. Every step has a timeout.
export PATH=/sbin:/usr/sbin:/bin:/usr/bin:/bb
DOM0=10.0.0.1
DISK=/dev/xvda

up() { cut -d' ' -f1 /proc/uptime; }
result() { echo "E2E-RESULT $*"; }
info() { echo "E2E-INFO $*"; }
# run NAME TIMEOUT CMD...: runs the command, PASS/FAIL on its exit status, its output indented on failure
run() {
    local name="$1" t="$2" rc; shift 2
    timeout "$t" "$@" > "/tmp/$name.log" 2>&1; rc=$?
    if [ $rc -eq 0 ]; then result PASS "$name"; else result FAIL "$name" "rc=$rc"; sed 's/^/  | /' "/tmp/$name.log" | tail -40; fi
    return $rc
}
wait_for() { # wait_for SECONDS TEST...
    local n=$1; shift
    while [ "$n" -gt 0 ]; do "$@" && return 0; sleep 1; n=$((n - 1)); done
    return 1
}

echo "E2E-GUEST-START uptime=$(up)"
# blkfront's defaults ask for a one-page ring; ask for what the backends offer (16 pages)
for m in $(cat /lib/modules/order); do
    case "$m" in xen-blkfront.ko) args="max_ring_page_order=4" ;; *) args= ;; esac
    insmod "/lib/modules/$m" $args || echo "insmod $m failed"
done

# --- disk: visible, handshake as the guest sees it
if wait_for 60 test -b $DISK; then
    result PASS disk-visible "uptime=$(up) sectors=$(cat /sys/block/xvda/size)"
    q=/sys/block/xvda/queue
    # more than 11 segments per request (one ring slot's worth) means indirect descriptors are in use
    if [ "$(cat $q/max_segments)" -gt 11 ]; then result PASS indirect-segments-in-use; else result FAIL indirect-segments-in-use "max_segments=$(cat $q/max_segments)"; fi
    info blk-queue "max_segments=$(cat $q/max_segments) max_hw_sectors_kb=$(cat $q/max_hw_sectors_kb) nr_hw_queues=$(ls /sys/block/xvda/mq | wc -l) discard_max_bytes=$(cat $q/discard_max_bytes)"
else
    result FAIL disk-visible "no $DISK after 60 s"
fi

# --- network first, so that dom0 can ping us while the disk tests run (e2e.net=0: the guest has no NIC)
if grep -q 'e2e.net=0' /proc/cmdline; then
    info network "skipped: no NIC in this run"
elif wait_for 30 test -e /sys/class/net/eth0; then
    ip link set lo up; ip link set eth0 up
    if run dhcp 60 udhcpc -i eth0 -n -q -t 20 -T 2 -s /etc/udhcpc.script; then
        info dhcp-address "$(cat /tmp/dhcp-address) uptime=$(up)"
        run ping-dom0 30 ping -c 3 -W 5 $DOM0
        if run iperf-to-dom0 40 iperf3 -c $DOM0 -t 5 -f m; then
            info iperf-to-dom0 "$(grep -E 'sender$' /tmp/iperf-to-dom0.log | tail -1)"
        fi
        if run iperf-from-dom0 40 iperf3 -c $DOM0 -t 5 -f m -R; then
            info iperf-from-dom0 "$(grep -E 'receiver$' /tmp/iperf-from-dom0.log | tail -1)"
        fi
    fi
else
    result FAIL nic-visible "no eth0 after 30 s"
fi

# --- data: fio with verification on the raw device, then a filesystem
if [ -b $DISK ]; then
    FIO="fio --filename=$DISK --ioengine=libaio --direct=1 --verify=crc32c --verify_fatal=1 --do_verify=1"
    if run fio-rand-4k 300 $FIO --name=rand4k --rw=randwrite --bs=4k --iodepth=32 --size=8M; then
        info fio-rand-4k "$(grep -E '^ +(write|read):' /tmp/fio-rand-4k.log | tr -s ' ' | tr '\n' ';')"
    fi
    if run fio-seq-1m 300 $FIO --name=seq1m --rw=write --bs=1M --iodepth=8 --size=32M --offset=64M; then
        info fio-seq-1m "$(grep -E '^ +(write|read):' /tmp/fio-seq-1m.log | tr -s ' ' | tr '\n' ';')"
    fi
    run mkfs 120 mkfs.ext4 -q -F $DISK
    if run mount 30 mount -t ext4 $DISK /mnt; then
        run write-file 120 dd if=/dev/urandom of=/mnt/data bs=1M count=16 conv=fsync
        md5sum /mnt/data > /tmp/data.md5
        info data-md5 "$(cut -d' ' -f1 /tmp/data.md5)"
        umount /mnt
        # read back after a fresh mount, so the data comes from the disk, not the page cache
        mount -t ext4 $DISK /mnt && echo 3 > /proc/sys/vm/drop_caches
        run read-file 120 md5sum -c /tmp/data.md5
        umount /mnt
    fi
    run fsck 120 e2fsck -f -n $DISK
fi
echo "E2E-GUEST-DONE uptime=$(up)"
