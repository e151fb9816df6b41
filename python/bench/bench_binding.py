"""bench_binding -- what the Python binding costs, against peers measured in
the same run (run by `make bench` through bench/python.sh):

1. recommend() from Python vs the same calls made from C in the same process
   (Model._bench_c_recommend: cb_recommender_recommend + cb_list_free per
   user, default settings), every user of the dataset, best of 5 passes
   each, interleaved; by this thread's CPU time (what preemption by other
   processes on a shared machine does not inflate), wall time beside it.
   Goal: Python / C <= 1.5.
2. recommend_batch() for every user vs a Python loop of recommend() over the
   same users (top 10). Goal: the batch >= 10x faster.

Data: ml-latest-small from ../shared/data (a model trained here for 2
epochs, or $CBREC_BENCH_MODEL), else a synthetic dataset (said so)."""
import os
import sys
import tempfile
import time

import cbrec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "..", "shared", "data", "ml-latest-small")


def model_and_label():
    path = os.environ.get("CBREC_BENCH_MODEL")
    if path:
        return cbrec.Model.load(path), "model %s" % path
    if os.path.exists(os.path.join(DATA, "ratings.csv")):
        ds, label = cbrec.Dataset.load(DATA), "ml-latest-small"
    else:
        d = tempfile.mkdtemp(prefix="cbrec-bench-")
        cbrec.synth(d, users=600, items=9000, ratings=100000)
        ds, label = cbrec.Dataset.load(d), "synthetic (no ../shared/data/ml-latest-small)"
    return cbrec.Model.train(ds, epochs=2), label + ", 2 epochs"


def best(fn, passes=5):
    times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    model, label = model_and_label()
    users = [str(u) for u in model.user_ids]
    print("python binding, %s: %d users, %d items" % (label, model.n_users, model.n_items))

    def py_loop():
        for u in users:
            model.recommend(u)

    py_loop()  # warm caches and pages
    model._bench_c_recommend(users)
    wall_py, cpu_py, wall_c, cpu_c = [], [], [], []
    for _ in range(5):
        w, c = model._bench_c_recommend(users)
        wall_c.append(w)
        cpu_c.append(c)
        t0, c0 = time.perf_counter(), time.thread_time()
        py_loop()
        cpu_py.append(time.thread_time() - c0)
        wall_py.append(time.perf_counter() - t0)
    n = len(users)
    c, py = min(cpu_c), min(cpu_py)
    print("recommend, one user: C %.1f us, Python %.1f us per call (thread CPU) -> Python / C = %.2f "
          "(goal <= 1.5); wall: %.1f / %.1f us = %.2f" % (c / n * 1e6, py / n * 1e6, py / c, min(wall_c) / n * 1e6,
                                                          min(wall_py) / n * 1e6, min(wall_py) / min(wall_c)))
    py = min(wall_py)
    t_batch = best(lambda: model.recommend_batch(n=10))
    print("all %d users, top 10: recommend_batch %.1f ms, Python loop of recommend %.1f ms -> batch %.1fx faster "
          "(goal >= 10x)" % (n, t_batch * 1e3, py * 1e3, py / t_batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
