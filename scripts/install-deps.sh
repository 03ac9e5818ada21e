#!/usr/bin/env bash
# Installs the Debian packages jtap's build and tests need. Idempotent; quiet when everything is present.
# Used by ./build-and-run and ./run-tests (the README's two commands), and so by CI.
set -euo pipefail

# package -> a file it installs (checked first, so a machine that has them does not touch apt at all)
declare -A NEED=(
    [maven]=/usr/bin/mvn
    [gcc]=/usr/bin/gcc
    [libxen-dev]=/usr/include/xen/io/ring.h
    [linux-libc-dev]=/usr/include/xen/gntdev.h
    [iproute2]=/usr/sbin/ip
    [qemu-utils]=/usr/bin/qemu-img
    [gcc-multilib]=/usr/include/x86_64-linux-gnu/gnu/stubs-32.h
)

missing=()
for pkg in "${!NEED[@]}"; do
    [ -e "${NEED[$pkg]}" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
