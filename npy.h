/* npy.h: reading and writing NumPy .npy files (format versions 1, 2, 3).
 * C order only. Element types on disk: |u1 <f4 <f8 <i4 <i8, and the
 * big-endian >f4 >f8 >i4 >i8 (read only; the writers write little-endian
 * on every host); others (|i1, |b1, <i2, ...) are refused. Values are
 * converted to the type the caller asks for, and a conversion that would
 * lose information (float -> integer with a fraction, integer out of
 * range) is refused. Writers go to "<path>.tmp.<pid>" and
 * rename to <path> only when complete. Every failure returns -1 with a
 * message naming the file (see util.h last_error). */
#ifndef H2T_NPY_H
#define H2T_NPY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NPY_MAX_DIMS 8

typedef enum { NPY_U8, NPY_F32, NPY_F64, NPY_I32, NPY_I64 } npy_dtype;

size_t npy_dtype_size(npy_dtype t);
const char *npy_dtype_name(npy_dtype t);      /* "|u1", "<f4", ... */

/* ---- whole-file reading ------------------------------------------------ */
typedef struct {
    int ndim;
    size_t shape[NPY_MAX_DIMS];
    size_t count;                /* product of shape (1 for a 0-d array) */
    npy_dtype dtype;             /* the type of data[] (what was asked for) */
    void *data;                  /* alloc_array'd; free with npy_free */
} npy_array;

/* Read path, converting to `want`. */
int npy_read(const char *path, npy_dtype want, npy_array *out);
void npy_free(npy_array *a);

/* ---- streaming reading (rows of the first axis) ------------------------ */
typedef struct {
    FILE *f;
    char path[512];
    int ndim;
    size_t shape[NPY_MAX_DIMS];
    npy_dtype file_dtype;        /* the type stored on disk */
    int file_big_endian;         /* its byte order: 1 for '>' (swapped while reading on a little-endian host) */
    size_t row_count;            /* elements per row = product of shape[1..] */
    long long data_offset;       /* byte offset of the data in the file */
} npy_reader;

/* Parse and validate the header; checks the file is long enough. */
int npy_open(const char *path, npy_reader *r);
/* Read rows [row0, row0+nrows) into dst, converted to `want`. */
int npy_read_rows(npy_reader *r, size_t row0, size_t nrows, npy_dtype want, void *dst);
void npy_close(npy_reader *r);

/* Header parsing alone, for tests and fuzzing: buf[0..len) holds the start
 * of a file. On success fills ndim/shape/dtype, *big_endian (1 for '>')
 * and *data_offset. */
int npy_parse_header(const unsigned char *buf, size_t len, const char *name,
                     int *ndim, size_t *shape, npy_dtype *dtype, int *big_endian, size_t *data_offset);

/* ---- writing ----------------------------------------------------------- */
/* Whole array: data holds prod(shape) elements of dtype. */
int npy_write(const char *path, npy_dtype dtype, int ndim, const size_t *shape, const void *data);

/* Streaming writer: the full shape is declared up front, rows are appended,
 * close checks that exactly shape[0] rows were written and renames. */
typedef struct {
    FILE *f;
    char path[512];
    char tmp[560];
    npy_dtype dtype;
    size_t row_count;            /* elements per row */
    size_t rows_total, rows_done;
} npy_writer;

int npy_writer_open(npy_writer *w, const char *path, npy_dtype dtype, int ndim, const size_t *shape);
int npy_writer_rows(npy_writer *w, const void *data, size_t nrows);
int npy_writer_close(npy_writer *w);          /* finish + rename */
void npy_writer_abort(npy_writer *w);         /* close + remove the temp file */

#endif
