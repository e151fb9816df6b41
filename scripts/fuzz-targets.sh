#!/bin/sh
# Fuzzes the schema parser (fuzz/fuzz_schema.c), the new-user / add-item
# JSON of a loaded model (fuzz/fuzz_json.c), block files (fuzz/fuzz_block.c:
# taken or refused naming the file; a taken list never lets a blocked item
# through) and the HTTP request handling of
# `cbrec serve` (fuzz/fuzz_http.c: the real server in process, raw bytes per
# connection) with libFuzzer + ASan + UBSan, each for ${1:-60} seconds from a
# scratch copy of its seeds in fuzz/corpus/<target>; a tiny synthetic dataset,
# model and token file are made here.
# Crash inputs go to build/fuzz/ and the exit status is non-zero.
#   [FUZZ_TARGETS="http"] scripts/fuzz-targets.sh [seconds]
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
CLANG=${CLANG:-clang}
make -s cbrec build/serve/assets.c >/dev/null
mkdir -p build/fuzz
LIBSRC=$(ls src/*/*.c | grep -v -e "^src/cli/" -e "^src/serve/")
work=$(mktemp -d /tmp/cbrec-fuzz-targets-XXXXXX)
trap 'rm -rf "$work"' EXIT
# the schema target's folder: the files the seed schemas name
mkdir "$work/data"
printf 'u1,i1,4,100\nu1,i2,3,101\nu2,i1,5,102\n' > "$work/data/r.csv"
printf 'id,name,year,genres,notes\ni1,A (1999),1999,Drama|Comedy,x\ni2,B,2001,Action,y\n' > "$work/data/items.csv"
printf 'id,age,gender,region\nu1,30,F,north\nu2,41,M,south\n' > "$work/data/users.csv"
./cbrec synth --out "$work/synth" --users 30 --items 40 --ratings 600 --genres 4 --seed 3 >/dev/null
./cbrec train --data "$work/synth" --model "$work/tiny.cbrec" --user-layers 4 --item-layers 4 --dim 2 \
    --epochs 1 --top-k-popular 5 -q >/dev/null
printf 'fuzz-token-0123456789\n' > "$work/token"
SERVE_SRC="$(ls src/serve/*.c | grep -v cmd_serve.c) build/serve/assets.c"
status=0
for target in ${FUZZ_TARGETS:-schema json block http}; do
  extra=""; extra_libs=""
  if [ $target = http ]; then extra="$SERVE_SRC"; extra_libs=$(pkg-config --libs libmicrohttpd sqlite3); fi
  $CLANG -g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter \
      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
      -Iinclude -Isrc $(pkg-config --cflags openblas jansson) fuzz/fuzz_$target.c $LIBSRC $extra \
      $(pkg-config --libs openblas jansson) $extra_libs -lm -lpthread -o build/fuzz/fuzz_$target
  mkdir "$work/corpus_$target"
  cp fuzz/corpus/$target/* "$work/corpus_$target/"
  echo "fuzz: running build/fuzz/fuzz_$target for ${secs}s"
  CBREC_FUZZ_DIR="$work/data" CBREC_FUZZ_MODEL="$work/tiny.cbrec" CBREC_FUZZ_TOKEN="$work/token" \
  CBREC_FUZZ_EVENTS="$work/events.sqlite" \
  build/fuzz/fuzz_$target -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=4096 \
      -artifact_prefix=build/fuzz/ -print_final_stats=1 "$work/corpus_$target" || status=1
done
exit $status
