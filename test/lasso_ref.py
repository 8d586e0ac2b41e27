#!/usr/bin/python3
"""test/lasso_ref.py: an independent numpy implementation of docs/ALGORITHM.md §6
(the Head2Toe group-lasso scoring run, scores and selection) and section 5
(per-location renormalization). It shares no code with lasso.c and is
written from docs/ALGORITHM.md, in float64 by default. Used to

  * write the reference values committed for test/test_lasso.c:
        /usr/bin/python3 test/lasso_ref.py fixtures test/fixtures/lasso
  * generate planted-feature problems (X.npy, y.npy, F.layout.tsv,
    informative.npy, W0.npy):
        /usr/bin/python3 test/lasso_ref.py planted --out DIR [--n 1000 --d 3000 ...]
  * run the reference scoring run on .npy files:
        /usr/bin/python3 test/lasso_ref.py score --features X.npy --labels y.npy \
            --init W0.npy --lr 0.01 --steps 300 --coef 1e-3 --out DIR
and by test/parity_lasso.py (`make parity`). Needs numpy only."""
import argparse
import math
import os
import sys

import numpy as np

BETA1, BETA2, EPS = 0.9, 0.999, 1e-7


def glorot(rng, d, k):
    """Glorot-uniform [d, k] (numpy's RNG, not the C one: the C side gets it via --init)."""
    limit = math.sqrt(6.0 / (d + k))
    return rng.uniform(-limit, limit, size=(d, k)).astype(np.float32)


def train(X, y, k, W0, lr, steps, coef, batch=128, dtype=np.float64):
    """docs/ALGORITHM.md §6: returns W, b, losses (loss of each step before its update).
    loss = (1/batch) sum CE + (B/batch) coef sum_i ||W_i||, B the actual batch;
    TF Adam (eps on sqrt(v), bias correction in the step size), cosine decay
    lr0 (1 + cos(pi s / S)) / 2 for s = 0..S-1, batches in order, cycling,
    each pass ending with a partial batch."""
    X = X.astype(dtype)
    n, d = X.shape
    W = W0.astype(dtype).copy()
    b = np.zeros(k, dtype)
    mW, vW = np.zeros_like(W), np.zeros_like(W)
    mb, vb = np.zeros_like(b), np.zeros_like(b)
    Y = np.eye(k, dtype=dtype)[y]
    pos, losses = 0, []
    for s in range(steps):
        B = min(batch, n - pos)
        Xb, Yb = X[pos:pos + B], Y[pos:pos + B]
        z = Xb @ W + b
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        ce = -(logp * Yb).sum()
        norms = np.sqrt((W * W).sum(axis=1))
        pen = B / batch * coef
        losses.append(ce / batch + pen * norms.sum())
        G = (np.exp(logp) - Yb) / batch
        safe = np.where(norms > 0, norms, 1.0)
        gW = Xb.T @ G + pen * np.where(norms[:, None] > 0, W / safe[:, None], 0.0)
        gb = G.sum(axis=0)
        lr_s = lr * 0.5 * (1.0 + math.cos(math.pi * s / steps))
        t = s + 1
        lr_t = lr_s * math.sqrt(1.0 - BETA2 ** t) / (1.0 - BETA1 ** t)
        for p, g, m, v in ((W, gW, mW, vW), (b, gb, mb, vb)):
            m *= BETA1
            m += (1 - BETA1) * g
            v *= BETA2
            v += (1 - BETA2) * g * g
            p -= lr_t * m / (np.sqrt(v) + EPS)
        pos += B
        if pos == n:
            pos = 0
    return W, b, np.array(losses)


def scores(W):
    return (np.asarray(W, np.float64) ** 2).sum(axis=1)


def select(s, fraction):
    """int(D*F) highest scores, ties to the lower index, returned ascending."""
    d = len(s)
    keep = max(1, min(d, int(d * fraction)))
    order = np.lexsort((np.arange(d), -s))   # by -s, then by index
    return np.sort(order[:keep]).astype(np.int64)


def normalize_locations(X, dims):
    """Unit L2 norm per example and location (docs/ALGORITHM.md §5), zero stays zero."""
    X = X.copy()
    off = 0
    for dim in dims:
        part = X[:, off:off + dim]
        nrm = np.sqrt((part.astype(np.float64) ** 2).sum(axis=1, keepdims=True))
        X[:, off:off + dim] = part / np.where(nrm > 0, nrm, 1.0)
        off += dim
    return X


def write_layout(path, names, dims):
    with open(path, "w") as f:
        f.write("location\toffset\tdim\tpool\n")
        off = 0
        for name, dim in zip(names, dims):
            f.write(f"{name}\t{off}\t{dim}\t-1\n")
            off += dim


