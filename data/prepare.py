#!/usr/bin/env python3
"""data/prepare.py: real images -> the .npy files h2t reads.

    prepare.py folder --root DIR --out PREFIX [--size S] [--classes FILE]
    prepare.py tfds --name TASK --split train800val200|test --out PREFIX [--size S]
    prepare.py tasks                     (the 19 VTAB-1k tasks and their splits)

writes
    PREFIX_images.npy   uint8 [n, H, W, 3], or [n, H, W] when every image is
                        grayscale (h2t tiles gray to 3 channels itself)
    PREFIX_labels.npy   int64 [n], in [0, K)
    PREFIX_classes.txt  K lines: line k names class k
    PREFIX_info.json    where the data came from (source, split, sizes, K)
(PREFIX data/clevr_count/train gives data/clevr_count/train_images.npy,
the names `h2t demo` uses for its tasks). Each file is written to a temporary
name and renamed when complete; images are streamed to disk, so a test set
larger than memory is fine.

folder: ROOT holds one subfolder per class; classes are the subfolder names in
sorted order, images (.png .jpg .jpeg .bmp .gif .tif .tiff .webp .ppm .pgm,
any depth, hidden files skipped) in sorted path order: the same files always
give the same bytes. `--classes train_classes.txt` reuses a training set's
class list for its test folder (a subfolder missing from it is refused).
Pixels: EXIF orientation applied; palette, CMYK and 1-bit images converted
to RGB; alpha dropped; 16-bit and float images refused.

tfds: one of the 19 VTAB-1k tasks, split as the VTAB code
(google-research/task_adaptation, which the Head2Toe code uses) splits it:
train800val200 is the first 800 examples of the task's train split followed
by the first 200 of its validation split, so h2t's 5th CV fold (examples
800..999) is exactly VTAB's val200; test is VTAB's test split. Where the TFDS
dataset lacks a validation (or test) split VTAB cuts one out of train at a
fixed percentage, and so do we (see `prepare.py tasks`). Labels are the
VTAB ones (clevr count - 3, dSprites position and orientation binned to 16,
closest-vehicle distance bins of KITTI, ...). Needs tensorflow and
tensorflow-datasets, and internet (or --data-dir with the prepared data);
`--mock N` runs the same code on N fake examples per split from
tfds.testing.mock_data (offline; labels folded into [0, K)).

Size: without --size the images keep their size when all of them share one
(dSprites 64x64, sNORB 96x96, CLEVR 320x480, ...). h2t resizes every image
to the model's input_size with the TF1 legacy bilinear resize the VTAB
pipeline uses, so native images give exactly the official pixels. Where
sizes differ (Caltech101, DTD, Flowers, Pets, Sun397, KITTI, Retinopathy, or
your folder) --size S is required: the same TF1 bilinear resize (no crop,
aspect not kept) is applied here, so choose S = the model's input_size (224
for torchvision/timm ResNet-50 and ViT-B/16, 240 for the paper's ResNet-50):
h2t's resize is then the identity and the only difference from the official
pixels is the rounding to uint8 (at most half a grey level). --size also
shrinks big native images (CLEVR's 15,000 test images: 6.9 GB native, 2.3 GB
at 224).

Needs numpy and Pillow (folder), tensorflow + tensorflow-datasets (tfds).
"""
import argparse
import json
import os
import sys

import numpy as np

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class Refusal(Exception):
    """Bad input: reported as one line on stderr, exit status 1."""


def log(args, msg):
    if not getattr(args, "quiet", False):
        print(f"prepare: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# TF1 legacy bilinear resize (align_corners=False, half_pixel_centers=False),
# float32 arithmetic in the order of resize_bilinear_tf1 in tensor.c, then
# rounded to uint8.

def _axis(n_in, n_out):
    src = np.arange(n_out, dtype=np.float32) * (np.float32(n_in) / np.float32(n_out))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0.astype(np.float32)).astype(np.float32)


def resize_tf1(img, S):
    """img uint8 [H, W] or [H, W, C] -> uint8 [S, S(, C)]."""
    H, W = img.shape[:2]
    if H == S and W == S:
        return img
    y0, y1, ly = _axis(H, S)
    x0, x1, lx = _axis(W, S)
    f = img.astype(np.float32)
    if f.ndim == 2:
        f = f[:, :, None]
    lx = lx[None, :, None]
    top = f[y0][:, x0] + (f[y0][:, x1] - f[y0][:, x0]) * lx
    bottom = f[y1][:, x0] + (f[y1][:, x1] - f[y1][:, x0]) * lx
    out = top + (bottom - top) * ly[:, None, None]
    out = np.clip(np.floor(out + np.float32(0.5)), 0, 255).astype(np.uint8)
    return out[:, :, 0] if img.ndim == 2 else out


