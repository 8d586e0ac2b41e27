/* bench/bench_gemm.c: GFLOP/s of gemm() (gemm.c) and conv2d() (tensor.c) on square
 * sizes and on the shapes the backbones and the lasso produce. Not part of
 * `make test`.
 *
 *   make build/native-omp/gemm.o build/native-omp/tensor.o build/native-omp/util.o
 *   cc -std=c11 -D_POSIX_C_SOURCE=200809L -O3 -march=native -fopenmp -iquote . bench/bench_gemm.c \
 *      build/native-omp/gemm.o build/native-omp/tensor.o build/native-omp/util.o -lm -o /tmp/bench_gemm
 *   OMP_NUM_THREADS=2 /tmp/bench_gemm [seconds per shape, default 0.3] [set]
 *
 * set: s (square), r (ResNet-50 GEMMs), v (ViT-B/16), l (lasso), c (conv2d);
 * all of them when left out. Or one or more numbers: those square sizes
 * (`bench_gemm 1 1024 4096`; bench/gemm_vs_openblas.sh uses this).
 *
 * Each shape runs repeatedly for the given time; the best run is reported
 * (the machine is shared, so the best is the least disturbed). Also shown:
 * GFLOP/s from the process CPU time divided by the thread count. With one
 * thread it leaves out the time other processes held the core, a steadier
 * figure on a busy machine; with several it reads high whenever a thread
 * sat idle, so trust the wall-clock figure there. */

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "tensor.h"
#include "util.h"

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void bench(const char *what, int ta, int tb, size_t M, size_t N, size_t K, double seconds)
{
    float *A = alloc_array(M * K, sizeof(float)), *B = alloc_array(K * N, sizeof(float));
    float *C = alloc_array(M * N, sizeof(float));
    if (!A || !B || !C) {
        fprintf(stderr, "bench_gemm: %s\n", last_error());
        exit(1);
    }
    rng_t r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < M * K; i++) A[i] = (float)rng_uniform(&r) - 0.5f;
    for (size_t i = 0; i < K * N; i++) B[i] = (float)rng_uniform(&r) - 0.5f;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    double best = 1e30, best_cpu = 1e30, t_end = now_seconds() + seconds;
    int runs = 0;
    do {
        double t0 = now_seconds(), c0 = cpu_seconds();
        gemm(ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, 0.0f, C, N);
        double dt = now_seconds() - t0, dc = (cpu_seconds() - c0) / threads;
        if (dt < best) best = dt;
        if (dc < best_cpu) best_cpu = dc;
        runs++;
    } while (now_seconds() < t_end || runs < 2);
    double gf = 2.0 * M * N * K * 1e-9;
    printf("%-24s tA=%d tB=%d M=%6zu N=%5zu K=%5zu %9.3f ms %6.1f GFLOP/s (cpu %6.1f) %4d runs\n", what, ta, tb,
           M, N, K, best * 1e3, gf / best, gf / best_cpu, runs);
    fflush(stdout);
    free_array(A), free_array(B), free_array(C);
}

/* conv2d (im2col + gemm) on NHWC activations, GFLOP/s counted as the GEMM's */
static void bench_conv(const char *what, int N, int H, int Cin, int Cout, int k, int stride, double seconds)
{
    int pad = k / 2;
    conv_spec s = {k, k, stride, pad, pad, pad, pad};
    int OH = conv_out_h(&s, H), OW = conv_out_w(&s, H);
    size_t xn = (size_t)N * H * H * Cin, wn = (size_t)k * k * Cin * Cout, yn = (size_t)N * OH * OW * Cout;
    size_t wk = conv2d_work_size(&s, N, H, H, Cin);
    float *x = alloc_array(xn, sizeof(float)), *w = alloc_array(wn, sizeof(float));
    float *y = alloc_array(yn, sizeof(float)), *work = alloc_array(wk ? wk : 1, sizeof(float));
    if (!x || !w || !y || !work) {
        fprintf(stderr, "bench_gemm: %s\n", last_error());
        exit(1);
    }
    rng_t r;
    rng_seed(&r, 2);
    for (size_t i = 0; i < xn; i++) x[i] = (float)rng_uniform(&r) - 0.5f;
    for (size_t i = 0; i < wn; i++) w[i] = (float)rng_uniform(&r) - 0.5f;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    double best = 1e30, best_cpu = 1e30, t_end = now_seconds() + seconds;
    int runs = 0;
    do {
        double t0 = now_seconds(), c0 = cpu_seconds();
        conv2d(x, N, H, H, Cin, w, Cout, &s, y, work);
        double dt = now_seconds() - t0, dc = (cpu_seconds() - c0) / threads;
        if (dt < best) best = dt;
        if (dc < best_cpu) best_cpu = dc;
        runs++;
    } while (now_seconds() < t_end || runs < 2);
    double gf = 2.0 * (double)N * OH * OW * Cout * k * k * Cin * 1e-9;
    printf("%-24s N=%d %3dx%-3d %4d->%-4d k=%d s=%d %9.3f ms %6.1f GFLOP/s (cpu %6.1f) %4d runs\n", what, N, H, H,
           Cin, Cout, k, stride, best * 1e3, gf / best, gf / best_cpu, runs);
    fflush(stdout);
    free_array(x), free_array(w), free_array(y), free_array(work);
}

