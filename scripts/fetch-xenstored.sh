#!/usr/bin/env bash
# Unpacks Xen's C xenstored from Debian's xen-utils-<series> package into a cache (not installed system-wide: the
# package brings init scripts) and builds the LD_PRELOAD shim that lets it run on a host without Xen.
#
# Usage: scripts/fetch-xenstored.sh [cache-root]     (default: ${XDG_CACHE_HOME:-~/.cache}/jtap/xen-debs)
# Prints, on success, two lines:  XENSTORED=<path to the binary>  and  SHIM=<path to the shim .so>
# Exit status 2 means "cannot here" (no apt, no network and no cache, no gcc, no Xen headers); the reason is on stderr.
#
# The xenstored binary must match the installed Xen libraries (libxenmisc4.17 etc., pulled in by libxen-dev), so the
# version fetched is the installed libxenmisc's, and the cache is keyed by it.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
shim_src="$here/../native/src/test/c/xenstored-shim.c"
cache_root="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/jtap/xen-debs}"

cannot() { echo "fetch-xenstored: $*" >&2; exit 2; }

command -v dpkg-query >/dev/null || cannot "not a Debian system (no dpkg-query)"
misc_pkg="$(dpkg-query -W -f='${Package}\n' 'libxenmisc4.*' 2>/dev/null | head -n1 || true)"
[ -n "$misc_pkg" ] || cannot "no libxenmisc4.* installed (scripts/install-deps.sh installs libxen-dev, which pulls it in)"
series="${misc_pkg#libxenmisc}"                      # e.g. 4.17
version="$(dpkg-query -W -f='${Version}' "$misc_pkg")"
dir="$cache_root/xen-utils-$series-$version"
xenstored="$dir/root/usr/lib/xen-$series/bin/xenstored"

if [ ! -x "$xenstored" ]; then
    command -v apt-get >/dev/null || cannot "no apt-get to download xen-utils-$series=$version"
    mkdir -p "$dir/download"
    (cd "$dir/download" && apt-get download -q "xen-utils-$series=$version" >&2) \
        || cannot "apt-get download xen-utils-$series=$version failed"
    rm -rf "$dir/root.tmp"
    dpkg -x "$dir"/download/xen-utils-"$series"_*.deb "$dir/root.tmp"
    mv "$dir/root.tmp" "$dir/root"
fi
[ -x "$xenstored" ] || cannot "xen-utils-$series=$version has no $xenstored"

command -v gcc >/dev/null || cannot "no gcc to build the xenstored shim"
[ -e /usr/include/xenctrl.h ] || cannot "no /usr/include/xenctrl.h (libxen-dev) to build the xenstored shim"
shim="$dir/xenstored-shim.so"
if [ ! -e "$shim" ] || [ "$shim_src" -nt "$shim" ]; then
    gcc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$shim.tmp" "$shim_src" -ldl || cannot "building the shim failed"
    mv "$shim.tmp" "$shim"
fi

echo "XENSTORED=$xenstored"
echo "SHIM=$shim"
