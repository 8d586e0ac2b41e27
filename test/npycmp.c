/* test/npycmp.c: npycmp GOT.npy REF.npy TOL -- compares two numeric .npy
 * files of the same shape the way test/check.h's check_close does: passes
 * when max |got - ref| <= TOL * max |ref| (TOL * 1 for an all-zero ref) and
 * nothing is NaN or infinite. Prints one line,
 *   "n=... max_abs=... max_rel=... max|ref|=... tol=..."
 * and exits 0 (within), 1 (not within), or 2 (unreadable, shapes differ).
 * For the shell tests (test/cli_reference.sh): no Python in make test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "npy.h"
#include "util.h"

int main(int argc, char **argv)
{
    double tol;
    if (argc != 4 || parse_double(argv[3], &tol) || !(tol >= 0)) {
        fprintf(stderr, "usage: npycmp GOT.npy REF.npy TOL\n");
        return 2;
    }
    npy_array got, ref;
    if (npy_read(argv[1], NPY_F64, &got)) {
        fprintf(stderr, "npycmp: %s\n", last_error());
        return 2;
    }
    if (npy_read(argv[2], NPY_F64, &ref)) {
        fprintf(stderr, "npycmp: %s\n", last_error());
        npy_free(&got);
        return 2;
    }
    int same_shape = got.ndim == ref.ndim;
    for (int d = 0; same_shape && d < got.ndim; d++) same_shape = got.shape[d] == ref.shape[d];
    if (!same_shape) {
        fprintf(stderr, "npycmp: %s and %s have different shapes\n", argv[1], argv[2]);
        npy_free(&got), npy_free(&ref);
        return 2;
    }
    const double *g = got.data, *r = ref.data;
    double max_abs = 0, max_rel = 0, max_ref = 0;
    int finite = 1;
    for (size_t i = 0; i < got.count; i++) {
        const double d = fabs(g[i] - r[i]), a = fabs(r[i]);
        finite = finite && isfinite(g[i]) && isfinite(r[i]);
        if (d > max_abs) max_abs = d;
        if (a > max_ref) max_ref = a;
        if (a > 0 && d / a > max_rel) max_rel = d / a;
    }
    const int ok = finite && max_abs <= tol * (max_ref > 0 ? max_ref : 1.0);
    printf("n=%zu max_abs=%.3g max_rel=%.3g max|ref|=%.3g tol=%.2g%s\n", got.count, max_abs, max_rel, max_ref, tol,
           finite ? "" : " (not finite)");
    npy_free(&got), npy_free(&ref);
    return ok ? 0 : 1;
}
