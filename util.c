/* util.c: last-error message, checked sizes and aligned allocation, the
 * project's RNG, a wall clock, strict number parsing and the `key = value`
 * config files of model directories.
 *
 * It also holds the platform shims, so no other file needs one: aligned
 * allocation, creating a directory, replacing a file by rename and the
 * monotonic clock are ISO C or POSIX here and Windows calls under _WIN32
 * (mingw-w64); docs/PORTING.md lists every call outside ISO C. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef _WIN32
#include <direct.h>  /* _mkdir */
#include <malloc.h>  /* _aligned_malloc, _aligned_free */
#include <process.h> /* _getpid */
#include <windows.h> /* MoveFileExA, QueryPerformanceCounter */
#else
#include <unistd.h>  /* getpid */
#endif

/* ------------------------------------------------------------------------
 * errors */

static char error_message[1024];

void set_error(const char *fmt, ...)
{
    char msg[sizeof error_message];   /* the arguments may include last_error() itself */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(error_message, msg, sizeof msg);
    /* keep it one line */
    for (char *p = error_message; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

const char *last_error(void) { return error_message[0] ? error_message : "unknown error"; }

/* ------------------------------------------------------------------------
 * sizes and memory */

int size_mul(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) {
        set_error("size overflow: %zu x %zu", a, b);
        return -1;
    }
    *out = a * b;
    return 0;
}

int size_add(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a) {
        set_error("size overflow: %zu + %zu", a, b);
        return -1;
    }
    *out = a + b;
    return 0;
}

void *alloc_array(size_t count, size_t elem)
{
    size_t bytes;
    if (size_mul(count, elem, &bytes) || bytes > SIZE_MAX - 64) {
        set_error("out of memory: %zu elements of %zu bytes do not fit in this address space (size_t is %d bits)",
                  count, elem, (int)(sizeof(size_t) * 8));
        return NULL;
    }
    bytes = (bytes + 63) / 64 * 64;          /* aligned_alloc wants a multiple */
    if (bytes == 0) bytes = 64;
#ifdef _WIN32
    void *p = _aligned_malloc(bytes, 64);    /* the C library has no aligned_alloc */
#else
    void *p = aligned_alloc(64, bytes);
#endif
    if (!p) set_error("out of memory: could not allocate %zu bytes", bytes);
    return p;
}

void *alloc_zeros(size_t count, size_t elem)
{
    void *p = alloc_array(count, elem);
    if (p) memset(p, 0, count * elem);
    return p;
}

void free_array(void *p)
{
#ifdef _WIN32
    _aligned_free(p);
#else
    free(p);
#endif
}

/* ------------------------------------------------------------------------
 * files */

long process_id(void)
{
#ifdef _WIN32
    return (long)_getpid();
#else
    return (long)getpid();
#endif
}

int replace_file(const char *from, const char *to)
{
#ifdef _WIN32
    /* rename fails when `to` exists; MoveFileEx replaces it */
    if (MoveFileExA(from, to, MOVEFILE_REPLACE_EXISTING)) return 0;
    errno = EACCES;
    return -1;
#else
    return rename(from, to);
#endif
}

