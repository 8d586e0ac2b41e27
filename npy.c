/* npy.c: reading and writing NumPy .npy files (format versions 1.0, 2.0 and
 * 3.0), C order, five element types (|u1 <f4 <f8 <i4 <i8), on hosts of
 * either byte order.
 *
 * The format, as numpy writes it:
 *   "\x93NUMPY" major minor          6 + 2 bytes
 *   header_len                       uint16 LE (v1.0) or uint32 LE (v2.0, v3.0)
 *   header                           a Python dict literal, e.g.
 *       {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 *     padded with spaces and ended by '\n' so the data starts at a multiple
 *     of 64 (older numpy: 16). v3.0 only allows UTF-8 in the header; we
 *     accept printable ASCII in every version, which is all a valid header
 *     of these types needs.
 *   data                             prod(shape) elements, row-major
 *
 * Everything read from a file is checked before it is used: the dict is
 * parsed strictly (each of the three keys exactly once, nothing else), every
 * size is computed with overflow checks, and the file length must match the
 * shape exactly. Values are converted to the type the caller asks for; a
 * conversion that would change a value (a fraction or out-of-range number
 * into an integer type, a finite double too large for a float) is refused.
 *
 *
 * Byte order: files are written little-endian ('<', what numpy writes on
 * every common machine) whatever the host; little- and big-endian ('>')
 * files are read. Elements are swapped after reading / before writing when
 * the file's order is not the host's, so the bytes on disk are the same on
 * every host. The header's sizes are assembled byte by byte.
 *
 * Not here: Fortran order, structured or object arrays, .npz archives. */
#ifndef _FILE_OFFSET_BITS
#define _FILE_OFFSET_BITS 64 /* 64-bit off_t for fseeko/ftello on 32-bit hosts (the Makefile sets it too) */
#endif
#include "npy.h"
#include "util.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h> /* off_t, for fseeko/ftello (POSIX; 64-bit with _FILE_OFFSET_BITS=64) */

_Static_assert(sizeof(float) == 4 && FLT_MANT_DIG == 24, "npy.c needs IEEE-754 binary32 float");
_Static_assert(sizeof(double) == 8 && DBL_MANT_DIG == 53, "npy.c needs IEEE-754 binary64 double");
_Static_assert(CHAR_BIT == 8, "npy.c needs 8-bit bytes");

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAX_HEADER_LEN (1u << 20) /* refuse larger headers: real ones are < 1 KB */
#define NPY_ALIGN 64                  /* data offset alignment of our writer */

/* ------------------------------------------------------------------------
 * element types */

size_t npy_dtype_size(npy_dtype t)
{
    switch (t) {
    case NPY_U8: return 1;
    case NPY_F32: return 4;
    case NPY_F64: return 8;
    case NPY_I32: return 4;
    case NPY_I64: return 8;
    }
    return 0;
}

const char *npy_dtype_name(npy_dtype t)
{
    switch (t) {
    case NPY_U8: return "|u1";
    case NPY_F32: return "<f4";
    case NPY_F64: return "<f8";
    case NPY_I32: return "<i4";
    case NPY_I64: return "<i8";
    }
    return "?";
}

/* The descr of a file's type in its byte order: ">f4" for a big-endian <f4. */
static const char *file_dtype_name(npy_dtype t, int big_endian)
{
    if (!big_endian) return npy_dtype_name(t);
    switch (t) {
    case NPY_F32: return ">f4";
    case NPY_F64: return ">f8";
    case NPY_I32: return ">i4";
    case NPY_I64: return ">i8";
    default: return npy_dtype_name(t);
    }
}

static int dtype_valid(npy_dtype t) { return npy_dtype_size(t) != 0; }
static int dtype_is_float(npy_dtype t) { return t == NPY_F32 || t == NPY_F64; }

/* ------------------------------------------------------------------------
 * byte order */

static int host_big_endian(void)
{
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 0;
}

