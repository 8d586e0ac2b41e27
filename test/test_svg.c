/* test/test_svg.c: the SVG figures (svg.c) are well-formed XML that a
 * browser can render, and they draw what they were given: one element per
 * finite value, bar heights proportional to the values, points in value
 * order, escaped text, no "nan"/"inf" in any attribute, and refusals
 * (unwritable path, bad log axis) with a one-line error and no file left.
 * The XML check is our own small parser: every tag closed in order,
 * attributes quoted, only the five predefined entities, one <svg> root
 * with the SVG namespace. Figures go to test/out/ (open them in a browser
 * to look at them). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "../svg.h"
#include "../util.h"

/* ==========================================================================
 * A minimal XML well-formedness check (enough for what svg.c writes). */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) { free(s); s = NULL; }
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == ':' || c == '.';
}

/* Text or attribute value [p, end): '&' only as one of the five entities,
 * no '<'. */
static int check_chars(const char *p, const char *end, char *why)
{
    static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (; p < end; p++) {
        if (*p == '<') { strcpy(why, "'<' in text"); return 0; }
        if (*p == '&') {
            int ok = 0;
            for (int i = 0; i < 5; i++)
                if (strncmp(p, ents[i], strlen(ents[i])) == 0) ok = 1;
            if (!ok) { strcpy(why, "bad entity"); return 0; }
        }
    }
    return 1;
}

/* 1 if s is well-formed; otherwise 0 with the reason in why. */
static int xml_ok(const char *s, char *why)
{
    char stack[64][32];
    int depth = 0, roots = 0;
    const char *p = s;
    if (strncmp(p, "<?xml ", 6) == 0) {
        p = strstr(p, "?>");
        if (!p) { strcpy(why, "unterminated <?xml"); return 0; }
        p += 2;
    }
    while (*p) {
        const char *lt = strchr(p, '<');
        const char *tend = lt ? lt : p + strlen(p);
        if (!check_chars(p, tend, why)) return 0;
        if (depth == 0)
            for (const char *q = p; q < tend; q++)
                if (*q != ' ' && *q != '\n') { strcpy(why, "text outside the root"); return 0; }
        if (!lt) break;
        p = lt + 1;
        int closing = *p == '/';
        if (closing) p++;
        char name[32];
        int n = 0;
        while (name_char(*p) && n < 31) name[n++] = *p++;
        name[n] = 0;
        if (n == 0) { strcpy(why, "empty tag name"); return 0; }
        if (closing) {
            if (*p != '>') { strcpy(why, "junk in a closing tag"); return 0; }
            p++;
            if (depth == 0 || strcmp(stack[depth - 1], name) != 0) {
                snprintf(why, 100, "</%s> closes %s", name, depth ? stack[depth - 1] : "nothing");
                return 0;
            }
            depth--;
            continue;
        }
        /* attributes: name="value" */
        char seen[32][32];
        int nseen = 0;
        for (;;) {
            while (*p == ' ' || *p == '\n') p++;
            if (*p == '>' || (p[0] == '/' && p[1] == '>')) break;
            char an[32];
            int m = 0;
            while (name_char(*p) && m < 31) an[m++] = *p++;
            an[m] = 0;
            if (m == 0 || *p != '=' || p[1] != '"') {
                snprintf(why, 100, "bad attribute in <%s>", name);
                return 0;
            }
            for (int i = 0; i < nseen; i++)
                if (strcmp(seen[i], an) == 0) { snprintf(why, 100, "duplicate attribute %s", an); return 0; }
            if (nseen < 32) strcpy(seen[nseen++], an);
            p += 2;
            const char *q = strchr(p, '"');
            if (!q) { strcpy(why, "unterminated attribute"); return 0; }
            if (!check_chars(p, q, why)) return 0;
            if (strcmp(an, "xmlns") == 0 && strcmp(name, "svg") == 0 &&
                strncmp(p, "http://www.w3.org/2000/svg\"", 27) != 0) {
                strcpy(why, "wrong svg namespace");
                return 0;
            }
            p = q + 1;
        }
        if (depth == 0) {
            if (roots++ || strcmp(name, "svg") != 0) { strcpy(why, "root is not one <svg>"); return 0; }
            if (!strstr(lt, "xmlns=\"http://www.w3.org/2000/svg\"")) { strcpy(why, "no namespace"); return 0; }
        }
        if (*p == '/') { p += 2; if (depth == 0) break; continue; }
        p++;
        if (depth == 64) { strcpy(why, "too deep"); return 0; }
        strcpy(stack[depth++], name);
    }
    if (depth != 0) { snprintf(why, 100, "<%s> never closed", stack[depth - 1]); return 0; }
    if (roots != 1) { strcpy(why, "no root"); return 0; }
    return 1;
}

