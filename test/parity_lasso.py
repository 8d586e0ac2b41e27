#!/usr/bin/python3
"""test/parity_lasso.py: `h2t score` and `h2t fit` against the numpy
reference test/lasso_ref.py on a planted problem (1000 x 3000, 10 classes,
6 unit-normalized locations, 60 informative features), run by `make parity`:

  1. `h2t score --init W0.npy`, 300 steps, against the float64 reference
     with the same W0, for lr 0.01 and 0.1: max |dW| <= 1e-3 and the top-300
     features by score agree >= 99%;
  2. `h2t fit` with one grid point (lr 0.01, steps 300, coef 1e-3, F 0.02)
     recovers >= 55 of the 60 informative features;
  3. `h2t fit` without --method (Head2Toe) cross-validates lr {0.1, 0.01} x
     steps {100, 300} x coef {1e-3, 1e-5} x F {0.01, 0.02, 0.05} in under a
     minute (OMP_NUM_THREADS=2).
Prints PASS/FAIL lines with the measured numbers.
Usage: /usr/bin/python3 test/parity_lasso.py [--h2t ./h2t] [--keep DIR]"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lasso_ref  # noqa: E402


def report(ok, msg):
    print(("PASS " if ok else "FAIL ") + "parity_lasso: " + msg, flush=True)


def run(cmd, env):
    t = time.time()
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return time.time() - t, r.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--h2t", default="./h2t")
    ap.add_argument("--keep", help="write the problem and outputs here instead of a temporary directory")
    a = ap.parse_args()
    d = a.keep or tempfile.mkdtemp(prefix="parity_lasso.")
    os.makedirs(d, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    try:
        X, y, names, dims, inf, W0 = lasso_ref.planted(1000, 3000, 10, 60, 6, seed=1, strength=0.3)
        np.save(f"{d}/X.npy", X)
        np.save(f"{d}/y.npy", y)
        np.save(f"{d}/W0.npy", W0)
        lasso_ref.write_layout(f"{d}/X.layout.tsv", names, dims)
        common = ["--features", f"{d}/X.npy", "--labels", f"{d}/y.npy"]

        # 1. the scoring run, step for step
        for lr in (0.01, 0.1):
            secs, _ = run([a.h2t, "score", *common, "--init", f"{d}/W0.npy", "--lr", str(lr), "--steps", "300",
                           "--coef", "1e-3", "--out", f"{d}/score_{lr}", "--quiet"], env)
            W = np.load(f"{d}/score_{lr}/W.npy")
            s = np.load(f"{d}/score_{lr}/scores.npy")
            t = time.time()
            Wr, _, _ = lasso_ref.train(X, y, 10, W0, lr, 300, 1e-3)
            rsecs = time.time() - t
            sr = lasso_ref.scores(Wr)
            dw = float(np.abs(W - Wr).max())
            top = len(set(np.argsort(-s, kind="stable")[:300]) & set(np.argsort(-sr, kind="stable")[:300]))
            report(dw <= 1e-3, f"score lr {lr}, 300 steps: max |dW| = {dw:.3g} (max |W| {np.abs(Wr).max():.3g}) "
                   f"vs numpy float64, tol 1e-3 (h2t {secs:.2f} s, numpy {rsecs:.2f} s)")
            report(top >= 297, f"score lr {lr}: top-300 features by score agree {top}/300 (need >= 297)")

        # 2. one grid point recovers the planted features
        secs, out = run([a.h2t, "fit", *common, "--layout", f"{d}/X.layout.tsv", "--lr", "0.01", "--steps", "300",
                         "--coef", "1e-3", "--fraction", "0.02", "--out", f"{d}/fit1", "--quiet"], env)
        sel = np.load(f"{d}/fit1/selected.npy")
        hit = len(set(sel.tolist()) & set(inf.tolist()))
        report(hit >= 55 and len(sel) == 60,
               f"fit (lr 0.01, steps 300, coef 1e-3, F 0.02) keeps {len(sel)}, {hit} of the 60 planted ({secs:.1f} s)")

        # 3. the cross-validated grid, Head2Toe by default
        secs, out = run([a.h2t, "fit", *common, "--layout", f"{d}/X.layout.tsv", "--lr", "0.1,0.01",
                         "--steps", "100,300", "--coef", "1e-3,1e-5", "--fraction", "0.01,0.02,0.05",
                         "--out", f"{d}/fitcv", "--quiet"], env)
        rep = json.load(open(f"{d}/fitcv/report.json"))
        sel = np.load(f"{d}/fitcv/selected.npy")
        hit = len(set(sel.tolist()) & set(inf.tolist()))
        report(secs < 60 and rep["method"] == "head2toe" and rep["grid_points"] == 24 and rep["cross_validated"],
               f"fit CV over 24 grid points x 5 folds: {secs:.1f} s with {env['OMP_NUM_THREADS']} threads "
               f"(limit 60 s); chose {rep['chosen']}, cv acc {rep['cv_mean_accuracy']:.4f}, "
               f"{hit} of the 60 planted among {len(sel)} kept")
    except Exception as e:  # noqa: BLE001
        report(False, str(e))
    finally:
        if not a.keep:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
