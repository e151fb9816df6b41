#!/bin/sh
# Fuzzes the loaders of the files a model is served from, with libFuzzer +
# ASan + UBSan against the whole library, each for ${1:-60} seconds: the
# model file (fuzz/fuzz_model.c: cb_bundle_load), seeded with a tiny model
# trained here on synthetic data, and its approximate index
# (fuzz/fuzz_index.c: cb_recommender_load_index, then searches through the
# loaded graph), seeded with two index files of that model. Both are built
# with CB_FUZZ_NO_CHECKSUM: mutated files get past the checksum to the
# contents' validators. Crash inputs go to build/fuzz/ and the exit status
# is non-zero.   [FUZZ_TARGETS="index"] scripts/fuzz-model.sh [seconds]
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
CLANG=${CLANG:-clang}
make -s cbrec >/dev/null
mkdir -p build/fuzz
work=$(mktemp -d /tmp/cbrec-fuzz-model-XXXXXX)
trap 'rm -rf "$work"' EXIT
./cbrec synth --out "$work/data" --users 30 --items 40 --ratings 600 --genres 4 --seed 3 >/dev/null
./cbrec train --data "$work/data" --model "$work/tiny.cbrec" --user-layers 4 --item-layers 4 --dim 2 \
    --epochs 1 --top-k-popular 5 -q >/dev/null
mkdir "$work/corpus_model" "$work/corpus_index"
cp "$work/tiny.cbrec" "$work/corpus_model/"
./cbrec index --model "$work/tiny.cbrec" --out "$work/corpus_index/m4.hnsw" --m 4 --threads 1 >/dev/null
./cbrec index --model "$work/tiny.cbrec" --out "$work/corpus_index/m16.hnsw" --threads 1 >/dev/null
status=0
for target in ${FUZZ_TARGETS:-model index}; do
  $CLANG -g -O1 -std=c11 -D_GNU_SOURCE -DCB_FUZZ_NO_CHECKSUM -Wall -Wextra -Wshadow -Wno-unused-parameter \
      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
      -Iinclude -Isrc $(pkg-config --cflags openblas jansson) fuzz/fuzz_$target.c \
      $(ls src/*/*.c | grep -v -e "^src/cli/" -e "^src/serve/") \
      $(pkg-config --libs openblas jansson) -lm -lpthread -o build/fuzz/fuzz_$target
  echo "fuzz: running build/fuzz/fuzz_$target for ${secs}s"
  CBREC_FUZZ_MODEL="$work/tiny.cbrec" build/fuzz/fuzz_$target -max_total_time="$secs" -timeout=10 \
      -rss_limit_mb=4096 -artifact_prefix=build/fuzz/ -print_final_stats=1 "$work/corpus_$target" || status=1
done
exit $status
