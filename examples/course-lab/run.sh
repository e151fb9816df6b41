#!/bin/sh
# Reproduces the practice lab "Deep Learning for Content-Based Filtering" with
# the generic cbrec CLI, on the lab's pre-joined rows.
#   usage: examples/course-lab/run.sh DIR [MODEL]   (DIR = ../shared/data/course-lab)
# The lab's protocol (../shared/data/README.md): features standardised with
# scalers fitted on all rows; targets min-max scaled to [-1, 1] on all rows;
# sklearn's train_test_split(train_size=0.8, shuffle=True, random_state=1),
# reproduced exactly (numpy's legacy MT19937 permutation); user columns 0-2 and
# item column 0 are not inputs (14 user and 16 item inputs); towers
# 256 ReLU -> 128 ReLU -> 32 linear, l2-normalised, dot product, trained on
# the ratings alone (--objective rating: the lectures' model, not cbrec's
# default retrieval + rating); MSE; Adam lr 0.01; 30 epochs; batch 32. The lab's TensorFlow model reaches a test MSE
# of 0.0815 on the scaled targets. The last line printed is
#   test_mse_scaled=<value> train_seconds=<value>
set -eu
DIR=${1:?usage: examples/course-lab/run.sh DIR [MODEL]}
MODEL=${2:-${TMPDIR:-/tmp}/cbrec-course-lab.cbrec}
HERE=$(cd "$(dirname "$0")" && pwd)
CBREC=${CBREC:-$HERE/../../cbrec}

out=$("$CBREC" train --data "$DIR" --model "$MODEL" --split sklearn --test-frac 0.2 --seed 1 \
      --valid-frac 0 --user-skip-cols 3 --item-skip-cols 1 --scaler-rows all \
      --user-layers 256,128 --item-layers 256,128 --dim 32 \
      --objective rating --loss mse --optimizer adam --lr 0.01 --lr-decay 1 --epochs 30 --batch 32 \
      ${CBREC_TRAIN_FLAGS:-})
echo "$out"

echo
echo "== The lab's new user: rates Adventure and Fantasy 5 (top predictions)"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
printf '{"genre_ratings": {"Adventure": 5, "Fantasy": 5}}\n' > "$tmp"
"$CBREC" recommend --model "$MODEL" --new-user "$tmp" -n 10 --explain || echo "(recommend failed)"

echo
echo "== The most similar movie to each of the first movies of the catalog"
for id in $(cut -d, -f1 "$DIR/content_item_vecs.csv" | head -n 10); do
  "$CBREC" similar --model "$MODEL" --item "$id" -k 1 | sed "s/^/$id -> /" || echo "(similar failed for $id)"
done

echo
mse=$(printf '%s\n' "$out" | tr ' ' '\n' | sed -n 's/^test_mse_scaled=//p')
secs=$(printf '%s\n' "$out" | tr ' ' '\n' | sed -n 's/^train_seconds=//p')
echo "test_mse_scaled=$mse train_seconds=$secs"