def planted(n, d, k, informative, locations, seed, strength):
    """Gaussian noise features; `informative` of them (spread over the
    locations at random) get +-strength added depending on the class; then
    every location is unit-normalized. The last location is 'pre_logits'."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % k)
    rng.shuffle(y)
    X = rng.standard_normal((n, d))
    inf = np.sort(rng.choice(d, size=informative, replace=False)).astype(np.int64)
    sign = rng.choice([-1.0, 1.0], size=(k, informative))
    X[:, inf] += strength * sign[y]
    dims = [d // locations] * locations
    dims[-1] += d - sum(dims)
    names = [f"loc{i}" for i in range(locations - 1)] + ["pre_logits"]
    X = normalize_locations(X, dims).astype(np.float32)
    W0 = glorot(rng, d, k)
    return X, y.astype(np.int64), names, dims, inf, W0


def cmd_planted(a):
    X, y, names, dims, inf, W0 = planted(a.n, a.d, a.k, a.informative, a.locations, a.seed, a.strength)
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "X.npy"), X)
    np.save(os.path.join(a.out, "y.npy"), y)
    np.save(os.path.join(a.out, "informative.npy"), inf)
    np.save(os.path.join(a.out, "W0.npy"), W0)
    write_layout(os.path.join(a.out, "X.layout.tsv"), names, dims)
    print(f"planted: X {X.shape}, {a.k} classes, {len(inf)} informative features -> {a.out}")


def cmd_score(a):
    X = np.load(a.features)
    y = np.load(a.labels).astype(np.int64)
    W0 = np.load(a.init)
    k = a.classes or int(y.max()) + 1
    dtype = np.float32 if a.float32 else np.float64
    W, b, losses = train(X, y, k, W0, a.lr, a.steps, a.coef, a.batch, dtype)
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "W.npy"), W.astype(np.float32))
    np.save(os.path.join(a.out, "b.npy"), b.astype(np.float32))
    np.save(os.path.join(a.out, "scores.npy"), scores(W))
    np.save(os.path.join(a.out, "losses.npy"), losses)
    print(f"reference score: final loss {losses[-1]:.6f} -> {a.out}")


def cmd_fixtures(a):
    """The small problem of test/test_lasso.c: n=300 (batches 128, 128, 44:
    partial batches and cycling within 10 steps), D=40 in three locations,
    K=4, features 3, 17, 25, 38 informative."""
    out = a.out
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20221)
    n, d, k = 300, 40, 4
    y = np.arange(n) % k
    rng.shuffle(y)
    X = rng.standard_normal((n, d))
    inf = np.array([3, 17, 25, 38])
    sign = rng.choice([-1.0, 1.0], size=(k, len(inf)))
    X[:, inf] += 2.0 * sign[y]
    dims, names = [10, 20, 10], ["block1", "block2", "pre_logits"]
    X = normalize_locations(X, dims).astype(np.float32)
    W0 = glorot(rng, d, k)
    lr, steps, coef = 0.05, 10, 0.01
    W, b, losses = train(X, y, k, W0, lr, steps, coef)
    np.save(os.path.join(out, "X.npy"), X)
    np.save(os.path.join(out, "y.npy"), y.astype(np.int64))
    np.save(os.path.join(out, "W0.npy"), W0)
    write_layout(os.path.join(out, "X.layout.tsv"), names, dims)
    np.save(os.path.join(out, "ref_losses.npy"), losses)
    np.save(os.path.join(out, "ref_W10.npy"), W.astype(np.float32))
    np.save(os.path.join(out, "ref_b10.npy"), b.astype(np.float32))
    with open(os.path.join(out, "README"), "w") as f:
        f.write("Written by `/usr/bin/python3 test/lasso_ref.py fixtures test/fixtures/lasso`.\n"
                f"X [{n},{d}] float32 (locations {dims}, unit-normalized), y [{n}] int64, "
                f"W0 [{d},{k}] Glorot (numpy RNG),\n"
                f"ref_*: the numpy reference (float64) after {steps} steps of lr {lr}, coef {coef}, "
                "batch 128: losses of each step, W and b.\n"
                f"Informative features: {list(inf)}.\n")
    print("losses:", " ".join(f"{x:.8f}" for x in losses))
    print(f"fixtures -> {out}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fixtures")
    f.add_argument("out")
    f.set_defaults(run=cmd_fixtures)
    g = sub.add_parser("planted")
    g.add_argument("--out", required=True)
    g.add_argument("--n", type=int, default=1000)
    g.add_argument("--d", type=int, default=3000)
    g.add_argument("--k", type=int, default=10)
    g.add_argument("--informative", type=int, default=60)
    g.add_argument("--locations", type=int, default=6)
    g.add_argument("--strength", type=float, default=0.3)
    g.add_argument("--seed", type=int, default=1)
    g.set_defaults(run=cmd_planted)
    s = sub.add_parser("score")
    s.add_argument("--features", required=True)
    s.add_argument("--labels", required=True)
    s.add_argument("--init", required=True)
    s.add_argument("--lr", type=float, default=0.01)
    s.add_argument("--steps", type=int, default=500)
    s.add_argument("--coef", type=float, default=1e-5)
    s.add_argument("--batch", type=int, default=128)
    s.add_argument("--classes", type=int, default=0)
    s.add_argument("--float32", action="store_true")
    s.add_argument("--out", required=True)
    s.set_defaults(run=cmd_score)
    a = p.parse_args()
    a.run(a)


if __name__ == "__main__":
    sys.exit(main())
