/* bench/peak.c: the machine's multiply-add peak in fp32, for bench/compare.sh:
 * each OpenMP thread runs 256 independent chains acc = acc * x + y (16
 * vector registers of 16 floats once the compiler vectorizes the loop,
 * enough in flight to hide the latency of every FMA unit of current x86
 * cores). The best of 5 passes of 2^27 steps per chain; 2 flops per
 * multiply-add. Prints "peak GFLOP/s: X". Built with the flags of h2t's
 * fast build (-O3 -march=native), so it measures what the compiler can
 * issue on this machine, not a datasheet's number. */
#include <math.h>
#include <stdio.h>
#include <time.h>

#define ROWS 16
#define LANES 16 /* chains: ROWS x LANES */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void)
{
    const long steps = 1L << 27; /* per pass and row */
    double best = 0.0, check = 0.0;
    for (int r = 0; r < 5; r++) {
        double t = now(), flops = 0.0, total = 0.0;
#pragma omp parallel reduction(+ : flops, total)
        {
            float acc[ROWS * LANES];
            const float x = 0.999999f, y = 1e-6f;
            for (int i = 0; i < ROWS * LANES; i++) acc[i] = (float)i;
            for (long s = 0; s < steps; s++)
                for (int i = 0; i < ROWS * LANES; i++) acc[i] = fmaf(acc[i], x, y);
            for (int i = 0; i < ROWS * LANES; i++) total += acc[i];
            flops += 2.0 * ROWS * LANES * (double)steps;
        }
        t = now() - t;
        if (flops / t / 1e9 > best) best = flops / t / 1e9;
        check += total;
    }
    printf("peak GFLOP/s: %.1f (check %.3g)\n", best, check);
    return 0;
}
