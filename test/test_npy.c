/* test/test_npy.c: the .npy reader and writer (npy.c) against independent
 * references:
 *   - files written by numpy itself (test/fixtures/npy/, made by
 *     test/make_npy_fixtures.py), versions 1.0, 2.0 and 3.0, checked value by
 *     value against the literals below, and our writer's bytes compared with
 *     numpy's file for the same array;
 *   - round trips of every type through the whole-array and streaming
 *     writers, and through v2.0 / v3.0 headers built by hand here;
 *   - row ranges, conversions between types (and the lossy ones refused);
 *   - one refusal per way a header or file can be wrong, each checked for a
 *     one-line message that names the file;
 *   - big-endian files (numpy's and hand-built) read on any host, and the
 *     writer's little-endian bytes on any host;
 *   - a sparse 2.4 GB file, read past the 2 GB offset.
 * Files built here hold their values in the byte order their header
 * declares, whatever the host's (make_file), so the test means the same on
 * big- and little-endian machines. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "platform.h"
#include "../npy.h"
#include "../util.h"

#define FIX "test/fixtures/npy/"

static char tmpdir[256];

static const char *tmp(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *b = malloc(1 << 20);
    *len = fread(b, 1, 1 << 20, f);
    fclose(f);
    return b;
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
}

static int host_big_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 0;
}

/* dst = n elements of es bytes from src (host order) in byte order `order`
 * ('<' little, '>' big; anything else: copied as is). */
static void to_order(unsigned char *dst, const void *src, size_t es, size_t n, char order)
{
    const unsigned char *s = src;
    const int swap = (order == '<' && host_big_endian()) || (order == '>' && !host_big_endian());
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < es; j++) dst[i * es + j] = s[i * es + (swap ? es - 1 - j : j)];
}

/* The byte order and element size a dict declares: '<f8' gives '<' and 8;
 * '|u1', a structured or unparsable descr give '|' and 1 (bytes as given). */
static void dict_layout(const char *dict, char *order, size_t *es)
{
    const char *d = strstr(dict, "descr");
    *order = '|', *es = 1;
    if (!d) return;
    d += 5;
    while (*d == '\'' || *d == '"' || *d == ':' || *d == ' ') d++;
    if (*d == '\'' || *d == '"') d++;
    if ((d[0] == '<' || d[0] == '>') && d[1] && d[2] >= '1' && d[2] <= '8') *order = d[0], *es = (size_t)(d[2] - '0');
}

/* A file built by hand: magic, version major.minor, the dict padded with
 * spaces to a multiple of 64 and '\n' (pad = 0: exactly the dict as given,
 * no padding or newline added), then data: host-order values written in
 * the byte order the dict declares. Independent of npy.c's writer. */
static void make_file(const char *path, int major, int minor, const char *dict, int pad, const void *data,
                      size_t dlen)
{
    static unsigned char buf[1 << 16];
    size_t prefix = major == 1 ? 10 : 12, dl = strlen(dict), total = prefix + dl;
    if (pad) total = (prefix + dl + 1 + 63) / 64 * 64;
    size_t hlen = total - prefix;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = (unsigned char)minor;
    for (size_t i = 0; i < prefix - 8; i++) buf[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + prefix, dict, dl);
    if (pad) {
        memset(buf + prefix + dl, ' ', total - prefix - dl - 1);
        buf[total - 1] = '\n';
    }
    char order;
    size_t es;
    dict_layout(dict, &order, &es);
    if (dlen % es) es = 1, order = '|';
    if (dlen) to_order(buf + total, data, es, dlen / es, order);
    write_bytes(path, buf, total + dlen);
}

/* npy_read must fail with a one-line message naming the file and containing
 * `want`. */
static void refused(const char *what, const char *path, npy_dtype dt, const char *want)
{
    npy_array a;
    int rc = npy_read(path, dt, &a);
    const char *e = last_error();
    int ok = rc == -1 && strstr(e, path) && strstr(e, want) && !strchr(e, '\n') && a.data == NULL;
    check(ok, "refuse %s: \"%s\"", what, rc == -1 ? e : "(accepted)");
    if (rc == 0) npy_free(&a);
}

/* The same with a hand-built v1.0 file. */
static void refused_dict(const char *what, const char *dict, size_t data_bytes, const char *want)
{
    static unsigned char zeros[4096];
    const char *p = tmp("refused.npy");
    make_file(p, 1, 0, dict, 1, zeros, data_bytes);
    refused(what, p, NPY_F32, want);
}

/* Accepted hand-built header; returns ndim or -1. */
static int accepted_dict(const char *what, const char *dict, size_t data_bytes, int ndim, const size_t *shape)
{
    static unsigned char zeros[4096];
    const char *p = tmp("accepted.npy");
    make_file(p, 1, 0, dict, 1, zeros, data_bytes);
    npy_reader r;
    int rc = npy_open(p, &r), ok = rc == 0 && r.ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = r.shape[i] == shape[i];
    check(ok, "accept %s%s%s", what, rc ? ": " : "", rc ? last_error() : "");
    if (rc == 0) npy_close(&r);
    return ok;
}

