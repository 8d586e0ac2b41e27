/* test/check.h: the tiny test harness shared by test/test_*.c.
 * Each check prints one line, "PASS name ..." or "FAIL name ...";
 * test/run.sh counts them. A test binary exits non-zero if any check
 * failed. Comparisons print max abs and max relative error. */
#ifndef H2T_CHECK_H
#define H2T_CHECK_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int check_passed, check_failed;

/* Record one check. */
static void check(int ok, const char *fmt, ...)
#if defined(__MINGW_PRINTF_FORMAT)
    __attribute__((format(__MINGW_PRINTF_FORMAT, 2, 3)))
#elif defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(ok ? "PASS " : "FAIL ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
    if (ok) check_passed++; else check_failed++;
}

/* max |got - want| <= tol * max(|want|) (tol relative to the tensor's
 * largest magnitude, the project's standard parity criterion). */
static inline int check_close(const char *name, const float *got, const float *want, size_t n, double tol)
{
    double max_abs = 0, max_ref = 0, max_rel = 0;
    size_t bad = n;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)want[i]);
        if (r > max_ref) max_ref = r;
    }
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d == d) || isinf(got[i])) { d = INFINITY; if (bad == n) bad = i; }
        if (d > max_abs) max_abs = d;
        double r = fabs((double)want[i]);
        if (r > 0 && d / r > max_rel) max_rel = d / r;
    }
    int ok = max_abs <= tol * (max_ref > 0 ? max_ref : 1.0) && bad == n;
    check(ok, "%s n=%zu max_abs=%.3g max_rel=%.3g max|ref|=%.3g tol=%.1g", name, n, max_abs, max_rel,
          max_ref, tol);
    return ok;
}

/* Bitwise equality of two float arrays. */
static inline int check_same(const char *name, const float *a, const float *b, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        union { float f; unsigned u; } x = {a[i]}, y = {b[i]};
        if (x.u != y.u) break;
    }
    check(i == n, "%s bitwise n=%zu%s", name, n, i == n ? "" : " (differs)");
    return i == n;
}

/* The OpenMP thread count of the next parallel regions (a no-op without OpenMP). */
static inline void set_threads(int t)
{
#ifdef _OPENMP
    omp_set_num_threads(t);
#else
    (void)t;
#endif
}

static inline int check_done(void)
{
    fflush(stdout);
    return check_failed ? 1 : 0;
}

#endif
