#!/bin/sh
# Runs each cmocka test binary given as an argument, shows its output, and ends
# with one line "N passed, N failed" summed over all of them. Skipped tests are
# listed (with their reason, printed by the test) and counted separately; they
# never count as passed. Exit status is non-zero when anything failed.
# CMOCKA_MESSAGE_OUTPUT=stdout keeps cmocka's lines in one stream we can count.
passed=0; failed=0; skipped=0; crashed=""
export CMOCKA_MESSAGE_OUTPUT=stdout
for t in "$@"; do
  out=$("$t" 2>&1); rc=$?
  printf '%s\n' "$out"
  p=$(printf '%s\n' "$out" | grep -c '^\[       OK \]')
  f=$(printf '%s\n' "$out" | grep -c '^\[  FAILED  \] [a-z_]')
  s=$(printf '%s\n' "$out" | grep -c '^\[  SKIPPED \] [a-z_]')
  total_run=$(printf '%s\n' "$out" | grep -c '^\[ RUN      \]')
  # A binary that died mid-test (crash, sanitizer abort) counts its unfinished test as failed.
  if [ $((p + f + s)) -lt "$total_run" ] || { [ $rc -ne 0 ] && [ "$f" -eq 0 ]; }; then
    f=$((f + 1)); crashed="$crashed $(basename "$t")"
  fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
done
[ -n "$crashed" ] && echo "crashed or exited non-zero:$crashed"
[ "$skipped" -gt 0 ] && echo "$skipped skipped (see the SKIPPED lines above for why)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