/* Reverse the bytes of each of the n elements of es bytes at p. */
static void swap_elements(void *p, size_t es, size_t n)
{
    unsigned char *b = p;
    if (es < 2) return;
    for (size_t i = 0; i < n; i++, b += es)
        for (size_t lo = 0, hi = es - 1; lo < hi; lo++, hi--) {
            const unsigned char t = b[lo];
            b[lo] = b[hi];
            b[hi] = t;
        }
}

/* "(10, 30)", "(3,)" or "()" into buf. */
static void format_shape(char *buf, size_t cap, int ndim, const size_t *shape)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "(");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%zu", i ? ", " : "", shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, ndim == 1 ? ",)" : ")");
}

/* ------------------------------------------------------------------------
 * header parsing: magic, version, header length, then the dict literal */

static uint32_t read_le(const unsigned char *p, int nbytes)
{
    uint32_t v = 0;
    for (int i = nbytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Magic, version and header length: *total = bytes before the data. Needs
 * only the first 12 bytes (or fewer when the file is shorter). */
static int parse_prefix(const unsigned char *buf, size_t len, const char *name, size_t *prefix, size_t *total)
{
    if (len < 8 || memcmp(buf, NPY_MAGIC, 6) != 0) {
        set_error("%s: not a .npy file (it does not start with \\x93NUMPY)", name);
        return -1;
    }
    int major = buf[6], minor = buf[7];
    if (!((major == 1 || major == 2 || major == 3) && minor == 0)) {
        set_error("%s: unsupported .npy format version %d.%d (expected 1.0, 2.0 or 3.0)", name, major, minor);
        return -1;
    }
    *prefix = major == 1 ? 10 : 12;
    if (len < *prefix) {
        set_error("%s: truncated .npy file: %zu bytes, shorter than the %zu-byte preamble", name, len, *prefix);
        return -1;
    }
    uint32_t hlen = read_le(buf + 8, major == 1 ? 2 : 4);
    if (hlen > NPY_MAX_HEADER_LEN) {
        set_error("%s: .npy header length %lu exceeds the limit of %u bytes", name, (unsigned long)hlen,
                  NPY_MAX_HEADER_LEN);
        return -1;
    }
    *total = *prefix + hlen;
    return 0;
}

/* A cursor over the dict text; errors name the file. */
typedef struct {
    const char *s;
    size_t n, i;
    const char *name;
} cursor;

static int bad_header(const cursor *c, const char *what)
{
    set_error("%s: invalid .npy header: %s (at byte %zu of the dict)", c->name, what, c->i);
    return -1;
}

static void skip_ws(cursor *c)
{
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' || c->s[c->i] == '\r'))
        c->i++;
}

static int peek(const cursor *c) { return c->i < c->n ? (unsigned char)c->s[c->i] : -1; }

static int expect(cursor *c, char ch, const char *what)
{
    skip_ws(c);
    if (peek(c) != ch) return bad_header(c, what);
    c->i++;
    return 0;
}

/* A '...' or "..." literal without escapes; out gets up to cap-1 chars. */
static int parse_string(cursor *c, char *out, size_t cap)
{
    skip_ws(c);
    int q = peek(c);
    if (q != '\'' && q != '"') return bad_header(c, "expected a quoted string");
    size_t start = ++c->i;
    while (c->i < c->n && c->s[c->i] != q) {
        if (c->s[c->i] == '\\') return bad_header(c, "escape sequences are not supported in strings");
        c->i++;
    }
    if (c->i >= c->n) return bad_header(c, "unterminated string");
    size_t len = c->i - start;
    c->i++;
    if (len >= cap) len = cap - 1; /* longer strings cannot match anything we accept */
    memcpy(out, c->s + start, len);
    out[len] = 0;
    return 0;
}

/* A word like True or False (letters only). */
static size_t word_len(const cursor *c)
{
    size_t k = c->i;
    while (k < c->n && ((c->s[k] >= 'A' && c->s[k] <= 'Z') || (c->s[k] >= 'a' && c->s[k] <= 'z'))) k++;
    return k - c->i;
}

/* A non-negative decimal integer as Python writes it (no leading zeros, no
 * sign, no underscores; the 'L' suffix of Python 2 files is accepted). */
static int parse_dim(cursor *c, size_t *out)
{
    skip_ws(c);
    if (peek(c) == '-') return bad_header(c, "negative shape entry");
    if (peek(c) < '0' || peek(c) > '9') return bad_header(c, "shape entries must be non-negative integers");
    size_t start = c->i, v = 0;
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') {
        size_t d = (size_t)(c->s[c->i] - '0');
        if (v > (SIZE_MAX - d) / 10) {
            set_error("%s: invalid .npy header: shape entry too large for this address space (size_t is %d bits; "
                      "at byte %zu of the dict)", c->name, (int)(sizeof(size_t) * CHAR_BIT), start);
            return -1;
        }
        v = v * 10 + d;
        c->i++;
    }
    if (c->s[start] == '0' && c->i - start > 1) return bad_header(c, "shape entry with a leading zero");
    if (peek(c) == 'L') c->i++;
    int next = peek(c);
    if (next == '.' || next == 'e' || next == 'E' || next == '_' || next == 'x' || next == 'j' ||
        (next >= 'A' && next <= 'Z') || (next >= 'a' && next <= 'z'))
        return bad_header(c, "shape entries must be non-negative integers");
    *out = v;
    return 0;
}

/* (a, b, ...) with an optional trailing comma; "(a)" is not a tuple. */
static int parse_shape(cursor *c, int *ndim, size_t *shape)
{
    if (expect(c, '(', "expected the shape to be a tuple like (3, 4)")) return -1;
    int n = 0, comma_after_last = 0;
    for (;;) {
        skip_ws(c);
        if (peek(c) == ')') break;
        if (n == NPY_MAX_DIMS) {
            set_error("%s: .npy array has more than %d dimensions", c->name, NPY_MAX_DIMS);
            return -1;
        }
        if (parse_dim(c, &shape[n])) return -1;
        n++;
        skip_ws(c);
        if (peek(c) == ',') {
            c->i++;
            comma_after_last = 1;
        } else if (peek(c) == ')') {
            comma_after_last = 0;
            break;
        } else {
            return bad_header(c, "expected ',' or ')' in the shape");
        }
    }
    c->i++; /* ')' */
    if (n == 1 && !comma_after_last) return bad_header(c, "a one-dimensional shape must be written (n,)");
    *ndim = n;
    return 0;
}

static int parse_descr(cursor *c, npy_dtype *dtype, int *big_endian)
{
    skip_ws(c);
    if (peek(c) != '\'' && peek(c) != '"')
        return bad_header(c, "expected 'descr' to be a string like '<f4' (structured dtypes are not supported)");
    char d[32];
    if (parse_string(c, d, sizeof d)) return -1;
    static const struct { const char *s; npy_dtype t; } known[] = {
        {"u1", NPY_U8}, {"f4", NPY_F32}, {"f8", NPY_F64}, {"i4", NPY_I32}, {"i8", NPY_I64},
    };
    /* '<' little-endian, '>' big-endian, '|' not applicable (bytes) */
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if ((d[0] == '<' || d[0] == '>' || (d[0] == '|' && known[k].t == NPY_U8)) && strcmp(d + 1, known[k].s) == 0) {
            *dtype = known[k].t;
            *big_endian = d[0] == '>' && known[k].t != NPY_U8;
            return 0;
        }
    set_error("%s: expected dtype |u1, <f4, <f8, <i4 or <i8 (or big-endian >f4, >f8, >i4, >i8) but found '%s'",
              c->name, d);
    return -1;
}

int npy_parse_header(const unsigned char *buf, size_t len, const char *name, int *ndim, size_t *shape,
                     npy_dtype *dtype, int *big_endian, size_t *data_offset)
{
    size_t prefix, total;
    if (parse_prefix(buf, len, name, &prefix, &total)) return -1;
    if (len < total) {
        set_error("%s: truncated .npy header: it declares %zu bytes, the file has %zu", name, total, len);
        return -1;
    }
    cursor c = {(const char *)buf + prefix, total - prefix, 0, name};
    if (c.n == 0 || c.s[c.n - 1] != '\n') {
        set_error("%s: invalid .npy header: it does not end with a newline", name);
        return -1;
    }
    for (size_t i = 0; i < c.n; i++) {
        unsigned char ch = (unsigned char)c.s[i];
        if (ch > 126 || (ch < 32 && ch != '\n' && ch != '\r' && ch != '\t')) {
            set_error("%s: invalid .npy header: byte 0x%02x at offset %zu is not printable ASCII", name, ch,
                      prefix + i);
            return -1;
        }
    }
    int have_descr = 0, have_order = 0, have_shape = 0, nd = 0, big = 0;
    size_t shp[NPY_MAX_DIMS];
    npy_dtype dt = NPY_U8;
    if (expect(&c, '{', "expected '{'")) return -1;
    for (;;) {
        skip_ws(&c);
        if (peek(&c) == '}') break;
        if (peek(&c) != '\'' && peek(&c) != '"') return bad_header(&c, "expected a quoted key or '}'");
        char key[32];
        if (parse_string(&c, key, sizeof key)) return -1;
        if (expect(&c, ':', "expected ':' after a key")) return -1;
        int *seen;
        if (strcmp(key, "descr") == 0) {
            seen = &have_descr;
            if (!*seen && parse_descr(&c, &dt, &big)) return -1;
        } else if (strcmp(key, "fortran_order") == 0) {
            seen = &have_order;
            skip_ws(&c);
            size_t w = word_len(&c);
            if (w == 4 && memcmp(c.s + c.i, "True", 4) == 0) {
                set_error("%s: fortran_order is True (column-major); only C order is supported "
                          "(save np.ascontiguousarray(x))", name);
                return -1;
            }
            if (!(w == 5 && memcmp(c.s + c.i, "False", 5) == 0))
                return bad_header(&c, "expected fortran_order to be False");
            c.i += w;
        } else if (strcmp(key, "shape") == 0) {
            seen = &have_shape;
            if (!*seen && parse_shape(&c, &nd, shp)) return -1;
        } else {
            set_error("%s: invalid .npy header: unexpected key '%s' (expected descr, fortran_order, shape)", name, key);
            return -1;
        }
        if (*seen) {
            set_error("%s: invalid .npy header: key '%s' appears twice", name, key);
            return -1;
        }
        *seen = 1;
        skip_ws(&c);
        if (peek(&c) == ',') {
            c.i++;
        } else if (peek(&c) != '}') {
            return bad_header(&c, "expected ',' or '}' after a value");
        }
    }
    c.i++; /* '}' */
    skip_ws(&c);
    if (c.i != c.n) return bad_header(&c, "unexpected text after the dict");
    if (!have_descr || !have_order || !have_shape) {
        set_error("%s: invalid .npy header: missing key '%s'", name,
                  !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
        return -1;
    }
    /* the data size must be representable, also as a file offset */
    size_t bytes = npy_dtype_size(dt);
    for (int i = 0; i < nd; i++)
        if (size_mul(bytes, shp[i], &bytes) || bytes > (size_t)LLONG_MAX - total) {
            char s[256];
            format_shape(s, sizeof s, nd, shp);
            set_error("%s: shape %s of %s is too large for this address space (its byte size overflows the "
                      "%d-bit size_t)", name, s, file_dtype_name(dt, big), (int)(sizeof(size_t) * CHAR_BIT));
            return -1;
        }
    *ndim = nd;
    for (int i = 0; i < NPY_MAX_DIMS; i++) shape[i] = i < nd ? shp[i] : 0;
    *dtype = dt;
    *big_endian = big;
    *data_offset = total;
    return 0;
}

/* ------------------------------------------------------------------------
 * converting elements between types, refusing any loss */

static int conversion_error(const char *name, size_t index, double v, const char *from, npy_dtype to)
{
    set_error("%s: element %zu is %.17g, which cannot be converted from %s to %s without loss", name, index, v,
              from, npy_dtype_name(to));
    return -1;
}

static int int_conversion_error(const char *name, size_t index, int64_t v, const char *from, npy_dtype to)
{
    set_error("%s: element %zu is %lld, which is out of range for %s (file has %s)", name, index, (long long)v,
              npy_dtype_name(to), from);
    return -1;
}

/* dst[i] = src[i] for i < n, src in host byte order; index0 is the index of
 * src[0] in the file and from_name the file's type (for messages).
 * Integers go through int64_t, floats through double. */
static int convert(const char *name, const void *src, npy_dtype from, const char *from_name, void *dst,
                   npy_dtype to, size_t n, size_t index0)
{
    const unsigned char *s = src;
    unsigned char *d = dst;
    for (size_t i = 0; i < n; i++) {
        if (!dtype_is_float(from)) {
            int64_t v;
            switch (from) {
            case NPY_U8: v = s[i]; break;
            case NPY_I32: { int32_t x; memcpy(&x, s + 4 * i, 4); v = x; } break;
            default: memcpy(&v, s + 8 * i, 8); break;
            }
            switch (to) {
            case NPY_U8:
                if (v < 0 || v > 255) return int_conversion_error(name, index0 + i, v, from_name, to);
                d[i] = (unsigned char)v;
                break;
            case NPY_I32: {
                if (v < INT32_MIN || v > INT32_MAX) return int_conversion_error(name, index0 + i, v, from_name, to);
                int32_t x = (int32_t)v;
                memcpy(d + 4 * i, &x, 4);
            } break;
            case NPY_I64: memcpy(d + 8 * i, &v, 8); break;
            case NPY_F32: { float x = (float)v; memcpy(d + 4 * i, &x, 4); } break;
            case NPY_F64: { double x = (double)v; memcpy(d + 8 * i, &x, 8); } break;
            }
        } else {
            double v;
            if (from == NPY_F32) {
                float x;
                memcpy(&x, s + 4 * i, 4);
                v = x;
            } else {
                memcpy(&v, s + 8 * i, 8);
            }
            int ok = 1;
            switch (to) {
            case NPY_F32: {
                float x = (float)v;
                ok = !(isfinite(v) && isinf(x)); /* a finite double beyond the float range */
                memcpy(d + 4 * i, &x, 4);
            } break;
            case NPY_F64: memcpy(d + 8 * i, &v, 8); break;
            case NPY_U8:
                ok = v >= 0.0 && v <= 255.0 && v == floor(v); /* false for NaN */
                if (ok) d[i] = (unsigned char)v;
                break;
            case NPY_I32:
                ok = v >= -2147483648.0 && v <= 2147483647.0 && v == floor(v);
                if (ok) { int32_t x = (int32_t)v; memcpy(d + 4 * i, &x, 4); }
                break;
            case NPY_I64:
                ok = v >= -9223372036854775808.0 && v < 9223372036854775808.0 && v == floor(v);
                if (ok) { int64_t x = (int64_t)v; memcpy(d + 8 * i, &x, 8); }
                break;
            }
            if (!ok) return conversion_error(name, index0 + i, v, from_name, to);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * reading */

int npy_open(const char *path, npy_reader *r)
{
    memset(r, 0, sizeof *r);
    if (strlen(path) >= sizeof r->path) {
        set_error("%s: path longer than %zu characters", path, sizeof r->path - 1);
        return -1;
    }
    snprintf(r->path, sizeof r->path, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    unsigned char *hdr = NULL;
    unsigned char pre[12];
    size_t got = fread(pre, 1, sizeof pre, f), prefix, total;
    if (ferror(f)) {
        set_error("%s: read error: %s", path, strerror(errno));
        goto fail;
    }
    if (parse_prefix(pre, got, path, &prefix, &total)) goto fail;
    if (!(hdr = malloc(total))) {
        set_error("%s: out of memory reading a %zu-byte header", path, total);
        goto fail;
    }
    memcpy(hdr, pre, got < total ? got : total);
    if (total > got) got += fread(hdr + got, 1, total - got, f);
    if (ferror(f)) {
        set_error("%s: read error: %s", path, strerror(errno));
        goto fail;
    }
    size_t offset;
    if (npy_parse_header(hdr, got < total ? got : total, path, &r->ndim, r->shape, &r->file_dtype,
                         &r->file_big_endian, &offset))
        goto fail;
    free(hdr);
    hdr = NULL;
    r->data_offset = (long long)offset;
    r->row_count = 1;
    for (int i = 1; i < r->ndim; i++) r->row_count *= r->shape[i]; /* no overflow: checked by the parser */
    /* the file must hold exactly the data the shape says */
    size_t need = npy_dtype_size(r->file_dtype) * r->row_count * (r->ndim ? r->shape[0] : 1);
    if (fseeko(f, 0, SEEK_END) != 0) {
        set_error("%s: cannot seek: %s", path, strerror(errno));
        goto fail;
    }
    off_t end = ftello(f);
    if (end < 0) {
        set_error("%s: cannot tell the file size: %s", path, strerror(errno));
        goto fail;
    }
    long long have = (long long)end - r->data_offset;
    if (have != (long long)need) {
        char s[256];
        format_shape(s, sizeof s, r->ndim, r->shape);
        set_error("%s: file has %lld bytes of data, shape %s of %s needs %zu", path, have, s,
                  file_dtype_name(r->file_dtype, r->file_big_endian), need);
        goto fail;
    }
    r->f = f;
    return 0;
fail:
    free(hdr);
    fclose(f);
    r->f = NULL;
    return -1;
}

/* n elements starting at element index e0 into dst as `want`. */
static int read_elements(npy_reader *r, size_t e0, size_t n, npy_dtype want, void *dst)
{
    const size_t es = npy_dtype_size(r->file_dtype), ws = npy_dtype_size(want);
    if (n == 0) return 0;
    if (fseeko(r->f, (off_t)(r->data_offset + (long long)(e0 * es)), SEEK_SET) != 0) {
        set_error("%s: cannot seek: %s", r->path, strerror(errno));
        return -1;
    }
    const int swap = r->file_big_endian != host_big_endian();
    if (want == r->file_dtype) {
        if (fread(dst, es, n, r->f) != n) goto short_read;
        if (swap) swap_elements(dst, es, n);
        return 0;
    }
    /* convert through a small buffer */
    union { double d; unsigned char b[16384]; } buf;
    const size_t chunk = sizeof buf.b / es;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < chunk ? n - done : chunk;
        if (fread(buf.b, es, k, r->f) != k) goto short_read;
        if (swap) swap_elements(buf.b, es, k);
        if (convert(r->path, buf.b, r->file_dtype, file_dtype_name(r->file_dtype, r->file_big_endian),
                    (unsigned char *)dst + done * ws, want, k, e0 + done))
            return -1;
        done += k;
    }
    return 0;
short_read:
    if (ferror(r->f))
        set_error("%s: read error: %s", r->path, strerror(errno));
    else
        set_error("%s: unexpected end of file (was it changed while being read?)", r->path);
    return -1;
}

int npy_read_rows(npy_reader *r, size_t row0, size_t nrows, npy_dtype want, void *dst)
{
    if (!r->f) {
        set_error("%s: reader is not open", r->path);
        return -1;
    }
    if (!dtype_valid(want)) {
        set_error("%s: invalid element type %d requested", r->path, (int)want);
        return -1;
    }
    if (r->ndim == 0) {
        set_error("%s: a 0-dimensional array has no rows", r->path);
        return -1;
    }
    if (row0 > r->shape[0] || nrows > r->shape[0] - row0) {
        set_error("%s: rows [%zu, %zu+%zu) are out of range: the array has %zu rows", r->path, row0, row0, nrows,
                  r->shape[0]);
        return -1;
    }
    /* no overflow: row0 + nrows <= shape[0] and the whole array's size was checked */
    return read_elements(r, row0 * r->row_count, nrows * r->row_count, want, dst);
}

void npy_close(npy_reader *r)
{
    if (r->f) fclose(r->f);
    r->f = NULL;
}

int npy_read(const char *path, npy_dtype want, npy_array *out)
{
    memset(out, 0, sizeof *out);
    if (!dtype_valid(want)) {
        set_error("%s: invalid element type %d requested", path, (int)want);
        return -1;
    }
    npy_reader r;
    if (npy_open(path, &r)) return -1;
    size_t count = r.ndim ? r.shape[0] * r.row_count : 1;
    void *data = alloc_array(count, npy_dtype_size(want));
    if (!data) {
        set_error("%s: out of memory: %zu elements of %s", path, count, npy_dtype_name(want));
        npy_close(&r);
        return -1;
    }
    if (read_elements(&r, 0, count, want, data)) {
        free_array(data);
        npy_close(&r);
        return -1;
    }
    npy_close(&r);
    out->ndim = r.ndim;
    memcpy(out->shape, r.shape, sizeof out->shape);
    out->count = count;
    out->dtype = want;
    out->data = data;
    return 0;
}

void npy_free(npy_array *a)
{
    free_array(a->data);
    a->data = NULL;
}

/* ------------------------------------------------------------------------
 * writing: "<path>.tmp.<pid>", renamed to <path> when complete */

/* The header numpy would write: v1.0 when it fits in 65535 bytes, else v2.0;
 * padded with spaces and '\n' so the data start at a multiple of 64. */
static int make_header(npy_dtype dtype, int ndim, const size_t *shape, char *out, size_t cap, size_t *len)
{
    char s[NPY_MAX_DIMS * 24 + 8], dict[NPY_MAX_DIMS * 24 + 128];
    format_shape(s, sizeof s, ndim, shape);
    int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                      npy_dtype_name(dtype), s);
    if (dl < 0 || (size_t)dl >= sizeof dict) return -1;
    size_t prefix = 10;
    size_t total = (prefix + (size_t)dl + 1 + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    if (total - prefix > 65535) {
        prefix = 12;
        total = (prefix + (size_t)dl + 1 + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    }
    if (total > cap) return -1;
    size_t hlen = total - prefix;
    memcpy(out, NPY_MAGIC, 6);
    out[6] = prefix == 10 ? 1 : 2;
    out[7] = 0;
    for (size_t i = 0; i < prefix - 8; i++) out[8 + i] = (char)((hlen >> (8 * i)) & 0xff);
    memcpy(out + prefix, dict, (size_t)dl);
    memset(out + prefix + dl, ' ', total - prefix - (size_t)dl - 1);
    out[total - 1] = '\n';
    *len = total;
    return 0;
}

int npy_writer_open(npy_writer *w, const char *path, npy_dtype dtype, int ndim, const size_t *shape)
{
    memset(w, 0, sizeof *w);
    if (!dtype_valid(dtype)) {
        set_error("%s: invalid element type %d", path, (int)dtype);
        return -1;
    }
    if (ndim < 0 || ndim > NPY_MAX_DIMS) {
        set_error("%s: cannot write %d dimensions (0 to %d supported)", path, ndim, NPY_MAX_DIMS);
        return -1;
    }
    if (strlen(path) >= sizeof w->path) {
        set_error("%s: path longer than %zu characters", path, sizeof w->path - 1);
        return -1;
    }
    size_t rc = 1, bytes;
    for (int i = 1; i < ndim; i++)
        if (size_mul(rc, shape[i], &rc)) goto too_large;
    if (size_mul(rc, ndim ? shape[0] : 1, &bytes) || size_mul(bytes, npy_dtype_size(dtype), &bytes) ||
        bytes > (size_t)LLONG_MAX / 2)
        goto too_large;
    char hdr[1024];
    size_t hl;
    if (make_header(dtype, ndim, shape, hdr, sizeof hdr, &hl)) goto too_large;
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", path, process_id());
    if (!(w->f = fopen(w->tmp, "wb"))) {
        set_error("%s: cannot create %s: %s", path, w->tmp, strerror(errno));
        w->tmp[0] = 0;
        return -1;
    }
    if (fwrite(hdr, 1, hl, w->f) != hl) {
        set_error("%s: write error: %s", w->tmp, strerror(errno));
        npy_writer_abort(w);
        return -1;
    }
    w->dtype = dtype;
    w->row_count = rc;
    w->rows_total = ndim ? shape[0] : 1; /* a 0-d array is one row of one element */
    w->rows_done = 0;
    return 0;
too_large:
    set_error("%s: cannot write: the array's byte size overflows", path);
    return -1;
}

int npy_writer_rows(npy_writer *w, const void *data, size_t nrows)
{
    if (!w->f) {
        set_error("%s: writer is not open", w->path);
        return -1;
    }
    if (nrows > w->rows_total - w->rows_done) {
        set_error("%s: %zu more rows would exceed the declared %zu (%zu written)", w->path, nrows, w->rows_total,
                  w->rows_done);
        return -1;
    }
    const size_t n = nrows * w->row_count, es = npy_dtype_size(w->dtype); /* bounded by the size checked at open */
    if (es == 1 || !host_big_endian()) {
        if (n && fwrite(data, es, n, w->f) != n) goto write_error;
    } else {
        /* a big-endian host writes little-endian bytes: swap a copy, a chunk at a time */
        union { double d; unsigned char b[16384]; } buf;
        const size_t chunk = sizeof buf.b / es;
        for (size_t done = 0; done < n;) {
            const size_t k = n - done < chunk ? n - done : chunk;
            memcpy(buf.b, (const unsigned char *)data + done * es, k * es);
            swap_elements(buf.b, es, k);
            if (fwrite(buf.b, es, k, w->f) != k) goto write_error;
            done += k;
        }
    }
    w->rows_done += nrows;
    return 0;
write_error:
    set_error("%s: write error: %s", w->tmp, strerror(errno));
    return -1;
}

int npy_writer_close(npy_writer *w)
{
    if (!w->f) {
        set_error("%s: writer is not open", w->path);
        return -1;
    }
    if (w->rows_done != w->rows_total) {
        set_error("%s: only %zu of %zu rows were written; not saved", w->path, w->rows_done, w->rows_total);
        npy_writer_abort(w);
        return -1;
    }
    int err = fflush(w->f) != 0 || ferror(w->f);
    int e1 = errno;
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f) != 0 && !err) err = 1, e1 = errno;
    if (err) {
        set_error("%s: write error: %s", w->tmp, strerror(e1));
        npy_writer_abort(w);
        return -1;
    }
    if (replace_file(w->tmp, w->path) != 0) {
        set_error("%s: cannot rename %s to it: %s", w->path, w->tmp, strerror(errno));
        npy_writer_abort(w);
        return -1;
    }
    w->tmp[0] = 0;
    return 0;
}

void npy_writer_abort(npy_writer *w)
{
    if (w->f) fclose(w->f);
    w->f = NULL;
    if (w->tmp[0]) remove(w->tmp);
    w->tmp[0] = 0;
}

int npy_write(const char *path, npy_dtype dtype, int ndim, const size_t *shape, const void *data)
{
    npy_writer w;
    if (npy_writer_open(&w, path, dtype, ndim, shape)) return -1;
    if (npy_writer_rows(&w, data, w.rows_total)) {
        npy_writer_abort(&w);
        return -1;
    }
    return npy_writer_close(&w);
}