/* Occurrences of needle in s. */
static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* The value of attribute `attr` in the k-th element starting with `tag`
 * (e.g. "<rect class=\"bar\""), or NAN. */
static double attr_of(const char *s, const char *tag, int k, const char *attr)
{
    const char *p = s;
    for (int i = 0; i <= k; i++) {
        p = strstr(p, tag);
        if (!p) return NAN;
        if (i < k) p++;
    }
    const char *end = strchr(p, '>');
    char key[40];
    snprintf(key, sizeof key, " %s=\"", attr);
    const char *a = strstr(p, key);
    if (!a || a > end) return NAN;
    return strtod(a + strlen(key), NULL);
}

/* Finite numbers only: no nan / inf written by printf anywhere. */
static int no_nonfinite(const char *s)
{
    return !strstr(s, "nan") && !strstr(s, "inf\"") && !strstr(s, "inf ") && !strstr(s, "-inf");
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* ==========================================================================
 * The figures */

static void test_bars(void)
{
    const char *labels[] = {"after_root", "block1_unit1_layer0", "a<b & \"c\"", "pre_logits", "logits"};
    const double v[] = {0.1, 0.4, NAN, 0.2, 0.3};
    const int color[] = {0, 1, 1, 4, 4};
    svg_chart c = {"features kept per location", "location", "share of selected", NAN, NAN, NULL};
    const char *path = "test/out/svg_bars.svg";
    int rc = svg_bars(path, &c, 5, labels, 1, NULL, v, color);
    char *s = read_all(path);
    check(rc == 0 && s != NULL, "svg_bars writes %s", path);
    if (!s) return;
    char why[128] = "";
    check(xml_ok(s, why), "svg_bars: well-formed XML %s", why);
    check(count(s, "<rect class=\"bar\"") == 4, "svg_bars: one bar per finite value (%d, want 4)",
          count(s, "<rect class=\"bar\""));
    /* heights proportional to the values: h_i / v_i constant */
    double h[4], vv[4] = {0.1, 0.4, 0.2, 0.3}, worst = 0;
    for (int i = 0; i < 4; i++) h[i] = attr_of(s, "<rect class=\"bar\"", i, "height");
    for (int i = 0; i < 4; i++) {
        double d = fabs(h[i] / vv[i] - h[0] / vv[0]) * vv[i];
        if (!(d <= worst)) worst = d;     /* NaN -> worst NaN -> fails */
    }
    check(worst < 0.02 && h[1] > 100, "svg_bars: heights proportional to values (max px error %.3g)", worst);
    check(strstr(s, "a&lt;b &amp; &quot;c&quot;") != NULL, "svg_bars: labels escaped");
    check(no_nonfinite(s), "svg_bars: no non-finite numbers written");
    free(s);

    /* grouped bars with a legend and fixed y range */
    const char *tasks[] = {"fashion", "dsprites_loc", "clevr_count"};
    const char *series[] = {"Linear", "Head2Toe"};
    const double acc[] = {88.0, 40.5, 55.0, 89.1, 80.2, 70.0};
    svg_chart c2 = {"Linear vs Head2Toe", NULL, "test accuracy", 0, 100, "%.0f%%"};
    path = "test/out/svg_grouped.svg";
    rc = svg_bars(path, &c2, 3, tasks, 2, series, acc, NULL);
    s = read_all(path);
    check(rc == 0 && s && xml_ok(s, why) && count(s, "<rect class=\"bar\"") == 6 &&
          count(s, "<text class=\"legend\"") == 2 && strstr(s, ">100%</text>"),
          "svg_bars grouped: 6 bars, 2 legend entries, %% ticks %s", why);
    if (s) {
        double h0 = attr_of(s, "<rect class=\"bar\"", 0, "height");   /* fashion, Linear 88 */
        check(fabs(h0 - 260 * 0.88) < 0.02, "svg_bars grouped: 88%% of a 0..100 axis is %.2f px (want %.2f)",
              h0, 260 * 0.88);
    }
    free(s);
}

static void test_lines(void)
{
    const double f[] = {0.001, 0.005, 0.01, 0.05, 0.1};
    const double y1[] = {0.50, 0.62, 0.70, 0.66, NAN}, e1[] = {0.02, 0.03, 0.01, 0.02, 0.0};
    const double y2[] = {0.40, 0.52, 0.60, 0.68, 0.64};
    svg_series s2[] = {{"T=256", 5, f, y1, e1}, {"T=1024 & more", 5, f, y2, NULL}};
    svg_chart c = {"validation accuracy vs F", "fraction of features kept (F)", "validation accuracy",
                   NAN, NAN, NULL};
    const char *path = "test/out/svg_lines.svg";
    int rc = svg_lines(path, &c, 1, 2, s2, 0.01, 0.70);
    char *s = read_all(path);
    check(rc == 0 && s != NULL, "svg_lines writes %s", path);
    if (!s) return;
    char why[128] = "";
    check(xml_ok(s, why), "svg_lines: well-formed XML %s", why);
    check(count(s, "<circle class=\"point\"") == 9, "svg_lines: one marker per finite point (%d, want 9)",
          count(s, "<circle class=\"point\""));
    check(count(s, "class=\"err\"") == 4, "svg_lines: error bars where err > 0 (%d, want 4)",
          count(s, "class=\"err\""));
    check(count(s, "class=\"mark\"") == 1, "svg_lines: the chosen point is marked");
    /* log x: equal ratios give equal distances (0.001->0.01 == 0.01->0.1) */
    double x0 = attr_of(s, "<circle class=\"point\"", 0, "cx"), x2 = attr_of(s, "<circle class=\"point\"", 2, "cx");
    double x5 = attr_of(s, "<circle class=\"point\"", 4, "cx"), x9 = attr_of(s, "<circle class=\"point\"", 8, "cx");
    check(fabs((x2 - x0) - (x9 - x2)) < 0.2 && x9 > x5, "svg_lines: log x axis (%.1f vs %.1f px per decade)",
          x2 - x0, x9 - x2);
    /* higher accuracy is drawn higher (smaller y) */
    double ya = attr_of(s, "<circle class=\"point\"", 0, "cy"), yb = attr_of(s, "<circle class=\"point\"", 2, "cy");
    check(yb < ya, "svg_lines: y grows upwards");
    check(strstr(s, "T=1024 &amp; more") != NULL && no_nonfinite(s), "svg_lines: escaped names, finite numbers");
    free(s);

    const double bad_x[] = {0, 0.1};
    svg_series sb = {"bad", 2, bad_x, y2, NULL};
    rc = svg_lines("test/out/svg_bad.svg", &c, 1, 1, &sb, NAN, NAN);
    check(rc == -1 && strstr(last_error(), "log axis") && !exists("test/out/svg_bad.svg"),
          "svg_lines refuses x = 0 on a log axis: %s", last_error());
}

static void test_heatmap(void)
{
    const char *rows[] = {"fashion", "dsprites_loc"};
    const char *cols[] = {"after_root", "b1", "b2", "pre_logits"};
    const double v[] = {0.1, 0.2, 0.3, 0.4, 0.7, NAN, 0.0, 0.3};
    svg_chart c = {"selected features", "location", NULL, NAN, NAN, NULL};
    const char *path = "test/out/svg_heatmap.svg";
    int rc = svg_heatmap(path, &c, 2, rows, 4, cols, v);
    char *s = read_all(path);
    check(rc == 0 && s != NULL, "svg_heatmap writes %s", path);
    if (!s) return;
    char why[128] = "";
    check(xml_ok(s, why), "svg_heatmap: well-formed XML %s", why);
    check(count(s, "<rect class=\"cell\"") == 7, "svg_heatmap: one cell per finite value (%d, want 7)",
          count(s, "<rect class=\"cell\""));
    /* the largest value is the darkest colour, zero is white */
    check(strstr(s, "fill=\"rgb(8,48,107)\"><title>dsprites_loc, after_root") &&
          strstr(s, "fill=\"rgb(255,255,255)\"><title>dsprites_loc, b2"), "svg_heatmap: colour scale 0 -> max");
    free(s);
}

static void test_refusals(void)
{
    const char *labels[] = {"a"};
    const double v[] = {1};
    svg_chart c = {NULL, NULL, NULL, NAN, NAN, NULL};
    int rc = svg_bars("test/out/no_such_dir/x.svg", &c, 1, labels, 1, NULL, v, NULL);
    check(rc == -1 && strstr(last_error(), "no_such_dir/x.svg") && !strchr(last_error(), '\n'),
          "svg_bars: unwritable path refused: %s", last_error());
    rc = svg_bars("test/out/svg_empty.svg", &c, 0, labels, 1, NULL, v, NULL);
    check(rc == -1 && !exists("test/out/svg_empty.svg"), "svg_bars: zero categories refused: %s", last_error());

    char out[16];
    svg_escape(out, sizeof out, "<<<<<<<<");       /* 4 bytes each: must stop before overflowing */
    check(strcmp(out, "&lt;&lt;&lt;") == 0, "svg_escape truncates at whole entities ('%s')", out);
}

int main(void)
{
    make_dir("test/out");
    test_bars();
    test_lines();
    test_heatmap();
    test_refusals();
    return check_done();
}
