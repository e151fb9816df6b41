"""The practice lab's model in PyTorch, the peer of examples/course-lab/run.sh.

Same protocol as the lab (../shared/data/README.md): scalers fitted on all rows,
targets min-max scaled to [-1, 1], sklearn's train_test_split(train_size=0.8,
shuffle=True, random_state=1) (numpy's RandomState(1).permutation, which is what
sklearn does), user columns 3: and item columns 1: as inputs, towers
256-128-32 with ReLU, l2-normalised, dot product, MSE, Adam lr 0.01, batch 32.
Prints one line: torch_test_mse_scaled=... torch_train_seconds=... torch_peak_rss_mb=...
usage: /usr/bin/python3 bench/lab_torch.py DIR [EPOCHS] [THREADS]
"""
import math, resource, sys, time
import numpy as np
import torch

d = sys.argv[1]
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 30
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
torch.manual_seed(1)
U = np.loadtxt(f"{d}/content_user_train.csv", delimiter=",", dtype=np.float64)
I = np.loadtxt(f"{d}/content_item_train.csv", delimiter=",", dtype=np.float64)
y = np.loadtxt(f"{d}/content_y_train.csv", delimiter=",", dtype=np.float64).reshape(-1, 1)
U = (U - U.mean(0)) / np.where(U.std(0) == 0, 1, U.std(0))
I = (I - I.mean(0)) / np.where(I.std(0) == 0, 1, I.std(0))
y = 2 * (y - y.min()) / (y.max() - y.min()) - 1
n = len(y)
n_test = math.ceil(0.2 * n)
perm = np.random.RandomState(1).permutation(n)
test, train = perm[:n_test], perm[n_test:n_test + int(0.8 * n)]
U, I = U[:, 3:], I[:, 1:]
Ut, It, yt = (torch.tensor(a, dtype=torch.float32) for a in (U, I, y))

def tower(i):
    return torch.nn.Sequential(torch.nn.Linear(i, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                               torch.nn.ReLU(), torch.nn.Linear(128, 32))

user, item = tower(U.shape[1]), tower(I.shape[1])
opt = torch.optim.Adam(list(user.parameters()) + list(item.parameters()), lr=0.01, eps=1e-7)

def predict(idx):
    vu = torch.nn.functional.normalize(user(Ut[idx]), dim=1)
    vm = torch.nn.functional.normalize(item(It[idx]), dim=1)
    return (vu * vm).sum(1, keepdim=True)

t0 = time.time()
g = torch.Generator().manual_seed(1)
tr = torch.tensor(train)
for e in range(epochs):
    order = tr[torch.randperm(len(tr), generator=g)]
    for b in range(0, len(order), 32):
        idx = order[b:b + 32]
        loss = torch.nn.functional.mse_loss(predict(idx), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
secs = time.time() - t0
with torch.no_grad():
    mse = torch.nn.functional.mse_loss(predict(torch.tensor(test)), yt[test]).item()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"torch_test_mse_scaled={mse:.4f} torch_train_seconds={secs:.2f} torch_peak_rss_mb={rss:.0f}")
