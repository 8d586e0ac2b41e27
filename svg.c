/* svg.c: bar charts, line charts and heat maps as standalone SVG files
 * (see svg.h). Plain fprintf; sizes are in pixels with an 11 px sans-serif
 * font, whose characters are taken to be CHAR_W wide when laying out. */
#include "svg.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define FONT 11
#define CHAR_W 6.6          /* estimated advance of one character at FONT px (generous) */
#define LABEL_W 5.6         /* the same for the room reserved below rotated labels */
#define PLOT_H 260.0        /* height of the plotting area */

/* Tableau 10: distinguishable, and readable on white. */
static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
#define NPALETTE 10

/* ==========================================================================
 * Files and text */

void svg_escape(char *out, size_t cap, const char *text)
{
    size_t o = 0;
    if (cap == 0) return;
    for (const char *p = text ? text : ""; *p; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&apos;"; break;
        default: break;
        }
        size_t len = rep ? strlen(rep) : 1;
        if (o + len >= cap) break;
        /* control characters are not allowed in XML 1.0: write a space */
        if (rep) memcpy(out + o, rep, len);
        else out[o] = (unsigned char)*p < 0x20 ? ' ' : *p;
        o += len;
    }
    out[o] = 0;
}

typedef struct {
    FILE *f;
    char path[512], tmp[560];
} svg_file;

