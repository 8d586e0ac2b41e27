"""fmnist.py: what train_backbone.py and make_tasks.py share.

Reading the Fashion-MNIST idx files, the fixed split between the images the
backbone trains on and the images held out for the in-distribution target
task, and the TF1 legacy bilinear resize (the one resize_bilinear_tf1 in
tensor.c implements) written as two small interpolation matrices.
"""
import gzip
import os

import numpy as np

DATA_DIR = "/usr/share/datasets/fashion-mnist"   # Debian package dataset-fashion-mnist
CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle boot"]
HELDOUT = 2000          # training images kept away from the backbone (target task)
SPLIT_SEED = 20220101   # fixes which ones


def read_idx(path):
    """An idx file (optionally gzipped) as a numpy array (uint8 data)."""
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    off = 4 + 4 * ndim
    n = int(np.prod(dims))
    if len(raw) != off + n:
        raise ValueError(f"{path}: expected {off + n} bytes for shape {dims}, found {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=off).reshape(dims)


def load(split, data_dir=DATA_DIR):
    """(images [n,28,28] uint8, labels [n] int64) of 'train' or 't10k'."""
    x = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz")).astype(np.int64)
    return x, y


def split_indices(n=60000):
    """(backbone_train, heldout): a fixed random split of the 60000 training
    images. The backbone never sees the HELDOUT images; make_tasks.py draws
    the in-distribution target task from them."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    return np.sort(perm[HELDOUT:]), np.sort(perm[:HELDOUT])


def tf1_resize_matrix(n_in, n_out):
    """R [n_out, n_in] with out = R @ in along one axis: TF1 legacy bilinear
    (align_corners=False, half_pixel_centers=False): src = dst * in / out,
    i0 = floor(src), i1 = min(i0 + 1, in - 1), weights 1 - f and f."""
    R = np.zeros((n_out, n_in), dtype=np.float32)
    scale = np.float32(n_in) / np.float32(n_out)
    for d in range(n_out):
        src = np.float32(d) * scale
        i0 = int(np.floor(src))
        i1 = min(i0 + 1, n_in - 1)
        f = np.float32(src - i0)
        R[d, i0] += 1 - f
        R[d, i1] += f
    return R
