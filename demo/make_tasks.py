#!/usr/bin/python3
"""make_tasks.py: write the demo's target tasks (deterministic; numpy only).

Each task is VTAB-1k-sized: 1000 training images and 1000 test images,
28x28 uint8 grayscale, int64 labels, in demo/tasks/<name>/
{train,test}_{images,labels}.npy; demo/tasks/tasks.tsv lists them.

  fashion        in distribution. The 2000 Fashion-MNIST training images the
                 backbone never saw (fmnist.split_indices), 10 classes,
                 split 1000 / 1000 at random.
  dsprites_loc   out of distribution (VTAB dSprites-location in miniature).
                 One white-ish shape (square, disk, triangle or cross, size
                 5 to 9 px, any rotation) at a random place on black; the
                 label is the x position of its centre in 8 bins 2 px wide
                 (centre x uniform in [6, 22)).
  dsprites_ori   out of distribution (VTAB dSprites-orientation in
                 miniature). One elongated ellipse or rectangle (10 to 18 px
                 long, aspect 2.5 to 4) at a random place; the label is its
                 orientation in [0, 180) degrees in 8 bins of 22.5 degrees.
  clevr_count    out of distribution (VTAB Clevr-count in miniature). 1 to 8
                 small non-overlapping shapes (squares, disks, triangles,
                 3 to 5 px) of random brightness; the label is the count - 1.

Shapes are drawn anti-aliased (4x4 samples per pixel) with random
brightness in [160, 255] (count: [140, 255]). Every task has its own seed,
so tasks can be changed independently.

  /usr/bin/python3 demo/make_tasks.py [--out demo/tasks] [--preview tasks.png]
"""
import argparse
import math
import os
import struct
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist  # noqa: E402

SIZE = 28           # image side
NTRAIN, NTEST = 1000, 1000
SS = 4              # samples per pixel side (anti-aliasing)

# sample points (pixel (i, j) covers [j, j+1) x [i, i+1)), [SIZE*SS] each
_g = (np.arange(SIZE * SS) + 0.5) / SS
GY, GX = np.meshgrid(_g, _g, indexing="ij")


def inside(kind, u, v):
    """Is (u, v) (shape-local coordinates, the shape spans about [-1, 1])
    inside the shape?"""
    if kind == "square" or kind == "rectangle":
        return np.maximum(np.abs(u), np.abs(v)) <= 1
    if kind == "disk" or kind == "ellipse":
        return u * u + v * v <= 1
    if kind == "triangle":      # equilateral, vertices (0,1), (+-0.866,-0.5)
        return (v >= -0.5) & (v <= 1 - math.sqrt(3) * np.abs(u))
    if kind == "cross":
        return (((np.abs(u) <= 1) & (np.abs(v) <= 0.35)) |
                ((np.abs(u) <= 0.35) & (np.abs(v) <= 1)))
    raise ValueError(kind)


def draw(canvas, kind, cx, cy, sx, sy, angle, value):
    """Add one shape to canvas [SIZE*SS, SIZE*SS] float (max blending):
    centre (cx, cy) in pixels, half-extents sx (along its axis at `angle`
    radians, counter-clockwise from +x with y pointing up) and sy."""
    dx, dy = GX - cx, -(GY - cy)                 # y up
    c, s = math.cos(angle), math.sin(angle)
    u = (c * dx + s * dy) / sx
    v = (-s * dx + c * dy) / sy
    np.maximum(canvas, np.where(inside(kind, u, v), value, 0.0), out=canvas)


