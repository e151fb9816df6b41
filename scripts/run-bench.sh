#!/bin/sh
# Runs every benchmark: the compiled bench/bench_* programs (built by make into
# $BUILD/bench/) and any bench/*.sh scripts. Each prints its own table with
# ratios against a peer measured in the same run. Benchmarks that need the
# shared MovieLens data or PyTorch say so and skip that part.
# Usage: make bench [BENCH=name]   (name = e.g. knn to run only bench_knn)
# Every benchmark runs under `nice` (the machine may be shared; NICE= to not).
BUILD=${BUILD:-build}
NICE=${NICE-nice}
status=0
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
for b in "$BUILD"/bench/bench_*; do
  [ -x "$b" ] || continue
  name=$(basename "$b" | sed 's/^bench_//')
  [ -n "${BENCH:-}" ] && [ "$BENCH" != "$name" ] && continue
  echo
  echo "=== bench $name"
  $NICE "$b" || { echo "bench $name FAILED"; status=1; }
done
for s in bench/*.sh; do
  [ -f "$s" ] || continue
  name=$(basename "$s" .sh)
  [ -n "${BENCH:-}" ] && [ "$BENCH" != "$name" ] && continue
  echo
  echo "=== bench $name"
  $NICE sh "$s" || { echo "bench $name FAILED"; status=1; }
done
exit $status
