#!/usr/bin/env bash
# Builds the real-Xen end-to-end testbed from Debian's package mirror (see e2e/README.md).
#
# Everything lands in e2e/cache/ (git-ignored). Each stage writes <stage>.key next to its output;
# a stage is rebuilt only when its key changes. A key hashes the stage's inputs: the text of the
# function that builds it, the files it copies in, and the candidate versions of the Debian
# packages it installs (from the host's apt lists; `apt-get update` on the host refreshes them).
#
# Stages:
#   rootfs   debootstrap --variant=minbase bookworm + Xen, JRE, tools, kernel  -> cache/rootfs/
#   boot     uncompressed xen, dom0 vmlinuz, MODULES=list initramfs              -> cache/boot/
#   fio      static fio from Debian's fio source package                         -> cache/fio/fio
#   guest    PV guest kernel + small initramfs (busybox, fio, e2fsprogs, iperf3)  -> cache/guest/
#   image    dom0 ext4 root image (mkfs.ext4 -d)                                 -> cache/root.img
#
# Usage: e2e/build.sh [--force STAGE]...      Exit codes: 0 ok, 1 failure, 77 cannot build here.
set -euo pipefail
E2E="$(cd "$(dirname "$(readlink -f "$0")")" && pwd)"
CACHE="${E2E_CACHE:-$E2E/cache}"   # E2E_CACHE: another cache directory (e.g. to time a cold build)
MIRROR="${E2E_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
ROOTFS="$CACHE/rootfs"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

# Packages of dom0. The guest takes its binaries (busybox, e2fsprogs, iperf3) from this root too,
# so that dom0 and guest run one kernel build and one set of libraries.
DOM0_PACKAGES=(
    linux-image-amd64 initramfs-tools kmod udev
    xen-system-amd64 xen-utils-4.17 xen-utils-common
    openjdk-17-jre-headless
    iproute2 bridge-utils e2fsprogs qemu-utils fio iperf3 busybox procps util-linux
    qemu-system-xen
)
# Kernel modules dom0's initramfs needs to reach its root disk (everything else loads from the root).
DOM0_INITRAMFS_MODULES=(virtio_pci virtio_blk ext4)
# Modules the guest initramfs carries (with their dependencies).
GUEST_MODULES=(xen-blkfront xen-netfront ext4 crc32c_generic)

FORCE=()
while [ $# -gt 0 ]; do
    case "$1" in
        --force) FORCE+=("$2"); shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument: $1" >&2; exit 1 ;;
    esac
done

log() { printf '[build %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    echo "build.sh: SKIPPED: needs root (debootstrap, chroot, mkfs.ext4 -d with ownership)" >&2
    exit 77
fi

# host tools: package -> a file it installs
declare -A HOST_NEED=(
    [debootstrap]=/usr/sbin/debootstrap
    [e2fsprogs]=/usr/sbin/mkfs.ext4
    [cpio]=/usr/bin/cpio
    [gcc]=/usr/bin/gcc
    [make]=/usr/bin/make
    [libaio-dev]=/usr/include/libaio.h
    [zlib1g-dev]=/usr/include/zlib.h
    [qemu-utils]=/usr/bin/qemu-img
)
missing=()
for p in "${!HOST_NEED[@]}"; do [ -e "${HOST_NEED[$p]}" ] || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing host packages: ${missing[*]}"
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || { echo "build.sh: SKIPPED: cannot install ${missing[*]} from Debian's mirror" >&2; exit 77; }
fi

mkdir -p "$CACHE"

# versions of the named packages as the host's apt lists know them (an input of the keys)
pkg_versions() { apt-cache policy "$@" 2>/dev/null | awk '/^[^ ]/{p=$1} /Candidate:/{print p, $2}'; }
fn_text() { declare -f "$@"; }
hash_of() { sha256sum | cut -c1-16; }

# stage NAME KEY: returns 0 when the stage must be (re)built
stale() {
    local name="$1" key="$2" f
    for f in "${FORCE[@]:-}"; do [ "$f" = "$name" ] || [ "$f" = all ] && return 0; done
    [ -f "$CACHE/$name.key" ] && [ "$(cat "$CACHE/$name.key")" = "$key" ] && return 1
    return 0
}
done_stage() { echo "$2" > "$CACHE/$1.key"; log "stage $1 built (key $2)"; }

in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }

mount_root_api() {
    mount -t proc proc "$ROOTFS/proc"
    mount -t sysfs sys "$ROOTFS/sys"
    mount --bind /dev "$ROOTFS/dev"
    trap umount_root_api EXIT
}
umount_root_api() {
    local m
    for m in dev sys proc; do umountpoint "$ROOTFS/$m"; done
    trap - EXIT
}
umountpoint() { if mountpoint -q "$1"; then umount -l "$1"; fi; }

