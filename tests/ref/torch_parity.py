#!/usr/bin/python3
"""PyTorch reference for the two-tower model (tests/test_model.c, parity test).

Usage: /usr/bin/python3 tests/ref/torch_parity.py DIR

DIR (written by the C test) holds, as raw little-endian files:
  config.txt          key value lines: loss (mse|bce) l2norm (0|1) eps lr beta1
                      beta2 adam_eps wd steps batch user_in item_in n_examples,
                      then "tensor NAME D0 [D1]" lines in the model's order
  NAME.f32            initial value of each tensor
  xu.f32 xm.f32       feature tables [n_examples x user_in], [n_examples x item_in]
                      (example i uses user row i and item row i)
  y.f32               scaled targets [n_examples]
  batches.u32         [steps x batch] example indices of each Adam step
It writes:
  torch_loss0.txt     loss of batch 0 at the initial weights
  NAME.grad.f32       gradient of each tensor on batch 0
  torch_losses.txt    loss of each of the `steps` Adam steps (before its update)
The model mirrors src/model/model.c: Linear+ReLU layers, a linear output, optional
F.normalize(eps), dot product; MSE, or BCE-with-logits on s*dot+c.
Adam: torch.optim.Adam, weight decay on weights only (parameter groups)."""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
d = sys.argv[1]
cfg, tensors = {}, []
for line in open(os.path.join(d, "config.txt")):
    f = line.split()
    if not f:
        continue
    if f[0] == "tensor":
        tensors.append((f[1], [int(x) for x in f[2:]]))
    else:
        cfg[f[0]] = f[1]
rd = lambda name, dt=np.float32: np.fromfile(os.path.join(d, name), dtype=dt)
P = {}
for name, shape in tensors:
    P[name] = torch.tensor(rd(name + ".f32").reshape(shape), dtype=torch.float32, requires_grad=True)
n = int(cfg["n_examples"])
xu = torch.tensor(rd("xu.f32").reshape(n, int(cfg["user_in"])))
xm = torch.tensor(rd("xm.f32").reshape(n, int(cfg["item_in"])))
y = torch.tensor(rd("y.f32"))
steps, batch = int(cfg["steps"]), int(cfg["batch"])
batches = torch.tensor(rd("batches.u32", np.uint32).astype(np.int64).reshape(steps, batch))
l2norm, eps, loss_kind = cfg["l2norm"] == "1", float(cfg["eps"]), cfg["loss"]


def tower(prefix, x):
    layers = sorted({int(k.split(".")[1]) for k in P if k.startswith(prefix + ".")})
    for l in layers:
        x = F.linear(x, P[f"{prefix}.{l}.weight"], P[f"{prefix}.{l}.bias"])
        if l != layers[-1]:
            x = F.relu(x)
    return F.normalize(x, dim=1, eps=eps) if l2norm else x


def loss_of(idx):
    s = (tower("user", xu[idx]) * tower("item", xm[idx])).sum(dim=1)
    if loss_kind == "mse":
        return F.mse_loss(s, y[idx])
    return F.binary_cross_entropy_with_logits(P["head.scale"] * s + P["head.bias"], y[idx])


loss = loss_of(batches[0])
loss.backward()
with open(os.path.join(d, "torch_loss0.txt"), "w") as f:
    f.write("%.10g\n" % loss.item())
for name, _ in tensors:
    g = P[name].grad
    (g if g is not None else torch.zeros_like(P[name])).numpy().astype("<f4").tofile(os.path.join(d, name + ".grad.f32"))
    P[name].grad = None

decay = [P[k] for k, _ in tensors if k.endswith(".weight")]
rest = [P[k] for k, _ in tensors if not k.endswith(".weight") and (loss_kind == "bce" or not k.startswith("head."))]
opt = torch.optim.Adam([{"params": decay, "weight_decay": float(cfg["wd"])}, {"params": rest, "weight_decay": 0.0}],
                       lr=float(cfg["lr"]), betas=(float(cfg["beta1"]), float(cfg["beta2"])), eps=float(cfg["adam_eps"]))
losses = []
for k in range(steps):
    opt.zero_grad()
    loss = loss_of(batches[k])
    loss.backward()
    opt.step()
    losses.append(loss.item())
with open(os.path.join(d, "torch_losses.txt"), "w") as f:
    f.write("".join("%.10g\n" % v for v in losses))