/* ------------------------------------------------------------------------
 * the arrays of test/make_npy_fixtures.py, literally */

static const uint8_t U8[6] = {0, 1, 127, 128, 254, 255};
static float F4[12];
static const double F8[5] = {0.1, -2.5, 1e300, 5e-324, 123456789.0};
static const int32_t I4[8] = {INT32_MIN, INT32_MAX, 0, -1, 1, 2, 300, -300};
static const int64_t I8[4] = {INT64_MIN, INT64_MAX, 0, 4294967296LL};

static void init_f4(void)
{
    const float v[12] = {0.0f, -0.0f, 1.5f, -2.25f, 3.4028234663852886e38f, 1.401298464324817e-45f,
                         0.1f, -1e-30f, INFINITY, -INFINITY, 16777216.0f, -7.0f};
    memcpy(F4, v, sizeof v);
}

/* A numpy fixture read as dt must equal want; written back by npy_write it
 * must give numpy's bytes: those of the file itself, or for a big-endian
 * fixture those of its little-endian twin `le` (we always write '<'). */
static void fixture_le(const char *file, const char *le, npy_dtype dt, int ndim, size_t s0, size_t s1, size_t s2,
                       const void *want)
{
    char path[256];
    snprintf(path, sizeof path, FIX "%s", file);
    npy_array a;
    if (npy_read(path, dt, &a)) {
        check(0, "numpy fixture %s: %s", file, last_error());
        return;
    }
    size_t s[3] = {s0, s1, s2}, count = 1;
    int ok = a.ndim == ndim && a.dtype == dt;
    for (int i = 0; i < ndim && ok; i++) ok = a.shape[i] == s[i], count *= s[i];
    ok = ok && a.count == count && memcmp(a.data, want, count * npy_dtype_size(dt)) == 0;
    check(ok, "numpy fixture %s: %s, %d dims, %zu elements bitwise equal", file, npy_dtype_name(dt), a.ndim, a.count);

    /* our writer must produce numpy's bytes exactly (v1.0 files) */
    if (!strstr(file, "_v")) {
        const char *out = tmp("same_bytes.npy");
        size_t la = 0, lb = 0;
        int wrc = npy_write(out, dt, a.ndim, a.shape, a.data);
        snprintf(path, sizeof path, FIX "%s", le);
        unsigned char *x = slurp(path, &la), *y = wrc ? NULL : slurp(out, &lb);
        check(x && y && la == lb && memcmp(x, y, la) == 0, "npy_write %s: same %zu bytes as numpy's %s", file, la,
              le);
        free(x);
        free(y);
    }
    npy_free(&a);
}

static void fixture(const char *file, npy_dtype dt, int ndim, size_t s0, size_t s1, size_t s2, const void *want)
{
    fixture_le(file, file, dt, ndim, s0, s1, s2, want);
}

static void test_numpy_fixtures(void)
{
    fixture("u8_2x3.npy", NPY_U8, 2, 2, 3, 0, U8);
    fixture("f4_3x4.npy", NPY_F32, 2, 3, 4, 0, F4);
    fixture("f4_3x4_v2.npy", NPY_F32, 2, 3, 4, 0, F4);
    fixture("f4_3x4_v3.npy", NPY_F32, 2, 3, 4, 0, F4);
    fixture("f8_5.npy", NPY_F64, 1, 5, 0, 0, F8);
    fixture("i4_2x2x2.npy", NPY_I32, 3, 2, 2, 2, I4);
    fixture("i8_4.npy", NPY_I64, 1, 4, 0, 0, I8);
    fixture("i8_4_v2.npy", NPY_I64, 1, 4, 0, 0, I8);
    const float scalar = 3.5f;
    fixture("f4_scalar.npy", NPY_F32, 0, 0, 0, 0, &scalar);
    fixture("f4_0x3.npy", NPY_F32, 2, 0, 3, 0, F4);
    fixture_le("be_f4_3x4.npy", "f4_3x4.npy", NPY_F32, 2, 3, 4, 0, F4);
    fixture_le("be_f8_5.npy", "f8_5.npy", NPY_F64, 1, 5, 0, 0, F8);
    fixture_le("be_i4_2x2x2.npy", "i4_2x2x2.npy", NPY_I32, 3, 2, 2, 2, I4);
    fixture_le("be_i8_4.npy", "i8_4.npy", NPY_I64, 1, 4, 0, 0, I8);

    refused("numpy fortran-order file", FIX "bad_fortran_2x3.npy", NPY_F32, "fortran_order");
    refused("numpy int16 file", FIX "bad_int16_3.npy", NPY_I32, "but found '<i2'");
    refused("numpy bool file", FIX "bad_bool_3.npy", NPY_U8, "but found '|b1'");
}

/* ------------------------------------------------------------------------
 * round trips */

static void fill(npy_dtype dt, void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        long long v = (long long)(i * 37 % 251) - (dt == NPY_U8 ? 0 : 100);
        switch (dt) {
        case NPY_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
        case NPY_F32: ((float *)p)[i] = (float)v / 8.0f; break;
        case NPY_F64: ((double *)p)[i] = (double)v / 3.0; break;
        case NPY_I32: ((int32_t *)p)[i] = (int32_t)(v * 1000003); break;
        case NPY_I64: ((int64_t *)p)[i] = v * 1000000000007LL; break;
        }
    }
}

