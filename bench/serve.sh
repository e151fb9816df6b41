#!/bin/sh
# bench serve — cbrec serve under wrk (Debian) on ml-latest-small, beside the
# in-process recommend loop measured in the same run (bench/serve_loop.c: the
# same recommend + JSON per request, same thread count, OpenBLAS on the
# calling thread as in the server):
#   0. wrk, 1 connection for 10 s on GET /v1/recommend?user=ID&n=10 over every
#      user: the latency of one request without a queue;
#   1. wrk, 64 connections, $SERVE_SECONDS s (30): requests/s, p50/p99 latency,
#      errors; ratio to the loop (goals: 0 errors, p99 < 5 ms, ratio >= 0.5).
#      wrk is closed-loop: 64 requests are always outstanding, so the mean
#      latency is 64 / throughput (Little's law) whatever the server does;
#      the line "queue floor" prints it. The call floor: the loop times the
#      recommend call alone (its CPU); 64 outstanding requests on the machine's
#      cores cannot be answered in a mean below call x 64 / cores, whatever
#      the server does ("p99 / call floor": how far above it the tail is).
#      wrk's own CPU (it shares the cores)
#      and the server's are printed too, in cores (CPU seconds / wall seconds);
#      Beside wrk's p99, the server's own (its /metrics histogram over the
#      same seconds, from a request's arrival to its answer, as the bound of
#      the bucket holding the 99th percentile): what wrk measures beyond it
#      is time in the sockets' queues and in wrk, waiting for a core;
#   2. the same with a reload (SIGHUP: load the model again, swap) every second:
#      failed requests (goal 0);
#   3. overload: 256 connections against --max-inflight 32: the excess is
#      answered 503 at once (non-2xx), so the admitted requests' p99 stays
#      bounded instead of growing with the queue.
# CBREC_BEFORE=path/to/old/cbrec: steps 0 and 1 for that binary too, in the
# same run (A B A B when SERVE_REPEAT=2), for a before/after table.
# Precomputed answers (src/serve/answers.c, on by default): every request of
# this bench is a known user's default request (n=10, no other parameter),
# so all of them are answered from the precomputed answers. SERVE_ANSWERS=both
# (default) also runs steps 0 and 1 with --precompute-answers off (row
# after_answers_off: every answer computed); on or off: only that one.
# Both sides use the similar-items table (`cbrec precompute -k 20`), as a
# deployment would; SERVE_TABLE=0 runs both without it.
# The table's "overhead ms" is the server's CPU per request minus the loop's
# CPU per recommend + JSON: what HTTP, routing and the answer's text cost.
# SERVE_QUERY='&neighbours=false': appended to every wrk request (the loop
# does not follow it: compare the latencies, not the overhead, then).
# SERVE_WRK_THREADS (2): wrk's threads for the runs of many connections.
# SERVE_PIN=1: the server on the last core and wrk on the others (taskset),
# as with the load generator on another machine: they do not take each
# other's time slices (give the server as many --threads as its cores).
# Skips, saying so, without wrk or the data. $CBREC_BENCH_MODEL: use that model.
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SECONDS_RUN=${SERVE_SECONDS:-30}
THREADS=${SERVE_THREADS:-2}
REPEAT=${SERVE_REPEAT:-1}
WRK_THREADS=${SERVE_WRK_THREADS:-2} # wrk's threads for the runs of many connections
PIN_SERVER=""; PIN_WRK=""
if [ -n "${SERVE_PIN:-}" ]; then # the server on the last core, wrk on the others
  last=$(( $(nproc) - 1 ))
  PIN_SERVER="taskset -c $last"; PIN_WRK="taskset -c 0-$(( last > 0 ? last - 1 : 0 ))"
fi
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
echo "load at start: $(uptime | sed 's/.*load average: //') on $(nproc) cores"
loop=$("$BUILD"/bench/serve_loop --model "$model" $tablearg --threads "$THREADS" --seconds 10 --ids-out "$tmp/ids") || exit 1
echo "in-process loop: $loop"
# every user's request formatted once (init), so wrk's own CPU per request,
# which shares the cores with the server, is a table lookup
{ printf 'ids = {'; sed 's/.*/"&",/' "$tmp/ids"; printf '}\nreqs = {}\n'
  printf 'for k, id in ipairs(ids) do reqs[k] = wrk.format("GET", "/v1/recommend?user=" .. id .. "&n=10%s") end\n' "${SERVE_QUERY:-}"
  printf 'i = 0\nrequest = function()\n  i = i %% #reqs + 1\n  return reqs[i]\nend\n'; } > "$tmp/users.lua"

