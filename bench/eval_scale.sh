#!/bin/sh
# bench eval_scale — `cbrec eval` on synthetic data of growing size, to show
# it grows linearly in users: 10 ratings per user, 20,000 items, a cold-users
# split (20 % of users held out: their features are imputed from the 200
# attribute-nearest training users, src/features/impute.c), the two-tower
# row only, 1 epoch (training is linear in ratings; the epoch count only
# scales it). Per size: CPU seconds (user + sys) and wall seconds of the
# whole process, CPU microseconds per user, and the growth against the first
# size (linear = the size ratio). Sizes: $EVAL_SCALE_SIZES (ratings,
# default 250000 500000 1000000). With CBREC_BEFORE=path/to/an/older/cbrec
# the largest size is also run with it, right after, for a before/after
# ratio in the same run.
CBREC=${CBREC:-./cbrec}
sizes=${EVAL_SCALE_SIZES:-250000 500000 1000000}
[ -x "$CBREC" ] || { echo "$CBREC not built"; exit 1; }
[ -x /usr/bin/time ] || { echo "skipped: /usr/bin/time absent"; exit 0; }
dir=$(mktemp -d /tmp/cbrec-bench-eval-scale.XXXXXX)
trap 'rm -rf "$dir"' EXIT
run() { # run BIN DATA -> "cpu wall"
  /usr/bin/time -f "%U %S %e" -o "$dir/time" nice "$1" eval --data "$2" --split cold-users --models twotower \
    --epochs 1 -q > "$dir/out" 2>&1 || { cat "$dir/out"; return 1; }
  awk '{printf "%.1f %.1f\n", $1 + $2, $3}' "$dir/time"
}
echo "cbrec eval --split cold-users --models twotower --epochs 1; 10 ratings per user, 20,000 items"
printf "  %9s %7s %9s %9s %12s %12s\n" ratings users "cpu s" "wall s" "cpu us/user" "cpu growth"
first_cpu= first_n= last=
for n in $sizes; do
  users=$((n / 10))
  "$CBREC" synth --out "$dir/s$n" --users "$users" --items 20000 --ratings "$n" --seed 42 > /dev/null || exit 1
  t=$(run "$CBREC" "$dir/s$n") || { echo "$t"; exit 1; }
  set -- $t
  [ -z "$first_cpu" ] && first_cpu=$1 first_n=$n
  awk -v n="$n" -v u="$users" -v c="$1" -v w="$2" -v c0="$first_cpu" -v n0="$first_n" \
    'BEGIN {printf "  %9d %7d %9.1f %9.1f %12.0f %6.2fx (size %.2fx)\n", n, u, c, w, 1e6 * c / u, c / c0, n / n0}'
  last=$n
  [ -n "${CBREC_BEFORE:-}" ] || rm -rf "$dir/s$n"
done
if [ -n "${CBREC_BEFORE:-}" ]; then
  t=$(run "$CBREC" "$dir/s$last") || { echo "$t"; exit 1; }
  set -- $t
  a_cpu=$1 a_wall=$2
  t=$(run "$CBREC_BEFORE" "$dir/s$last") || { echo "$t"; exit 1; }
  set -- $t
  awk -v ac="$a_cpu" -v aw="$a_wall" -v bc="$1" -v bw="$2" -v n="$last" \
    'BEGIN {printf "RATIO eval at %d ratings, before / now: cpu %.1f / %.1f s = %.1fx, wall %.1f / %.1f s = %.1fx\n", n, bc, ac, bc / ac, bw, aw, bw / aw}'
fi