# ---------------------------------------------------------------------------
# Streaming .npy writer: rows are appended as they come; the header is written
# with room for any count and rewritten with the true one at the end.

class NpyRowWriter:
    def __init__(self, path, row_shape):
        self.path, self.tmp = path, path + ".tmp"
        self.row_shape, self.n = tuple(row_shape), 0
        self.hlen = len(self._header(10**15))
        self.f = open(self.tmp, "wb")
        self.f.write(self._header(0))

    def _header(self, n, pad_to=0):
        d = "{'descr': '|u1', 'fortran_order': False, 'shape': %r, }" % ((n,) + self.row_shape,)
        total = 10 + len(d) + 1
        total = max(pad_to, (total + 63) // 64 * 64)
        d = d + " " * (total - 10 - len(d) - 1) + "\n"
        return b"\x93NUMPY\x01\x00" + len(d).to_bytes(2, "little") + d.encode("latin1")

    def append(self, img):
        if img.shape != self.row_shape or img.dtype != np.uint8:
            raise ValueError(f"row {self.n}: {img.dtype} {img.shape}, expected uint8 {self.row_shape}")
        self.f.write(np.ascontiguousarray(img).tobytes())
        self.n += 1

    def close(self):
        self.f.seek(0)
        self.f.write(self._header(self.n, pad_to=self.hlen))
        self.f.close()
        os.replace(self.tmp, self.path)

    def abort(self):
        self.f.close()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


def write_small(path, write):
    tmp = path + ".tmp"
    write(tmp)
    os.replace(tmp, path)


def write_outputs(args, prefix, labels, classes, info):
    """Labels, class list and info (the images are already streamed)."""
    y = np.asarray(labels, dtype=np.int64)

    def save_npy(tmp):
        with open(tmp, "wb") as f:
            np.save(f, y)
    write_small(prefix + "_labels.npy", save_npy)
    def save_text(text):
        def write(tmp):
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
        return write
    write_small(prefix + "_classes.txt", save_text("".join(c + "\n" for c in classes)))
    write_small(prefix + "_info.json", save_text(json.dumps(info, indent=1) + "\n"))
    counts = np.bincount(y, minlength=len(classes)) if len(y) else np.zeros(len(classes), np.int64)
    log(args, f"{prefix}_images.npy {info['shape']}, {len(classes)} classes, "
              f"{int((counts > 0).sum())} present, per class {int(counts.min())}..{int(counts.max())}")


def out_prefix(args):
    d = os.path.dirname(args.out)
    if d and not os.path.isdir(d):
        os.makedirs(d, exist_ok=True)
    return args.out


# ---------------------------------------------------------------------------
# folder

def list_folder(root, classes=None):
    """(files, labels, classes, n_ignored) in deterministic order."""
    if not os.path.isdir(root):
        raise Refusal(f"--root {root}: not a directory")
    subdirs = sorted(d for d in os.listdir(root)
                     if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    if not subdirs:
        raise Refusal(f"--root {root}: no class subfolders (expected ROOT/<class>/<image>)")
    if classes is None:
        classes = subdirs
    else:
        unknown = [d for d in subdirs if d not in classes]
        if unknown:
            raise Refusal(f"--root {root}: subfolder '{unknown[0]}' is not in the --classes list")
    index = {c: k for k, c in enumerate(classes)}
    files, labels, ignored = [], [], 0
    for d in subdirs:
        found = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, d)):
            dirnames[:] = sorted(x for x in dirnames if not x.startswith("."))
            for fn in filenames:
                if fn.startswith("."):
                    continue
                if os.path.splitext(fn)[1].lower() in IMAGE_EXTS:
                    found.append(os.path.join(dirpath, fn))
                else:
                    ignored += 1
        found.sort()
        files += found
        labels += [index[d]] * len(found)
    if not files:
        raise Refusal(f"--root {root}: no image files in the class subfolders")
    return files, labels, classes, ignored


GRAY_MODES, COLOR_MODES = {"L", "1", "LA"}, {"RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"}


