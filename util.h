/* util.h: the small things every file needs -- the last-error message,
 * checked size arithmetic and aligned allocation, a seeded RNG of our own,
 * a wall clock, and the `key = value` config files of model directories.
 * No model or algorithm code lives here. */
#ifndef H2T_UTIL_H
#define H2T_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* ---- the teaching build ------------------------------------------------
 * `make REFERENCE=1` defines H2T_REFERENCE: every fast path then runs its
 * plain twin (naive GEMM, direct convolution, the plain training step). */
#ifdef H2T_REFERENCE
#define REFERENCE_BUILD 1
#else
#define REFERENCE_BUILD 0
#endif

/* ---- errors ------------------------------------------------------------
 * Library functions return 0 on success and -1 on failure; on failure they
 * record a one-line message (naming the file or argument and what was
 * expected) that the caller prints with last_error(). set_error may be
 * given last_error() as an argument, to add context to a message. */
/* (on Windows the Makefile selects mingw-w64's own printf, which takes
 * %zu and %lld like C99's; the format checker is told so) */
#if defined(__MINGW32__) && defined(__USE_MINGW_ANSI_STDIO) && __USE_MINGW_ANSI_STDIO
#define H2T_PRINTF(f, a) __attribute__((format(gnu_printf, f, a)))
#elif defined(__GNUC__)
#define H2T_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define H2T_PRINTF(f, a)
#endif
void set_error(const char *fmt, ...) H2T_PRINTF(1, 2);
const char *last_error(void);

/* ---- sizes and memory -------------------------------------------------- */
/* *out = a * b; returns -1 (and sets an error) on size_t overflow. */
int size_mul(size_t a, size_t b, size_t *out);
/* *out = a + b; returns -1 on overflow. */
int size_add(size_t a, size_t b, size_t *out);
/* count * elem bytes, 64-byte aligned, uninitialized. NULL and an error
 * message ("out of memory: ...") on overflow or allocation failure.
 * Release with free_array, never free (Windows has its own aligned free). */
void *alloc_array(size_t count, size_t elem);
/* Same, zero-filled. */
void *alloc_zeros(size_t count, size_t elem);
void free_array(void *p);

/* ---- files ------------------------------------------------------------ */
/* Write text[0..len) to path through "<path>.tmp.<pid>" and a rename, so
 * an interrupted run never leaves a half-written file. */
int write_file_atomic(const char *path, const char *text, size_t len);
/* Create directory dir and its missing parents, as mkdir -p (-1 if one of
 * them is a file). make_parent_dir: the same for the folder holding path. */
int make_dir(const char *dir);
int make_parent_dir(const char *path);
/* rename(from, to), replacing `to` if it exists (also on Windows, where
 * rename refuses to); 0 or -1 with errno. */
int replace_file(const char *from, const char *to);
/* This process's id, for temporary names ("<path>.tmp.<pid>"). */
long process_id(void);

/* ---- RNG: splitmix64 seeding + xoshiro256** ---------------------------- */
typedef struct { uint64_t s[4]; } rng_t;
void rng_seed(rng_t *r, uint64_t seed);
uint64_t rng_u64(rng_t *r);
double rng_uniform(rng_t *r);          /* [0, 1), 53 random bits */
double rng_normal(rng_t *r);           /* standard normal (Box-Muller) */

/* ---- time and threads -------------------------------------------------- */
double now_seconds(void);              /* monotonic wall clock */
int threads_max(void);                 /* OpenMP threads a parallel region gets (1 without OpenMP) */

/* ---- config files ------------------------------------------------------
 * Text, one `key = value` per line; '#' starts a comment; blank lines are
 * ignored; keys are [A-Za-z0-9_]+ and appear at most once. */
#define CONFIG_MAX_ENTRIES 64
#define CONFIG_MAX_KEY 48
#define CONFIG_MAX_VALUE 208
typedef struct {
    int n;
    char key[CONFIG_MAX_ENTRIES][CONFIG_MAX_KEY];
    char value[CONFIG_MAX_ENTRIES][CONFIG_MAX_VALUE];
    char path[512];                    /* for error messages */
} config;

/* Parse text[0..len) (need not be NUL-terminated); name is used in errors. */
int config_parse(const char *text, size_t len, const char *name, config *c);
int config_read(const char *path, config *c);
/* The value for key, or NULL when absent. */
const char *config_get(const config *c, const char *key);
/* Typed getters: -1 with an error naming file and key when the key is
 * missing (if required) or the value does not parse / is out of range.
 * When not required and absent, *out keeps its value and 0 is returned. */
int config_int(const config *c, const char *key, int required, long lo, long hi, int *out);
int config_double(const config *c, const char *key, int required, double *out);
/* A comma list of up to max ints ("3,4,6,3"); *n gets the count. */
int config_int_list(const config *c, const char *key, int required, int *out, int max, int *n);
/* The value must be one of the NULL-terminated choices; *out = its index. */
int config_choice(const config *c, const char *key, int required, const char *const *choices, int *out);
/* -1 with an error naming the first key not in the NULL-terminated list. */
int config_check_keys(const config *c, const char *const *allowed);

/* ---- parsing numbers strictly (whole string, finite) ------------------- */
int parse_long(const char *s, long *out);
int parse_double(const char *s, double *out);

/* ---- comma lists: the one parser of "a,b,c" ------------------------------
 * list_item: the next item of *p (start, length; spaces around it dropped)
 * and *p moved past it and its comma; 0 when the list is used up. An empty
 * item ("a,,b", "a,") comes back with length 0, for the caller to refuse.
 *   for (const char *p = s, *it; list_item(&p, &it, &len);) ...           */
int list_item(const char **p, const char **item, size_t *len);
/* Whether name is one of the items of list. */
int list_has(const char *list, const char *name);
/* Numbers in [lo, hi] (whole numbers if whole != 0), at most max, into
 * out[]; *n gets the count. -1 with "<what>: expected a comma list of ..." */
int parse_list(const char *what, const char *s, int whole, double lo, double hi, double *out, int max, int *n);

/* ---- small text outputs: a growing buffer, written atomically ----------- */
typedef struct {
    char *s;
    size_t len, cap;
    int failed;                        /* out of memory: tb_write refuses */
} textbuf;
void tb_printf(textbuf *t, const char *fmt, ...) H2T_PRINTF(2, 3);
void tb_json_str(textbuf *t, const char *s);   /* a JSON string literal */
void tb_json_num(textbuf *t, double x);        /* %.10g, or null when not finite */
/* write_file_atomic(path, text) and free the buffer (also on failure). */
int tb_write(textbuf *t, const char *path);
void tb_free(textbuf *t);

#endif
