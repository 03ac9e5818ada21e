#!/usr/bin/env bash
# Times jtap-img convert against qemu-img convert on the same multi-GiB image with realistic content
# (ImageContentGenerator: about half large zero runs; data mixed random, compressible and small zero blocks),
# for raw->qcow2, qcow2->raw and qcow2->qcow2, with the same options for both tools (defaults: -m 8, -S 4k,
# in-order writes, and the same target cache mode: CACHE, by default unsafe, qemu-img convert's default, in which
# neither tool syncs; CACHE=writeback makes both flush once at the end). Prints a markdown table: median wall time of RUNS runs,
# jtap/qemu time ratio (< 1 means jtap is faster), and output sizes on disk (st_blocks, after a sync of the output:
# qemu-img -t unsafe leaves it in delayed allocation, which counts no extent-tree blocks yet). Every jtap output is
# checked with qemu-img compare against the source (and qemu-img check for qcow2).
#
# Build first: mvn -DskipTests install.  Environment: SIZE_GIB (4), RUNS (3), DIR (/tmp/jtap-convert-bench),
# CACHE (unsafe), EXTRA (extra convert flags for both tools, e.g. "-W").
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
SIZE_GIB=${SIZE_GIB:-4}
RUNS=${RUNS:-3}
DIR=${DIR:-/tmp/jtap-convert-bench}
CACHE=${CACHE:-unsafe}
EXTRA="-t $CACHE ${EXTRA:-}"
jtap="$root/bin/jtap-img"
classes="$root/bench/target/classes"
if [ ! -f "$classes/io/jtap/bench/img/ImageContentGenerator.class" ]; then
    echo "convert-vs-qemu-img: bench is not built; run: mvn -DskipTests install" >&2
    exit 1
fi
command -v qemu-img >/dev/null || { echo "convert-vs-qemu-img: qemu-img not found (apt-get install qemu-utils)" >&2; exit 1; }
mkdir -p "$DIR"
src_raw="$DIR/src.raw"
src_qcow2="$DIR/src.qcow2"
if [ ! -f "$src_raw" ] || [ "$(stat -c %s "$src_raw")" != "$((SIZE_GIB << 30))" ]; then
    java -cp "$classes" io.jtap.bench.img.ImageContentGenerator "$src_raw" "$SIZE_GIB"
    rm -f "$src_qcow2"
fi
[ -f "$src_qcow2" ] || qemu-img convert -f raw -O qcow2 "$src_raw" "$src_qcow2"

# Untimed: the first jtap-img run after a build makes its class-data-sharing archive (about 2 s).
"$jtap" --version >/dev/null

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ondisk() { echo $(( $(stat -c %b "$1") * 512 )); }
human() { numfmt --to=iec-i --suffix=B --format=%.2f "$1"; }

run_case() { # name src srcfmt outfmt
    local name=$1 src=$2 sfmt=$3 ofmt=$4 out="$DIR/out.jtap.$4" qout="$DIR/out.qemu.$4" tq=() tj=() sq sj t0 r
    for r in $(seq "$RUNS"); do
        # The tools take turns going first: whichever runs right after the other's output is deleted meets the
        # page cache it freed (see bench/README.md on free page reporting), so a fixed order would bias the ratio.
        for tool in $([ $((r % 2)) = 1 ] && echo "qemu jtap" || echo "jtap qemu"); do
            rm -f "$out" "$qout"; sync
            if [ "$tool" = qemu ]; then
                t0=$(now); qemu-img convert $EXTRA -f "$sfmt" -O "$ofmt" "$src" "$qout"
                tq+=("$(echo "$(now) - $t0" | bc)"); sync "$qout"; sq=$(ondisk "$qout")
            else
                t0=$(now); "$jtap" convert $EXTRA -f "$sfmt" -O "$ofmt" "$src" "$out"
                tj+=("$(echo "$(now) - $t0" | bc)"); sync "$out"; sj=$(ondisk "$out")
            fi
        done
    done
    # The last run's jtap output is still there when jtap went second; make sure of it.
    [ -f "$out" ] || "$jtap" convert $EXTRA -f "$sfmt" -O "$ofmt" "$src" "$out"
    qemu-img compare -q -f "$sfmt" -F "$ofmt" "$src" "$out" || { echo "MISMATCH: $name" >&2; exit 1; }
    if [ "$ofmt" = qcow2 ]; then qemu-img check -q "$out" || { echo "CHECK FAILED: $name" >&2; exit 1; }; fi
    local mq mj rq rj
    mq=$(printf '%s\n' "${tq[@]}" | median); mj=$(printf '%s\n' "${tj[@]}" | median)
    rq=$(printf '%s\n' "${tq[@]}" | sort -g | awk 'NR==1{a=$1} {b=$1} END {printf "%.2f-%.2f", a, b}')
    rj=$(printf '%s\n' "${tj[@]}" | sort -g | awk 'NR==1{a=$1} {b=$1} END {printf "%.2f-%.2f", a, b}')
    printf '| %s | %.2f s (%s) | %.2f s (%s) | %.2f | %.2f GB/s | %s | %s | %+d KiB |\n' "$name" "$mq" "$rq" "$mj" \
        "$rj" "$(echo "$mj / $mq" | bc -l)" "$(echo "$SIZE_GIB * 1.073741824 / $mj" | bc -l)" \
        "$(human "$sq")" "$(human "$sj")" "$(( (sj - sq) / 1024 ))"
    rm -f "$out" "$qout"
}

echo "Image: ${SIZE_GIB} GiB, source raw on disk $(human "$(ondisk "$src_raw")"), qcow2 $(human "$(ondisk "$src_qcow2")");" \
     "median of $RUNS runs (min-max); flags: $EXTRA; $(nproc) cores"
echo
echo "| conversion | qemu-img | jtap-img | jtap/qemu time | jtap rate (virtual) | qemu-img output | jtap-img output |" \
     "jtap − qemu on disk |"
echo "|---|---|---|---|---|---|---|---|"
run_case "raw → qcow2" "$src_raw" raw qcow2
run_case "qcow2 → raw" "$src_qcow2" qcow2 raw
run_case "qcow2 → qcow2" "$src_qcow2" qcow2 qcow2
