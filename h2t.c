/* h2t.c: the command-line interface. main() dispatches to one function per
 * command; each command parses its flags with the small option parser below,
 * calls the library (model.c, features.c, lasso.c, ...) and reports errors
 * as one line on stderr with exit status 1.
 *
 * Exit status: 0 success, 1 any refusal (bad flag, bad input file, failed
 * write). Progress goes to stderr, results to files (and a summary line to
 * stdout where a command has one). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "npy.h"
#include "tensor.h"
#include "model.h"
#include "features.h"
#include "lasso.h"

/* ==========================================================================
 * Option parsing: every command declares a table of opt; `--name value`
 * and `--name=value` are accepted; unknown flags, missing values and
 * missing required flags are refused; --help prints the table. */

typedef struct {
    const char *name;    /* "--model" */
    const char *meta;    /* "DIR"; NULL for a switch that takes no value */
    const char *help;
    const char *def;     /* default value shown in --help, or NULL */
    int required;
    const char *value;   /* after parsing: given value, else def; "1" for a given switch */
} opt;

static void cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "h2t %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void opts_help(const char *cmd, const char *usage, const opt *o, int n)
{
    printf("usage: h2t %s %s\n\n", cmd, usage);
    for (int i = 0; i < n; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o[i].name, o[i].meta ? " " : "", o[i].meta ? o[i].meta : "");
        printf("  %-26s %s", left, o[i].help);
        if (o[i].required) printf(" (required)");
        else if (o[i].def) printf(" (default %s)", o[i].def);
        printf("\n");
    }
    printf("  %-26s %s\n", "--help", "show this help");
}

/* 0: run the command; 1: help was printed; -1: usage error (printed). */
static int opts_parse(const char *cmd, const char *usage, opt *o, int n, int argc, char **argv)
{
    for (int i = 0; i < n; i++) o[i].value = o[i].def;
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            opts_help(cmd, usage, o, n);
            return 1;
        }
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        int k;
        for (k = 0; k < n; k++)
            if (strlen(o[k].name) == len && strncmp(o[k].name, arg, len) == 0) break;
        if (k == n) {
            cli_error(cmd, "unknown flag '%s' (see h2t %s --help)", arg, cmd);
            return -1;
        }
        if (!o[k].meta) {
            if (eq) {
                cli_error(cmd, "%s takes no value", o[k].name);
                return -1;
            }
            o[k].value = "1";
        } else if (eq) {
            o[k].value = eq + 1;
        } else if (a + 1 < argc) {
            o[k].value = argv[++a];
        } else {
            cli_error(cmd, "%s needs a value (%s)", o[k].name, o[k].meta);
            return -1;
        }
        if (o[k].meta && o[k].value[0] == 0) {
            cli_error(cmd, "%s: empty value, expected %s", o[k].name, o[k].meta);
            return -1;
        }
    }
    for (int i = 0; i < n; i++)
        if (o[i].required && !o[i].value) {
            cli_error(cmd, "missing required flag %s %s", o[i].name, o[i].meta ? o[i].meta : "");
            return -1;
        }
    return 0;
}

static opt *opt_find(opt *o, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(o[i].name, name) == 0) return &o[i];
    fprintf(stderr, "h2t: internal error: no option %s\n", name);
    exit(1);
}

/* The value (or default) of a flag; NULL when neither was given. */
static const char *opt_str(opt *o, int n, const char *name) { return opt_find(o, n, name)->value; }

/* 1 if a switch was given. */
static int opt_flag(opt *o, int n, const char *name) { return opt_find(o, n, name)->value != NULL; }

/* Integer in [lo, hi]; -1 with a printed error otherwise. Absent -> *out unchanged. */
static int opt_long(const char *cmd, opt *o, int n, const char *name, long lo, long hi, long *out)
{
    const char *v = opt_str(o, n, name);
    if (!v) return 0;
    long x;
    if (parse_long(v, &x) || x < lo || x > hi) {
        cli_error(cmd, "%s: expected an integer in [%ld, %ld], got '%s'", name, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int opt_double(const char *cmd, opt *o, int n, const char *name, double lo, double hi, double *out)
{
    const char *v = opt_str(o, n, name);
    if (!v) return 0;
    double x;
    if (parse_double(v, &x) || x < lo || x > hi) {
        cli_error(cmd, "%s: expected a number in [%g, %g], got '%s'", name, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* A comma list of numbers in [lo, hi], at most max of them. */
static int opt_list(const char *cmd, opt *o, int n, const char *name, double lo, double hi,
                    double *out, int max, int *count)
{
    const char *v = opt_str(o, n, name);
    *count = 0;
    if (!v) return 0;
    const char *p = v;
    for (;;) {
        char item[64];
        size_t len = strcspn(p, ",");
        double x;
        if (len == 0 || len >= sizeof item || *count >= max) goto bad;
        memcpy(item, p, len);
        item[len] = 0;
        if (parse_double(item, &x) || x < lo || x > hi) goto bad;
        out[(*count)++] = x;
        p += len;
        if (!*p) return 0;
        p++;
    }
bad:
    cli_error(cmd, "%s: expected a comma list of at most %d numbers in [%g, %g], got '%s'", name, max, lo,
              hi, v);
    return -1;
}

/* ==========================================================================
 * h2t taps: every location of the backbone as <name>.npy */

static int cmd_taps(int argc, char **argv)
{
    cli_error("taps", "not implemented yet");
    return 1;
}

/* ==========================================================================
 * h2t features: pooled, normalized Head2Toe features (features.c) */

static int cmd_features(int argc, char **argv)
{
    cli_error("features", "not implemented yet");
    return 1;
}

/* ==========================================================================
 * h2t score: the group-lasso scoring run (lasso.c) */

static int cmd_score(int argc, char **argv)
{
    cli_error("score", "not implemented yet");
    return 1;
}

/* ==========================================================================
 * h2t fit: selection + final head, with cross-validation (lasso.c) */

static int cmd_fit(int argc, char **argv)
{
    cli_error("fit", "not implemented yet");
    return 1;
}

/* ==========================================================================
 * h2t eval: accuracy of a fitted head (lasso.c) */

static int cmd_eval(int argc, char **argv)
{
    cli_error("eval", "not implemented yet");
    return 1;
}

/* ==========================================================================
 * main */

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"taps", cmd_taps, "run the backbone, write every location as <name>.npy"},
    {"features", cmd_features, "Head2Toe features: pool + normalize every location"},
    {"score", cmd_score, "group-lasso scoring run: feature scores"},
    {"fit", cmd_fit, "select features and train the head (with cross-validation)"},
    {"eval", cmd_eval, "accuracy of a fitted head on a feature matrix"},
};
static const int ncommands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f)
{
    fprintf(f,
            "h2t: Head2Toe transfer learning (Evci et al., ICML 2022) in C.\n"
            "Features from every layer of a frozen backbone, group-lasso selection, linear head.\n\n"
            "usage: h2t COMMAND [flags]    (h2t COMMAND --help for its flags)\n\ncommands:\n");
    for (int i = 0; i < ncommands; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < ncommands; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "h2t: unknown command '%s' (see h2t --help)\n", argv[1]);
    return 1;
}