static void test_round_trips(void)
{
    const npy_dtype types[5] = {NPY_U8, NPY_F32, NPY_F64, NPY_I32, NPY_I64};
    const size_t shape[4] = {3, 5, 2, 7};
    static unsigned char src[3 * 5 * 2 * 7 * 8], back[sizeof src];
    for (int t = 0; t < 5; t++) {
        npy_dtype dt = types[t];
        size_t es = npy_dtype_size(dt);
        for (int nd = 0; nd <= 4; nd++) {
            size_t n = 1;
            for (int i = 0; i < nd; i++) n *= shape[i];
            fill(dt, src, n);
            const char *p = tmp("rt.npy");
            int ok = npy_write(p, dt, nd, shape, src) == 0;
            npy_array a = {0};
            ok = ok && npy_read(p, dt, &a) == 0 && a.ndim == nd && a.count == n &&
                 memcmp(a.data, src, n * es) == 0;
            for (int i = 0; i < nd && ok; i++) ok = a.shape[i] == shape[i];
            if (ok) npy_free(&a);
            /* the data start at a multiple of 64, version 1.0 */
            size_t len;
            unsigned char *b = slurp(p, &len);
            ok = ok && b && b[6] == 1 && b[7] == 0 && (10 + (b[8] | b[9] << 8)) % 64 == 0 &&
                 len == (size_t)(10 + (b[8] | b[9] << 8)) + n * es;
            free(b);
            check(ok, "round trip %s with %d dims (%zu elements)", npy_dtype_name(dt), nd, n);
        }
        /* versions 2.0 and 3.0: headers built here */
        for (int major = 2; major <= 3; major++) {
            char dict[128];
            snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (3, 5), }",
                     npy_dtype_name(dt));
            fill(dt, src, 15);
            const char *p = tmp("v23.npy");
            make_file(p, major, 0, dict, 1, src, 15 * es);
            npy_array a = {0};
            int ok = npy_read(p, dt, &a) == 0 && a.ndim == 2 && a.shape[0] == 3 && a.shape[1] == 5 &&
                     memcmp(a.data, src, 15 * es) == 0;
            check(ok, "read v%d.0 %s", major, npy_dtype_name(dt));
            if (a.data) npy_free(&a);
        }
        (void)back;
    }
}

/* ------------------------------------------------------------------------
 * the streaming writer and reader */

static void test_streaming(void)
{
    float data[7 * 3];
    for (int i = 0; i < 21; i++) data[i] = (float)i * 0.5f - 3.0f;
    const size_t shape[2] = {7, 3};
    const char *p = tmp("stream.npy");
    remove(p);
    npy_writer w;
    int ok = npy_writer_open(&w, p, NPY_F32, 2, shape) == 0;
    ok = ok && npy_writer_rows(&w, data, 2) == 0 && npy_writer_rows(&w, data + 6, 0) == 0 &&
         npy_writer_rows(&w, data + 6, 3) == 0;
    check(ok && !file_exists(p) && file_exists(w.tmp), "streaming writer: nothing at the path until close (%s)",
          w.tmp);
    ok = ok && npy_writer_rows(&w, data + 15, 2) == 0;
    char tmpname[600];
    snprintf(tmpname, sizeof tmpname, "%s", w.tmp);
    ok = ok && npy_writer_close(&w) == 0;
    check(ok && file_exists(p) && !file_exists(tmpname), "streaming writer: close renames the temporary");

    npy_reader r;
    ok = npy_open(p, &r) == 0 && r.ndim == 2 && r.shape[0] == 7 && r.shape[1] == 3 && r.row_count == 3 &&
         r.file_dtype == NPY_F32 && r.data_offset == 128;
    check(ok, "npy_open: [7, 3] <f4, row_count 3, data at byte 128");
    if (!ok) return;
    float rows[21];
    double rows64[21];
    for (size_t r0 = 0; r0 <= 7; r0++)
        for (size_t n = 0; r0 + n <= 7; n++) {
            memset(rows, 0, sizeof rows);
            if (npy_read_rows(&r, r0, n, NPY_F32, rows) || memcmp(rows, data + 3 * r0, n * 3 * sizeof(float))) {
                check(0, "npy_read_rows [%zu, %zu): %s", r0, r0 + n, last_error());
                goto next;
            }
        }
    check(1, "npy_read_rows: every range [r0, r0+n) of 7 rows, exact");
next:
    ok = npy_read_rows(&r, 2, 4, NPY_F64, rows64) == 0;
    for (int i = 0; ok && i < 12; i++) ok = rows64[i] == (double)data[6 + i];
    check(ok, "npy_read_rows [2, 6) converted to <f8");
    ok = npy_read_rows(&r, 6, 2, NPY_F32, rows) == -1 && strstr(last_error(), "out of range") &&
         strstr(last_error(), p);
    check(ok, "npy_read_rows [6, 8) of 7 refused: %s", last_error());
    ok = npy_read_rows(&r, 8, 0, NPY_F32, rows) == -1;
    check(ok, "npy_read_rows at row 8 of 7 refused");
    ok = npy_read_rows(&r, 1, SIZE_MAX, NPY_F32, rows) == -1;
    check(ok, "npy_read_rows with nrows = SIZE_MAX refused (no overflow)");
    npy_close(&r);

    /* too few rows: close fails, nothing left behind */
    const char *q = tmp("short.npy");
    remove(q);
    ok = npy_writer_open(&w, q, NPY_F32, 2, shape) == 0 && npy_writer_rows(&w, data, 6) == 0;
    snprintf(tmpname, sizeof tmpname, "%s", w.tmp);
    ok = ok && npy_writer_close(&w) == -1 && strstr(last_error(), "6 of 7 rows");
    check(ok && !file_exists(q) && !file_exists(tmpname), "writer closed after 6 of 7 rows: refused, no file: %s",
          last_error());
    npy_writer_abort(&w); /* harmless after a failed close */
    /* too many rows */
    ok = npy_writer_open(&w, q, NPY_F32, 2, shape) == 0 && npy_writer_rows(&w, data, 5) == 0 &&
         npy_writer_rows(&w, data, 3) == -1;
    snprintf(tmpname, sizeof tmpname, "%s", w.tmp);
    npy_writer_abort(&w);
    check(ok && !file_exists(q) && !file_exists(tmpname), "writer given 8 of 7 rows: refused; abort leaves nothing");
    /* an existing file is replaced only on success */
    write_bytes(q, "old", 3);
    ok = npy_writer_open(&w, q, NPY_F32, 2, shape) == 0 && npy_writer_rows(&w, data, 2) == 0;
    npy_writer_abort(&w);
    size_t len = 0;
    unsigned char *b = slurp(q, &len);
    check(ok && b && len == 3 && memcmp(b, "old", 3) == 0, "aborted writer leaves the old file in place");
    free(b);
    ok = npy_writer_open(&w, tmp("no/such/dir.npy"), NPY_F32, 2, shape) == -1 && strstr(last_error(), "no/such/dir");
    check(ok, "writer into a missing directory refused: %s", last_error());
}

