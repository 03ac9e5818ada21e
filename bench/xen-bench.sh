#!/usr/bin/env bash
# Same-boot benchmark on real Xen (issue 6): boots the e2e testbed (Xen 4.17 under QEMU/TCG) once, and in that
# one boot runs the same fio jobs (1 MiB sequential write and read at QD8, 4 KiB random read at QD32, direct
# IO, on a 256 MiB raw image) in a PV guest whose disk is served in turn by jtap, by the kernel's xen-blkback
# and by QEMU's qdisk, and iperf3 both ways through jtap's netback and the kernel's xen-netback. The backends
# alternate round after round. Prints a table of medians and ratios to jtap.
#
# Usage: bench/xen-bench.sh [--rounds N] [--seconds S] [--backends "jtap kernel qdisk"] [--no-build]
# Needs what e2e/run.sh needs (root, x86_64; it installs qemu-system-x86) and a built jtap
# (scripts/build-and-run.sh, or mvn -DskipTests install). About 15 minutes with the defaults.
# Output: the table on stdout; every figure in e2e/cache/run-bench/results/e2e/bench.txt.
# TCG mode: e2e/run.sh's default, single-threaded, gives about the emulated CPU time per IO (the kernel's backends
# lead); E2E_TCG_THREAD=multi runs the virtual CPUs in parallel as real hardware does, but a JVM in dom0 may then
# crash (e2e/README.md). bench/README.md has a boot of each.
set -euo pipefail
REPO="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
export BENCH_ROUNDS=2 BENCH_SECONDS=10 BENCH_BACKENDS="jtap kernel qdisk"
BUILD=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) BENCH_ROUNDS="$2"; shift 2 ;;
        --seconds) BENCH_SECONDS="$2"; shift 2 ;;
        --backends) BENCH_BACKENDS="$2"; shift 2 ;;
        --no-build) BUILD=(--no-build); shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "xen-bench.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ "$BENCH_ROUNDS" =~ ^[1-9][0-9]?$ ]] || { echo "xen-bench.sh: --rounds must be 1..99, not '$BENCH_ROUNDS'" >&2; exit 2; }
[[ "$BENCH_SECONDS" =~ ^[1-9][0-9]{0,2}$ ]] || { echo "xen-bench.sh: --seconds must be 1..999, not '$BENCH_SECONDS'" >&2; exit 2; }
for b in $BENCH_BACKENDS; do
    case "$b" in jtap|kernel|qdisk) ;; *) echo "xen-bench.sh: unknown backend '$b' (jtap, kernel, qdisk)" >&2; exit 2 ;; esac
done

rc=0
"$REPO/e2e/run.sh" --backend bench "${BUILD[@]}" --timeout 3600 || rc=$?
[ $rc -eq 77 ] && exit 77
FIG="$REPO/e2e/cache/run-bench/results/e2e/bench.txt"
[ -s "$FIG" ] || { echo "xen-bench.sh: no figures ($FIG)" >&2; exit 1; }

echo
echo "==== same-boot benchmark: medians over $BENCH_ROUNDS rounds (min-max), ratio = jtap / other ===="
# BENCH <backend> <round> <job> <value> <unit>
awk -v backends="$BENCH_BACKENDS" '
    function median(list,   n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
        lo[0] = a[1]; hi[0] = a[n]
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    $1 == "BENCH" && $6 == "KiB/s" { $5 = $5 / 1024; $6 = "MiB/s" }
    $1 == "BENCH" { v[$2, $4] = v[$2, $4] " " $5; unit[$4] = $6; if (!($4 in seen)) { seen[$4] = 1; jobs[++nj] = $4 } }
    END {
        nb = split(backends, b, " "); ji = 0
        for (i = 1; i <= nb; i++) if (b[i] == "jtap") ji = i
        printf "| %-16s |", "job"
        for (i = 1; i <= nb; i++) printf " %-24s |", b[i]
        for (i = 1; i <= nb; i++) if (b[i] != "jtap") printf " jtap/%-7s |", b[i]
        printf "\n|%s|", "------------------"
        for (i = 1; i <= nb; i++) printf "%s|", "--------------------------"
        for (i = 1; i <= nb; i++) if (b[i] != "jtap") printf "%s|", "--------------"
        printf "\n"
        for (k = 1; k <= nj; k++) {
            j = jobs[k]; printf "| %-16s |", j
            for (i = 1; i <= nb; i++) {
                if ((b[i], j) in v) { m[i] = median(v[b[i], j]); printf " %8.1f (%.0f-%.0f) %-7s |", m[i], lo[0], hi[0], unit[j] }
                else { m[i] = ""; printf " %-24s |", "-" }
            }
            for (i = 1; i <= nb; i++) if (b[i] != "jtap") {
                if (ji && m[ji] != "" && m[i] != "" && m[i] > 0) printf " %12.2f |", m[ji] / m[i]
                else printf " %12s |", "-"
            }
            printf "\n"
        }
    }' "$FIG"
exit $rc
