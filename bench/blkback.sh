#!/bin/sh
# End-to-end block backend benchmark (see bench/README.md, "Block backend"): blkback through the simulated Xen
# against pread/pwrite on the same data, paired repetitions, ratios. Build first:
#   mvn -q -ntp -pl blkback,bench -am install -DskipTests
# Environment: SIZE_MIB (image size, 512), REPS (10), SECONDS_PER_REP (0.5), WARMUP (1), DIR (images; a
# temporary directory), CASES (comma-separated substrings of case names, e.g. "4k,qcow2"), MAX_PGRANTS (the
# backend's persistent grants per ring; default BlkbackConfig's), IO_ENGINE (io_uring, the default, or pool: every
# request on the worker pool, as on a host without io_uring), JAVA_OPTS.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
# This worktree's own classes first: the jtap jars in ~/.m2 may come from another worktree's build.
own=""
for m in ring native testkit formats blkback bench; do own="$own:$PWD/$m/target/classes"; done
cp=${own#:}:$(mvn -q -ntp -o -pl bench dependency:build-classpath -Dmdep.outputFile=/dev/stdout)
exec java ${JAVA_OPTS:-} -Xmx1g \
    -Djtap.bench.sizeMiB="${SIZE_MIB:-512}" -Djtap.bench.reps="${REPS:-10}" \
    -Djtap.bench.seconds="${SECONDS_PER_REP:-0.5}" -Djtap.bench.warmup="${WARMUP:-1}" \
    ${DIR:+-Djtap.bench.dir="$DIR"} -Djtap.bench.cases="${CASES:-}" \
    ${MAX_PGRANTS:+-Djtap.bench.maxPersistentGrants="$MAX_PGRANTS"} \
    ${IO_ENGINE:+-Djtap.bench.ioEngine="$IO_ENGINE"} \
    -cp "$cp" io.jtap.bench.blk.BlkbackEndToEnd
