#!/bin/sh
# bench eval — the whole 5-fold MovieLens 100K evaluation (u1..u5), timed beside
# the bias baseline (Surprise's BaselineOnly) measured in the same run:
# per model, the wall seconds to fit and to evaluate summed over the folds, and
# the ratio two-tower / bias. Also the whole run's wall time and the accuracy
# reached, so a speed-up that costs accuracy shows. Needs ../shared/data/ml-100k
# (or $CBREC_DATA/ml-100k); skips otherwise. Extra arguments go to cbrec eval
# (e.g. --epochs 5 for a quicker run). The top-N baselines (EASE, item-kNN,
# popularity) run beside them: their NDCG@10 / recall@20, EASE's fit time
# as a ratio to the bias baseline's, and EASE's NDCG as a ratio to popularity's.
CBREC=${CBREC:-./cbrec}
root=${CBREC_DATA:-../shared/data}
data="$root/ml-100k"
if [ ! -f "$data/u1.base" ]; then
  echo "skip: $data/u1.base absent (set CBREC_DATA to the folder holding ml-100k)"
  exit 0
fi
[ -x "$CBREC" ] || { echo "$CBREC not built"; exit 1; }
out=$(mktemp /tmp/cbrec-bench-eval.XXXXXX.json)
start=$(date +%s.%N)
"$CBREC" eval --data "$data" --folds u1,u2,u3,u4,u5 --models twotower,bias,popularity,ease,item-knn -q --json-out "$out" "$@" > /dev/null || { rm -f "$out"; exit 1; }
end=$(date +%s.%N)
/usr/bin/python3 - "$out" "$start" "$end" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
wall = float(sys.argv[3]) - float(sys.argv[2])
rows = {}
for m in j["models"]:
    fit = sum(f["fit_seconds"] for f in m["folds"])
    ev = sum(f["eval_seconds"] for f in m["folds"])
    rows[m["name"]] = (fit, ev, m["mean_rmse"], m.get("mean_ndcg10"), m.get("mean_recall20"))
fmt = lambda v: "%.4f" % v if v is not None else "-"
print("ml-100k u1..u5, %s; whole run %.1f s wall" % (j["protocol"], wall))
print("%-12s %9s %9s %9s %8s %8s %9s" % ("model", "fit s", "eval s", "total s", "RMSE", "NDCG@10", "recall@20"))
for name, (fit, ev, rmse, ndcg, rec20) in rows.items():
    print("%-12s %9.2f %9.2f %9.2f %8s %8s %9s" % (name, fit, ev, fit + ev, fmt(rmse), fmt(ndcg), fmt(rec20)))
tt, b = rows["two-tower"], rows["bias"]
print("ratio two-tower / bias: fit %.0fx, fit+eval %.0fx" % (tt[0] / max(b[0], 1e-9), (tt[0] + tt[1]) / max(b[0] + b[1], 1e-9)))
e, p = rows["ease"], rows["popularity"]
print("ratio ease / bias fit: %.0fx (final fit only; the lambda search is in each fold's settings)" % (e[0] / max(b[0], 1e-9)))
print("ratio ease / popularity NDCG@10: %.2fx" % (e[3] / p[3]))
for m in j["models"]:
    for f in m["folds"]:
        if "settings" in f:
            print("  %s fold %d: %s" % (m["name"], f["fold"], f["settings"]))
PY
rm -f "$out"
