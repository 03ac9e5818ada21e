#!/bin/sh
# The guest's half of the end-to-end test plan. Prints one line per assertion on the console:
#   E2E-RESULT PASS|FAIL <name> [detail]     E2E-INFO <name> <detail>     E2E-SYNC <point> .
# dom0's plan reads them from xenconsoled's log of this guest. Every step has a timeout.
#
# What runs is chosen by dom0 on the kernel command line:
#   e2e.role=main|peer   main: the disk and network plan; peer: a second guest that reaches the main one
#   e2e.net=0|1          whether the guest has a NIC
#   e2e.qcow2=1          xvdb is a qcow2 image: data tests, then fstrim (dom0 measures the image around it)
#   e2e.ro=1             xvdc is a read-only disk whose content dom0 knows
#   e2e.detach=1         dom0 detaches and re-attaches xvdb with xl block-detach / block-attach
#   e2e.jtapattach=1     dom0 attaches and detaches xvdd with `jtap attach` / `jtap detach`
#   e2e.peer=1           dom0 starts a second guest (role peer) that pings this one and runs iperf3 to it
#   e2e.save=1           dom0 saves and restores this guest with xl save / xl restore; IO and network resume
#
# Synchronisation with dom0: `sync_point NAME` prints "E2E-SYNC NAME ." and polls dom0's little web server
# (busybox httpd on 10.0.0.1:8000) until dom0 publishes NAME, that is until dom0 has done its part.
export PATH=/sbin:/usr/sbin:/bin:/usr/bin:/bb
DOM0=10.0.0.1
PEER_OF=10.0.0.2     # the main guest, as the peer guest reaches it
DISK=/dev/xvda

up() { cut -d' ' -f1 /proc/uptime; }
result() { echo "E2E-RESULT $*"; }
info() { echo "E2E-INFO $*"; }
arg() { sed -n "s/.*e2e\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
on() { [ "$(arg "$1")" = 1 ]; }
# run NAME TIMEOUT CMD...: runs the command, PASS/FAIL on its exit status, its output indented on failure
run() {
    local name="$1" t="$2" rc; shift 2
    timeout "$t" "$@" > "/tmp/$name.log" 2>&1; rc=$?
    if [ $rc -eq 0 ]; then result PASS "$name"; else result FAIL "$name" "rc=$rc"; sed 's/^/  | /' "/tmp/$name.log" | tail -40; fi
    return $rc
}
# check NAME CMD...: PASS/FAIL on the command's status, no output kept
check() { local name="$1"; shift; if "$@"; then result PASS "$name"; else result FAIL "$name"; fi; }
wait_for() { # wait_for SECONDS TEST...
    local n=$1; shift
    while [ "$n" -gt 0 ]; do "$@" && return 0; sleep 1; n=$((n - 1)); done
    return 1
}
# sync_point NAME [SECONDS]: tells dom0 this guest reached NAME and waits until dom0 has done its part
sync_point() {
    local name="$1" n="${2:-300}"
    echo "E2E-SYNC $name ."
    while [ "$n" -gt 0 ]; do
        # (timeout, not wget -T: Debian bookworm's busybox 1.35 wget crashes with -T)
        timeout 5 wget -q -O /dev/null "http://$DOM0:8000/$name" 2>/dev/null && return 0
        sleep 1; n=$((n - 1))
    done
    result FAIL "sync-$name" "dom0 never released it"
    return 1
}
no_dev() { ! test -b "$1"; }
# fio with verification (a command line, not a function: `timeout` runs it)
FIO_VERIFY="fio --ioengine=libaio --direct=1 --verify=crc32c --verify_fatal=1 --do_verify=1"
fio_info() { info "$1" "$(grep -E '^ +(write|read):' "/tmp/$1.log" | tr -s ' ' | tr '\n' ';')"; }

load_modules() {
    # blkfront's defaults ask for a one-page ring; ask for what the backends offer (16 pages)
    for m in $(cat /lib/modules/order); do
        case "$m" in xen-blkfront.ko) args="max_ring_page_order=4" ;; *) args= ;; esac
        insmod "/lib/modules/$m" $args || echo "insmod $m failed"
    done
}

network_up() {
    wait_for 30 test -e /sys/class/net/eth0 || { result FAIL nic-visible "no eth0 after 30 s"; return 1; }
    ip link set lo up; ip link set eth0 up
    run dhcp 60 udhcpc -i eth0 -n -q -t 20 -T 2 -s /etc/udhcpc.script || return 1
    info dhcp-address "$(cat /tmp/dhcp-address) uptime=$(up)"
}

