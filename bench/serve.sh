#!/bin/sh
# bench serve — cbrec serve under wrk (Debian) on ml-latest-small, beside the
# in-process recommend loop measured in the same run (bench/serve_loop.c: the
# same recommend + JSON per request, same thread count):
#   0. wrk, 1 connection for 10 s on GET /v1/recommend?user=ID&n=10 over every
#      user: the latency of one request without a queue (with 64 connections wrk
#      keeps 64 requests queued: latency = 64 / throughput, Little's law);
#   1. wrk, 64 connections, $SERVE_SECONDS s (30): requests/s, p50/p99 latency,
#      errors; ratio to the loop (goals: 0 errors, p99 < 5 ms, ratio >= 0.5);
#   2. the same with a reload (SIGHUP: load the model again, swap) every second:
#      failed requests (goal 0).
# Both sides use the similar-items table (`cbrec precompute -k 20`), as a
# deployment would; SERVE_TABLE=0 runs both without it.
# Skips, saying so, without wrk or the data. $CBREC_BENCH_MODEL: use that model.
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SECONDS_RUN=${SERVE_SECONDS:-30}
THREADS=${SERVE_THREADS:-2}
DATA=${CBREC_DATA:-../shared/data}/ml-latest-small
if ! command -v wrk >/dev/null 2>&1; then echo "serve: SKIPPED (wrk not installed)"; exit 0; fi
tmp=$(mktemp -d /tmp/cbrec-bench-serve-XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
model=${CBREC_BENCH_MODEL:-}
if [ -z "$model" ]; then
  if [ ! -d "$DATA" ]; then echo "serve: SKIPPED ($DATA not present; or set CBREC_BENCH_MODEL)"; exit 0; fi
  model=$tmp/ml.cbrec
  ./cbrec train --data "$DATA" --model "$model" --epochs 3 -q >/dev/null || exit 1
fi
tablearg=""
if [ "${SERVE_TABLE:-1}" != 0 ]; then
  ./cbrec precompute --model "$model" --out "$tmp/sim.cbrec" -k 20 2>/dev/null || exit 1
  tablearg="--table $tmp/sim.cbrec"
fi
loop=$("$BUILD"/bench/serve_loop --model "$model" $tablearg --threads "$THREADS" --seconds 10 --ids-out "$tmp/ids") || exit 1
echo "in-process loop: $loop"
{ printf 'ids = {'; sed 's/.*/"&",/' "$tmp/ids"; printf '}\ni = 0\nrequest = function()\n  i = i + 1\n'
  printf '  return wrk.format("GET", "/v1/recommend?user=" .. ids[(i %% #ids) + 1] .. "&n=10")\nend\n'; } > "$tmp/users.lua"
./cbrec serve --model "$model" $tablearg --listen 127.0.0.1:0 --threads "$THREADS" > "$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 100); do grep -q listening "$tmp/out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\)\/.*/\1/p' "$tmp/out")
[ -n "$port" ] || { echo "serve: the server did not start"; cat "$tmp/err"; exit 1; }
# --timeout 10s: a slow answer counts in the latency, a failed one (refused, reset, non-2xx) as an error
run_wrk() { wrk -t2 -c64 -d"${SECONDS_RUN}s" --timeout 10s --latency -s "$tmp/users.lua" "http://127.0.0.1:$port" > "$1" 2>&1; }
# figures from wrk's output: requests/s, p50 and p99 in ms, non-2xx, socket errors (connect, read,
# write), timeouts (no answer within 10 s)
summary() {
  awk '/Requests\/sec/ {rps=$2}
       function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
       $1 == "50%" {p50 = ms($2)} $1 == "99%" {p99 = ms($2)}
       /Non-2xx/ {non2xx = $NF} /Socket errors/ {gsub(",", ""); sock = $4 + $6 + $8; tmo = $10}
       END {printf "rps=%.1f p50_ms=%.2f p99_ms=%.2f non2xx=%d socket_errors=%d timeouts=%d\n", rps, p50, p99, non2xx, sock, tmo}' "$1"
}
# the server's own latency, without a queue: 1 connection, 10 s
wrk -t1 -c1 -d10s --timeout 10s --latency -s "$tmp/users.lua" "http://127.0.0.1:$port" > "$tmp/wrk0" 2>&1
echo "wrk 1 connection 10s: $(summary "$tmp/wrk0")"
run_wrk "$tmp/wrk1"
s1=$(summary "$tmp/wrk1")
echo "wrk 64 connections ${SECONDS_RUN}s: $s1"
( end=$(( $(date +%s) + SECONDS_RUN )); while [ "$(date +%s)" -lt "$end" ]; do sleep 1; kill -HUP "$pid"; done ) &
reloader=$!
run_wrk "$tmp/wrk2"
wait "$reloader" 2>/dev/null
s2=$(summary "$tmp/wrk2")
reloads=$(grep -c reloaded "$tmp/err")
echo "wrk with a reload every second: $s2 (reload messages: $reloads)"
# the loop again after the server's runs: the machine's load drifts, the mean of both is the peer
loop2=$("$BUILD"/bench/serve_loop --model "$model" $tablearg --threads "$THREADS" --seconds 10) || exit 1
echo "in-process loop again: $loop2"
inproc=$(echo "$loop $loop2" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^inproc_rps=/) {split($i, a, "="); s += a[2]; n++}}
                                   END {printf "%.1f", s / n}')
echo "$s1 $s2" | awk -v inproc="$inproc" '{
  split($1, a, "="); split($3, p, "="); split($4, n1, "="); split($5, e1, "="); split($6, t1, "=")
  split($7, a2, "="); split($10, n2, "="); split($11, e2, "="); split($12, t2, "=")
  printf "RATIO serve requests/s over the in-process loop   %.2f (%.0f vs %.0f; goal >= 0.5)\n", a[2] / inproc, a[2], inproc
  printf "RATIO serve requests/s with reloads over without  %.2f (%.0f vs %.0f)\n", a2[2] / a[2], a2[2], a[2]
  printf "serve p99 latency %.2f ms (goal < 5), failed %d, timeouts %d (goal 0); with a reload every second: failed %d, timeouts %d (goal 0)\n",
         p[2], n1[2] + e1[2], t1[2], n2[2] + e2[2], t2[2] }'
