#!/usr/bin/python3
"""The two-tower rating model in PyTorch, the peer of bench/bench_train.c.

Usage: /usr/bin/python3 bench/train_torch.py DIR EXAMPLES BATCHES THREADS
DIR holds the tables bench_train wrote (raw little-endian):
  shape.txt   "N_USERS USER_IN N_ITEMS ITEM_IN N_EXAMPLES"
  xu.f32 [N_USERS x USER_IN], xm.f32 [N_ITEMS x ITEM_IN],
  u.i32, m.i32, y.f32 [N_EXAMPLES]: example i pairs user row u[i] with item
  row m[i], target y[i] in [-1, 1].
Trains 256-128-32 towers, l2-normalised outputs, dot product, MSE, Adam lr
0.01 (eps 1e-7 like Keras), reshuffled each epoch, for at least EXAMPLES
examples (whole batches), once per batch size in BATCHES (comma-separated)
and per thread count in THREADS (comma-separated, torch.set_num_threads),
each from the same initialisation, after 10 untimed warm-up batches, and prints one line per run:
  torch batch=<int> threads=<int> examples_per_s=<float> loss=<float>
then: torch peak_rss_mb=<float>"""
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

d, examples = sys.argv[1], int(sys.argv[2])
batches = [int(b) for b in sys.argv[3].split(",")]
threads_list = [int(t) for t in sys.argv[4].split(",")]
n_users, uin, n_items, iin, n = map(int, open(os.path.join(d, "shape.txt")).read().split())
xu = torch.from_numpy(np.fromfile(os.path.join(d, "xu.f32"), dtype="<f4").reshape(n_users, uin))
xm = torch.from_numpy(np.fromfile(os.path.join(d, "xm.f32"), dtype="<f4").reshape(n_items, iin))
ue = torch.from_numpy(np.fromfile(os.path.join(d, "u.i32"), dtype="<i4").astype(np.int64))
me = torch.from_numpy(np.fromfile(os.path.join(d, "m.i32"), dtype="<i4").astype(np.int64))
y = torch.from_numpy(np.fromfile(os.path.join(d, "y.f32"), dtype="<f4"))


def tower(i):
    return nn.Sequential(nn.Linear(i, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 32))


def run(batch, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    user_net, item_net = tower(uin), tower(iin)
    params = list(user_net.parameters()) + list(item_net.parameters())
    opt = torch.optim.Adam(params, lr=0.01, eps=1e-7)
    done, total, t0, steps = 0, 0.0, None, 0
    while t0 is None or done < examples:
        perm = torch.randperm(n)
        for s in range(0, n - batch + 1, batch):
            idx = perm[s:s + batch]
            vu = F.normalize(user_net(xu[ue[idx]]), dim=1)
            vm = F.normalize(item_net(xm[me[idx]]), dim=1)
            loss = F.mse_loss((vu * vm).sum(dim=1), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total = loss.item()
            steps += 1
            if t0 is None and steps == 10:  # 10 warm-up batches, not timed
                t0 = time.perf_counter()
            elif t0 is not None:
                done += batch
            if t0 is not None and done >= examples:
                break
    secs = time.perf_counter() - t0
    print("torch batch=%d threads=%d examples_per_s=%.1f loss=%.6f" % (batch, threads, done / secs, total), flush=True)


for b in batches:
    for t in threads_list:
        run(b, t)
print("torch peak_rss_mb=%.1f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))
