/* bench/stream.c: the machine's memory read bandwidth, for
 * bench/score_limits.sh: the best of 5 passes summing a 1 GiB float array
 * (16 running sums per thread, so that the compiler vectorizes the loop
 * without reordering a sum), with OpenMP threads splitting the array. Prints
 * "read GB/s: X". */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void)
{
    const long n = 1L << 28; /* 1 GiB of floats */
    float *a = malloc((size_t)n * sizeof *a);
    if (!a) {
        fprintf(stderr, "stream: out of memory\n");
        return 1;
    }
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) a[i] = (float)(i & 1023);
    double best = 0.0, check = 0.0;
    for (int r = 0; r < 5; r++) {
        double t = now(), total = 0.0;
#pragma omp parallel reduction(+ : total)
        {
            float acc[16] = {0}; /* each thread: 16 running sums, one vector */
#pragma omp for schedule(static)
            for (long i = 0; i < n; i += 16)
                for (int j = 0; j < 16; j++) acc[j] += a[i + j];
            for (int j = 0; j < 16; j++) total += acc[j];
        }
        t = now() - t;
        if ((double)n * 4 / t / 1e9 > best) best = (double)n * 4 / t / 1e9;
        check += total;
    }
    printf("read GB/s: %.1f (check %.0f)\n", best, check);
    free(a);
    return 0;
}