/* ------------------------------------------------------------------------
 * conversions */

static int convert_case(const char *dict, const void *data, size_t dbytes, npy_dtype want, void *out)
{
    const char *p = tmp("conv.npy");
    make_file(p, 1, 0, dict, 1, data, dbytes);
    npy_array a;
    if (npy_read(p, want, &a)) return -1;
    memcpy(out, a.data, a.count * npy_dtype_size(want));
    npy_free(&a);
    return 0;
}

static void test_conversions(void)
{
    const char *f4d = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }";
    const char *f8d = "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }";
    const char *i8d = "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }";
    const char *i4d = "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }";
    const char *u1d = "{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }";
    int64_t i64[4];
    int32_t i32[4];
    uint8_t u8[4];
    float f32[4];
    double f64[4];

    const float fa[4] = {0.0f, -0.0f, -3.0f, 16777216.0f};
    check(convert_case(f4d, fa, 16, NPY_I64, i64) == 0 && i64[0] == 0 && i64[1] == 0 && i64[2] == -3 &&
              i64[3] == 16777216,
          "<f4 integral values -> <i8");
    const float fb[4] = {1.0f, 2.5f, 3.0f, 4.0f};
    check(convert_case(f4d, fb, 16, NPY_I64, i64) == -1 && strstr(last_error(), "element 1 is 2.5"),
          "<f4 2.5 -> <i8 refused: %s", last_error());
    const float fc[4] = {1.0f, 2.0f, NAN, 4.0f};
    check(convert_case(f4d, fc, 16, NPY_I32, i32) == -1 && strstr(last_error(), "element 2"),
          "<f4 NaN -> <i4 refused: %s", last_error());
    const float fd[4] = {0.0f, 255.0f, 256.0f, 1.0f};
    check(convert_case(f4d, fd, 16, NPY_U8, u8) == -1 && strstr(last_error(), "element 2 is 256"),
          "<f4 256 -> |u1 refused: %s", last_error());
    const float fe[4] = {0.0f, 255.0f, 17.0f, 1.0f};
    check(convert_case(f4d, fe, 16, NPY_U8, u8) == 0 && u8[1] == 255 && u8[2] == 17, "<f4 0..255 -> |u1");
    const float ff[4] = {0.0f, -1.0f, 1.0f, 1.0f};
    check(convert_case(f4d, ff, 16, NPY_U8, u8) == -1, "<f4 -1 -> |u1 refused");
    const float fg[4] = {2147483648.0f, 0, 0, 0};
    check(convert_case(f4d, fg, 16, NPY_I32, i32) == -1, "<f4 2^31 -> <i4 refused");
    const float fh[4] = {-2147483648.0f, 0, 0, 0};
    check(convert_case(f4d, fh, 16, NPY_I32, i32) == 0 && i32[0] == INT32_MIN, "<f4 -2^31 -> <i4");
    const float fi[4] = {INFINITY, 0, 0, 0};
    check(convert_case(f4d, fi, 16, NPY_I64, i64) == -1, "<f4 inf -> <i8 refused");
    const double da[4] = {9223372036854775808.0, 0, 0, 0};
    check(convert_case(f8d, da, 32, NPY_I64, i64) == -1, "<f8 2^63 -> <i8 refused");
    const double db[4] = {-9223372036854775808.0, 1e15, 0, 0};
    check(convert_case(f8d, db, 32, NPY_I64, i64) == 0 && i64[0] == INT64_MIN && i64[1] == 1000000000000000LL,
          "<f8 -2^63, 1e15 -> <i8");

    const double dc[4] = {0.1, -1e-300, 3.4028234663852886e38, NAN};
    int ok = convert_case(f8d, dc, 32, NPY_F32, f32) == 0;
    for (int i = 0; ok && i < 3; i++) ok = f32[i] == (float)dc[i];
    check(ok && isnan(f32[3]), "<f8 -> <f4 rounds (0.1, -1e-300, FLT_MAX, NaN)");
    const double dd[4] = {0, 0, 1e300, 0};
    check(convert_case(f8d, dd, 32, NPY_F32, f32) == -1 && strstr(last_error(), "element 2"),
          "<f8 1e300 -> <f4 refused: %s", last_error());
    const double de[4] = {INFINITY, -INFINITY, 0, 0};
    check(convert_case(f8d, de, 32, NPY_F32, f32) == 0 && isinf(f32[0]) && f32[1] < 0, "<f8 +-inf -> <f4 kept");

    const int64_t ia[4] = {INT32_MIN, INT32_MAX, -1, 7};
    check(convert_case(i8d, ia, 32, NPY_I32, i32) == 0 && i32[0] == INT32_MIN && i32[1] == INT32_MAX &&
              i32[2] == -1,
          "<i8 in range -> <i4");
    const int64_t ib[4] = {0, 2147483648LL, 0, 0};
    check(convert_case(i8d, ib, 32, NPY_I32, i32) == -1 && strstr(last_error(), "element 1 is 2147483648"),
          "<i8 2^31 -> <i4 refused: %s", last_error());
    const int64_t ic[4] = {INT64_MAX, -5, 3, 0};
    check(convert_case(i8d, ic, 32, NPY_F64, f64) == 0 && f64[0] == 9223372036854775808.0 && f64[1] == -5.0,
          "<i8 -> <f8");
    check(convert_case(i8d, ic, 32, NPY_F32, f32) == 0 && f32[0] == 9223372036854775808.0f && f32[2] == 3.0f,
          "<i8 -> <f4");
    const int32_t id[4] = {0, 255, 256, 0};
    check(convert_case(i4d, id, 16, NPY_U8, u8) == -1, "<i4 256 -> |u1 refused");
    const int32_t ie[4] = {0, -1, 2, 0};
    check(convert_case(i4d, ie, 16, NPY_U8, u8) == -1, "<i4 -1 -> |u1 refused");
    const int32_t ig[4] = {INT32_MIN, -1, 2, 0};
    check(convert_case(i4d, ig, 16, NPY_I64, i64) == 0 && i64[0] == INT32_MIN && i64[1] == -1, "<i4 -> <i8");
    const uint8_t ua[4] = {0, 1, 200, 255};
    check(convert_case(u1d, ua, 4, NPY_F32, f32) == 0 && f32[2] == 200.0f && f32[3] == 255.0f, "|u1 -> <f4");
    check(convert_case(u1d, ua, 4, NPY_I64, i64) == 0 && i64[3] == 255, "|u1 -> <i8");
    check(convert_case(u1d, ua, 4, NPY_I32, i32) == 0 && i32[3] == 255, "|u1 -> <i4");
    check(convert_case(u1d, ua, 4, NPY_F64, f64) == 0 && f64[3] == 255.0, "|u1 -> <f8");

    /* a conversion failure far into a file (past the 16 KB chunk) names the right element */
    static float big[10000];
    big[9999] = 0.5f;
    const char *p = tmp("conv_big.npy");
    make_file(p, 1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (100, 100), }", 1, big, sizeof big);
    npy_array a;
    check(npy_read(p, NPY_I32, &a) == -1 && strstr(last_error(), "element 9999 is 0.5"),
          "conversion error at element 9999 of 10000: %s", last_error());

    /* big-endian files: converted after the swap, refusals name the value */
    const char *bf4 = "{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }";
    const char *bi8 = "{'descr': '>i8', 'fortran_order': False, 'shape': (4,), }";
    const char *bi4 = "{'descr': '>i4', 'fortran_order': False, 'shape': (4,), }";
    const float ga[4] = {1.5f, -2.0f, 1e-40f, 65504.0f};
    ok = convert_case(bf4, ga, 16, NPY_F64, f64) == 0;
    for (int i = 0; ok && i < 4; i++) ok = f64[i] == (double)ga[i];
    check(ok, ">f4 -> <f8 (1.5, -2, subnormal 1e-40, 65504)");
    check(convert_case(bf4, ga, 16, NPY_I64, i64) == -1 && strstr(last_error(), "element 0 is 1.5"),
          ">f4 1.5 -> <i8 refused: %s", last_error());
    const int64_t ha[4] = {-3, 300, INT64_MAX, 1};
    check(convert_case(bi8, ha, 32, NPY_F64, f64) == 0 && f64[0] == -3.0 && f64[1] == 300.0 &&
              f64[2] == 9223372036854775808.0,
          ">i8 -> <f8");
    check(convert_case(bi8, ha, 32, NPY_U8, u8) == -1 && strstr(last_error(), "element 0 is -3"),
          ">i8 -3 -> |u1 refused: %s", last_error());
    const int32_t hb[4] = {INT32_MIN, 258, -1, 7};
    check(convert_case(bi4, hb, 16, NPY_I64, i64) == 0 && i64[0] == INT32_MIN && i64[1] == 258 && i64[2] == -1,
          ">i4 -> <i8 (258 = 0x0102: the bytes were swapped)");
    /* past the 16 KB conversion chunk, and rows from the middle */
    for (int i = 0; i < 10000; i++) big[i] = (float)i - 0.25f;
    p = tmp("conv_big.npy");
    make_file(p, 1, 0, "{'descr': '>f4', 'fortran_order': False, 'shape': (100, 100), }", 1, big, sizeof big);
    ok = npy_read(p, NPY_F64, &a) == 0;
    for (size_t i = 0; ok && i < 10000; i++) ok = ((double *)a.data)[i] == (double)big[i];
    if (a.data) npy_free(&a);
    npy_reader r;
    float row[100];
    int big_endian_flag = 0;
    ok = ok && npy_open(p, &r) == 0;
    if (ok) {
        big_endian_flag = r.file_big_endian;
        ok = npy_read_rows(&r, 57, 1, NPY_F32, row) == 0 && memcmp(row, big + 5700, sizeof row) == 0;
        npy_close(&r);
    }
    check(ok && big_endian_flag, ">f4 [100, 100]: every element as <f8, row 57 as <f4 (file_big_endian %d)",
          big_endian_flag);
}

