#!/usr/bin/env python3
"""What text/tag features add on ml-latest-small (issue 12), measured in one run.

Builds generic-layout folders in a scratch directory from ml-latest-small
(ratings.csv linked, items.csv = movieId, title, genres, the movie's tags from
tags.csv joined) that differ only in how the tags column is declared, then runs
`cbrec eval --models cbrec` on each with the same split and seed:
  no-tags      tags:ignore                  (the baseline)
  tags-text    tags:text                    (TF-IDF of the tag tokens, hashed into 128 dims)
  tags-multi   tags:multi(;) min_count 2    (a content column: item multi-hot, user per-tag tastes)
Usage: scripts/text-features-experiment.py [DATA_DIR] [SCRATCH_DIR]   (needs build/cbrec)
Nothing here is committed data: the folders are written to SCRATCH_DIR."""
import csv, json, os, subprocess, sys
from collections import defaultdict

data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/ml-latest-small"
scratch = sys.argv[2] if len(sys.argv) > 2 else "/tmp/cbrec-text-experiment"
cbrec = os.environ.get("CBREC", "build/cbrec")
variants = {
    "no-tags": "tags:ignore",
    "tags-text": "tags:text",
    "tags-multi": "tags:multi(;)\nitems.tags.min_count = 2",
}
tags = defaultdict(list)
with open(os.path.join(data, "tags.csv"), encoding="utf-8") as f:
    for row in csv.DictReader(f):
        t = row["tag"].strip().replace(";", ",")
        if t and t not in tags[row["movieId"]]:
            tags[row["movieId"]].append(t)
results = {}
for name, decl in variants.items():
    d = os.path.join(scratch, name)
    os.makedirs(d, exist_ok=True)
    link = os.path.join(d, "ratings.csv")
    if not os.path.exists(link):
        os.symlink(os.path.abspath(os.path.join(data, "ratings.csv")), link)
    with open(os.path.join(data, "movies.csv"), encoding="utf-8") as f, \
         open(os.path.join(d, "items.csv"), "w", encoding="utf-8", newline="") as g:
        w = csv.writer(g)
        w.writerow(["movieId", "title", "genres", "tags"])
        for row in csv.DictReader(f):
            genres = "" if row["genres"] == "(no genres listed)" else row["genres"]
            w.writerow([row["movieId"], row["title"], genres, ";".join(tags.get(row["movieId"], []))])
    with open(os.path.join(d, "cbrec.schema"), "w") as g:
        g.write("ratings = ratings.csv\nratings.columns = userId:user, movieId:item, rating:rating, timestamp:timestamp\n"
                "rating.range = 0.5,5\nitems = items.csv\nitems.year_from_title = yes\n"
                "items.columns = movieId:id, title:title, genres:multi(|), " + decl + "\n")
    out = subprocess.run([cbrec, "eval", "--data", d, "--models", "cbrec", "--split", "random", "--seed", "1",
                          "--quiet", "--json"], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{name}: {out.stderr}")
    m = json.loads(out.stdout)["models"][0]
    results[name] = m
    print(f"{name:12s} RMSE {m['mean_rmse']:.4f}  NDCG@10 {m['mean_ndcg10']:.4f}", flush=True)
base = results["no-tags"]
for name in ("tags-text", "tags-multi"):
    m = results[name]
    print(f"{name} vs no-tags: RMSE {m['mean_rmse'] - base['mean_rmse']:+.4f} "
          f"({m['mean_rmse'] / base['mean_rmse']:.3f}x), NDCG@10 {m['mean_ndcg10'] - base['mean_ndcg10']:+.4f} "
          f"({m['mean_ndcg10'] / base['mean_ndcg10']:.3f}x)")
