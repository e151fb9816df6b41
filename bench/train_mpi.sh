#!/bin/sh
# train_mpi — training across processes and threads against one thread, in
# one run: `cbrec train` on a synthetic dataset (cbrec synth, 100k ratings,
# the default model, 2 epochs), whole processes timed from outside, taken in
# turns (one thread, 2 threads, mpirun -np 2 with one thread each; 3 rounds)
# so a drifting machine load hits all alike. Prints each round's ratios and
# their medians. Skips the MPI part, saying why, without mpirun or when this
# cbrec was built without MPI.
CBREC=${CBREC:-./cbrec}
ROUNDS=${ROUNDS:-3}
dir=$(mktemp -d /tmp/cbrec-bench-mpi-XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
"$CBREC" synth --out "$dir/data" --users 2000 --items 3000 --ratings 100000 >/dev/null || exit 1
opts="--data $dir/data --epochs 2 --seed 1 -q"
mpi=""
if ! command -v mpirun >/dev/null 2>&1; then
  echo "train_mpi: MPI part skipped: mpirun is not installed (scripts/install-deps.sh installs openmpi-bin)"
elif mpirun --allow-run-as-root --oversubscribe -np 2 "$CBREC" train $opts --model "$dir/probe.cbrec" --epochs 1 2>&1 |
     grep -q "built without MPI"; then
  echo "train_mpi: MPI part skipped: this cbrec was built without MPI"
else
  mpi=1
fi
# seconds CMD...: wall seconds of one run
seconds() {
  t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || echo "train_mpi: failed: $*" >&2; t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}'
}
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo "train_mpi: synthetic 100k ratings, default model, 2 epochs; load $(cut -d' ' -f1-3 /proc/loadavg)"
r_thr=""; r_mpi=""
for i in $(seq "$ROUNDS"); do
  t1=$(seconds "$CBREC" train $opts --model "$dir/one.cbrec" --threads 1)
  t2=$(seconds "$CBREC" train $opts --model "$dir/two.cbrec" --threads 2)
  line="round $i: 1 thread ${t1}s, 2 threads ${t2}s"
  r_thr="$r_thr $(echo "$t1 $t2" | awk '{printf "%.3f", $1 / $2}')"
  if [ -n "$mpi" ]; then
    tm=$(seconds mpirun --allow-run-as-root --oversubscribe -np 2 "$CBREC" train $opts --model "$dir/mpi.cbrec" --threads 1)
    line="$line, mpirun -np 2 ${tm}s"
    r_mpi="$r_mpi $(echo "$t1 $tm" | awk '{printf "%.3f", $1 / $2}')"
  fi
  echo "  $line"
done
echo "RATIO speed 2 threads / 1 thread (median of $ROUNDS rounds)        $(echo $r_thr | tr ' ' '\n' | median)x"
[ -n "$mpi" ] && echo "RATIO speed mpirun -np 2 / 1 process (median of $ROUNDS rounds)  $(echo $r_mpi | tr ' ' '\n' | median)x"
exit 0
