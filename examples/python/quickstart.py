#!/usr/bin/env python3
"""cbrec from Python, notebook style: load MovieLens latest-small (or a
synthetic dataset when ../shared/data is absent), hold out 20% of the
ratings, train the two-tower model on the rest, show one user's
recommendations with their reasons, then compare NDCG@10 on the held-out
ratings with the popularity baseline -- all users at once through
recommend_batch and numpy.

    make python
    PYTHONPATH=build/python/lib /usr/bin/python3 examples/python/quickstart.py [DATA] [--epochs N]
"""
import argparse
import csv
import os
import sys
import tempfile
import time

import numpy as np

import cbrec

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "..", "shared", "data", "ml-latest-small")


def read_columns(path):
    """A CSV file as {column: list of str} (pandas would do; it is optional)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        head = next(rows)
        cols = list(zip(*rows))
    return {h: list(c) for h, c in zip(head, cols)}


def ndcg_at_k(ranked, relevant, k=10):
    """Binary-relevance NDCG@k of each row of `ranked` (item numbers)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    scores = []
    for row, rel in zip(ranked, relevant):
        if not rel:
            continue
        gains = np.array([1.0 if i in rel else 0.0 for i in row[:k]])
        ideal = discounts[:min(len(rel), k)].sum()
        scores.append(float((gains * discounts[:len(gains)]).sum() / ideal))
    return float(np.mean(scores)), len(scores)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()

    data = args.data
    if not os.path.exists(os.path.join(data, "ratings.csv")):
        data = tempfile.mkdtemp(prefix="cbrec-quickstart-")
        print("no MovieLens at %s: using a synthetic dataset in %s" % (args.data, data))
        cbrec.synth(data, users=500, items=1000, ratings=40000)

    # 1. The ratings and the catalog as columns; hold out 20% of the ratings.
    ratings = read_columns(os.path.join(data, "ratings.csv"))
    movies = read_columns(os.path.join(data, "movies.csv"))
    rng = np.random.default_rng(1)
    test = rng.random(len(ratings["userId"])) < 0.2
    values = np.array(ratings["rating"], dtype=np.float32)
    train = {c: np.asarray(v)[~test] for c, v in ratings.items()}
    train["rating"] = values[~test]
    ds = cbrec.Dataset.from_frames(train, movies)
    print(ds)

    # 2. Train (Ctrl-C stops training cleanly).
    t0 = time.time()
    model = cbrec.Model.train(ds, epochs=args.epochs, split="none", progress=True)
    print("trained in %.1fs: %s" % (time.time() - t0, model))

    # 3. One user's recommendations, with the reasons.
    user = ratings["userId"][0]
    print("\nuser %s:" % user)
    for r in model.recommend(user, n=5):
        print("  %-45s %.3f  %s" % (r.title[:45], r.score, r.reasons[0] if r.reasons else ""))
    print("\nlike '%s':" % model.titles[0])
    print("  " + "\n  ".join(model.similar(model.item_ids[0], k=3).titles))

    # 4. NDCG@10 on the held-out ratings (liked: >= 4) for every user at once,
    #    against popularity (most-rated training items the user has not rated).
    users = list(model.user_ids)
    number = {u: i for i, u in enumerate(users)}
    item_number = {m: i for i, m in enumerate(model.item_ids)}
    liked = [set() for _ in users]
    for u, m, y in zip(np.asarray(ratings["userId"])[test], np.asarray(ratings["movieId"])[test], values[test]):
        if y >= 4 and u in number and m in item_number:
            liked[number[u]].add(item_number[m])
    t0 = time.time()
    items, _ = model.recommend_batch(n=10)
    batch_seconds = time.time() - t0
    counts = np.bincount([item_number[m] for m in train["movieId"]], minlength=model.n_items)
    by_popularity = np.argsort(-counts, kind="stable")
    seen = [set() for _ in users]
    for u, m in zip(train["userId"], train["movieId"]):
        seen[number[u]].add(item_number[m])
    popular = [[i for i in by_popularity[:200] if i not in s][:10] for s in seen]
    ndcg_model, n_users = ndcg_at_k(items, liked)
    ndcg_pop, _ = ndcg_at_k(popular, liked)
    print("\nNDCG@10 over %d users with held-out liked items (recommend_batch: %d users in %.3fs):"
          % (n_users, len(users), batch_seconds))
    print("  cbrec two-tower  %.4f" % ndcg_model)
    print("  popularity       %.4f" % ndcg_pop)
    print("  ratio            %.2fx" % (ndcg_model / ndcg_pop if ndcg_pop else float("inf")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
