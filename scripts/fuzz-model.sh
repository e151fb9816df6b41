#!/bin/sh
# Fuzzes the model-file loader (cb_bundle_load): builds fuzz/fuzz_model.c with
# libFuzzer + ASan + UBSan against the whole library and runs it for
# ${1:-60} seconds, seeded with a tiny model trained here on synthetic data.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
CLANG=${CLANG:-clang}
make -s cbrec >/dev/null
mkdir -p build/fuzz
# CB_FUZZ_NO_CHECKSUM: mutated files get past the checksum to the contents' validators
$CLANG -g -O1 -std=c11 -D_GNU_SOURCE -DCB_FUZZ_NO_CHECKSUM -Wall -Wextra -Wshadow -Wno-unused-parameter \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Iinclude -Isrc $(pkg-config --cflags openblas jansson) fuzz/fuzz_model.c $(ls src/*/*.c | grep -v -e "^src/cli/" -e "^src/serve/") \
    $(pkg-config --libs openblas jansson) -lm -lpthread -o build/fuzz/fuzz_model
work=$(mktemp -d /tmp/cbrec-fuzz-model-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
./cbrec synth --out "$work/data" --users 30 --items 40 --ratings 600 --genres 4 --seed 3 >/dev/null
./cbrec train --data "$work/data" --model "$work/corpus/tiny.cbrec" --user-layers 4 --item-layers 4 --dim 2 \
    --epochs 1 --top-k-popular 5 -q >/dev/null
echo "fuzz: running build/fuzz/fuzz_model for ${secs}s"
build/fuzz/fuzz_model -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix=build/fuzz/ -print_final_stats=1 "$work/corpus"
