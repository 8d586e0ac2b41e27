#!/usr/bin/python3
"""test/parity_prepare.py: data/prepare.py (the real-data script), run by
`make parity`. Needs numpy and Pillow; prints "SKIP ..." and exits 0
without Pillow. Offline and small (a few dozen tiny images, < 2 s).

  1. `prepare.py folder` on a tree written here (two classes named so that
     directory order and sorted order differ, a nested folder, a hidden file,
     a text file): labels and order as documented, pixels byte-equal to the
     images written, gray kept as [n, H, W], palette/RGBA converted to RGB,
     --classes reuse, refusals (mixed sizes without --size, unknown class,
     unreadable image) exit 1 with one line;
  2. --size: the TF1 bilinear resize against demo/fmnist.tf1_resize_matrix
     (an independent matrix form of the same resize), within the uint8
     rounding (0.5);
  3. h2t reads the written .npy (streamed, header rewritten at the end):
     `h2t features` on it with the demo backbone;
  4. VTAB-1k split strings for the real TFDS split sizes, worked out by hand
     from task_adaptation/data/*.py, and the derived labels (CLEVR count and
     distance, KITTI closest vehicle, dSprites bins) on hand-made examples.
The TFDS download path itself is not tested here (no network): see
data/README.md for the manual check with tfds.testing.mock_data.
Usage: /usr/bin/python3 test/parity_prepare.py [--h2t ./h2t]"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NAME = "parity_prepare"


def report(ok, msg):
    print(("PASS " if ok else "FAIL ") + NAME + ": " + msg, flush=True)


def run(*args):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "data", "prepare.py")] + list(args),
                       capture_output=True, text=True)
    return p.returncode, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--h2t", default="./h2t")
    a = ap.parse_args()
    try:
        from PIL import Image
    except ImportError:
        print(f"SKIP {NAME}: Pillow is not installed (apt-get install python3-pil)")
        return 0
    sys.path.insert(0, os.path.join(ROOT, "data"))
    sys.path.insert(0, os.path.join(ROOT, "demo"))
    import prepare
    import fmnist

    tmp = tempfile.mkdtemp(prefix="parity_prepare_")
    try:
        rng = np.random.default_rng(7)
        # --- 1. folder, gray, order and labels
        g = os.path.join(tmp, "gray")
        imgs = {}
        for cls, names in (("zebra", ["b.png", "a.png", "sub/c.png"]), ("Apple", ["x.png", "y.pgm"])):
            for n in names:
                p = os.path.join(g, cls, n)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                imgs[p] = rng.integers(0, 256, (20, 12), dtype=np.uint8)
                Image.fromarray(imgs[p]).save(p)
        open(os.path.join(g, "zebra", "notes.txt"), "w").write("not an image")
        Image.fromarray(imgs[os.path.join(g, "zebra", "a.png")]).save(os.path.join(g, "zebra", ".hidden.png"))
        rc, err = run("folder", "--root", g, "--out", os.path.join(tmp, "o", "g"), "--quiet")
        order = [os.path.join(g, "Apple", "x.png"), os.path.join(g, "Apple", "y.pgm"),
                 os.path.join(g, "zebra", "a.png"), os.path.join(g, "zebra", "b.png"),
                 os.path.join(g, "zebra", "sub", "c.png")]
        X = np.load(os.path.join(tmp, "o", "g_images.npy")) if rc == 0 else None
        Y = np.load(os.path.join(tmp, "o", "g_labels.npy")) if rc == 0 else None
        ok = (rc == 0 and X.dtype == np.uint8 and X.shape == (5, 20, 12) and Y.dtype == np.int64
              and Y.tolist() == [0, 0, 1, 1, 1] and np.array_equal(X, np.stack([imgs[p] for p in order]))
              and open(os.path.join(tmp, "o", "g_classes.txt")).read() == "Apple\nzebra\n")
        report(ok, f"folder gray: shape {None if X is None else X.shape}, labels {None if Y is None else Y.tolist()}, "
                   "pixels byte-equal, sorted classes and paths, hidden/non-image skipped" + ("" if rc == 0 else err))

        # --- 1b. color: RGB, palette, RGBA -> RGB [n, H, W, 3]
        c = os.path.join(tmp, "color")
        os.makedirs(os.path.join(c, "k"))
        rgb = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(os.path.join(c, "k", "1.png"))
        pal = Image.fromarray(rgb).convert("P")
        pal.save(os.path.join(c, "k", "2.png"))
        rgba = np.concatenate([rgb, rng.integers(0, 256, (9, 7, 1), dtype=np.uint8)], axis=2)
        Image.fromarray(rgba, "RGBA").save(os.path.join(c, "k", "3.png"))
        Image.fromarray(rgb[:, :, 0]).save(os.path.join(c, "k", "4.png"))
        rc, err = run("folder", "--root", c, "--out", os.path.join(tmp, "o", "c"), "--quiet")
        X = np.load(os.path.join(tmp, "o", "c_images.npy")) if rc == 0 else None
        want = np.stack([rgb, np.asarray(pal.convert("RGB")), rgb, np.repeat(rgb[:, :, :1], 3, axis=2)])
        report(rc == 0 and X.shape == (4, 9, 7, 3) and np.array_equal(X, want),
               "folder color: RGB, palette, RGBA (alpha dropped), gray tiled -> [4, 9, 7, 3]" + err)

        # --- 1c. refusals
        m = os.path.join(tmp, "mixed")
        os.makedirs(os.path.join(m, "a"))
        Image.fromarray(rgb).save(os.path.join(m, "a", "1.png"))
        Image.fromarray(rgb[:5]).save(os.path.join(m, "a", "2.png"))
        rc, err = run("folder", "--root", m, "--out", os.path.join(tmp, "o", "m"))
        report(rc == 1 and "--size" in err and not os.path.exists(os.path.join(tmp, "o", "m_images.npy")),
               f"mixed sizes without --size refused: {err.strip().splitlines()[-1]}")
        with open(os.path.join(tmp, "o", "only_apple.txt"), "w") as f:
            f.write("Apple\n")
        rc, err = run("folder", "--root", g, "--classes", os.path.join(tmp, "o", "only_apple.txt"),
                      "--out", os.path.join(tmp, "o", "u"))
        report(rc == 1 and "zebra" in err, f"unknown class refused: {err.strip().splitlines()[-1]}")
        open(os.path.join(m, "a", "3.jpg"), "w").write("not a jpeg")
        rc, err = run("folder", "--root", m, "--size", "8", "--out", os.path.join(tmp, "o", "m"))
        report(rc == 1 and "3.jpg" in err and len(err.strip().splitlines()) == 2,
               f"unreadable image refused: {err.strip().splitlines()[-1]}")
        os.remove(os.path.join(m, "a", "3.jpg"))

        # --- --classes reuse: the 'gray' list for a folder with only 'zebra'
        z = os.path.join(tmp, "zonly")
        shutil.copytree(os.path.join(g, "zebra"), os.path.join(z, "zebra"))
        rc, err = run("folder", "--root", z, "--classes", os.path.join(tmp, "o", "g_classes.txt"),
                      "--out", os.path.join(tmp, "o", "z"), "--quiet")
        Y = np.load(os.path.join(tmp, "o", "z_labels.npy")) if rc == 0 else None
        report(rc == 0 and Y.tolist() == [1, 1, 1], f"--classes keeps the training label numbers: {Y}" + err)

        # --- 2. resize against the matrix form
        worst, ident = 0.0, True
        for (H, W, S) in ((28, 28, 32), (20, 12, 7), (37, 50, 224), (9, 7, 9)):
            x = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            got = prepare.resize_tf1(x, S).astype(np.float64)
            ref = np.einsum("ij,jkc,lk->ilc", fmnist.tf1_resize_matrix(H, S).astype(np.float64),
                            x.astype(np.float64), fmnist.tf1_resize_matrix(W, S).astype(np.float64))
            worst = max(worst, float(np.abs(got - ref).max()))
            if H == S == W:
                ident = ident and np.array_equal(got, x)
        report(worst <= 0.5 + 1e-3 and ident,
               f"resize_tf1 vs tf1_resize_matrix: max |diff| {worst:.4f} (<= 0.5, uint8 rounding); identity at S = size")
        rc, err = run("folder", "--root", m, "--size", "32", "--out", os.path.join(tmp, "o", "m"), "--quiet")
        X = np.load(os.path.join(tmp, "o", "m_images.npy")) if rc == 0 else None
        report(rc == 0 and X.shape == (2, 32, 32, 3) and np.array_equal(X[0], prepare.resize_tf1(rgb, 32)),
               "folder --size 32 on mixed sizes -> [2, 32, 32, 3]" + err)

        # --- 3. h2t reads the streamed .npy files
        out = os.path.join(tmp, "o", "F.npy")
        p = subprocess.run([a.h2t, "features", "--model", os.path.join(ROOT, "demo", "backbone"),
                            "--images", os.path.join(tmp, "o", "g_images.npy"), "--target-size", "64",
                            "--out", out, "--quiet"], capture_output=True, text=True)
        F = np.load(out) if p.returncode == 0 else None
        report(p.returncode == 0 and F.shape[0] == 5 and np.isfinite(F).all(),
               f"h2t features reads PREFIX_images.npy: {None if F is None else F.shape}" + p.stderr.strip())

        # --- 4. VTAB splits (sizes of the TFDS versions VTAB uses) and labels
        want = {  # task: (train examples, train800val200, test), worked out from task_adaptation
            "dsprites_loc": (737280, "train[:800]+train[589824:590024]", "train[663552:]"),
            "clevr_count": (70000, "train[:800]+train[63000:63200]", "validation"),
            "eurosat": (27000, "train[:800]+train[16200:16400]", "train[21600:]"),
            "resisc45": (31500, "train[:800]+train[18900:19100]", "train[25200:]"),
            "cifar100": (50000, "train[:800]+train[45000:45200]", "test"),
            "oxford_iiit_pet": (3680, "train[:800]+train[2944:3144]", "test"),
            "svhn": (73257, "train[:800]+train[65931:66131]", "test"),
            "caltech101": (3060, "train[:800]+train[2754:2954]", "test"),
            "smallnorb_ele": (24300, "train[:800]+test[:200]", "test[50%:]"),
            "dtd": (1880, "train[:800]+validation[:200]", "test"),
            "kitti_dist": (6347, "train[:800]+validation[:200]", "test"),
        }
        bad = []
        for t, (n, tr, te) in want.items():
            s = prepare.vtab_splits(prepare.TASKS[t].layout, {"train": n})
            if (s["train800val200"], s["test"]) != (tr, te):
                bad.append(f"{t}: {s['train800val200']} / {s['test']}")
        report(not bad and len(prepare.TASKS) == 19,
               f"VTAB-1k split strings of {len(want)} tasks (19 tasks listed)" + ("; " + "; ".join(bad) if bad else ""))

        T = prepare.TASKS

        def obj(**kw):
            return {"objects": {k: np.asarray(v, np.float32) for k, v in kw.items()}}
        cases = [
            ("clevr_count 3 objects", T["clevr_count"].label(obj(size=[0, 1, 0])), 0),
            ("clevr_count 10 objects", T["clevr_count"].label(obj(size=[0] * 10)), 7),
            ("clevr_dist depth 8.0", T["clevr_dist"].label(obj(pixel_coords=[[1, 1, 12], [2, 2, 8.0]])), 0),
            ("clevr_dist depth 8.25", T["clevr_dist"].label(obj(pixel_coords=[[1, 1, 8.25]])), 1),
            ("clevr_dist depth 9.75", T["clevr_dist"].label(obj(pixel_coords=[[0, 0, 9.75], [0, 0, 11]])), 4),
            ("clevr_dist depth 10.5", T["clevr_dist"].label(obj(pixel_coords=[[0, 0, 10.5]])), 5),
            ("kitti_dist no vehicle", T["kitti_dist"].label(
                {"objects": {"type": np.array([3, 4]), "location": np.array([[0, 0, 2.0], [0, 0, 3.0]], np.float32)}}), 3),
            ("kitti_dist car at 8 m, pedestrian at 2 m", T["kitti_dist"].label(
                {"objects": {"type": np.array([0, 3]), "location": np.array([[0, 0, 8.0], [0, 0, 2.0]], np.float32)}}), 0),
            ("kitti_dist van at 8.5 m, truck at 30 m", T["kitti_dist"].label(
                {"objects": {"type": np.array([2, 1]), "location": np.array([[0, 0, 30.0], [0, 0, 8.5]], np.float32)}}), 1),
            ("kitti_dist car at 25 m", T["kitti_dist"].label(
                {"objects": {"type": np.array([0]), "location": np.array([[0, 0, 25.0]], np.float32)}}), 2),
            ("dsprites_loc x 31", T["dsprites_loc"].label({"label_x_position": 31}), 15),
            ("dsprites_loc x 2", T["dsprites_loc"].label({"label_x_position": 2}), 1),
            ("dsprites_ori orientation 39", T["dsprites_ori"].label({"label_orientation": 39}), 15),
            ("dsprites_ori orientation 5", T["dsprites_ori"].label({"label_orientation": 5}), 2),
            ("dsprites_ori orientation 4", T["dsprites_ori"].label({"label_orientation": 4}), 1),
        ]
        bad = [f"{n}: {got} (want {w})" for n, got, w in cases if got != w]
        report(not bad, f"VTAB labels on {len(cases)} hand-made examples" + ("; " + "; ".join(bad) if bad else ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