# --- the benchmark guest (bench/xen-bench.sh): the same fio jobs and iperf3 runs on whichever backend dom0
# gave it; one line per figure: E2E-BENCH <label> <job> <value> <unit>
if [ "$(arg role)" = bench ]; then
    L=$(arg label); T=$(arg benchsec); T=${T:-10}
    echo "E2E-GUEST-START role=bench label=$L uptime=$(up)"
    load_modules
    # bench_fio JOB FIELD UNIT fio-options...: FIELD of fio's terse (v3) line: 7/8 read KiB/s / IOPS, 48/49 write
    bench_fio() {
        local job="$1" field="$2" unit="$3" v; shift 3
        if timeout $((T * 4 + 120)) fio --minimal --name="$job" --filename=/dev/xvda --ioengine=libaio --direct=1 \
                --runtime="$T" --time_based --ramp_time=2 --size=256M "$@" > "/tmp/$job.terse" 2> "/tmp/$job.err"; then
            v=$(cut -d';' -f"$field" "/tmp/$job.terse" | head -1)
            echo "E2E-BENCH $L $job $v $unit"
        else
            result FAIL "bench-$job" "$(tail -3 "/tmp/$job.err" | tr '\n' ' ')"
        fi
    }
    if wait_for 60 test -b /dev/xvda; then
        # writes first, so that the reads read written data on every backend
        bench_fio seq1m-write 48 KiB/s --rw=write --bs=1M --iodepth=8
        bench_fio seq1m-read 7 KiB/s --rw=read --bs=1M --iodepth=8
        bench_fio rand4k-read 8 IOPS --rw=randread --bs=4k --iodepth=32
    else
        result FAIL bench-disk-visible "no /dev/xvda after 60 s"
    fi
    if [ "$(arg net)" = 1 ] && network_up; then
        for dir in to-dom0 from-dom0; do
            opt=; [ $dir = from-dom0 ] && opt=-R
            if timeout 60 iperf3 -c $DOM0 -t 5 -f m $opt > "/tmp/iperf-$dir.log" 2>&1; then
                v=$(awk '/receiver$/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") print $i }' "/tmp/iperf-$dir.log" | tail -1)
                echo "E2E-BENCH $L iperf-$dir $v Mbit/s"
            else
                result FAIL "bench-iperf-$dir"
            fi
        done
    fi
    echo "E2E-GUEST-DONE uptime=$(up)"
    exit 0
fi

# --- the peer guest: reach the main guest over the bridge, then power off
if [ "$(arg role)" = peer ]; then
    echo "E2E-GUEST-START role=peer uptime=$(up)"
    load_modules
    if network_up; then
        run ping-main-guest 30 ping -c 3 -W 5 $PEER_OF
        if run iperf-to-main-guest 40 iperf3 -c $PEER_OF -t 3 -f m; then
            info iperf-to-main-guest "$(grep -E 'sender$' /tmp/iperf-to-main-guest.log | tail -1)"
        fi
    fi
    echo "E2E-GUEST-DONE uptime=$(up)"
    exit 0
fi

echo "E2E-GUEST-START role=main uptime=$(up)"
load_modules

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
NET=0
if [ "$(arg net)" = 0 ]; then
    info network "skipped: no NIC in this run"
elif network_up; then
    NET=1
    run ping-dom0 30 ping -c 3 -W 5 $DOM0
    if run iperf-to-dom0 40 iperf3 -c $DOM0 -t 5 -f m; then
        info iperf-to-dom0 "$(grep -E 'sender$' /tmp/iperf-to-dom0.log | tail -1)"
    fi
    if run iperf-from-dom0 40 iperf3 -c $DOM0 -t 5 -f m -R; then
        info iperf-from-dom0 "$(grep -E 'receiver$' /tmp/iperf-from-dom0.log | tail -1)"
    fi
fi

# data_tests PREFIX DEV: fio with verification on the raw device, then a filesystem holding a file whose md5
# is reported as INFO <prefix>data-md5 (dom0 compares it with the image afterwards)
data_tests() {
    local p="$1" dev="$2"
    if run ${p}fio-rand-4k 300 $FIO_VERIFY --filename="$dev" --name=rand4k --rw=randwrite --bs=4k --iodepth=32 --size=8M; then
        fio_info ${p}fio-rand-4k
    fi
    if run ${p}fio-seq-1m 300 $FIO_VERIFY --filename="$dev" --name=seq1m --rw=write --bs=1M --iodepth=8 --size=32M --offset=64M; then
        fio_info ${p}fio-seq-1m
    fi
    run ${p}mkfs 120 mkfs.ext4 -q -F "$dev"
    if run ${p}mount 30 mount -t ext4 "$dev" /mnt; then
        run ${p}write-file 120 dd if=/dev/urandom of=/mnt/data bs=1M count=16 conv=fsync
        md5sum /mnt/data > /tmp/${p}data.md5
        info ${p}data-md5 "$(cut -d' ' -f1 /tmp/${p}data.md5)"
        umount /mnt
        # read back after a fresh mount, so the data comes from the disk, not the page cache
        mount -t ext4 "$dev" /mnt && echo 3 > /proc/sys/vm/drop_caches
        run ${p}read-file 120 md5sum -c /tmp/${p}data.md5
        umount /mnt
    fi
    run ${p}fsck 120 e2fsck -f -n "$dev"
}

[ -b $DISK ] && data_tests "" $DISK