def open_image(path):
    from PIL import Image
    try:
        im = Image.open(path)
    except Exception as e:  # noqa: BLE001 -- any decoder error is a bad file
        raise Refusal(f"{path}: not a readable image ({e})")
    if im.mode not in GRAY_MODES | COLOR_MODES:
        raise Refusal(f"{path}: image mode {im.mode} (16-bit or float) is not supported: convert to 8 bit")
    return im


def oriented_size(im):
    """(H, W) after the EXIF orientation is applied."""
    w, h = im.size
    try:
        o = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 -- broken EXIF: ignore it
        o = 1
    return (w, h) if o in (5, 6, 7, 8) else (h, w)


def load_pixels(path, gray):
    from PIL import ImageOps
    im = open_image(path)
    try:
        im = ImageOps.exif_transpose(im)
        im = im.convert("L" if gray else "RGB")
    except Exception as e:  # noqa: BLE001
        raise Refusal(f"{path}: cannot decode ({e})")
    return np.asarray(im, dtype=np.uint8)


def cmd_folder(args):
    from PIL import Image  # noqa: F401 -- fail early with a clear message if missing
    classes = None
    if args.classes:
        try:
            with open(args.classes, encoding="utf-8") as f:
                classes = [line.rstrip("\n") for line in f if line.strip()]
        except OSError as e:
            raise Refusal(f"--classes {args.classes}: {e.strerror}")
        if not classes:
            raise Refusal(f"--classes {args.classes}: empty")
    files, labels, classes, ignored = list_folder(args.root, classes)
    if args.limit:
        files, labels = files[:args.limit], labels[:args.limit]
    log(args, f"{len(files)} images in {len(classes)} classes under {args.root}"
              + (f" ({ignored} non-image files ignored)" if ignored else ""))
    sizes, all_gray = set(), True
    for p in files:
        im = open_image(p)
        sizes.add(oriented_size(im))
        all_gray = all_gray and im.mode in GRAY_MODES
        im.close()
    if args.size is None and len(sizes) > 1:
        ex = sorted(sizes)[:3]
        raise Refusal(f"--root {args.root}: images of {len(sizes)} different sizes (e.g. "
                      + ", ".join(f"{h}x{w}" for h, w in ex)
                      + "): give --size S (the model's input_size, e.g. 224)")
    H, W = (args.size, args.size) if args.size else next(iter(sizes))
    gray = all_gray
    prefix = out_prefix(args)
    w = NpyRowWriter(prefix + "_images.npy", (H, W) if gray else (H, W, 3))
    try:
        for i, p in enumerate(files):
            x = load_pixels(p, gray)
            if args.size:
                x = resize_tf1(x, args.size)
            w.append(x)
            if (i + 1) % 1000 == 0:
                log(args, f"{i + 1}/{len(files)}")
        w.close()
    except BaseException:
        w.abort()
        raise
    info = {"source": "folder", "root": os.path.abspath(args.root), "n": len(files),
            "shape": [len(files)] + list(w.row_shape), "classes": len(classes),
            "resize": f"tf1-bilinear {args.size}" if args.size else "none (native)",
            "gray": gray, "order": "classes sorted by name, files by path"}
    write_outputs(args, prefix, labels, classes, info)


# ---------------------------------------------------------------------------
# VTAB-1k tasks (as defined in google-research/task_adaptation/data/*.py)
#
# split layouts, N = number of examples of the TFDS split named:
#   "pct P":     train800 = train[:800], val200 = train[t:t+200] with
#                t = P*N(train)//100, test = the dataset's test split
#   "trainval":  train800 = train[:800], val200 = validation[:200], test = test
#   "cut P Q":   only a train split: train P%, validation Q%, test the rest:
#                val200 = train[t:t+200], test = train[t+v:], t = P*N//100,
#                v = Q*N//100
#   "norb":      train800 = train[:800], val200 = test[:200], test = test[50%:]

def _plain(name):
    return lambda ex: int(ex[name])


def _dsprites(attr, n_orig):
    factor = np.float32(n_orig / 16.0)          # 16 classes, as VTAB's num_classes=16
    return lambda ex: int(np.floor(np.float32(ex[attr]) / factor))


def clevr_count(ex):
    return int(len(ex["objects"]["size"])) - 3   # 3..10 objects -> 0..7


