#!/bin/sh
# Runs each cmocka test binary given as an argument, then the web page's test
# (tests/web/page_test.js, which prints the same kind of lines), then the Python
# binding's pytest suite when it is built, shows their output, and ends with one
# line "N passed, N failed" summed over all of them. Skipped tests are
# listed (with their reason, printed by the test) and counted separately; they
# never count as passed. Exit status is non-zero when anything failed.
# CMOCKA_MESSAGE_OUTPUT=stdout keeps cmocka's lines in one stream we can count.
passed=0; failed=0; skipped=0; crashed=""
export CMOCKA_MESSAGE_OUTPUT=stdout
# tally NAME RC OUTPUT: shows OUTPUT and adds its cmocka-style lines to the totals.
tally() {
  printf '%s\n' "$3"
  p=$(printf '%s\n' "$3" | grep -c '^\[       OK \]')
  f=$(printf '%s\n' "$3" | grep -c '^\[  FAILED  \] [a-z_]')
  s=$(printf '%s\n' "$3" | grep -c '^\[  SKIPPED \] [a-z_]')
  total_run=$(printf '%s\n' "$3" | grep -c '^\[ RUN      \]')
  # A binary that died mid-test (crash, sanitizer abort) counts its unfinished test as failed.
  if [ $((p + f + s)) -lt "$total_run" ] || { [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; }; then
    f=$((f + 1)); crashed="$crashed $1"
  fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}
# Each binary's output goes through a file, not a pipe: a process it leaves
# behind (a server of a failed test) cannot hold the runner waiting for EOF.
outfile=$(mktemp /tmp/cbrec-test-out-XXXXXX)
for t in "$@"; do
  "$t" > "$outfile" 2>&1; rc=$?
  out=$(cat "$outfile")
  tally "$(basename "$t")" "$rc" "$out"
done
rm -f "$outfile"
# The web page in headless chromium against the real `cbrec serve` (tests/web/page_test.js);
# without node it is reported as skipped, never as passed.
if [ "${VALGRIND:-}" = 1 ]; then
  out="[  SKIPPED ] web_page: make test VALGRIND=1 runs the command-line tests only"; rc=0
elif [ "${TSAN:-}" = 1 ]; then
  out="[  SKIPPED ] web_page: make test-tsan runs the tests that start threads only"; rc=0
elif command -v node >/dev/null 2>&1; then
  out=$(node tests/web/page_test.js 2>&1); rc=$?
else
  out="[  SKIPPED ] web_page: node is not installed (scripts/install-deps.sh installs nodejs)"; rc=0
fi
tally web_page "$rc" "$out"

# The Python binding's pytest suite (python/tests), when `make python` could
# build it: its passes, failures and skips join the counts above. Without
# python3-dev / numpy / pytest the whole suite counts as one skip, with why.
# Under SANITIZE=1 the module is built with ASan + UBSan, whose runtimes must
# be loaded before the interpreter (LD_PRELOAD); leaks of the interpreter
# itself are not ours to report.
py_skip=""
if [ "${VALGRIND:-}" = 1 ]; then py_skip="make test VALGRIND=1 runs the command-line tests only"
elif [ "${TSAN:-}" = 1 ]; then py_skip="make test-tsan runs the tests that start threads only"
elif [ -z "${PYTHON:-}" ]; then py_skip="no python3 with numpy (install python3-numpy)"
elif ! ls "${PY_BUILD_LIB:-build/python/lib}"/cbrec/_cbrec*.so >/dev/null 2>&1; then
  py_skip="the extension was not built (python3-dev missing? see make python)"
elif ! "$PYTHON" -c 'import pytest' 2>/dev/null; then py_skip="no pytest for $PYTHON (install python3-pytest)"
fi
if [ -n "$py_skip" ]; then
  echo "[  SKIPPED ] python tests: $py_skip"
  skipped=$((skipped + 1))
else
  preload=""
  if [ "${SANITIZE:-}" = 1 ]; then
    preload="$(${CC:-cc} -print-file-name=libasan.so) $(${CC:-cc} -print-file-name=libubsan.so)"
  fi
  out=$(PYTHONPATH="$PY_BUILD_LIB" CBREC="$CBREC" LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0 \
        "$PYTHON" -m pytest -q -rs -p no:cacheprovider python/tests 2>&1); rc=$?
  printf '%s\n' "$out"
  last=$(printf '%s\n' "$out" | tail -n 1)
  count() { printf '%s\n' "$last" | grep -o "[0-9]* $1" | grep -o '^[0-9]*' || echo 0; }
  p=$(count passed); f=$(count failed); e=$(count error); s=$(count skipped)
  f=$((f + e))
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; crashed="$crashed pytest"; fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
fi
[ -n "$crashed" ] && echo "crashed or exited non-zero:$crashed"
[ "$skipped" -gt 0 ] && echo "$skipped skipped (see the SKIPPED lines above for why)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