# start BIN [ARGS]: a server in the background ($pid, $port)
start() {
  bin=$1; shift
  $PIN_SERVER "$bin" serve --model "$model" $tablearg --listen 127.0.0.1:0 --threads "$THREADS" "$@" > "$tmp/out" 2>"$tmp/err" &
  pid=$!
  for _ in $(seq 1 100); do grep -q listening "$tmp/out" 2>/dev/null && break; sleep 0.1; done
  port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\)\/.*/\1/p' "$tmp/out")
  [ -n "$port" ] || { echo "serve: the server did not start"; cat "$tmp/err"; exit 1; }
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null; pid=""; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# wrk_run OUT CONNECTIONS SECONDS: wrk against the server, its CPU and the server's beside
# (--timeout 10s: a slow answer counts in the latency, a failed one (refused, reset, non-2xx) as an error)
wrk_run() {
  t0=$(cpu_ticks "$pid")
  /usr/bin/time -f "wrk_cpu_s=%U+%S" -o "$1.time" $PIN_WRK wrk -t"$([ "$2" = 1 ] && echo 1 || echo "$WRK_THREADS")" -c"$2" -d"$3s" \
    --timeout 10s --latency -s "$tmp/users.lua" "http://127.0.0.1:$port" > "$1" 2>&1
  echo "server_ticks=$(( $(cpu_ticks "$pid") - t0 )) seconds=$3 hz=$(getconf CLK_TCK)" >> "$1.time"
}
# figures from wrk's output: requests/s, p50 and p99 in ms, non-2xx, socket errors (connect, read,
# write), timeouts (no answer within 10 s), wrk's and the server's CPU in cores
summary() {
  cat "$1" "$1.time" | awk '/Requests\/sec/ {rps=$2}
       function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
       $1 == "50%" {p50 = ms($2)} $1 == "99%" {p99 = ms($2)}
       /Non-2xx/ {non2xx = $NF} /Socket errors/ {gsub(",", ""); sock = $4 + $6 + $8; tmo = $10}
       /^wrk_cpu_s=/ {split($0, a, "[=+]"); wcpu = a[2] + a[3]}
       /^server_ticks=/ {split($1, t, "="); split($2, s, "="); split($3, h, "="); scpu = t[2] / h[2]; secs = s[2]}
       END {printf "rps=%.1f p50_ms=%.2f p99_ms=%.2f non2xx=%d socket_errors=%d timeouts=%d wrk_cores=%.2f server_cores=%.2f\n",
                   rps, p50, p99, non2xx, sock, tmo, wcpu / secs, scpu / secs}'
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# the server's own latency histogram of GET /v1/recommend (/metrics: from the
# request's arrival to its answer), as "le count" lines
buckets() {
  curl -s "http://127.0.0.1:$port/metrics" 2>/dev/null |
    sed -n 's/^cbrec_http_request_duration_seconds_bucket{route="GET \/v1\/recommend",le="\([^"]*\)"} \([0-9]*\)$/\1 \2/p'
}
# server_p99 BEFORE AFTER: the bucket bound under which 99 % of the requests
# between the two snapshots were answered, inside the server (what wrk's p99
# adds beyond it is the time in the sockets' queues and in wrk itself)
server_p99() {
  paste -d' ' "$1" "$2" | awk '{le[NR] = $1; n[NR] = $4 - $2} END {
    if (!NR || !n[NR]) {print "?"; exit}
    for (i = 1; i <= NR; i++) if (n[i] >= 0.99 * n[NR]) {printf "%s", (le[i] == "+Inf" ? "+Inf" : le[i] * 1000); exit} }'
}

# steps 0 and 1 for BIN [ARGS], labelled NAME
measure() {
  name=$1; shift
  start "$@"
  wrk_run "$tmp/wrk0" 1 10
  s0=$(summary "$tmp/wrk0")
  buckets > "$tmp/b0"
  wrk_run "$tmp/wrk1" 64 "$SECONDS_RUN"
  buckets > "$tmp/b1"
  s1=$(summary "$tmp/wrk1")
  sp99=$(server_p99 "$tmp/b0" "$tmp/b1")
  # how many requests the precomputed answers took (an older binary has no such lines)
  answers=$(curl -s "http://127.0.0.1:$port/metrics" 2>/dev/null | awk '/^cbrec_answers_total/ {sub(/.*result="/, ""); sub(/"}/, ""); printf "%s=%s ", $1, $2}')
  stop
  echo "$name 1 connection 10s: $s0"
  echo "$name 64 connections ${SECONDS_RUN}s: $s1 (inside the server: p99 <= $sp99 ms)"
  [ -n "$answers" ] && echo "$name answers (both steps): ${answers% }"
  echo "$name $s0 $s1" >> "$tmp/table"
}
: > "$tmp/table"
for r in $(seq 1 "$REPEAT"); do
  [ -n "${CBREC_BEFORE:-}" ] && measure before "$CBREC_BEFORE"
  [ "${SERVE_ANSWERS:-both}" != on ] && measure after_answers_off ./cbrec --precompute-answers off
  [ "${SERVE_ANSWERS:-both}" != off ] && measure after ./cbrec
done

answers_arg=""
[ "${SERVE_ANSWERS:-both}" = off ] && answers_arg="--precompute-answers off"
start ./cbrec $answers_arg
( end=$(( $(date +%s) + SECONDS_RUN )); while [ "$(date +%s)" -lt "$end" ]; do sleep 1; kill -HUP "$pid"; done ) &
reloader=$!
wrk_run "$tmp/wrk2" 64 "$SECONDS_RUN"
wait "$reloader" 2>/dev/null
s2=$(summary "$tmp/wrk2")
reloads=$(grep -c reloaded "$tmp/err")
stop
echo "after, with a reload every second: $s2 (reload messages: $reloads)"