def finish(canvas):
    """Supersampled canvas -> uint8 [SIZE, SIZE] (box filter)."""
    img = canvas.reshape(SIZE, SS, SIZE, SS).mean(axis=(1, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_dsprites_loc(n, rng):
    imgs = np.zeros((n, SIZE, SIZE), np.uint8)
    labels = np.zeros(n, np.int64)
    kinds = ["square", "disk", "triangle", "cross"]
    for i in range(n):
        kind = kinds[rng.integers(4)]
        r = rng.uniform(2.5, 4.5)
        cx, cy = rng.uniform(6, 22), rng.uniform(6, 22)
        canvas = np.zeros_like(GX)
        draw(canvas, kind, cx, cy, r, r, rng.uniform(0, 2 * math.pi), rng.uniform(160, 255))
        imgs[i] = finish(canvas)
        labels[i] = min(7, int((cx - 6) / 2))
    return imgs, labels


def make_dsprites_ori(n, rng):
    imgs = np.zeros((n, SIZE, SIZE), np.uint8)
    labels = np.zeros(n, np.int64)
    kinds = ["ellipse", "rectangle"]
    for i in range(n):
        kind = kinds[rng.integers(2)]
        half = rng.uniform(5, 9)
        aspect = rng.uniform(2.5, 4)
        angle = rng.uniform(0, math.pi)
        cx, cy = rng.uniform(10, 18), rng.uniform(10, 18)
        canvas = np.zeros_like(GX)
        draw(canvas, kind, cx, cy, half, half / aspect, angle, rng.uniform(160, 255))
        imgs[i] = finish(canvas)
        labels[i] = min(7, int(angle / (math.pi / 8)))
    return imgs, labels


def make_clevr_count(n, rng):
    imgs = np.zeros((n, SIZE, SIZE), np.uint8)
    labels = np.zeros(n, np.int64)
    kinds = ["square", "disk", "triangle"]
    for i in range(n):
        count = int(rng.integers(1, 9))
        placed = []                               # (cx, cy, r)
        while len(placed) < count:                # rejection sampling; restart if stuck
            placed, tries = [], 0
            while len(placed) < count and tries < 1000:
                tries += 1
                r = rng.uniform(1.6, 2.6)
                cx, cy = rng.uniform(3, 25), rng.uniform(3, 25)
                if all((cx - px) ** 2 + (cy - py) ** 2 >= (r * 1.42 + pr * 1.42 + 1.5) ** 2
                       for px, py, pr in placed):
                    placed.append((cx, cy, r))
        canvas = np.zeros_like(GX)
        for cx, cy, r in placed:
            draw(canvas, kinds[rng.integers(3)], cx, cy, r, r, rng.uniform(0, 2 * math.pi),
                 rng.uniform(140, 255))
        imgs[i] = finish(canvas)
        labels[i] = count - 1
    return imgs, labels


def make_fashion(n_train, n_test, data_dir):
    x, y = fmnist.load("train", data_dir)
    _, held = fmnist.split_indices(len(x))
    perm = np.random.default_rng(11).permutation(len(held))
    idx = held[perm]
    assert n_train + n_test <= len(idx)
    tr, te = idx[:n_train], idx[n_train:n_train + n_test]
    return (x[tr], y[tr]), (x[te], y[te])


# name, out of distribution, classes, seed, generator, one-line description
TASKS = [
    ("fashion", 0, 10, None, None, "held-out Fashion-MNIST images, 10 classes"),
    ("dsprites_loc", 1, 8, 101, make_dsprites_loc, "x position of one shape, 8 bins"),
    ("dsprites_ori", 1, 8, 102, make_dsprites_ori, "orientation of an elongated shape, 8 bins"),
    ("clevr_count", 1, 8, 103, make_clevr_count, "number of small shapes (1-8)"),
]


def write_png(path, img):
    """Grayscale uint8 [h, w] -> PNG (no dependency beyond zlib)."""
    h, w = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data +
                struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
           chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)


def save(path, a):
    tmp = path + ".tmp.npy"
    np.save(tmp, a)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "tasks"))
    ap.add_argument("--data-dir", default=fmnist.DATA_DIR)
    ap.add_argument("--preview", help="also write a PNG: 12 training images per task, one row each, 3x")
    a = ap.parse_args()

    os.makedirs(a.out, exist_ok=True)
    rows = []
    with open(os.path.join(a.out, "tasks.tsv.tmp"), "w") as man:
        man.write("# name\tood\tclasses\tdescription (written by demo/make_tasks.py)\n")
        for name, ood, k, seed, gen, desc in TASKS:
            if gen is None:
                (xtr, ytr), (xte, yte) = make_fashion(NTRAIN, NTEST, a.data_dir)
            else:
                rng = np.random.default_rng(seed)
                x, y = gen(NTRAIN + NTEST, rng)
                xtr, ytr, xte, yte = x[:NTRAIN], y[:NTRAIN], x[NTRAIN:], y[NTRAIN:]
            d = os.path.join(a.out, name)
            os.makedirs(d, exist_ok=True)
            save(os.path.join(d, "train_images.npy"), np.ascontiguousarray(xtr))
            save(os.path.join(d, "train_labels.npy"), ytr.astype(np.int64))
            save(os.path.join(d, "test_images.npy"), np.ascontiguousarray(xte))
            save(os.path.join(d, "test_labels.npy"), yte.astype(np.int64))
            man.write(f"{name}\t{ood}\t{k}\t{desc}\n")
            assert ytr.max() < k and yte.max() < k
            counts = np.bincount(ytr, minlength=k)
            print(f"{name:14s} ood={ood} classes={k} train {xtr.shape} test {xte.shape} "
                  f"train per class {counts.min()}..{counts.max()}")
            rows.append(np.concatenate([np.pad(im, 1) for im in xtr[:12]], axis=1))
    os.replace(os.path.join(a.out, "tasks.tsv.tmp"), os.path.join(a.out, "tasks.tsv"))
    if a.preview:
        grid = np.concatenate(rows, axis=0)
        write_png(a.preview, np.kron(grid, np.ones((3, 3), np.uint8)))
        print(f"preview {a.preview}")


if __name__ == "__main__":
    main()