/* ------------------------------------------------------------------------
 * header syntax: accepted variants and refusals */

static void test_headers(void)
{
    size_t s34[2] = {3, 4}, s3[1] = {3}, s0[1] = {0}, s234[3] = {2, 3, 4};
    accepted_dict("numpy's own layout", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 48, 2, s34);
    accepted_dict("no trailing comma", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}", 48, 2, s34);
    accepted_dict("keys in another order", "{'shape': (3,), 'fortran_order': False, 'descr': '<f4'}", 12, 1, s3);
    accepted_dict("double quotes", "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (3,)}", 12, 1, s3);
    accepted_dict("no spaces", "{'descr':'<f4','fortran_order':False,'shape':(2,3,4,)}", 96, 3, s234);
    accepted_dict("extra spaces and tabs", "{ 'descr' :\t'<f4' , 'fortran_order' : False , 'shape' : ( 3 , 4 ) , }",
                  48, 2, s34);
    accepted_dict("0-d shape ()", "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4, 0, NULL);
    accepted_dict("zero-length axis", "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", 0, 1, s0);
    accepted_dict("Python 2 long suffix", "{'descr': '<f4', 'fortran_order': False, 'shape': (3L, 4L), }", 48, 2,
                  s34);
    accepted_dict("'<u1' spelling", "{'descr': '<u1', 'fortran_order': False, 'shape': (3,), }", 3, 1, s3);
    size_t s8[8] = {1, 1, 1, 1, 1, 1, 1, 2};
    accepted_dict("8 dims", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,2), }", 8, 8, s8);

    static unsigned char zeros[64];
    const char *p = tmp("bad.npy");
    make_file(p, 1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 1, zeros, 12);
    unsigned char good[256];
    size_t glen;
    unsigned char *g = slurp(p, &glen);
    memcpy(good, g, glen);
    free(g);

    /* preamble */
    unsigned char b[256];
    memcpy(b, good, glen);
    b[0] = 0x92;
    write_bytes(p, b, glen);
    refused("bad magic", p, NPY_F32, "not a .npy file");
    memcpy(b, good, glen);
    b[6] = 4;
    write_bytes(p, b, glen);
    refused("version 4.0", p, NPY_F32, "version 4.0");
    b[6] = 1, b[7] = 1;
    write_bytes(p, b, glen);
    refused("version 1.1", p, NPY_F32, "version 1.1");
    b[6] = 0, b[7] = 0;
    write_bytes(p, b, glen);
    refused("version 0.0", p, NPY_F32, "version 0.0");
    write_bytes(p, good, 7);
    refused("7-byte file", p, NPY_F32, "not a .npy file");
    write_bytes(p, good, 9);
    refused("9-byte file", p, NPY_F32, "truncated");
    write_bytes(p, good, 0);
    refused("empty file", p, NPY_F32, "not a .npy file");
    write_bytes(p, good, 40);
    refused("truncated header", p, NPY_F32, "truncated .npy header");
    memcpy(b, "\x93NUMPY\x02\x00\xff\xff\xff\xff{}", 14);
    write_bytes(p, b, 14);
    refused("v2 header_len 0xffffffff", p, NPY_F32, "exceeds the limit");
    memcpy(b, "\x93NUMPY\x03\x00\x00\x00\x10\x00{}", 14);
    write_bytes(p, b, 14);
    refused("v3 header_len 1 MB, file 14 bytes", p, NPY_F32, "truncated .npy header");
    make_file(p, 1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 0, zeros, 12);
    refused("header not ending in newline", p, NPY_F32, "newline");
    make_file(p, 1, 0, "", 0, NULL, 0);
    refused("header_len 0", p, NPY_F32, "newline");

    /* dict syntax */
    refused_dict("missing key", "{'descr': '<f4', 'shape': (3,), }", 12, "missing key 'fortran_order'");
    refused_dict("missing shape", "{'descr': '<f4', 'fortran_order': False}", 12, "missing key 'shape'");
    refused_dict("duplicate key", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'descr': '<f4'}", 12,
                 "'descr' appears twice");
    refused_dict("duplicate fortran_order", "{'descr': '<f4', 'fortran_order': False, 'fortran_order': False, "
                 "'shape': (3,)}", 12, "appears twice");
    refused_dict("unknown key", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", 12,
                 "unexpected key 'x'");
    refused_dict("fortran_order True", "{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }", 12,
                 "fortran_order is True");
    refused_dict("fortran_order 0", "{'descr': '<f4', 'fortran_order': 0, 'shape': (3,), }", 12, "False");
    accepted_dict("big-endian '>f4'", "{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }", 12, 1, s3);
    accepted_dict("'>u1' spelling", "{'descr': '>u1', 'fortran_order': False, 'shape': (3,), }", 3, 1, s3);
    refused_dict("big-endian int16", "{'descr': '>i2', 'fortran_order': False, 'shape': (3,), }", 6,
                 "expected dtype |u1, <f4, <f8, <i4 or <i8 (or big-endian >f4, >f8, >i4, >i8) but found '>i2'");
    refused_dict("'|f4' (bytes order for a float)", "{'descr': '|f4', 'fortran_order': False, 'shape': (3,), }",
                 12, "but found '|f4'");
    refused_dict("unknown dtype <i2", "{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }", 12, "'<i2'");
    refused_dict("object dtype", "{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", 12, "'|O'");
    refused_dict("complex dtype", "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", 12, "'<c8'");
    refused_dict("structured dtype", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", 12,
                 "structured");
    refused_dict("negative shape", "{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }", 12, "negative");
    refused_dict("float shape", "{'descr': '<f4', 'fortran_order': False, 'shape': (3.0,), }", 12,
                 "non-negative integers");
    refused_dict("shape (3) is not a tuple", "{'descr': '<f4', 'fortran_order': False, 'shape': (3), }", 12,
                 "(n,)");
    refused_dict("shape as a list", "{'descr': '<f4', 'fortran_order': False, 'shape': [3], }", 12, "tuple");
    refused_dict("shape (,)", "{'descr': '<f4', 'fortran_order': False, 'shape': (,), }", 12, "integers");
    refused_dict("shape (3,,)", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,,), }", 12, "integers");
    refused_dict("shape leading zero", "{'descr': '<f4', 'fortran_order': False, 'shape': (03,), }", 12,
                 "leading zero");
    refused_dict("shape entry > SIZE_MAX", "{'descr': '<f4', 'fortran_order': False, "
                 "'shape': (99999999999999999999999,), }", 12, "too large");
    refused_dict("shape product overflow", "{'descr': '<f4', 'fortran_order': False, "
                 "'shape': (4294967296, 4294967296), }", 12, "too large for this address space");
    refused_dict("byte size overflow", "{'descr': '<f8', 'fortran_order': False, "
                 "'shape': (4611686018427387904,), }", 12, "too large for this address space");
    refused_dict("9 dims", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4,
                 "more than 8 dimensions");
    refused_dict("trailing garbage", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), } x", 12,
                 "after the dict");
    refused_dict("two dicts", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }{}", 12, "after the dict");
    refused_dict("missing brace", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), ", 12, "quoted key or '}'");
    refused_dict("no opening brace", "'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", 12, "'{'");
    refused_dict("unterminated string", "{'descr': \"<f4', 'fortran_order': False, 'shape': (3,)}", 12,
                 "unterminated string");
    refused_dict("escape in string", "{'de\\x73cr': '<f4', 'fortran_order': False, 'shape': (3,)}", 12, "escape");
    refused_dict("missing colon", "{'descr' '<f4', 'fortran_order': False, 'shape': (3,)}", 12, "':'");
    refused_dict("missing comma", "{'descr': '<f4' 'fortran_order': False, 'shape': (3,)}", 12, "','");
    refused_dict("double comma", "{'descr': '<f4',, 'fortran_order': False, 'shape': (3,)}", 12, "quoted key");
    refused_dict("non-ASCII byte", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), '\xc3\xa9': 1}", 12,
                 "not printable ASCII");
    refused_dict("NUL byte", "{'descr': '<f4'\x01, 'fortran_order': False, 'shape': (3,)}", 12,
                 "not printable ASCII");

    /* data length */
    refused_dict("data shorter than shape", "{'descr': '<f4', 'fortran_order': False, 'shape': (10, 30), }", 1000,
                 "file has 1000 bytes of data, shape (10, 30) of <f4 needs 1200");
    refused_dict("data longer than shape", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 13,
                 "file has 13 bytes of data, shape (3,) of <f4 needs 12");
    refused_dict("no data for a 0-d array", "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 0,
                 "shape () of <f8 needs 8");

    /* missing file, directory */
    refused("missing file", tmp("does_not_exist.npy"), NPY_F32, "cannot open");
    refused("a directory", tmpdir, NPY_F32, tmpdir);

    /* npy_parse_header on every prefix of a valid file: only the whole header passes */
    int nd, okp = 1, be = 1;
    size_t shape[NPY_MAX_DIMS], off = 0;
    npy_dtype dt;
    const size_t hend = 10 + (size_t)(good[8] | good[9] << 8);
    for (size_t len = 0; len < hend; len++)
        if (npy_parse_header(good, len, "buf", &nd, shape, &dt, &be, &off) != -1) okp = 0;
    okp = okp && hend == 128 && npy_parse_header(good, hend, "buf", &nd, shape, &dt, &be, &off) == 0 &&
          off == hend && nd == 1 && shape[0] == 3 && dt == NPY_F32 && be == 0;
    check(okp, "npy_parse_header: every truncation of a %zu-byte header refused, the whole accepted", hend);
}

