#!/usr/bin/env python3
"""bench_ann_hnswlib — the peer of bench_ann: hnswlib (Debian python3-hnswlib)
on the very vectors bench_ann wrote, same M / ef_construction and build
threads (searches: one thread).
Prints machine-readable lines bench_ann parses:
  hnswlib build_seconds S cpu C
  hnswlib ef E recall R qps Q cpu_qps P
(cpu: process CPU time, robust when the machine is shared)
Usage: bench_ann_hnswlib.py BASE.npy QUERIES.npy EXACT_IDS.npy M EFC K EF[,EF...] [BUILD_THREADS]"""
import sys
import time

import numpy as np

try:
    import hnswlib
except ImportError:
    print("hnswlib missing (apt-get install python3-hnswlib)")
    sys.exit(3)


def main():
    base, queries, exact, m, efc, k, efs = sys.argv[1:8]
    threads = int(sys.argv[8]) if len(sys.argv) > 8 else 1
    X = np.load(base)
    Q = np.load(queries)
    E = np.load(exact).astype(np.int64)
    m, efc, k = int(m), int(efc), int(k)
    index = hnswlib.Index(space="l2", dim=X.shape[1])
    index.init_index(max_elements=X.shape[0], M=m, ef_construction=efc, random_seed=100)
    index.set_num_threads(1)
    t, c = time.perf_counter(), time.process_time()
    index.add_items(X, np.arange(X.shape[0]), num_threads=threads)
    print("hnswlib build_seconds %.3f cpu %.3f" % (time.perf_counter() - t, time.process_time() - c), flush=True)
    for ef in (int(e) for e in efs.split(",")):
        index.set_ef(max(ef, k))
        t, c = time.perf_counter(), time.process_time()
        for q in Q:  # one query at a time, like a server
            labels, _ = index.knn_query(q[None, :], k=k, num_threads=1)
            last = labels
        secs, cpu = time.perf_counter() - t, time.process_time() - c
        labels, _ = index.knn_query(Q, k=k, num_threads=1)
        hit = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(labels, E))
        print("hnswlib ef %d recall %.4f qps %.0f cpu_qps %.0f" % (ef, hit / E.size, len(Q) / secs, len(Q) / cpu),
              flush=True)
        del last


if __name__ == "__main__":
    main()
