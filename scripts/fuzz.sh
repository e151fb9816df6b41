#!/bin/sh
# Fuzzes the csv reader: builds fuzz/fuzz_csv.c with libFuzzer + ASan + UBSan
# into build/fuzz/ and runs it for ${1:-60} seconds, starting from a scratch
# copy of the seeds in fuzz/corpus (the repository keeps only the seeds).
# Needs clang and its runtime (Debian: clang, libclang-rt-14-dev; see
# scripts/install-deps.sh). Crash inputs are written to build/fuzz/ and the
# exit status is non-zero. Set CBREC_FUZZ_KEEP=1 to keep the grown corpus.
#   scripts/fuzz.sh [seconds]     e.g.  make fuzz   or   scripts/fuzz.sh 600
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
CLANG=${CLANG:-clang}
mkdir -p build/fuzz
$CLANG -g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Iinclude -Isrc fuzz/fuzz_csv.c src/base/csv.c src/base/util.c -lm -o build/fuzz/fuzz_csv

work=$(mktemp -d /tmp/cbrec-fuzz-XXXXXX)
if [ "${CBREC_FUZZ_KEEP:-0}" = 1 ]; then
  echo "fuzz: grown corpus kept in $work"
else
  trap 'rm -rf "$work"' EXIT
fi
mkdir "$work/corpus"
find fuzz/corpus -maxdepth 1 -type f -exec cp {} "$work/corpus/" \;  # the csv seeds (subfolders: other targets)
# Tokens that matter to a CSV parser, to help the mutator.
cat > "$work/csv.dict" <<'DICT'
"\x22"
"\x22\x22"
","
"\x0d\x0a"
"\x0a"
"::"
";;;"
"\xc2\xa7"
"\xef\xbb\xbf"
"\xc3\xa9"
"\xe9"
"\xf0\x9f\x8e\xac"
DICT
echo "fuzz: running build/fuzz/fuzz_csv for ${secs}s"
build/fuzz/fuzz_csv -max_total_time="$secs" -max_len=4096 -timeout=10 \
    -dict="$work/csv.dict" -artifact_prefix=build/fuzz/ -print_final_stats=1 \
    "$work/corpus"