# --- qcow2: the same data tests on xvdb, then discard: fill the filesystem, delete, fstrim; dom0 measures the
# image's allocated size at both sync points
if on qcow2; then
    if wait_for 30 test -b /dev/xvdb; then
        data_tests qcow2- /dev/xvdb
        if mount -t ext4 /dev/xvdb /mnt; then
            run trim-fill 400 dd if=/dev/urandom of=/mnt/fill bs=1M count=96 conv=fsync
            sync
            sync_point trim-filled
            rm /mnt/fill; sync
            if run fstrim 120 fstrim -v /mnt; then info fstrim "$(cat /tmp/fstrim.log)"; fi
            umount /mnt
            sync_point trimmed
        else
            result FAIL trim-mount
        fi
    else
        result FAIL qcow2-disk-visible "no /dev/xvdb after 30 s"
    fi
fi

# --- read-only disk: the guest sees it read-only (the backend's `info` has VDISK_READONLY), reads what dom0
# put there, and cannot write it (dom0 checks the image is unchanged). Linux keeps a disk that the driver set
# read-only read-only even after BLKROSET, so the backend's own refusal of a write is tested in blkback's tests.
if on ro; then
    if wait_for 30 test -b /dev/xvdc; then
        check ro-flag test "$(blockdev --getro /dev/xvdc)" = 1
        if run ro-read 60 dd if=/dev/xvdc of=/tmp/ro.bin bs=1M; then
            info ro-md5 "$(md5sum < /tmp/ro.bin | cut -d' ' -f1)"
            rm -f /tmp/ro.bin
        fi
        check ro-write-refused-by-guest sh -c '! dd if=/dev/zero of=/dev/xvdc bs=4k count=1 oflag=direct 2>/dev/null'
    else
        result FAIL ro-disk-visible "no /dev/xvdc after 30 s"
    fi
fi

# --- a second guest reaches this one over the bridge (iperf3 server here, one test)
if on peer && [ $NET = 1 ]; then
    iperf3 -s -1 -D --logfile /tmp/iperf-peer-server.log
    sync_point peer 500
fi

# --- detach and re-attach the qcow2 disk on the running guest (xl block-detach / block-attach)
if on detach; then
    sync_point detach-xvdb
    if wait_for 90 no_dev /dev/xvdb; then result PASS xvdb-detached; else result FAIL xvdb-detached "still there after 90 s"; fi
    sync_point attach-xvdb
    if wait_for 90 test -b /dev/xvdb; then
        result PASS xvdb-reattached
        if mount -t ext4 -o ro /dev/xvdb /mnt; then
            run xvdb-data-after-reattach 120 md5sum -c /tmp/qcow2-data.md5
            umount /mnt
        else
            result FAIL xvdb-data-after-reattach "cannot mount"
        fi
    else
        result FAIL xvdb-reattached "no /dev/xvdb 90 s after xl block-attach"
    fi
fi

# --- `jtap attach` / `jtap detach` of xvdd, without the toolstack
if on jtapattach; then
    sync_point jtap-attach
    if wait_for 90 test -b /dev/xvdd; then
        result PASS xvdd-attached "sectors=$(cat /sys/block/xvdd/size)"
        dd if=/dev/urandom of=/tmp/xvdd.bin bs=1M count=4 2>/dev/null
        run xvdd-write 60 dd if=/tmp/xvdd.bin of=/dev/xvdd bs=1M oflag=direct conv=fsync
        info xvdd-md5 "$(md5sum < /tmp/xvdd.bin | cut -d' ' -f1)"
        echo 3 > /proc/sys/vm/drop_caches
        check xvdd-read-back sh -c 'dd if=/dev/xvdd bs=1M count=4 iflag=direct 2>/dev/null | cmp -s - /tmp/xvdd.bin'
        rm -f /tmp/xvdd.bin
    else
        result FAIL xvdd-attached "no /dev/xvdd 90 s after jtap attach"
    fi
    sync_point jtap-detach
    if wait_for 90 no_dev /dev/xvdd; then result PASS xvdd-detached; else result FAIL xvdd-detached "still there after 90 s"; fi
fi

# --- xl save / xl restore: afterwards the disk and the network work again
if on save; then
    sync_point save 600
    info restored "uptime=$(up)"
    # the filesystem on xvda: what was written before the save reads back, a new file goes through the disk
    if run mount-after-restore 60 mount -t ext4 $DISK /mnt; then
        run read-after-restore 120 md5sum -c /tmp/data.md5
        run write-after-restore 120 dd if=/dev/urandom of=/mnt/after-restore bs=1M count=8 conv=fsync
        md5sum /mnt/after-restore > /tmp/after-restore.md5
        umount /mnt
        mount -t ext4 $DISK /mnt && echo 3 > /proc/sys/vm/drop_caches
        run reread-after-restore 120 md5sum -c /tmp/after-restore.md5
        umount /mnt
        run fsck-after-restore 120 e2fsck -f -n $DISK
    fi
    [ $NET = 1 ] && run ping-after-restore 60 ping -c 3 -W 5 $DOM0
fi
echo "E2E-GUEST-DONE uptime=$(up)"
