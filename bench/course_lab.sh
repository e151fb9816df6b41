#!/bin/sh
# The practice lab's protocol, cbrec vs. the same model in PyTorch (Debian's
# python3-torch at 1 and 2 threads, the faster one is the peer: on this 2-core
# machine one thread is the faster), measured in the same run: training
# seconds, the speed ratio, test MSE of both, and peak memory of both.
# Needs ../shared/data/course-lab (or $CBREC_DATA/course-lab); skips without it.
cd "$(dirname "$0")/.."
DIR=${CBREC_DATA:-../shared/data}/course-lab
if [ ! -f "$DIR/content_user_train.csv" ]; then echo "course_lab: SKIPPED ($DIR not present)"; exit 0; fi
EPOCHS=${LAB_EPOCHS:-30}
model=$(mktemp /tmp/cbrec-lab-XXXXXX.cbrec)
trap 'rm -f "$model"' EXIT
c=$( { /usr/bin/time -f "peak_rss_kb=%M" ./cbrec train --data "$DIR" --model "$model" --split sklearn --test-frac 0.2 \
      --seed 1 --valid-frac 0 --user-layers 256,128 --item-layers 256,128 --dim 32 --lr 0.01 --lr-decay 1 --batch 32 \
      --epochs "$EPOCHS" -q; } 2>&1)
echo "cbrec: $c" | tr '\n' ' '; echo
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then echo "course_lab: torch SKIPPED (python3-torch not installed)"; exit 0; fi
t= ts=
for threads in ${LAB_TORCH_THREADS:-1 2}; do
  o=$(/usr/bin/python3 bench/lab_torch.py "$DIR" "$EPOCHS" "$threads")
  echo "torch, $threads thread(s): $o"
  s=$(echo "$o" | tr ' ' '\n' | sed -n 's/^torch_train_seconds=//p')
  if [ -n "$s" ] && { [ -z "$ts" ] || awk -v a="$s" -v b="$ts" 'BEGIN {exit !(a < b)}'; }; then t=$o ts=$s tt=$threads; fi
done
[ -n "$ts" ] || { echo "course_lab: the torch script failed"; exit 1; }
echo "torch at its best ($tt thread(s)): $t"
cs=$(echo "$c" | tr ' ' '\n' | sed -n 's/^train_seconds=//p')
cr=$(echo "$c" | tr ' ' '\n' | sed -n 's/^peak_rss_kb=//p')
tr=$(echo "$t" | tr ' ' '\n' | sed -n 's/^torch_peak_rss_mb=//p')
awk -v cs="$cs" -v ts="$ts" -v cr="$cr" -v tr="$tr" 'BEGIN {
  printf "RATIO lab training speed cbrec/torch   %.1fx (%.1f s vs %.1f s)\n", ts / cs, cs, ts;
  printf "RATIO lab peak memory cbrec/torch      %.2f (%.0f MB vs %.0f MB)\n", cr / 1024 / tr, cr / 1024, tr }'
