#!/usr/bin/python3
"""bench/score_torch.py: the scoring run of docs/ALGORITHM.md §6 written in PyTorch
(CPU), for bench/score_vs_torch.sh. The same loop as lasso.c and
test/lasso_ref.py: logits by matmul, cross-entropy summed / 128, group
penalty (B/128) coef sum ||W_i||, gradients by autograd, TF-style Adam
(eps on sqrt(v), bias correction in the step size), cosine decay, batches
of 128 in order, cycling, each pass ending with a partial batch.

  score_torch.py make --out DIR [--n 1000 --d 100000 --k 50 --locations 10]
      random unit-normalized features X.npy, y.npy, W0.npy (Glorot), X.layout.tsv
  score_torch.py run --data DIR --steps 200 --lr 0.01 --coef 1e-3 --threads 2 --out W.npy
      prints the time of the training loop alone"""
import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test"))


def make(a):
    import lasso_ref
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    y = rng.integers(0, a.k, size=a.n)
    dims = [a.d // a.locations] * a.locations
    dims[-1] += a.d - sum(dims)
    X = np.empty((a.n, a.d), np.float32)
    for i in range(0, a.n, 100):  # in slices, to keep memory small
        X[i:i + 100] = lasso_ref.normalize_locations(rng.standard_normal((min(100, a.n - i), a.d)), dims)
    np.save(f"{a.out}/X.npy", X)
    np.save(f"{a.out}/y.npy", y.astype(np.int64))
    np.save(f"{a.out}/W0.npy", lasso_ref.glorot(rng, a.d, a.k))
    lasso_ref.write_layout(f"{a.out}/X.layout.tsv", [f"loc{i}" for i in range(a.locations)], dims)


def run(a):
    import torch
    torch.set_num_threads(a.threads)
    X = torch.from_numpy(np.load(a.data + "/X.npy"))
    y = torch.from_numpy(np.load(a.data + "/y.npy"))
    W = torch.from_numpy(np.load(a.data + "/W0.npy")).clone().requires_grad_(True)
    n, d = X.shape
    k = W.shape[1]
    b = torch.zeros(k, requires_grad=True)
    state = [(W, torch.zeros_like(W), torch.zeros_like(W)), (b, torch.zeros_like(b), torch.zeros_like(b))]
    b1, b2, eps, batch = 0.9, 0.999, 1e-7, 128
    pos = 0
    t0 = time.time()
    for s in range(a.steps):
        B = min(batch, n - pos)
        Xb, yb = X[pos:pos + B], y[pos:pos + B]
        z = Xb @ W + b
        loss = torch.nn.functional.cross_entropy(z, yb, reduction="sum") / batch \
            + (B / batch) * a.coef * W.norm(dim=1).sum()
        grads = torch.autograd.grad(loss, (W, b))
        lr_s = a.lr * 0.5 * (1 + math.cos(math.pi * s / a.steps))
        lr_t = lr_s * math.sqrt(1 - b2 ** (s + 1)) / (1 - b1 ** (s + 1))
        with torch.no_grad():
            for (p, m, v), g in zip(state, grads):
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                p.addcdiv_(m, v.sqrt().add_(eps), value=-lr_t)
        pos += B
        if pos == n:
            pos = 0
    secs = time.time() - t0
    np.save(a.out, W.detach().numpy())
    print(f"torch: {a.steps} steps in {secs:.2f} s ({1000 * secs / a.steps:.1f} ms/step), "
          f"{torch.get_num_threads()} threads, final loss {loss.item():.6f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", required=True)
    m.add_argument("--n", type=int, default=1000)
    m.add_argument("--d", type=int, default=100000)
    m.add_argument("--k", type=int, default=50)
    m.add_argument("--locations", type=int, default=10)
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(run=make)
    r = sub.add_parser("run")
    r.add_argument("--data", required=True)
    r.add_argument("--steps", type=int, default=200)
    r.add_argument("--lr", type=float, default=0.01)
    r.add_argument("--coef", type=float, default=1e-3)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--out", required=True)
    r.set_defaults(run=run)
    a = ap.parse_args()
    a.run(a)


if __name__ == "__main__":
    main()
