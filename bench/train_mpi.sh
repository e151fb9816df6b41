#!/bin/sh
# train_mpi — training across processes and threads against one thread, in
# one run: `cbrec train` on a synthetic dataset (cbrec synth, 100k ratings by default,
# the default model, 2 epochs), whole processes timed from outside, taken in
# turns (one thread, 2 threads, mpirun -np 2 with one thread each; 3 rounds)
# so a drifting machine load hits all alike. Prints each round's wall and
# CPU seconds (user + system, the ranks' included), the ratios' medians and
# the CPU seconds' medians. Skips the MPI part, saying why, without mpirun or when this
# cbrec was built without MPI. RATINGS (and USERS, ITEMS) size the set;
# MPIRUN_OPTS go to mpirun (e.g. "-x OMPI_MCA_pml=ucx": Open MPI's UCX layer,
# which cbrec otherwise replaces by ob1 when every rank is on one machine);
# SEED the training's seed. The runs' neighbour components are compared at
# the end: a different choice (the tuning's towers differ in their last bits
# across thread counts) means different work, and the script says so.
CBREC=${CBREC:-./cbrec}
ROUNDS=${ROUNDS:-3}
RATINGS=${RATINGS:-100000}
USERS=${USERS:-2000}
ITEMS=${ITEMS:-3000}
MPIRUN_OPTS=${MPIRUN_OPTS:-}
SEED=${SEED:-1}
dir=$(mktemp -d /tmp/cbrec-bench-mpi-XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
"$CBREC" synth --out "$dir/data" --users "$USERS" --items "$ITEMS" --ratings "$RATINGS" >/dev/null || exit 1
opts="--data $dir/data --epochs 2 --seed $SEED"
mpi=""
if ! command -v mpirun >/dev/null 2>&1; then
  echo "train_mpi: MPI part skipped: mpirun is not installed (scripts/install-deps.sh installs openmpi-bin)"
elif mpirun --allow-run-as-root --oversubscribe -np 2 "$CBREC" train $opts --model "$dir/probe.cbrec" --epochs 1 2>&1 |
     grep -q "built without MPI"; then
  echo "train_mpi: MPI part skipped: this cbrec was built without MPI"
else
  mpi=1
fi
# cpu_now: sets cpu_s, this shell's children's user + system seconds so far
# (the builtin `times` run in this shell, not in a $(...) subshell: its
# second line; mpirun's ranks count as its children)
cpu_now() {
  times >"$dir/times"
  cpu_s=$(awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); s += p[1] * 60 + p[2] }; printf "%.3f", s }' "$dir/times")
}
# run NAME CMD...: sets wall and cpu, the seconds of one run; keeps the
# neighbour component it chose in $dir/chose.NAME (the runs must do the same
# work: the tuning on towers trained on other threads can choose otherwise)
run() {
  name=$1; shift
  cpu_now; c0=$cpu_s; w0=$(date +%s.%N)
  "$@" >/dev/null 2>"$dir/err" || echo "train_mpi: failed: $*" >&2; w1=$(date +%s.%N)
  grep '^neighbours:' "$dir/err" | sed 's/;.*//' >"$dir/chose.$name"
  cpu_now
  wall=$(echo "$w0 $w1" | awk '{printf "%.3f", $2 - $1}'); cpu=$(echo "$c0 $cpu_s" | awk '{printf "%.1f", $2 - $1}')
}
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo "train_mpi: synthetic $RATINGS ratings ($USERS users, $ITEMS items), default model, 2 epochs${MPIRUN_OPTS:+, mpirun $MPIRUN_OPTS}; load $(cut -d' ' -f1-3 /proc/loadavg)"
r_thr=""; r_mpi=""; c_one=""; c_two=""; c_mpi=""
for i in $(seq "$ROUNDS"); do
  run one "$CBREC" train $opts --model "$dir/one.cbrec" --threads 1; t1=$wall; c_one="$c_one $cpu"
  line="round $i: 1 thread ${t1}s (cpu ${cpu}s)"
  run two "$CBREC" train $opts --model "$dir/two.cbrec" --threads 2; t2=$wall; c_two="$c_two $cpu"
  line="$line, 2 threads ${t2}s (cpu ${cpu}s)"
  r_thr="$r_thr $(echo "$t1 $t2" | awk '{printf "%.3f", $1 / $2}')"
  if [ -n "$mpi" ]; then
    run mpi mpirun --allow-run-as-root --oversubscribe $MPIRUN_OPTS -np 2 "$CBREC" train $opts --model "$dir/mpi.cbrec" --threads 1
    tm=$wall; c_mpi="$c_mpi $cpu"
    line="$line, mpirun -np 2 ${tm}s (cpu ${cpu}s)"
    r_mpi="$r_mpi $(echo "$t1 $tm" | awk '{printf "%.3f", $1 / $2}')"
  fi
  echo "  $line"
done
echo "RATIO speed 2 threads / 1 thread (median of $ROUNDS rounds)        $(echo $r_thr | tr ' ' '\n' | median)x"
[ -n "$mpi" ] && echo "RATIO speed mpirun -np 2 / 1 process (median of $ROUNDS rounds)  $(echo $r_mpi | tr ' ' '\n' | median)x"
line="CPU seconds (user + system, median): 1 thread $(echo $c_one | tr ' ' '\n' | median), 2 threads $(echo $c_two | tr ' ' '\n' | median)"
[ -n "$mpi" ] && line="$line, mpirun -np 2 $(echo $c_mpi | tr ' ' '\n' | median)"
echo "$line; load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
for name in two mpi; do
  [ -f "$dir/chose.$name" ] && ! cmp -s "$dir/chose.one" "$dir/chose.$name" &&
    echo "train_mpi: UNEQUAL WORK: 1 thread chose '$(cat "$dir/chose.one")', $name '$(cat "$dir/chose.$name")' (the ratio compares different work; try another SEED)"
done
exit 0