static int svg_open(svg_file *s, const char *path, double w, double h, const char *title)
{
    snprintf(s->path, sizeof s->path, "%s", path);
    snprintf(s->tmp, sizeof s->tmp, "%s.tmp.%ld", path, (long)getpid());
    s->f = fopen(s->tmp, "wb");
    if (!s->f) {
        set_error("%s: cannot create: %s", s->path, strerror(errno));
        return -1;
    }
    char t[512];
    svg_escape(t, sizeof t, title ? title : "");
    fprintf(s->f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(s->f, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" height=\"%.0f\" "
                  "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" "
                  "font-size=\"%d\">\n", w, h, w, h, FONT);
    fprintf(s->f, "<title>%s</title>\n", t);
    fprintf(s->f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", w, h);
    if (title && title[0])
        fprintf(s->f, "<text class=\"title\" x=\"%.1f\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" "
                      "font-weight=\"bold\">%s</text>\n", w / 2, t);
    return 0;
}

static int svg_close(svg_file *s)
{
    fprintf(s->f, "</svg>\n");
    int bad = ferror(s->f);
    if (fclose(s->f) != 0) bad = 1;
    if (bad || replace_file(s->tmp, s->path) != 0) {
        set_error("%s: write failed: %s", s->path, strerror(errno));
        remove(s->tmp);
        return -1;
    }
    return 0;
}

/* <text> at (x, y); anchor start|middle|end; rot degrees about (x, y). */
static void text(FILE *f, double x, double y, const char *anchor, double rot, const char *cls, const char *s)
{
    char e[512];
    svg_escape(e, sizeof e, s);
    fprintf(f, "<text class=\"%s\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"", cls, x, y, anchor);
    if (rot != 0) fprintf(f, " transform=\"rotate(%.0f %.1f %.1f)\"", rot, x, y);
    fprintf(f, ">%s</text>\n", e);
}

static double text_width(const char *s) { return s ? CHAR_W * (double)strlen(s) : 0; }

/* ==========================================================================
 * Axes */

/* A "nice" tick step (1, 2 or 5 x 10^k) giving at most about `want` ticks. */
static double nice_step(double range, int want)
{
    if (!(range > 0)) return 1;
    double raw = range / want, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

typedef struct {
    double x0, y0, w, h;        /* plotting area: left, top, width, height */
    double lo, hi;              /* y range */
} frame;

static double frame_y(const frame *fr, double v)
{
    double t = (v - fr->lo) / (fr->hi - fr->lo);
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    return fr->y0 + fr->h * (1 - t);
}

/* y grid, ticks and labels, the axis lines and the y label. */
static void y_axis(FILE *f, const frame *fr, const svg_chart *c)
{
    double step = nice_step(fr->hi - fr->lo, 6);
    const char *fmt = c->yformat ? c->yformat : "%g";
    long i0 = (long)ceil(fr->lo / step - 1e-9), i1 = (long)floor(fr->hi / step + 1e-9);
    fprintf(f, "<g class=\"yaxis\" stroke=\"#dddddd\">\n");
    for (long i = i0; i <= i1; i++) {
        double y = frame_y(fr, i * step);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", fr->x0, y, fr->x0 + fr->w, y);
    }
    fprintf(f, "</g>\n<g class=\"yticks\">\n");
    for (long i = i0; i <= i1; i++) {
        char lab[64];
        snprintf(lab, sizeof lab, fmt, i * step);
        text(f, fr->x0 - 6, frame_y(fr, i * step) + 4, "end", 0, "tick", lab);
    }
    fprintf(f, "</g>\n");
    fprintf(f, "<path class=\"frame\" d=\"M%.1f %.1fV%.1fH%.1f\" fill=\"none\" stroke=\"black\"/>\n",
            fr->x0, fr->y0, fr->y0 + fr->h, fr->x0 + fr->w);
    if (c->ylabel) text(f, fr->x0 - 44, fr->y0 + fr->h / 2, "middle", -90, "ylabel", c->ylabel);
}

/* Legend entries stacked at (x, y). */
static void legend(FILE *f, double x, double y, int n, const char *const *names, int lines)
{
    fprintf(f, "<g class=\"legend\">\n");
    for (int i = 0; i < n; i++) {
        const char *col = palette[i % NPALETTE];
        double yy = y + 18.0 * i;
        if (lines)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>"
                       "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                    x, yy, x + 20, yy, col, x + 10, yy, col);
        else
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\" fill=\"%s\"/>\n", x, yy - 5, col);
        text(f, x + 26, yy + 4, "start", 0, "legend", names[i] ? names[i] : "");
    }
    fprintf(f, "</g>\n");
}

static double max_len(int n, const char *const *s)
{
    double m = 0;
    for (int i = 0; s && i < n; i++)
        if (text_width(s[i]) > m) m = text_width(s[i]);
    return m;
}

/* ==========================================================================
 * Bar charts */

int svg_bars(const char *path, const svg_chart *c, int n, const char *const *labels,
             int nseries, const char *const *series_names, const double *values, const int *color)
{
    if (n < 1 || nseries < 1 || !labels || !values) {
        set_error("%s: a bar chart needs at least one category and one series", path);
        return -1;
    }
    /* y range */
    double lo = isfinite(c->ymin) ? c->ymin : 0, hi = -INFINITY;
    for (size_t i = 0; i < (size_t)n * nseries; i++)
        if (isfinite(values[i]) && values[i] > hi) hi = values[i];
    if (isfinite(c->ymax)) hi = c->ymax;
    else if (!(hi > lo)) hi = lo + 1;
    else hi = lo + nice_step(hi - lo, 6) * ceil((hi - lo) / nice_step(hi - lo, 6) * 1.0001);
    if (!(hi > lo)) hi = lo + 1;

    /* layout: horizontal labels when they fit, else rotated by -90 */
    double lab = max_len(n, labels);
    double slot = lab + 10 > nseries * 18 + 12 ? lab + 10 : nseries * 18 + 12;
    int rotated = n * slot > 900;
    if (rotated) slot = nseries * 9 + 6 > 14 ? nseries * 9 + 6 : 14;
    double legend_w = nseries > 1 ? 40 + max_len(nseries, series_names) : 0;
    frame fr = {70, c->title ? 40 : 16, n * slot, PLOT_H, lo, hi};
    double bottom = (rotated ? lab * LABEL_W / CHAR_W + 14 : 22) + (c->xlabel ? 26 : 6);
    double W = fr.x0 + fr.w + 20 + legend_w, H = fr.y0 + fr.h + bottom;

    svg_file s;
    if (svg_open(&s, path, W, H, c->title)) return -1;
    FILE *f = s.f;
    y_axis(f, &fr, c);
    fprintf(f, "<g class=\"bars\">\n");
    double pad = slot * 0.12, bw = (slot - 2 * pad) / nseries;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < nseries; k++) {
            double v = values[(size_t)k * n + i];
            if (!isfinite(v)) continue;
            double base = lo > 0 ? lo : hi < 0 ? hi : 0;   /* bars grow from 0 when 0 is in range */
            double y1 = frame_y(&fr, v), y0 = frame_y(&fr, base);
            const char *col = nseries == 1 && color ? palette[(color[i] % NPALETTE + NPALETTE) % NPALETTE]
                                                    : palette[k % NPALETTE];
            char tip[600], e[700];
            snprintf(tip, sizeof tip, "%s%s%s: %.6g", labels[i] ? labels[i] : "",
                     nseries > 1 ? ", " : "", nseries > 1 && series_names ? series_names[k] : "", v);
            svg_escape(e, sizeof e, tip);
            fprintf(f, "<rect class=\"bar\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\">"
                       "<title>%s</title></rect>\n",
                    fr.x0 + i * slot + pad + k * bw, y1 < y0 ? y1 : y0, bw, fabs(y0 - y1), col, e);
        }
    fprintf(f, "</g>\n<g class=\"xticks\">\n");
    for (int i = 0; i < n; i++) {
        double x = fr.x0 + (i + 0.5) * slot, y = fr.y0 + fr.h;
        if (rotated) text(f, x + 4, y + 6, "end", -90, "tick", labels[i]);
        else text(f, x, y + 16, "middle", 0, "tick", labels[i]);
    }
    fprintf(f, "</g>\n");
    if (c->xlabel) text(f, fr.x0 + fr.w / 2, H - 8, "middle", 0, "xlabel", c->xlabel);
    if (nseries > 1 && series_names) legend(f, fr.x0 + fr.w + 20, fr.y0 + 10, nseries, series_names, 0);
    return svg_close(&s);
}

/* ==========================================================================
 * Line charts */

int svg_lines(const char *path, const svg_chart *c, int log_x, int nseries, const svg_series *ser,
              double mark_x, double mark_y)
{
    if (nseries < 1) {
        set_error("%s: a line chart needs at least one series", path);
        return -1;
    }
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int k = 0; k < nseries; k++)
        for (int i = 0; i < ser[k].n; i++) {
            double x = ser[k].x[i], y = ser[k].y[i], e = ser[k].err ? ser[k].err[i] : 0;
            if (!isfinite(x) || !isfinite(y)) continue;
            if (log_x && !(x > 0)) {
                set_error("%s: series '%s': x = %g on a log axis (must be > 0)", path,
                          ser[k].name ? ser[k].name : "", x);
                return -1;
            }
            if (!isfinite(e)) e = 0;
            double tx = log_x ? log10(x) : x;
            if (tx < xlo) xlo = tx;
            if (tx > xhi) xhi = tx;
            if (y - e < ylo) ylo = y - e;
            if (y + e > yhi) yhi = y + e;
        }
    if (!(xhi >= xlo)) xlo = 0, xhi = 1;            /* no finite point at all */
    if (!(yhi >= ylo)) ylo = 0, yhi = 1;
    if (xhi - xlo < 1e-12) xlo -= 0.5, xhi += 0.5;
    double xpad = 0.05 * (xhi - xlo);
    xlo -= xpad, xhi += xpad;
    if (isfinite(c->ymin)) ylo = c->ymin;
    if (isfinite(c->ymax)) yhi = c->ymax;
    if (!isfinite(c->ymin) || !isfinite(c->ymax)) {     /* round outwards to ticks */
        if (yhi - ylo < 1e-12) ylo -= 0.5, yhi += 0.5;
        /* twice: rounding widens the range, which may coarsen y_axis's step */
        for (int pass = 0; pass < 2; pass++) {
            double st = nice_step(yhi - ylo, 6);
            if (!isfinite(c->ymin)) ylo = floor(ylo / st + 1e-9) * st;
            if (!isfinite(c->ymax)) yhi = ceil(yhi / st - 1e-9) * st;
        }
    }
    if (!(yhi > ylo)) yhi = ylo + 1;

    const char *names[64];
    int nleg = nseries < 64 ? nseries : 64;
    for (int k = 0; k < nleg; k++) names[k] = ser[k].name;
    double legend_w = 40 + max_len(nleg, names);
    frame fr = {70, c->title ? 40 : 16, 440, PLOT_H, ylo, yhi};
    double W = fr.x0 + fr.w + 20 + legend_w, H = fr.y0 + fr.h + 30 + (c->xlabel ? 26 : 6);
    double ylegend = fr.y0 + 10 + 18.0 * nleg;
    if (H < ylegend + 10) H = ylegend + 10;
#define XPOS(tx) (fr.x0 + fr.w * ((tx) - xlo) / (xhi - xlo))

    svg_file s;
    if (svg_open(&s, path, W, H, c->title)) return -1;
    FILE *f = s.f;
    y_axis(f, &fr, c);
    /* x ticks: decades (with 2 and 5 when the range is short) or nice steps */
    fprintf(f, "<g class=\"xticks\">\n");
    if (log_x) {
        int short_range = xhi - xlo < 2.5;
        for (int e = (int)floor(xlo); e <= (int)ceil(xhi); e++)
            for (int m = 1; m <= 5; m++) {
                if (m != 1 && !(short_range && (m == 2 || m == 5))) continue;
                double tx = e + log10((double)m);
                if (tx < xlo || tx > xhi) continue;
                char lab[32];
                snprintf(lab, sizeof lab, "%g", m * pow(10, e));
                fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
                        XPOS(tx), fr.y0 + fr.h, XPOS(tx), fr.y0 + fr.h + 4);
                text(f, XPOS(tx), fr.y0 + fr.h + 17, "middle", 0, "tick", lab);
            }
    } else {
        double st = nice_step(xhi - xlo, 8);
        for (long i = (long)ceil(xlo / st - 1e-9); i <= (long)floor(xhi / st + 1e-9); i++) {
            double v = i * st;
            char lab[32];
            snprintf(lab, sizeof lab, "%g", v);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
                    XPOS(v), fr.y0 + fr.h, XPOS(v), fr.y0 + fr.h + 4);
            text(f, XPOS(v), fr.y0 + fr.h + 17, "middle", 0, "tick", lab);
        }
    }
    fprintf(f, "</g>\n");
    for (int k = 0; k < nseries; k++) {
        const char *col = palette[k % NPALETTE];
        char name[300];
        svg_escape(name, sizeof name, ser[k].name ? ser[k].name : "");
        fprintf(f, "<g class=\"series\">\n<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (int i = 0; i < ser[k].n; i++) {
            double x = ser[k].x[i], y = ser[k].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            fprintf(f, "%.1f,%.1f ", XPOS(log_x ? log10(x) : x), frame_y(&fr, y));
        }
        fprintf(f, "\"/>\n");
        for (int i = 0; i < ser[k].n; i++) {
            double x = ser[k].x[i], y = ser[k].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            double px = XPOS(log_x ? log10(x) : x), e = ser[k].err ? ser[k].err[i] : NAN;
            if (isfinite(e) && e > 0)
                fprintf(f, "<line class=\"err\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n",
                        px, frame_y(&fr, y - e), px, frame_y(&fr, y + e), col);
            fprintf(f, "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>%s: x %.6g, y %.6g",
                    px, frame_y(&fr, y), col, name, x, y);
            if (isfinite(e)) fprintf(f, " +- %.3g", e);
            fprintf(f, "</title></circle>\n");
        }
        fprintf(f, "</g>\n");
    }
    if (isfinite(mark_x) && isfinite(mark_y) && (!log_x || mark_x > 0))
        fprintf(f, "<circle class=\"mark\" cx=\"%.1f\" cy=\"%.1f\" r=\"7\" fill=\"none\" stroke=\"black\" "
                   "stroke-width=\"1.5\"><title>chosen: x %.6g, y %.6g</title></circle>\n",
                XPOS(log_x ? log10(mark_x) : mark_x), frame_y(&fr, mark_y), mark_x, mark_y);
    if (c->xlabel) text(f, fr.x0 + fr.w / 2, H - 8, "middle", 0, "xlabel", c->xlabel);
    legend(f, fr.x0 + fr.w + 20, fr.y0 + 10, nleg, names, 1);