start ./cbrec --max-inflight 32 $answers_arg
wrk_run "$tmp/wrk3" 256 10
s3=$(summary "$tmp/wrk3")
stop
echo "after, 256 connections against --max-inflight 32 (the excess answered 503): $s3"

# the loop again after the server's runs: the machine's load drifts, the mean of both is the peer
loop2=$("$BUILD"/bench/serve_loop --model "$model" $tablearg --threads "$THREADS" --seconds 10) || exit 1
echo "in-process loop again: $loop2"
echo "load at end: $(uptime | sed 's/.*load average: //')"
inproc=$(echo "$loop $loop2" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^inproc_rps=/) {split($i, a, "="); s += a[2]; n++}}
                                   END {printf "%.1f", s / n}')
percpu=$(echo "$loop $loop2" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^inproc_per_cpu_s=/) {split($i, a, "="); s += a[2]; n++}}
                                   END {printf "%.1f", s / n}')
callms=$(echo "$loop $loop2" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^call_cpu_ms=/) {split($i, a, "="); s += a[2]; n++}}
                                   END {printf "%.3f", s / n}')
# the floor: 64 requests always outstanding, each needing the call's CPU, on the machine's cores
floor=$(awk -v c="$callms" -v n="$(nproc)" 'BEGIN {printf "%.1f", c * 64 / n}')
echo "peer: the loop's mean, $inproc recommends/s, $percpu per CPU-second; the recommend call alone $callms ms CPU"
echo "floor of the 64-connection mean latency: $callms ms x 64 connections / $(nproc) cores = $floor ms"
echo
echo "| binary | 1 conn p50 / p99 ms | 64 conn requests/s | over the loop | per server CPU-s | over the loop's per CPU-s | overhead ms | p50 / p99 ms | queue floor 64/rps ms | p99 / call floor | failed | wrk cores | server cores |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
while read -r name rest; do
  set -- $rest
  a="$1 $2 $3 $4 $5 $6 $7 $8"; b="$9 ${10} ${11} ${12} ${13} ${14} ${15} ${16}"
  rps=$(field "$b" rps)
  awk -v n="$name" -v rps="$rps" -v inproc="$inproc" -v percpu="$percpu" -v floor="$floor" -v a50="$(field "$a" p50_ms)" -v a99="$(field "$a" p99_ms)" \
      -v b50="$(field "$b" p50_ms)" -v b99="$(field "$b" p99_ms)" \
      -v fail="$(( $(field "$b" non2xx) + $(field "$b" socket_errors) + $(field "$b" timeouts) ))" \
      -v wc="$(field "$b" wrk_cores)" -v sc="$(field "$b" server_cores)" 'BEGIN {
    pc = sc > 0 ? rps / sc : 0
    printf "| %s | %.2f / %.2f | %.0f | %.2f | %.0f | %.2f | %.3f | %.1f / %.1f | %.1f | %.1f | %d | %.2f | %.2f |\n",
           n, a50, a99, rps, rps / inproc, pc, pc / percpu, (pc > 0 ? 1000 / pc - 1000 / percpu : 0), b50, b99,
           64000 / rps, b99 / floor, fail, wc, sc }'
done < "$tmp/table"
echo
if [ "${SERVE_ANSWERS:-both}" = both ]; then
  on=$(grep '^after ' "$tmp/table" | tail -n 1 | cut -d' ' -f10-)
  off=$(grep '^after_answers_off ' "$tmp/table" | tail -n 1 | cut -d' ' -f10-)
  echo "$on $off" | awk '{split($1, a, "="); split($3, p, "="); split($9, b, "="); split($11, q, "=")
    printf "RATIO serve requests/s with precomputed answers over without  %.2f (%.0f vs %.0f; p99 %.2f vs %.2f ms)\n",
           a[2] / b[2], a[2], b[2], p[2], q[2] }'
fi
last=$(tail -n 1 "$tmp/table" | cut -d' ' -f10-)
echo "$last $s2" | awk -v inproc="$inproc" -v floor="$floor" '{
  split($1, a, "="); split($3, p, "="); split($4, n1, "="); split($5, e1, "="); split($6, t1, "=")
  split($9, a2, "="); split($12, n2, "="); split($13, e2, "="); split($14, t2, "=")
  printf "RATIO serve requests/s over the in-process loop   %.2f (%.0f vs %.0f; goal >= 0.5)\n", a[2] / inproc, a[2], inproc
  printf "RATIO serve requests/s with reloads over without  %.2f (%.0f vs %.0f)\n", a2[2] / a[2], a2[2], a[2]
  printf "serve p99 latency %.2f ms (goal < 5; the queue floor alone is %.1f ms, the call floor %.1f ms), failed %d, timeouts %d (goal 0); with a reload every second: failed %d, timeouts %d (goal 0)\n",
         p[2], 64000 / a[2], floor, n1[2] + e1[2], t1[2], n2[2] + e2[2], t2[2] }'
