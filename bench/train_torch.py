#!/usr/bin/python3
"""The course lab's two-tower model in PyTorch, the peer of bench/bench_train.c.

Usage: /usr/bin/python3 bench/train_torch.py DIR N USER_IN ITEM_IN EPOCHS THREADS
DIR holds xu.f32 [N x USER_IN], xm.f32 [N x ITEM_IN], y.f32 [N] (raw little-endian,
written by bench_train). Trains 256-128-32 towers, l2-normalised outputs, dot
product, MSE, Adam lr 0.01 (eps 1e-7 like Keras), batch 32, reshuffled each
epoch, and prints one line:
  torch examples_per_s=<float> peak_rss_mb=<float> loss=<float>"""
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

d, n, uin, iin, epochs, threads = sys.argv[1], *map(int, sys.argv[2:7])
torch.set_num_threads(threads)
torch.manual_seed(1)
xu = torch.from_numpy(np.fromfile(os.path.join(d, "xu.f32"), dtype="<f4").reshape(n, uin))
xm = torch.from_numpy(np.fromfile(os.path.join(d, "xm.f32"), dtype="<f4").reshape(n, iin))
y = torch.from_numpy(np.fromfile(os.path.join(d, "y.f32"), dtype="<f4"))


def tower(i):
    return nn.Sequential(nn.Linear(i, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 32))


user_net, item_net = tower(uin), tower(iin)
params = list(user_net.parameters()) + list(item_net.parameters())
opt = torch.optim.Adam(params, lr=0.01, eps=1e-7)
batch = 32
t0 = time.perf_counter()
for epoch in range(epochs):
    perm = torch.randperm(n)
    total = 0.0
    for s in range(0, n, batch):
        idx = perm[s:s + batch]
        vu = F.normalize(user_net(xu[idx]), dim=1)
        vm = F.normalize(item_net(xm[idx]), dim=1)
        loss = F.mse_loss((vu * vm).sum(dim=1), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
secs = time.perf_counter() - t0
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print("torch examples_per_s=%.1f peak_rss_mb=%.1f loss=%.6f" % (n * epochs / secs, rss_mb, total / n))