#undef XPOS
    return svg_close(&s);
}

/* ==========================================================================
 * Heat maps */

int svg_heatmap(const char *path, const svg_chart *c, int rows, const char *const *row_labels,
                int cols, const char *const *col_labels, const double *v)
{
    if (rows < 1 || cols < 1 || !v) {
        set_error("%s: a heat map needs at least one row and one column", path);
        return -1;
    }
    double vmax = 0;
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        if (isfinite(v[i]) && v[i] > vmax) vmax = v[i];
    if (!(vmax > 0)) vmax = 1;
    const double cw = 15, ch = 20;
    double left = 14 + max_len(rows, row_labels), lab = max_len(cols, col_labels);
    double x0 = left, y0 = c->title ? 40 : 16;
    double W = x0 + cols * cw + 110, H = y0 + rows * ch + lab * LABEL_W / CHAR_W + 14 + (c->xlabel ? 26 : 6);
    if (H < y0 + 130) H = y0 + 130;

    svg_file s;
    if (svg_open(&s, path, W, H, c->title)) return -1;
    FILE *f = s.f;
    fprintf(f, "<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">"
               "<stop offset=\"0\" stop-color=\"rgb(255,255,255)\"/><stop offset=\"1\" stop-color=\"rgb(8,48,107)\"/>"
               "</linearGradient></defs>\n");
    fprintf(f, "<g class=\"cells\" stroke=\"#eeeeee\" stroke-width=\"0.5\">\n");
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) {
            double x = v[(size_t)r * cols + k];
            if (!isfinite(x)) continue;
            double t = x / vmax;
            if (t < 0) t = 0;
            if (t > 1) t = 1;
            int R = (int)lround(255 + t * (8 - 255)), G = (int)lround(255 + t * (48 - 255)),
                B = (int)lround(255 + t * (107 - 255));
            char tip[300], e[400];
            snprintf(tip, sizeof tip, "%s, %s: %.4g", row_labels && row_labels[r] ? row_labels[r] : "",
                     col_labels && col_labels[k] ? col_labels[k] : "", x);
            svg_escape(e, sizeof e, tip);
            fprintf(f, "<rect class=\"cell\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                       "fill=\"rgb(%d,%d,%d)\"><title>%s</title></rect>\n",
                    x0 + k * cw, y0 + r * ch, cw, ch, R, G, B, e);
        }
    fprintf(f, "</g>\n");
    fprintf(f, "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"black\"/>\n", x0, y0, cols * cw, rows * ch);
    fprintf(f, "<g class=\"rowlabels\">\n");
    for (int r = 0; r < rows; r++)
        text(f, x0 - 6, y0 + (r + 0.5) * ch + 4, "end", 0, "tick", row_labels ? row_labels[r] : "");
    fprintf(f, "</g>\n<g class=\"collabels\">\n");
    for (int k = 0; k < cols; k++)
        text(f, x0 + (k + 0.5) * cw + 4, y0 + rows * ch + 6, "end", -90, "tick",
             col_labels ? col_labels[k] : "");
    fprintf(f, "</g>\n");
    /* colour scale */
    double sx = x0 + cols * cw + 24, sy = y0, sh = 100;
    char lab0[32], lab1[32];
    snprintf(lab0, sizeof lab0, "0");
    snprintf(lab1, sizeof lab1, "%.3g", vmax);
    fprintf(f, "<rect class=\"scale\" x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"%.1f\" fill=\"url(#scale)\" "
               "stroke=\"black\" stroke-width=\"0.5\"/>\n", sx, sy, sh);
    text(f, sx + 20, sy + 8, "start", 0, "tick", lab1);
    text(f, sx + 20, sy + sh, "start", 0, "tick", lab0);
    if (c->xlabel) text(f, x0 + cols * cw / 2, H - 8, "middle", 0, "xlabel", c->xlabel);
    return svg_close(&s);
}