CLEVR_DIST_THRS = np.array([0.0, 8.0, 8.5, 9.0, 9.5, 10.0, 100.0], dtype=np.float32)
KITTI_DIST_THRS = np.array([-100.0, 8.0, 20.0, 999.0], dtype=np.float32)


def _last_below(thrs, v):
    """Largest i with thrs[i] < v (VTAB's reduce_max(where(thrs - v < 0)))."""
    idx = np.nonzero(thrs < np.float32(v))[0]
    if len(idx) == 0:
        raise ValueError(f"value {v} is below every threshold")
    return int(idx[-1])


def clevr_dist(ex):
    """Depth of the closest object (pixel_coords[:, 2]) in 6 bins."""
    return _last_below(CLEVR_DIST_THRS, np.min(np.asarray(ex["objects"]["pixel_coords"], np.float32)[:, 2]))


def kitti_dist(ex):
    """Distance (location z) of the closest car, van or truck (type < 3) in 4
    bins; 1000 m when there is none (class 3)."""
    obj = ex["objects"]
    z, kind = np.asarray(obj["location"], np.float32).reshape(-1, 3)[:, 2], np.asarray(obj["type"])
    if len(z) != len(kind):
        raise ValueError(f"{len(z)} object locations but {len(kind)} types")
    z = z[kind < 3]
    return _last_below(KITTI_DIST_THRS, np.min(np.concatenate([z, np.float32([1000.0])])))


class Task:
    def __init__(self, tfds, layout, label, classes, image="image", binary=False, gray=False,
                 native=False, class_names=None, about=""):
        self.tfds, self.layout, self.label, self.k = tfds, layout, label, classes
        self.image, self.binary, self.gray, self.native = image, binary, gray, native
        self.class_names, self.about = class_names, about


TASKS = {
    # natural
    "caltech101": Task("caltech101:3.*.*", "pct 90", _plain("label"), 102),
    "cifar100": Task("cifar100:3.*.*", "pct 90", _plain("label"), 100),
    "dtd": Task("dtd:3.*.*", "trainval", _plain("label"), 47),
    "oxford_flowers102": Task("oxford_flowers102:2.*.*", "trainval", _plain("label"), 102),
    "oxford_iiit_pet": Task("oxford_iiit_pet:3.*.*", "pct 80", _plain("label"), 37),
    "svhn": Task("svhn_cropped:3.*.*", "pct 90", _plain("label"), 10),
    "sun397": Task("sun397/tfds:4.*.*", "trainval", _plain("label"), 397),
    # specialized
    "patch_camelyon": Task("patch_camelyon:2.*.*", "trainval", _plain("label"), 2),
    "eurosat": Task("eurosat/rgb:2.*.*", "cut 60 20", _plain("label"), 10),
    "resisc45": Task("resisc45:3.*.*", "cut 60 20", _plain("label"), 45),
    "diabetic_retinopathy": Task("diabetic_retinopathy_detection/btgraham-300:3.*.*", "trainval",
                                 _plain("label"), 5),
    # structured
    "clevr_count": Task("clevr:3.*.*", "pct 90 validation", clevr_count, 8, native=True,
                        class_names=[f"{k + 3} objects" for k in range(8)],
                        about="number of objects - 3"),
    "clevr_dist": Task("clevr:3.*.*", "pct 90 validation", clevr_dist, 6, native=True,
                       class_names=["depth (0,8]", "(8,8.5]", "(8.5,9]", "(9,9.5]", "(9.5,10]", "(10,100]"],
                       about="depth of the closest object, 6 bins"),
    "dmlab": Task("dmlab:2.0.1", "trainval", _plain("label"), 6),
    "kitti_dist": Task("kitti:3.1.0", "trainval", kitti_dist, 4,
                       class_names=["vehicle <= 8 m", "8-20 m", "20-999 m", "no vehicle"],
                       about="distance of the closest vehicle, 4 bins"),
    "dsprites_loc": Task("dsprites:2.*.*", "cut 80 10", _dsprites("label_x_position", 32), 16,
                         binary=True, gray=True, class_names=[f"x {2 * k}-{2 * k + 1} of 32" for k in range(16)],
                         about="label_x_position // 2"),
    "dsprites_ori": Task("dsprites:2.*.*", "cut 80 10", _dsprites("label_orientation", 40), 16,
                         binary=True, gray=True, class_names=[f"orientation bin {k}" for k in range(16)],
                         about="label_orientation // 2.5"),
    "smallnorb_azi": Task("smallnorb:2.*.*", "norb", _plain("label_azimuth"), 18, gray=True,
                          class_names=[f"azimuth {20 * k} deg" for k in range(18)], about="label_azimuth"),
    "smallnorb_ele": Task("smallnorb:2.*.*", "norb", _plain("label_elevation"), 9, gray=True,
                          class_names=[f"elevation {30 + 5 * k} deg" for k in range(9)], about="label_elevation"),
}


