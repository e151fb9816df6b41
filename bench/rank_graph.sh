#!/bin/sh
# rank_graph — the default recommend through the approximate index's ranking
# graph against --exact, in one run (bench/bench_rank_graph.c: recall@10 of
# the approximate lists against the exact ones, and the CPU per call of
# both): a synthetic 100k-item catalog (`cbrec synth`, 2,000 users, 60,000
# ratings), the default model trained one epoch, the index built on one
# thread; 50 users, 5 calls each, OpenBLAS on one thread.
CBREC=${CBREC:-./cbrec}
BUILD=${BUILD:-build}
dir=$(mktemp -d /tmp/cbrec-bench-rank-XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
run() { "$@" >"$dir/log" 2>&1 || { cat "$dir/log"; echo "rank_graph: failed: $*"; exit 1; }; }
run "$CBREC" synth --out "$dir/data" --users 2000 --items 100000 --ratings 60000
run "$CBREC" train --data "$dir/data" --model "$dir/m.cbrec" --epochs 1 -q
run "$CBREC" index --model "$dir/m.cbrec" --out "$dir/m.hnsw" --threads 1
OPENBLAS_NUM_THREADS=1 "$BUILD/bench/bench_rank_graph" "$dir/m.cbrec" "$dir/m.hnsw" 50 5
