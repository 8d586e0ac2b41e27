/* test/fuzz/fuzz_npy.c: libFuzzer harness for the .npy reader (npy.c).
 * Each input is (1) parsed by npy_parse_header as a buffer, and (2) written
 * to a temporary file and read with npy_read (converted to a type picked by
 * the input's last byte) and with npy_open + npy_read_rows over a row range
 * picked by the input. Properties checked beyond "no crash": a successful
 * read has a consistent shape/count and the file length the shape implies,
 * and re-writing it with npy_write and reading it back gives the same
 * shape and bytes. Build and run: `make fuzz` (clang, -fsanitize=fuzzer). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../npy.h"
#include "../../util.h"

static char path[256], path2[256];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_npy: property violated: %s (%s)\n", what, last_error());
    abort();
}

static void setup(void)
{
    if (path[0]) return;
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof path, "%s/fuzz_npy.%ld.npy", dir, (long)getpid());
    snprintf(path2, sizeof path2, "%s/fuzz_npy.%ld.out.npy", dir, (long)getpid());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    int ndim, big_endian;
    size_t shape[NPY_MAX_DIMS], offset;
    npy_dtype dt;
    int hdr_ok = npy_parse_header(data, size, "fuzz", &ndim, shape, &dt, &big_endian, &offset) == 0;
    if (hdr_ok && (ndim < 0 || ndim > NPY_MAX_DIMS || offset > size || npy_dtype_size(dt) == 0))
        fail("parse_header returned inconsistent values");

    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);

    npy_dtype want = size ? (npy_dtype)(data[size - 1] % 5) : NPY_F32;
    npy_array a;
    if (npy_read(path, want, &a) == 0) {
        if (!hdr_ok) fail("npy_read accepted what npy_parse_header refused");
        size_t count = 1;
        for (int i = 0; i < a.ndim; i++) count *= a.shape[i];
        if (count != a.count || a.ndim != ndim) fail("npy_read shape/count inconsistent");
        if (offset + count * npy_dtype_size(dt) != size) fail("npy_read accepted a file of the wrong length");
        /* round trip through the writer */
        npy_array b;
        if (npy_write(path2, want, a.ndim, a.shape, a.data) != 0) fail("npy_write failed");
        if (npy_read(path2, want, &b) != 0) fail("npy_read of npy_write output failed");
        if (b.ndim != a.ndim || b.count != a.count ||
            memcmp(a.data, b.data, a.count * npy_dtype_size(want)) != 0 ||
            memcmp(a.shape, b.shape, sizeof a.shape) != 0)
            fail("round trip changed the array");
        npy_free(&b);
        npy_free(&a);
        remove(path2);
    }

    npy_reader r;
    if (npy_open(path, &r) == 0) {
        if (!hdr_ok) fail("npy_open accepted what npy_parse_header refused");
        size_t n0 = r.ndim ? r.shape[0] : 0;
        size_t row0 = size > 1 ? data[size - 2] % (n0 + 2) : 0, nrows = size > 2 ? data[size - 3] % 4 : 1;
        int in_range = r.ndim > 0 && row0 <= n0 && nrows <= n0 - row0;
        size_t bytes = 0;
        void *dst = NULL;
        if (in_range && size_mul(nrows, r.row_count, &bytes) == 0)
            dst = malloc(bytes * 8 + 1);
        if (dst) {
            int rc = npy_read_rows(&r, row0, nrows, want, dst);
            (void)rc; /* may fail on a lossy conversion */
            free(dst);
        } else if (!in_range) {
            char one[8];
            if (npy_read_rows(&r, row0, nrows, want, one) == 0) fail("out-of-range rows accepted");
        }
        npy_close(&r);
    }
    remove(path);
    return 0;
}