def vtab_splits(layout, counts):
    """{'train800', 'val200', 'train800val200', 'test'} -> TFDS split strings.
    counts: {tfds split name: number of examples} (only 'train' is used)."""
    f = layout.split()
    if f[0] == "pct":
        t = int(f[1]) * counts["train"] // 100
        s = {"train800": "train[:800]", "val200": f"train[{t}:{t + 200}]",
             "test": f[2] if len(f) > 2 else "test"}
    elif f[0] == "trainval":
        s = {"train800": "train[:800]", "val200": "validation[:200]", "test": "test"}
    elif f[0] == "cut":
        t, v = int(f[1]) * counts["train"] // 100, int(f[2]) * counts["train"] // 100
        s = {"train800": "train[:800]", "val200": f"train[{t}:{t + 200}]", "test": f"train[{t + v}:]"}
    elif f[0] == "norb":
        s = {"train800": "train[:800]", "val200": "test[:200]", "test": "test[50%:]"}
    else:
        raise ValueError(layout)
    s["train800val200"] = s["train800"] + "+" + s["val200"]
    return s


def describe_layout(layout):
    """(train800val200, test) in words, N = examples in TFDS's train split."""
    f = layout.split()
    if f[0] == "pct":
        return f"train[:800]+train[{f[1]}%N:{f[1]}%N+200]", f[2] if len(f) > 2 else "test"
    if f[0] == "cut":
        return f"train[:800]+train[{f[1]}%N:{f[1]}%N+200]", f"train[{int(f[1]) + int(f[2])}%N:]"
    s = vtab_splits(layout, {"train": 0})
    return s["train800val200"], s["test"]


def cmd_tasks(args):
    print(f"{'task':21s} {'tfds':50s} {'K':>3s}  {'train800val200':34s} {'test':18s} label")
    for name, t in TASKS.items():
        tr, te = describe_layout(t.layout)
        print(f"{name:21s} {t.tfds:50s} {t.k:3d}  {tr:34s} {te:18s} {t.about or 'label'}")


def builder_for(tfds, name, data_dir, args):
    try:
        return tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # noqa: BLE001 -- a version this tfds no longer has
        base = name.split(":")[0]
        log(args, f"warning: {name} unavailable ({str(e).splitlines()[0][:120]}); using {base} "
                  "at this tfds's default version: the examples' order may differ from VTAB's")
        return tfds.builder(base, data_dir=data_dir)