int main(int argc, char **argv)
{
    double s = argc > 1 ? atof(argv[1]) : 0.3;
    const char *only = argc > 2 ? argv[2] : "";
    if (*only >= '0' && *only <= '9') {
        for (int i = 2; i < argc; i++) {
            size_t n = (size_t)atol(argv[i]);
            bench("square", 0, 0, n, n, n, s);
        }
        return 0;
    }
    if (!*only || *only == 's') {
        size_t sq[] = {256, 512, 1024, 2048};
        for (int i = 0; i < 4; i++) bench("square", 0, 0, sq[i], sq[i], sq[i], s);
    }
    if (!*only || *only == 'r') {
        /* ResNet-50 at batch 16: 1x1 and 3x3 (im2col) convs of the stages */
        bench("resnet s1 1x1 64->64", 0, 0, 16 * 56 * 56, 64, 64, s);
        bench("resnet s1 1x1 64->256", 0, 0, 16 * 56 * 56, 256, 64, s);
        bench("resnet s1 1x1 256->64", 0, 0, 16 * 56 * 56, 64, 256, s);
        bench("resnet s1 3x3 64", 0, 0, 16 * 56 * 56, 64, 576, s);
        bench("resnet s2 3x3 128", 0, 0, 16 * 28 * 28, 128, 1152, s);
        bench("resnet s3 3x3 256", 0, 0, 16 * 14 * 14, 256, 2304, s);
        bench("resnet s4 3x3 512", 0, 0, 16 * 7 * 7, 512, 4608, s);
        bench("resnet s4 1x1 512->2048", 0, 0, 16 * 7 * 7, 2048, 512, s);
        bench("resnet stem 7x7", 0, 0, 16 * 112 * 112, 64, 147, s);
    }
    if (!*only || *only == 'v') {
        /* ViT-B/16 at batch 16 (197 tokens), attention per head */
        bench("vit qkv", 0, 0, 16 * 197, 2304, 768, s);
        bench("vit mlp1", 0, 0, 16 * 197, 3072, 768, s);
        bench("vit mlp2", 0, 0, 16 * 197, 768, 3072, s);
        bench("vit attn q k^T", 0, 1, 197, 197, 64, s);
        bench("vit attn p v", 0, 0, 197, 64, 197, s);
    }
    if (!*only || *only == 'l') {
        /* lasso head: forward X_b W and gradient X_b^T G, 10 and 100 classes */
        bench("lasso fwd k=10", 0, 0, 128, 10, 30000, s);
        bench("lasso grad k=10", 1, 0, 30000, 10, 128, s);
        bench("lasso fwd k=100", 0, 0, 128, 100, 30000, s);
        bench("lasso grad k=100", 1, 0, 30000, 100, 128, s);
    }
    if (!*only || *only == 'c') {
        bench_conv("conv stem", 16, 224, 3, 64, 7, 2, s);
        bench_conv("conv s1 1x1", 16, 56, 64, 256, 1, 1, s);
        bench_conv("conv s1 3x3", 16, 56, 64, 64, 3, 1, s);
        bench_conv("conv s2 3x3 stride 2", 16, 56, 128, 128, 3, 2, s);
        bench_conv("conv s2 1x1 stride 2", 16, 56, 256, 512, 1, 2, s);
        bench_conv("conv s3 1x1 1024->256", 16, 14, 1024, 256, 1, 1, s);
        bench_conv("conv s4 3x3", 16, 7, 512, 512, 3, 1, s);
    }
    return 0;
}