# ---------------------------------------------------------------------------------------------
build_rootfs() {
    [ -d "$ROOTFS" ] && { umount_root_api 2>/dev/null || true; rm -rf "$ROOTFS"; }
    log "debootstrap --variant=minbase $SUITE (about a minute)"
    debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap.log"; die "debootstrap"; }
    cat > "$ROOTFS/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SRC
    # no daemons start inside the chroot
    printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"; chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
    # a small initramfs for dom0: only what reaches the virtio root disk
    mkdir -p "$ROOTFS/etc/initramfs-tools/conf.d"
    echo "MODULES=list" > "$ROOTFS/etc/initramfs-tools/conf.d/e2e"
    printf '%s\n' "${DOM0_INITRAMFS_MODULES[@]}" > "$ROOTFS/etc/initramfs-tools/modules"
    mount_root_api
    log "installing dom0 packages (about two minutes)"
    in_root apt-get update -qq > "$CACHE/apt.log" 2>&1 || { tail -20 "$CACHE/apt.log"; die "apt-get update in chroot"; }
    in_root apt-get install -y -q --no-install-recommends "${DOM0_PACKAGES[@]}" >> "$CACHE/apt.log" 2>&1 \
        || { tail -30 "$CACHE/apt.log"; die "apt-get install in chroot"; }
    in_root apt-get clean
    umount_root_api
}
KEY_ROOTFS=$( { fn_text build_rootfs; printf '%s\n' "$MIRROR" "${DOM0_PACKAGES[@]}" "${DOM0_INITRAMFS_MODULES[@]}";
                pkg_versions "${DOM0_PACKAGES[@]}"; } | hash_of)
if stale rootfs "$KEY_ROOTFS"; then build_rootfs; done_stage rootfs "$KEY_ROOTFS"; fi

KVER=$(ls "$ROOTFS/lib/modules" | sort -V | tail -1)
[ -n "$KVER" ] || die "no kernel in $ROOTFS"

# ---------------------------------------------------------------------------------------------
# dom0's PID 1 lives in the image; it only mounts the 9p share and hands over to e2e/dom0/init.sh
# from the work tree, so that changing the test plan never rebuilds the image.
build_image() {
    install -m 0755 "$E2E/dom0/e2e-init" "$ROOTFS/sbin/e2e-init"
    mkdir -p "$ROOTFS/jtap" "$ROOTFS/results"
    echo "dom0" > "$ROOTFS/etc/hostname"
    rm -f "$CACHE/root.img"
    # root: packages plus room for the guests' disk images (sparse files)
    local size_mb=$(( $(du -sm "$ROOTFS" | cut -f1) + 2560 ))
    mkfs.ext4 -q -F -L e2e-root -E lazy_itable_init=1,lazy_journal_init=1 -d "$ROOTFS" "$CACHE/root.img" "${size_mb}M" \
        || die "mkfs.ext4 -d"
}
KEY_IMAGE=$( { fn_text build_image; cat "$CACHE/rootfs.key" "$E2E/dom0/e2e-init"; } | hash_of)

# ---------------------------------------------------------------------------------------------
build_boot() {
    rm -rf "$CACHE/boot"; mkdir -p "$CACHE/boot"
    # QEMU's multiboot loader takes only an uncompressed (ELF32) xen
    zcat "$ROOTFS"/boot/xen-4.17-amd64.gz > "$CACHE/boot/xen"
    cp "$ROOTFS/boot/vmlinuz-$KVER" "$CACHE/boot/vmlinuz"
    cp "$ROOTFS/boot/initrd.img-$KVER" "$CACHE/boot/initrd.img"
    echo "$KVER" > "$CACHE/boot/kernel-version"
}
KEY_BOOT=$( { fn_text build_boot; cat "$CACHE/rootfs.key"; echo "$KVER"; } | hash_of)