def cmd_tfds(args):
    if args.name not in TASKS:
        raise Refusal(f"--name {args.name}: not a VTAB-1k task (prepare.py tasks lists them)")
    task = TASKS[args.name]
    if args.split not in ("train800val200", "test", "train800", "val200"):
        raise Refusal(f"--split {args.split}: expected train800val200, test, train800 or val200")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise Refusal("tfds: needs tensorflow and tensorflow-datasets (pip install tensorflow-cpu tensorflow-datasets)")
    import contextlib
    mock = tfds.testing.mock_data(num_examples=args.mock) if args.mock else contextlib.nullcontext()
    with mock:
        b = builder_for(tfds, task.tfds, args.data_dir, args)
        if not args.mock:
            log(args, f"download_and_prepare {b.info.full_name} (may take long the first time)")
            b.download_and_prepare()
        counts = {k: v.num_examples for k, v in b.info.splits.items()}
        if args.mock and "train" not in counts:
            counts["train"] = 100000        # mock data has no split sizes
        split = vtab_splits(task.layout, counts)[args.split]
        shape = b.info.features[task.image].shape
        fixed = None not in shape[:2] or task.native
        if args.size is None and not fixed:
            raise Refusal(f"--name {args.name}: images of varying size: give --size S "
                          "(the model's input_size, e.g. 224)")
        log(args, f"{args.name}: {b.info.full_name} split '{split}'")
        ds = b.as_dataset(split=split, shuffle_files=False)
        if args.limit:
            ds = ds.take(args.limit)
        prefix = out_prefix(args)
        w, labels = None, []
        try:
            for i, ex in enumerate(tfds.as_numpy(ds)):
                x = np.asarray(ex[task.image])
                if x.ndim == 3 and x.shape[2] == 1:
                    x = x[:, :, 0]
                if not task.gray and x.ndim == 2:
                    x = np.repeat(x[:, :, None], 3, axis=2)
                if task.binary:             # dSprites stores 0/1 pixels: x 255 as VTAB does
                    if args.mock:
                        x = (x > 127).astype(np.uint8)
                    if x.max() > 1:
                        raise Refusal(f"{args.name} example {i}: pixel values above 1 (expected 0/1)")
                    x = x * np.uint8(255)
                if args.size:
                    x = resize_tf1(x, args.size)
                try:
                    y = task.label(ex)
                except (ValueError, KeyError, IndexError) as e:
                    if not args.mock:
                        raise Refusal(f"{args.name} example {i}: no label ({e})")
                    y = 0                   # mock objects are random, not consistent
                if args.mock:
                    y %= task.k
                if not 0 <= y < task.k:
                    raise Refusal(f"{args.name} example {i}: label {y} outside [0, {task.k})")
                if w is None:
                    w = NpyRowWriter(prefix + "_images.npy", x.shape)
                if x.shape != w.row_shape:
                    raise Refusal(f"{args.name} example {i}: image {x.shape[:2]}, earlier {w.row_shape[:2]}: "
                                  "give --size S (the model's input_size, e.g. 224)")
                w.append(x)
                labels.append(y)
                if (i + 1) % 1000 == 0:
                    log(args, f"{i + 1} examples")
            if w is None:
                raise Refusal(f"{args.name} split '{split}': no examples")
            w.close()
        except BaseException:
            if w is not None:
                w.abort()
            raise
        names = task.class_names
        if names is None:
            feat = b.info.features["label"]
            names = list(feat.names) if getattr(feat, "names", None) else [str(k) for k in range(task.k)]
        if len(names) != task.k:
            raise Refusal(f"{args.name}: tfds has {len(names)} classes, VTAB uses {task.k}")
        info = {"source": "tfds" + (f" mock({args.mock})" if args.mock else ""), "task": args.name,
                "tfds": b.info.full_name, "vtab_split": args.split, "tfds_split": split,
                "n": len(labels), "shape": [len(labels)] + list(w.row_shape), "classes": task.k,
                "resize": f"tf1-bilinear {args.size}" if args.size else "none (native)"}
        write_outputs(args, prefix, labels, names, info)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="prepare.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("folder", help="ROOT/<class>/<image> -> .npy")
    f.add_argument("--root", required=True, help="folder with one subfolder per class")
    f.add_argument("--classes", help="class list to use (a training set's PREFIX_classes.txt)")
    t = sub.add_parser("tfds", help="a VTAB-1k task from TensorFlow Datasets -> .npy")
    t.add_argument("--name", required=True, help="VTAB task (prepare.py tasks lists them)")
    t.add_argument("--split", required=True, help="train800val200 (the 1000 training examples) or test")
    t.add_argument("--data-dir", help="TFDS data directory (default: TFDS's, ~/tensorflow_datasets)")
    t.add_argument("--mock", type=int, default=0, metavar="N",
                   help="offline check: N fake examples from tfds.testing.mock_data")
    for p in (f, t):
        p.add_argument("--out", required=True, help="output prefix: PREFIX_images.npy, _labels.npy, ...")
        p.add_argument("--size", type=int, help="resize to S x S (TF1 bilinear); default: keep the size")
        p.add_argument("--limit", type=int, default=0, help="only the first N images")
        p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sub.add_parser("tasks", help="list the VTAB-1k tasks and their splits")
    args = ap.parse_args(argv)
    if getattr(args, "size", None) is not None and not 1 <= args.size <= 4096:
        ap.error(f"--size {args.size}: expected 1..4096")
    try:
        {"folder": cmd_folder, "tfds": cmd_tfds, "tasks": cmd_tasks}[args.cmd](args)
    except Refusal as e:
        print(f"prepare: {e}", file=sys.stderr)
        return 1
    except ImportError as e:
        hint = ("pip install pillow numpy" if args.cmd == "folder"
                else "tensorflow-datasets needs it to download and prepare this dataset: pip install it")
        print(f"prepare: {args.cmd}: module {e.name or e} is not installed ({hint})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