/* ------------------------------------------------------------------------
 * a file larger than 2 GB (sparse): offsets must not go through `long` */

static void test_large_file(void)
{
    const size_t n = 600000000; /* 2.4 GB of <f4 */
    const char *p = tmp("large.npy");
    char dict[128];
    snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu,), }", n);
    make_file(p, 1, 0, dict, 1, NULL, 0);
    const size_t hend = 128; /* 10 + the padded dict */
    if (set_file_size(p, (long long)hend + (long long)n * 4) != 0) {
        check(1, "large file: skipped (cannot make a sparse 2.4 GB file here)");
        return;
    }
    const float last[2] = {1.25f, -7.5f};
    unsigned char le[8];
    to_order(le, last, 4, 2, '<');
    FILE *f = fopen(p, "r+b");
    int ok = f && fseeko(f, (off_t)(hend + (n - 2) * 4), SEEK_SET) == 0 && fwrite(le, 4, 2, f) == 2;
    if (f) fclose(f);
    npy_reader r;
    float got[3] = {9, 9, 9};
    ok = ok && npy_open(p, &r) == 0;
    if (ok) {
        ok = npy_read_rows(&r, n - 3, 3, NPY_F32, got) == 0 && got[0] == 0.0f && got[1] == 1.25f &&
             got[2] == -7.5f;
        npy_close(&r);
    }
    check(ok, "large file: rows at byte offset 2.4e9 read exactly");
    remove(p);
}