# ---------------------------------------------------------------------------------------------
# Debian's fio links librbd, glusterfs and ICU (an 86 MB initramfs); a static fio from Debian's own
# source package (its patches applied) is a few MB. Built on the host (Debian 12, like the guest).
build_fio() {
    rm -rf "$CACHE/fio"; mkdir -p "$CACHE/fio/src"
    mkdir -p "$ROOTFS/tmp/fio-src"
    echo "deb-src $MIRROR $SUITE main" > "$ROOTFS/etc/apt/sources.list.d/e2e-src.list"
    mount_root_api
    in_root apt-get update -qq >/dev/null 2>&1 || true
    in_root sh -c 'cd /tmp/fio-src && apt-get source --download-only -qq fio' > "$CACHE/fio/source.log" 2>&1 \
        || { rm -f "$ROOTFS/etc/apt/sources.list.d/e2e-src.list"; umount_root_api; cat "$CACHE/fio/source.log"; die "apt-get source fio"; }
    rm -f "$ROOTFS/etc/apt/sources.list.d/e2e-src.list"
    in_root apt-get update -qq >/dev/null 2>&1 || true
    umount_root_api
    local src="$CACHE/fio/src"
    local orig deb
    orig=$(ls "$ROOTFS"/tmp/fio-src/fio_*.orig.tar.* | grep -v '\.asc$'); deb=$(ls "$ROOTFS"/tmp/fio-src/fio_*.debian.tar.*)
    tar -xf "$orig" -C "$src" --strip-components=1
    tar -xf "$deb" -C "$src"
    ls "$ROOTFS"/tmp/fio-src/*.dsc | xargs -n1 basename > "$CACHE/fio/version"
    rm -rf "$ROOTFS/tmp/fio-src"
    if [ -f "$src/debian/patches/series" ]; then
        local p
        while read -r p; do
            case "$p" in ''|'#'*) continue ;; esac
            patch -s -p1 -d "$src" < "$src/debian/patches/$p" || die "fio patch $p"
        done < "$src/debian/patches/series"
    fi
    # --disable-native: the guest's CPU is QEMU's qemu64, not this host's
    ( cd "$src" && ./configure --build-static --disable-native > "$CACHE/fio/configure.log" 2>&1 ) \
        || { tail -20 "$CACHE/fio/configure.log"; die "fio configure"; }
    grep -q 'Linux AIO support.*yes' "$CACHE/fio/configure.log" || die "fio configure found no libaio"
    make -C "$src" -j2 fio > "$CACHE/fio/make.log" 2>&1 || { tail -30 "$CACHE/fio/make.log"; die "fio make"; }
    strip -o "$CACHE/fio/fio" "$src/fio"
    rm -rf "$src"
}
KEY_FIO=$( { fn_text build_fio; pkg_versions fio libaio-dev zlib1g-dev gcc; } | hash_of)

# ---------------------------------------------------------------------------------------------
# The PV guest: dom0's kernel and a small initramfs whose /init runs e2e/guest/test.sh.
GUEST_BINARIES=(/bin/busybox /sbin/mke2fs /sbin/e2fsck /usr/bin/iperf3)
build_guest() {
    rm -rf "$CACHE/guest"; mkdir -p "$CACHE/guest"
    local ir="$CACHE/guest/root" b l m
    mkdir -p "$ir"/{bin,sbin,usr/bin,lib/modules,etc,proc,sys,dev,tmp,mnt,run}
    for b in "${GUEST_BINARIES[@]}"; do
        cp "$ROOTFS$b" "$ir$b"
        # the libraries each binary needs, as the chroot's loader resolves them
        for l in $(in_root ldd "$b" | awk '/=> \//{print $3} /^\t\/lib/{print $1}'); do
            [ -e "$ir$l" ] || { mkdir -p "$ir$(dirname "$l")"; cp -L "$ROOTFS$l" "$ir$l"; }
        done
    done
    mkdir -p "$ir/lib64"; cp -L "$ROOTFS/lib64/ld-linux-x86-64.so.2" "$ir/lib64/"
    ln -s busybox "$ir/bin/sh"   # for the #! lines; /init installs the other applets in /bb
    cp "$CACHE/fio/fio" "$ir/usr/bin/fio"
    cp "$ROOTFS/etc/mke2fs.conf" "$ir/etc/"
    ln -s mke2fs "$ir/sbin/mkfs.ext4"; ln -s e2fsck "$ir/sbin/fsck.ext4"
    # modules in load order (dependencies first), flat, with the order in a file
    : > "$ir/lib/modules/order"
    for m in "${GUEST_MODULES[@]}"; do
        in_root modprobe -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
    done | awk '!seen[$0]++' | while read -r m; do
        cp "$ROOTFS$m" "$ir/lib/modules/"; basename "$m" >> "$ir/lib/modules/order"
    done
    install -m 0755 "$E2E/guest/init" "$ir/init"
    install -m 0755 "$E2E/guest/test.sh" "$ir/test.sh"
    install -m 0755 "$E2E/guest/udhcpc.script" "$ir/etc/udhcpc.script"
    ( cd "$ir" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -9 ) > "$CACHE/guest/initrd.img"
    cp "$ROOTFS/boot/vmlinuz-$KVER" "$CACHE/guest/vmlinuz"
    du -sh "$ir" | awk '{print "guest initramfs unpacked: " $1}' > "$CACHE/guest/size"
    du -h "$CACHE/guest/initrd.img" | awk '{print "guest initramfs gzip: " $1}' >> "$CACHE/guest/size"
    rm -rf "$ir"
    log "$(tr '\n' ';' < "$CACHE/guest/size")"
}
KEY_GUEST=$( { fn_text build_guest; printf '%s\n' "${GUEST_BINARIES[@]}" "${GUEST_MODULES[@]}" "$KVER";
               cat "$CACHE/rootfs.key" "$CACHE/fio.key" 2>/dev/null;
               cat "$E2E/guest/init" "$E2E/guest/test.sh" "$E2E/guest/udhcpc.script"; } | hash_of)

if stale boot "$KEY_BOOT"; then build_boot; done_stage boot "$KEY_BOOT"; fi
if stale fio "$KEY_FIO"; then build_fio; done_stage fio "$KEY_FIO"; fi
KEY_GUEST=$( { echo "$KEY_GUEST"; cat "$CACHE/fio.key"; } | hash_of)
if stale guest "$KEY_GUEST"; then build_guest; done_stage guest "$KEY_GUEST"; fi
if stale image "$KEY_IMAGE"; then build_image; done_stage image "$KEY_IMAGE"; fi
log "ready: $CACHE/{boot,guest,root.img}"