/* Write text[0..len) to path through "<path>.tmp.<pid>" and a rename. */
int write_file_atomic(const char *path, const char *text, size_t len)
{
    char tmp[700];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, process_id()) >= (int)sizeof tmp) {
        set_error("%s: path too long", path);
        return -1;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        set_error("%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    int ok = fwrite(text, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || replace_file(tmp, path) != 0) {
        set_error("%s: write failed: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

/* mkdir -p: the missing parents (make_parent_dir), then dir itself. */
int make_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return 0;
        set_error("%s: exists and is not a directory", dir);
        return -1;
    }
    if (make_parent_dir(dir)) return -1;
#ifdef _WIN32
    if (_mkdir(dir) != 0 && errno != EEXIST) {
#else
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
#endif
        set_error("%s: cannot create directory: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int make_parent_dir(const char *path)
{
    char parent[1024];
    size_t n = strlen(path);
    if (n >= sizeof parent) {
        set_error("%.60s...: path too long", path);
        return -1;
    }
    memcpy(parent, path, n + 1);
    while (n > 1 && parent[n - 1] == '/') parent[--n] = 0;   /* "a/b/" names b, its parent is a */
    char *slash = strrchr(parent, '/');
    if (!slash || slash == parent) return 0;
    *slash = 0;
    return make_dir(parent);
}

/* ------------------------------------------------------------------------
 * RNG: splitmix64 expands the seed, xoshiro256** generates. */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_u64(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(rng_t *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

double rng_normal(rng_t *r)
{
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ------------------------------------------------------------------------
 * time */

/* POSIX's monotonic clock; Windows' performance counter (its C library,
 * msvcrt, has neither clock_gettime nor C11's timespec_get); elsewhere
 * C11's timespec_get (wall time: it can jump). */
double now_seconds(void)
{
#if defined(_WIN32)
    LARGE_INTEGER t, f;
    QueryPerformanceCounter(&t);
    QueryPerformanceFrequency(&f);
    return (double)t.QuadPart / (double)f.QuadPart;
#else
    struct timespec ts;
#ifdef CLOCK_MONOTONIC
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0.0;
#else
    if (timespec_get(&ts, TIME_UTC) != TIME_UTC) return 0.0;
#endif
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
}

int threads_max(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* ------------------------------------------------------------------------
 * strict number parsing: the whole string must be the number */

int parse_long(const char *s, long *out)
{
    char *end;
    if (!s || !*s || isspace((unsigned char)*s)) return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int parse_double(const char *s, double *out)
{
    char *end;
    if (!s || !*s || isspace((unsigned char)*s)) return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno == ERANGE && fabs(v) > 1.0) return -1;
    if (*end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------------
 * config files */

static int is_key_char(int c) { return isalnum(c) || c == '_'; }

int config_parse(const char *text, size_t len, const char *name, config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", name);
    size_t pos = 0;
    int lineno = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        lineno++;
        /* [pos, end) is one line; strip comment and surrounding blanks */
        size_t a = pos, b = end;
        for (size_t i = pos; i < end; i++)
            if (text[i] == '#') { b = i; break; }
        while (a < b && isspace((unsigned char)text[a])) a++;
        while (b > a && isspace((unsigned char)text[b - 1])) b--;
        pos = end + 1;
        if (a == b) continue;
        size_t k = a;
        while (k < b && is_key_char((unsigned char)text[k])) k++;
        size_t key_len = k - a;
        while (k < b && (text[k] == ' ' || text[k] == '\t')) k++;
        if (key_len == 0 || k >= b || text[k] != '=') {
            set_error("%s:%d: expected 'key = value'", name, lineno);
            return -1;
        }
        k++;
        while (k < b && (text[k] == ' ' || text[k] == '\t')) k++;
        size_t val_len = b - k;
        if (key_len >= CONFIG_MAX_KEY) {
            set_error("%s:%d: key longer than %d characters", name, lineno, CONFIG_MAX_KEY - 1);
            return -1;
        }
        if (val_len == 0 || val_len >= CONFIG_MAX_VALUE) {
            set_error("%s:%d: value must be 1 to %d characters", name, lineno, CONFIG_MAX_VALUE - 1);
            return -1;
        }
        for (size_t i = k; i < b; i++)
            if (!isprint((unsigned char)text[i])) {
                set_error("%s:%d: value has a non-printable character", name, lineno);
                return -1;
            }
        char key[CONFIG_MAX_KEY];
        memcpy(key, text + a, key_len);
        key[key_len] = 0;
        if (config_get(c, key)) {
            set_error("%s:%d: key '%s' appears twice", name, lineno, key);
            return -1;
        }
        if (c->n >= CONFIG_MAX_ENTRIES) {
            set_error("%s:%d: more than %d keys", name, lineno, CONFIG_MAX_ENTRIES);
            return -1;
        }
        memcpy(c->key[c->n], key, key_len + 1);
        memcpy(c->value[c->n], text + k, val_len);
        c->value[c->n][val_len] = 0;
        c->n++;
    }
    return 0;
}

int config_read(const char *path, config *c)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    enum { MAX_CONFIG_BYTES = 1 << 16 };
    char *buf = malloc(MAX_CONFIG_BYTES + 1);
    if (!buf) {
        fclose(f);
        set_error("%s: out of memory", path);
        return -1;
    }
    size_t n = fread(buf, 1, MAX_CONFIG_BYTES + 1, f);
    int err = ferror(f);
    fclose(f);
    int rc;
    if (err) {
        set_error("%s: read error", path);
        rc = -1;
    } else if (n > MAX_CONFIG_BYTES) {
        set_error("%s: larger than %d bytes; not a config file", path, MAX_CONFIG_BYTES);
        rc = -1;
    } else {
        rc = config_parse(buf, n, path, c);
    }
    free(buf);
    return rc;
}

const char *config_get(const config *c, const char *key)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->key[i], key) == 0) return c->value[i];
    return NULL;
}

static const char *config_need(const config *c, const char *key, int required, int *absent)
{
    const char *v = config_get(c, key);
    *absent = (v == NULL);
    if (!v && required) set_error("%s: missing key '%s'", c->path, key);
    return v;
}

int config_int(const config *c, const char *key, int required, long lo, long hi, int *out)
{
    int absent;
    const char *v = config_need(c, key, required, &absent);
    if (absent) return required ? -1 : 0;
    long x;
    if (parse_long(v, &x) || x < lo || x > hi) {
        set_error("%s: '%s = %s': expected an integer in [%ld, %ld]", c->path, key, v, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int config_double(const config *c, const char *key, int required, double *out)
{
    int absent;
    const char *v = config_need(c, key, required, &absent);
    if (absent) return required ? -1 : 0;
    if (parse_double(v, out)) {
        set_error("%s: '%s = %s': expected a finite number", c->path, key, v);
        return -1;
    }
    return 0;
}

int config_int_list(const config *c, const char *key, int required, int *out, int max, int *n)
{
    int absent;
    const char *v = config_need(c, key, required, &absent);
    if (absent) return required ? -1 : 0;
    double x[CONFIG_MAX_VALUE];
    if (max > CONFIG_MAX_VALUE || parse_list(key, v, 1, -1e9, 1e9, x, max, n)) goto bad;
    for (int i = 0; i < *n; i++) out[i] = (int)x[i];
    return 0;
bad:
    set_error("%s: '%s = %s': expected a comma list of at most %d integers", c->path, key, v, max);
    return -1;
}

int config_choice(const config *c, const char *key, int required, const char *const *choices, int *out)
{
    int absent;
    const char *v = config_need(c, key, required, &absent);
    if (absent) return required ? -1 : 0;
    char list[256] = "";
    for (int i = 0; choices[i]; i++) {
        if (strcmp(v, choices[i]) == 0) {
            *out = i;
            return 0;
        }
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", choices[i]);
    }
    set_error("%s: '%s = %s': expected one of %s", c->path, key, v, list);
    return -1;
}

int config_check_keys(const config *c, const char *const *allowed)
{
    for (int i = 0; i < c->n; i++) {
        int ok = 0;
        for (int j = 0; allowed[j]; j++)
            if (strcmp(c->key[i], allowed[j]) == 0) ok = 1;
        if (!ok) {
            set_error("%s: unknown key '%s'", c->path, c->key[i]);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * comma lists */

int list_item(const char **p, const char **item, size_t *len)
{
    const char *s = *p;
    if (!s) return 0;
    size_t n = strcspn(s, ",");
    *p = s[n] == ',' ? s + n + 1 : NULL;     /* NULL: no item after this one */
    while (n > 0 && isspace((unsigned char)*s)) s++, n--;
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    *item = s;
    *len = n;
    return 1;
}

int list_has(const char *list, const char *name)
{
    const char *it;
    size_t len;
    for (const char *p = list; list_item(&p, &it, &len);)
        if (len == strlen(name) && strncmp(it, name, len) == 0) return 1;
    return 0;
}

int parse_list(const char *what, const char *s, int whole, double lo, double hi, double *out, int max, int *n)
{
    const char *it;
    size_t len;
    *n = 0;
    for (const char *p = s; list_item(&p, &it, &len);) {
        char item[64];
        double x;
        if (len == 0 || len >= sizeof item || *n >= max) goto bad;
        memcpy(item, it, len);
        item[len] = 0;
        if (parse_double(item, &x) || x < lo || x > hi || (whole && x != floor(x))) goto bad;
        out[(*n)++] = x;
    }
    if (*n > 0) return 0;
bad:
    set_error("%s: expected a comma list of at most %d %s in [%g, %g], got '%s'", what, max,
              whole ? "whole numbers" : "numbers", lo, hi, s);
    return -1;
}

/* ------------------------------------------------------------------------
 * small text outputs */

void tb_printf(textbuf *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (m < 0) {
            t->failed = 1;
            return;
        }
        if (t->s && t->len + (size_t)m < t->cap) {
            t->len += (size_t)m;
            return;
        }
        size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)m;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->failed = 1;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
}

void tb_json_str(textbuf *t, const char *s)
{
    tb_printf(t, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') tb_printf(t, "\\%c", *p);
        else if (*p < 0x20) tb_printf(t, "\\u%04x", *p);
        else tb_printf(t, "%c", *p);
    }
    tb_printf(t, "\"");
}

void tb_json_num(textbuf *t, double x)
{
    if (isfinite(x)) tb_printf(t, "%.10g", x);
    else tb_printf(t, "null");
}

void tb_free(textbuf *t)
{
    free(t->s);
    memset(t, 0, sizeof *t);
}

int tb_write(textbuf *t, const char *path)
{
    int r;
    if (t->failed) {
        set_error("%s: out of memory while formatting", path);
        r = -1;
    } else {
        r = write_file_atomic(path, t->s ? t->s : "", t->len);
    }
    tb_free(t);
    return r;
}
