#!/usr/bin/python3
"""test/parity_scores.py: every `h2t score --score NAME` against an
independent computation, run by `make parity` (needs numpy and, for
f-classif and chi2, scikit-learn: apt-get install python3-sklearn):

  - l2, l1, linf, layer, layer-group: numpy on the W.npy the scoring run
    wrote and the layout (docs/ALGORITHM.md §7, §15);
  - variance: numpy's population standard deviation (np.std, ddof 0);
  - f-classif, chi2: scikit-learn's sklearn.feature_selection.f_classif and
    chi2 on the same matrix (in float64), with a class that never occurs;
  - random: reproducible for a seed, different for another, about N(0, 1).
The matrix is small (400 x 120, 5 classes of labels 0..5 with 3 absent,
3 locations) and non-negative, so chi2 applies; one column is constant.
Tolerance: relative 1e-6 of each score, or of 1e-9 of the largest score
for scores near 0 (sums in double on both sides, in different orders). Prints PASS/FAIL lines with the measured error.
Usage: /usr/bin/python3 test/parity_scores.py [--h2t ./h2t]"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np


def report(ok, msg):
    print(("PASS " if ok else "FAIL ") + "parity_scores: " + msg, flush=True)


def h2t(args):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {r.stderr.strip()}")


def close(name, got, want, rtol=1e-6):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    same_nan = np.array_equal(np.isnan(got), np.isnan(want))
    ok = got.shape == want.shape and same_nan
    m = ~np.isnan(want)
    floor = 1e-9 * np.abs(want[m]).max() if ok and m.any() else 1.0   # a score of exactly 0 vs 1e-29
    err = np.abs(got[m] - want[m]) / np.maximum(np.abs(want[m]), floor) if ok else np.array([np.inf])
    worst = float(err.max()) if err.size else 0.0
    report(ok and worst <= rtol, f"{name}: {got.size} scores, max relative error {worst:.2e} (tol {rtol:g})"
           + ("" if same_nan else ", NaN in different places"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--h2t", default="./h2t")
    a = ap.parse_args()
    try:
        from sklearn.feature_selection import chi2, f_classif
    except ImportError:
        report(False, "scikit-learn is missing (apt-get install -y python3-sklearn)")
        return 1
    d = tempfile.mkdtemp(prefix="parity_scores.")
    try:
        rng = np.random.default_rng(7)
        n, dims = 400, [30, 60, 30]
        D = sum(dims)
        y = rng.choice([0, 1, 2, 4, 5], size=n).astype(np.int64)   # class 3 never occurs
        X = np.abs(rng.normal(size=(n, D))).astype(np.float32)
        X[:, 7] += (y * 0.3).astype(np.float32)                      # a few informative columns
        X[:, 50] += (y == 2).astype(np.float32)
        X[:, 99] = 0.5                                               # constant: f-classif NaN
        np.save(f"{d}/X.npy", X)
        np.save(f"{d}/y.npy", y)
        with open(f"{d}/X.layout.tsv", "w") as f:
            f.write("location\toffset\tdim\tpool\n")
            o = 0
            for i, k in enumerate(dims):
                f.write(f"loc{i}\t{o}\t{k}\t-1\n")
                o += k
        base = [a.h2t, "score", "--features", f"{d}/X.npy", "--labels", f"{d}/y.npy", "--layout",
                f"{d}/X.layout.tsv", "--quiet"]
        Xd = X.astype(np.float64)
        # scores from the scoring run's W
        for name in ("l2", "l1", "linf", "layer", "layer-group"):
            h2t(base + ["--score", name, "--steps", "40", "--lr", "0.05", "--coef", "1e-3", "--out", f"{d}/{name}"])
            W = np.load(f"{d}/{name}/W.npy").astype(np.float64)
            if name == "l2":
                want = (W ** 2).sum(1)
            elif name == "l1":
                want = np.abs(W).sum(1)
            elif name == "linf":
                want = np.abs(W).max(1)
            else:
                want = np.empty(D)
                o = 0
                for k in dims:
                    block = W[o:o + k]
                    want[o:o + k] = np.linalg.norm(block, axis=1).mean() if name == "layer" else np.linalg.norm(block)
                    o += k
            close(f"{name} (numpy on the run's W and the layout)", np.load(f"{d}/{name}/scores.npy"), want)
        # scores from the data
        for name in ("variance", "f-classif", "chi2"):
            h2t(base + ["--score", name, "--out", f"{d}/{name}"])
        close("variance (numpy std, ddof 0)", np.load(f"{d}/variance/scores.npy"), Xd.std(axis=0))
        with np.errstate(all="ignore"):
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fw, _ = f_classif(Xd, y)
                cw, _ = chi2(Xd, y)
        close("f-classif (sklearn.feature_selection.f_classif; one constant column: NaN)",
              np.load(f"{d}/f-classif/scores.npy"), fw)
        close("chi2 (sklearn.feature_selection.chi2)", np.load(f"{d}/chi2/scores.npy"), cw)
        # random: seeded normal draws
        for seed in ("3", "3", "4"):
            h2t(base + ["--score", "random", "--seed", seed, "--out", f"{d}/random{seed}"])
        r3, r3b, r4 = (np.load(f"{d}/random{s}/scores.npy") for s in ("3", "3", "4"))
        report(np.array_equal(r3, r3b) and not np.array_equal(r3, r4) and abs(r3.mean()) < 0.3 and
               abs(r3.std() - 1) < 0.3, f"random: same seed same scores, another seed others; mean {r3.mean():.3f}, "
               f"std {r3.std():.3f} over {D}")
        # chi2 refuses negative features
        Xn = X.copy()
        Xn[3, 5] = -0.25
        np.save(f"{d}/Xn.npy", Xn)
        r = subprocess.run([a.h2t, "score", "--features", f"{d}/Xn.npy", "--labels", f"{d}/y.npy", "--score", "chi2",
                            "--out", f"{d}/neg"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        report(r.returncode == 1 and "non-negative" in r.stderr and not os.path.exists(f"{d}/neg"),
               f"chi2 refuses a negative feature: {r.stderr.strip()}")
    except Exception as e:  # a crash is a failure, with its reason
        report(False, str(e))
        return 1
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
