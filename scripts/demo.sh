#!/bin/sh
# The main job: train cbrec on MovieLens latest-small (or, offline without it,
# on a synthetic catalog — and say so), then show recommendations with their
# reasons for a sample user and the movies most similar to a well-known one.
#   usage: scripts/demo.sh [--data PATH]     (make demo [DATA=PATH])
set -eu
cd "$(dirname "$0")/.."
DATA=""
if [ "${1:-}" = "--data" ]; then DATA=${2:?--data needs a path}; fi
OUT=${DEMO_OUT:-out/demo}
mkdir -p "$OUT"
for d in "$DATA" data/ml-latest-small ../shared/data/ml-latest-small; do
  if [ -n "$d" ] && [ -f "$d/ratings.csv" ]; then DATA=$d; break; fi
done
if [ -z "$DATA" ] || [ ! -f "$DATA/ratings.csv" ]; then
  echo "MovieLens latest-small not found (tried --data, data/ml-latest-small, ../shared/data/ml-latest-small;"
  echo "scripts/get-movielens.sh downloads it). Running the demo on a SYNTHETIC catalog instead."
  DATA=$OUT/synthetic
  ./cbrec synth --out "$DATA" --users 2000 --items 3000 --ratings 200000 --seed 7
  SYNTH=1
else
  SYNTH=0
fi
echo "== cbrec inspect --data $DATA"
./cbrec inspect --data "$DATA" | head -n 3
echo
echo "== cbrec train (two towers, the default settings)"
./cbrec train --data "$DATA" --model "$OUT/model.cbrec" --epochs ${DEMO_EPOCHS:-10} \
  --split temporal --test-frac 0.1 --valid-frac 0.05 --curve "$OUT/learning-curve.svg"
./cbrec precompute --model "$OUT/model.cbrec" --out "$OUT/similar.cbrec" -k 20
echo
USER_ID=$(head -n 2 "$DATA/ratings.csv" | tail -n 1 | cut -d, -f1)
echo "== cbrec recommend --user $USER_ID --explain (why each item, and by what criterion)"
./cbrec recommend --model "$OUT/model.cbrec" --table "$OUT/similar.cbrec" --user "$USER_ID" -n 10 --explain
echo
if [ "$SYNTH" = 1 ]; then ITEM=1; else ITEM="Toy Story (1995)"; fi
echo "== cbrec similar --item \"$ITEM\""
./cbrec similar --model "$OUT/model.cbrec" --table "$OUT/similar.cbrec" --item "$ITEM" -k 10
if [ "$SYNTH" = 0 ]; then
  echo
  echo "== cbrec recommend --new-user (cold start: someone who only says they like Adventure and Fantasy)"
  printf '{"genre_ratings": {"Adventure": 5, "Fantasy": 5}}\n' > "$OUT/new-user.json"
  ./cbrec recommend --model "$OUT/model.cbrec" --table "$OUT/similar.cbrec" --new-user "$OUT/new-user.json" -n 10
fi