/* ------------------------------------------------------------------------
 * the malformed corpus test/bad/ (also fed to the CLI by test/cli_refusals.sh) */

static void test_bad_corpus(void)
{
    FILE *f = fopen("test/bad/EXPECT.tsv", "r");
    if (!f) {
        check(0, "test/bad/EXPECT.tsv: cannot open (run from the repository root)");
        return;
    }
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        char *tab = strchr(line, '\t'), *nl = strchr(line, '\n');
        if (!tab || !nl) continue;
        *tab = 0, *nl = 0;
        char path[600];
        snprintf(path, sizeof path, "test/bad/%s", line);
        for (int t = 0; t < 5; t++) {
            npy_array a;
            int rc = npy_read(path, (npy_dtype)t, &a);
            if (rc == 0) npy_free(&a);
            if (rc != -1 || !strstr(last_error(), path) || !strstr(last_error(), tab + 1)) {
                check(0, "bad corpus %s read as %s: want a refusal with '%s', got: %s", line,
                      npy_dtype_name((npy_dtype)t), tab + 1, rc ? last_error() : "(accepted)");
                goto next;
            }
        }
        n++;
    next:;
    }
    fclose(f);
    check(n >= 20, "bad corpus: %d malformed files refused as every type with the expected message", n);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/h2t_test_npy.%ld", process_id());
    if (make_dir(tmpdir) != 0) {
        fprintf(stderr, "cannot create %s\n", tmpdir);
        return 2;
    }
    init_f4();
    check(npy_dtype_size(NPY_U8) == 1 && npy_dtype_size(NPY_F32) == 4 && npy_dtype_size(NPY_F64) == 8 &&
              npy_dtype_size(NPY_I32) == 4 && npy_dtype_size(NPY_I64) == 8 &&
              strcmp(npy_dtype_name(NPY_I64), "<i8") == 0 && strcmp(npy_dtype_name(NPY_U8), "|u1") == 0,
          "dtype sizes and names");
    test_numpy_fixtures();
    test_round_trips();
    test_streaming();
    test_conversions();
    test_headers();
    test_large_file();
    test_bad_corpus();
    /* clean up */
    const char *names[] = {"same_bytes.npy", "rt.npy", "v23.npy", "stream.npy", "short.npy", "conv.npy",
                           "conv_big.npy", "refused.npy", "accepted.npy", "bad.npy", "large.npy"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) remove(tmp(names[i]));
    if (remove_dir(tmpdir) != 0) check(0, "temporary files left in %s", tmpdir);
    return check_done();
}
