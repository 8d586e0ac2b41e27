/* cv.c: model selection (docs/ALGORITHM.md §9, §10). See cv.h.
 *
 * One grid point of one fold: Head2Toe runs one group-lasso scoring run on
 * the fold's training examples and then, for each fraction F, selects,
 * gathers and renormalizes the kept features and trains a fresh head on
 * them without penalty (same lr and steps); Linear trains a head on the
 * pre_logits location; All-l* a head on all features with its penalty.
 * Seeds: the scoring head of fold f (f = 5 for the final fit) is drawn from
 * seed_mix(seed, 1, f) and the trained head from seed_mix(seed, 2, f), so
 * every grid point of a fold starts alike (§9). */
#include "cv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *const method_names[] = {"head2toe", "linear", "all-l1", "all-l2", "all-l21", NULL};

int method_parse(const char *what, const char *name, size_t len, fit_method *m)
{
    for (int i = 0; method_names[i]; i++)
        if (strlen(method_names[i]) == len && strncmp(method_names[i], name, len) == 0) {
            *m = (fit_method)i;
            return 0;
        }
    set_error("%s: expected head2toe, linear, all-l1, all-l2 or all-l21, got '%.*s'", what, (int)len, name);
    return -1;
}

/* ==========================================================================
 * The grid */

static void default_list(int *n, double *out, const char *list)
{
    if (*n == 0) parse_list("grid", list, 0, 0, 1e9, out, GRID_MAX, n); /* constants: cannot fail */
}

void fit_default_grid(fit_config *c)
{
    double steps[GRID_MAX];
    default_list(&c->nlr, c->lr, GRID_LR);
    if (c->nsteps == 0) {
        default_list(&c->nsteps, steps, GRID_STEPS);
        for (int i = 0; i < c->nsteps; i++) c->steps[i] = (long)steps[i];
    }
    const int all = c->method != METHOD_HEAD2TOE && c->method != METHOD_LINEAR;
    default_list(&c->ncoef, c->coef, all ? GRID_COEF_ALL : GRID_COEF);
    default_list(&c->nfrac, c->frac, GRID_FRACTION);
    if (c->batch == 0) c->batch = GRID_BATCH;
}

/* The lists of the grid that the method uses (linear: no coef, only
 * head2toe: F), as pointers and counts. */
typedef struct {
    int ncoef, nfrac;
    const double *coef, *frac;
} grid_axes;

static grid_axes axes_of(const fit_config *cfg)
{
    static const double zero = 0.0, one = 1.0;
    grid_axes a = {cfg->ncoef, cfg->nfrac, cfg->coef, cfg->frac};
    if (cfg->method == METHOD_LINEAR) a.ncoef = 1, a.coef = &zero;
    if (cfg->method != METHOD_HEAD2TOE) a.nfrac = 1, a.frac = &one;
    return a;
}

static int check_grid(const fit_config *cfg)
{
    const char *what = NULL;
    const int coefs = cfg->method != METHOD_LINEAR, fracs = cfg->method == METHOD_HEAD2TOE;
    if (cfg->nlr < 1 || cfg->nlr > GRID_MAX) what = "learning rates";
    else if (cfg->nsteps < 1 || cfg->nsteps > GRID_MAX) what = "step counts";
    else if (coefs && (cfg->ncoef < 1 || cfg->ncoef > GRID_MAX)) what = "coefficients";
    else if (fracs && (cfg->nfrac < 1 || cfg->nfrac > GRID_MAX)) what = "fractions";
    if (what) {
        set_error("need 1 to %d %s in the grid", GRID_MAX, what);
        return -1;
    }
    int ok = cfg->batch >= 1;
    for (int i = 0; i < cfg->nlr; i++) ok &= cfg->lr[i] > 0;
    for (int i = 0; i < cfg->nsteps; i++) ok &= cfg->steps[i] >= 1;
    for (int i = 0; coefs && i < cfg->ncoef; i++) ok &= cfg->coef[i] >= 0;
    for (int i = 0; fracs && i < cfg->nfrac; i++) ok &= cfg->frac[i] > 0 && cfg->frac[i] <= 1;
    if (!ok) {
        set_error("grid values out of range (lr > 0, steps >= 1, coef >= 0, 0 < fraction <= 1, batch >= 1)");
        return -1;
    }
    return 0;
}

static int grid_points(const fit_config *cfg)
{
    const grid_axes a = axes_of(cfg);
    return cfg->nlr * cfg->nsteps * a.ncoef * a.nfrac;
}

static int does_cv(const fit_config *cfg) { return grid_points(cfg) > 1 || cfg->force_cv; }

int fit_check(const lasso_data *X, const feat_layout *l, const fit_config *cfg)
{
    if (check_grid(cfg)) return -1;
    if (X->n < 1 || X->d < 1 || X->k < 1) {
        set_error("empty problem (%zu examples, %zu features)", X->n, X->d);
        return -1;
    }
    for (size_t i = 0; i < X->n; i++)
        if (X->y[i] < 0 || X->y[i] >= X->k) {
            set_error("labels out of range [0, %d)", X->k);
            return -1;
        }
    const int needs_layout = cfg->method == METHOD_HEAD2TOE || cfg->method == METHOD_LINEAR;
    if (needs_layout && !l) {
        set_error("--method %s needs the layout of the features", method_names[cfg->method]);
        return -1;
    }
    if (l && l->d != X->d) {
        set_error("the layout describes %zu features but the matrix has %zu", l->d, X->d);
        return -1;
    }
    if (cfg->method == METHOD_LINEAR && layout_find(l, "pre_logits") < 0) {
        set_error("--method linear needs a location named pre_logits in the layout");
        return -1;
    }
    if (does_cv(cfg) && X->n < CV_FOLDS) {
        set_error("cross-validation needs at least %d examples, got %zu", CV_FOLDS, X->n);
        return -1;
    }
    return 0;
}

void fold_bounds(size_t n, int nfolds, int fold, size_t *start, size_t *end)
{
    *start = (size_t)fold * n / (size_t)nfolds;
    *end = (size_t)(fold + 1) * n / (size_t)nfolds;
}

/* ==========================================================================
 * One grid point of one fold */

static uint64_t seed_mix(uint64_t seed, uint64_t what, uint64_t fold)
{
    return seed ^ (what * 0x9E3779B97F4A7C15ull) ^ ((fold + 1) * 0xD1B54A32D192ED03ull);
}

/* Every buffer of a fit, sized once for the largest head of the grid. */
typedef struct {
    const lasso_data *X;
    const feat_layout *l;
    const fit_config *cfg;
    lasso_head sc;         /* head2toe: the scoring head, [D, K] */
    lasso_head hd;         /* the head that is trained and validated */
    float *xs;             /* [n, nsel] the selected features, renormalized (head2toe, linear) */
    double *scores;        /* [D] head2toe */
    int64_t *sel;          /* [nsel] */
    size_t nsel;
    size_t *trows, *vrows; /* [n] training and validation examples */
    size_t ntr, nval;
} fit_ctx;

static void ctx_free(fit_ctx *c)
{
    lasso_head_free(&c->sc);
    lasso_head_free(&c->hd);
    free_array(c->xs);
    free_array(c->scores);
    free_array(c->sel);
    free_array(c->trows);
    free_array(c->vrows);
}

/* The widest head the grid trains: the most features any F keeps
 * (head2toe), pre_logits (linear), everything (all-*). */
static size_t widest_head(const fit_config *cfg, const lasso_data *X, const feat_layout *l)
{
    if (cfg->method == METHOD_LINEAR) return l->e[layout_find(l, "pre_logits")].dim;
    if (cfg->method != METHOD_HEAD2TOE) return X->d;
    size_t cap = 0;
    for (int f = 0; f < cfg->nfrac; f++) {
        const size_t keep = lasso_keep_count(X->d, cfg->frac[f]);
        if (keep > cap) cap = keep;
    }
    return cap;
}

static int ctx_alloc(fit_ctx *c, const lasso_data *X, const feat_layout *l, const fit_config *cfg)
{
    memset(c, 0, sizeof *c);
    c->X = X, c->l = l, c->cfg = cfg;
    const size_t n = X->n, cap = widest_head(cfg, X, l);
    size_t ncap;
    if (!(c->trows = alloc_array(n, sizeof(size_t))) || !(c->vrows = alloc_array(n, sizeof(size_t))) ||
        !(c->sel = alloc_array(cap, sizeof(int64_t))) || lasso_head_alloc(&c->hd, cap, X->k, cfg->batch))
        return -1;
    if (cfg->method == METHOD_HEAD2TOE || cfg->method == METHOD_LINEAR)
        if (size_mul(n, cap, &ncap) || !(c->xs = alloc_array(ncap, sizeof(float)))) return -1;
    if (cfg->method == METHOD_HEAD2TOE)
        if (!(c->scores = alloc_array(X->d, sizeof(double))) || lasso_head_alloc(&c->sc, X->d, X->k, cfg->batch))
            return -1;
    if (cfg->method == METHOD_LINEAR) { /* the pre_logits columns, renormalized, once */
        const layout_entry *e = &l->e[layout_find(l, "pre_logits")];
        c->nsel = cap;
        for (size_t j = 0; j < cap; j++) c->sel[j] = (int64_t)(e->offset + j);
        lasso_gather(X->x, n, X->ld, l, c->sel, cap, c->xs);
    }
    return 0;
}

/* The examples of fold f (f = CV_FOLDS: all of them, nothing validated). */
static void split_fold(fit_ctx *c, int fold)
{
    const size_t n = c->X->n;
    size_t vs = n, ve = n;
    if (fold < CV_FOLDS) fold_bounds(n, CV_FOLDS, fold, &vs, &ve);
    c->ntr = c->nval = 0;
    for (size_t i = 0; i < n; i++) {
        if (i >= vs && i < ve) c->vrows[c->nval++] = i;
        else c->trows[c->ntr++] = i;
    }
}

/* Train c->hd from a Glorot head on the trows of data (all features, or
 * the gathered selection); its accuracy on the vrows. */
static int train_head(fit_ctx *c, const lasso_data *data, const lasso_opts *o, int fold, double *acc,
                      const char *progress)
{
    lasso_head_init_glorot(&c->hd, data->d, seed_mix(c->cfg->seed, 2, (uint64_t)fold));
    if (lasso_train(&c->hd, data, c->trows, c->ntr, o, NULL, progress)) return -1;
    if (c->nval) *acc = (double)lasso_predict(&c->hd, data, c->vrows, c->nval, NULL) / (double)c->nval;
    return 0;
}

/* Head2Toe at (lr, steps, coef): one scoring run, then a head per F. */
static int point_head2toe(fit_ctx *c, const grid_point *p, const double *fracs, int nf, int fold, double *acc,
                          const char *progress)
{
    const lasso_data *X = c->X;
    const lasso_opts score = {p->lr, p->steps, p->coef, PENALTY_GROUP, c->cfg->batch};
    const lasso_opts plain = {p->lr, p->steps, 0.0, PENALTY_NONE, c->cfg->batch};
    if (lasso_scoring_run(&c->sc, X, c->trows, c->ntr, &score, seed_mix(c->cfg->seed, 1, (uint64_t)fold),
                          c->scores, progress))
        return -1;
    for (int f = 0; f < nf; f++) {
        c->nsel = lasso_keep_count(X->d, fracs[f]);
        if (lasso_select(c->scores, X->d, c->nsel, c->sel)) return -1;
        lasso_gather(X->x, X->n, X->ld, c->l, c->sel, c->nsel, c->xs);
        const lasso_data xs = {c->xs, X->n, c->nsel, c->nsel, X->y, X->k};
        if (train_head(c, &xs, &plain, fold, &acc[f], progress)) return -1;
    }
    return 0;
}

/* One (lr, steps, coef) on fold `fold` (CV_FOLDS: the final fit on all
 * examples, nothing validated): acc[f] for each F of the method (head2toe:
 * fracs[0..nf); the others: one). Afterwards c->hd (and c->sel, c->nsel)
 * hold the head of the last F. */
static int run_point(fit_ctx *c, const grid_point *p, const double *fracs, int nf, int fold, double *acc)
{
    char label[96];
    if (fold < CV_FOLDS) snprintf(label, sizeof label, "fit: fold %d lr %g steps %ld", fold + 1, p->lr, p->steps);
    else snprintf(label, sizeof label, "fit: final head lr %g steps %ld", p->lr, p->steps);
    const char *progress = c->cfg->quiet ? NULL : label;
    const fit_method m = c->cfg->method;
    split_fold(c, fold);
    if (m == METHOD_HEAD2TOE) return point_head2toe(c, p, fracs, nf, fold, acc, progress);
    if (m == METHOD_LINEAR) {
        const lasso_data xs = {c->xs, c->X->n, c->nsel, c->nsel, c->X->y, c->X->k};
        const lasso_opts plain = {p->lr, p->steps, 0.0, PENALTY_NONE, c->cfg->batch};
        return train_head(c, &xs, &plain, fold, acc, progress);
    }
    const lasso_penalty pen = m == METHOD_ALL_L1 ? PENALTY_L1 : m == METHOD_ALL_L2 ? PENALTY_L2 : PENALTY_GROUP;
    const lasso_opts all = {p->lr, p->steps, p->coef, pen, c->cfg->batch};
    return train_head(c, c->X, &all, fold, acc, progress);
}

/* ==========================================================================
 * Cross-validation and the final head */

/* The points in grid order (lr, steps, coef, F), accuracies NaN. */
static int make_points(const fit_config *cfg, size_t D, size_t linear_dim, cv_result *r)
{
    const grid_axes a = axes_of(cfg);
    r->npoints = grid_points(cfg);
    if (!(r->points = calloc((size_t)r->npoints, sizeof *r->points))) {
        set_error("out of memory");
        return -1;
    }
    grid_point *g = r->points;
    for (int i = 0; i < cfg->nlr; i++)
        for (int s = 0; s < cfg->nsteps; s++)
            for (int q = 0; q < a.ncoef; q++)
                for (int f = 0; f < a.nfrac; f++, g++) {
                    *g = (grid_point){cfg->lr[i], cfg->steps[s], a.coef[q], a.frac[f], D, NAN, NAN, {0}};
                    if (cfg->method == METHOD_HEAD2TOE) g->features = lasso_keep_count(D, a.frac[f]);
                    if (cfg->method == METHOD_LINEAR) g->features = linear_dim;
                    for (int k = 0; k < CV_FOLDS; k++) g->fold_acc[k] = NAN;
                }
    return 0;
}

static void print_fold(const fit_config *cfg, const grid_point *p, int fold, const double *acc, int nf, double secs)
{
    fprintf(stderr, "fit: cv fold %d/%d lr %g steps %ld", fold + 1, CV_FOLDS, p->lr, p->steps);
    if (cfg->method != METHOD_LINEAR) fprintf(stderr, " coef %g", p->coef);
    fprintf(stderr, ": val acc");
    for (int f = 0; f < nf; f++) {
        if (cfg->method == METHOD_HEAD2TOE) fprintf(stderr, " F=%g", p[f].frac);
        fprintf(stderr, " %.4f", acc[f]);
    }
    fprintf(stderr, " (%.1f s)\n", secs);
}

/* Means and standard deviations over the folds; best = the highest mean. */
void cv_summarize(cv_result *r)
{
    r->best = 0;
    for (int p = 0; p < r->npoints; p++) {
        grid_point *g = &r->points[p];
        double m = 0.0, v = 0.0;
        for (int k = 0; k < CV_FOLDS; k++) m += g->fold_acc[k];
        m /= CV_FOLDS;
        for (int k = 0; k < CV_FOLDS; k++) v += (g->fold_acc[k] - m) * (g->fold_acc[k] - m);
        g->mean = m;
        g->std = sqrt(v / CV_FOLDS);
        if (g->mean > r->points[r->best].mean) r->best = p; /* ties: the first */
    }
}

int cv_units(const fit_config *cfg)
{
    const grid_axes a = axes_of(cfg);
    return does_cv(cfg) ? cfg->nlr * cfg->nsteps * a.ncoef * CV_FOLDS : 0;
}

int cv_run_shard(const lasso_data *X, const feat_layout *l, const fit_config *cfg, const cv_shard *s,
                 cv_result *r)
{
    memset(r, 0, sizeof *r);
    fit_ctx c = {0};
    const grid_axes a = axes_of(cfg);
    if (fit_check(X, l, cfg)) return -1;
    const int alloc_failed = ctx_alloc(&c, X, l, cfg);
    if (alloc_failed || make_points(cfg, X->d, c.nsel, r)) goto fail;
    r->did_cv = does_cv(cfg);
    long u = 0; /* the unit: a row of the grid (F is swept inside it) and a fold */
    for (grid_point *p = r->points; r->did_cv && p < r->points + r->npoints; p += a.nfrac)
        for (int fold = 0; fold < CV_FOLDS; fold++, u++) {
            if ((s->first + u) % s->n != s->k) continue;
            double acc[GRID_MAX], t0 = now_seconds();
            if (run_point(&c, p, a.frac, a.nfrac, fold, acc)) goto fail;
            for (int f = 0; f < a.nfrac; f++) p[f].fold_acc[fold] = acc[f];
            if (!cfg->quiet) print_fold(cfg, p, fold, acc, a.nfrac, now_seconds() - t0);
        }
    ctx_free(&c);
    return 0;
fail:
    if (alloc_failed) set_error("%s (n %zu, D %zu, K %d)", last_error(), X->n, X->d, X->k);
    ctx_free(&c);
    cv_result_free(r);
    return -1;
}

int cv_run(const lasso_data *X, const feat_layout *l, const fit_config *cfg, cv_result *r)
{
    const cv_shard all = {0, 1, 0};
    if (cv_run_shard(X, l, cfg, &all, r)) return -1;
    if (r->did_cv) cv_summarize(r);
    return 0;
}

void cv_result_free(cv_result *r)
{
    free(r->points);
    memset(r, 0, sizeof *r);
}

int fit_final(const lasso_data *X, const feat_layout *l, const fit_config *cfg, const grid_point *p, fitted_head *h)
{
    memset(h, 0, sizeof *h);
    fit_ctx c = {0};
    double unused;                                  /* nothing is validated */
    if (fit_check(X, l, cfg) || ctx_alloc(&c, X, l, cfg) || run_point(&c, p, &p->frac, 1, CV_FOLDS, &unused)) {
        ctx_free(&c);
        return -1;
    }
    const int selects = cfg->method == METHOD_HEAD2TOE || cfg->method == METHOD_LINEAR;
    const lasso_data xs = {c.xs, X->n, c.nsel, c.nsel, X->y, X->k};
    h->train_acc = (double)lasso_predict(&c.hd, selects ? &xs : X, c.trows, X->n, NULL) / (double)X->n;
    h->d = X->d;
    h->k = X->k;
    h->nsel = selects ? c.nsel : X->d;
    if (selects) {
        h->selected = c.sel;
        c.sel = NULL;
    } else if ((h->selected = alloc_array(X->d, sizeof(int64_t)))) {
        for (size_t j = 0; j < X->d; j++) h->selected[j] = (int64_t)j;
    }
    h->w = c.hd.w;
    h->b = c.hd.b;
    c.hd.w = c.hd.b = NULL;
    ctx_free(&c);
    if (!h->selected) {
        fitted_head_free(h);
        return -1;
    }
    return 0;
}

/* ==========================================================================
 * Merging the shards' results */

int cv_prepare(const lasso_data *X, const feat_layout *l, const fit_config *cfg, cv_result *r)
{
    memset(r, 0, sizeof *r);
    if (fit_check(X, l, cfg)) return -1;
    const size_t linear_dim = cfg->method == METHOD_LINEAR ? widest_head(cfg, X, l) : 0;
    if (make_points(cfg, X->d, linear_dim, r)) return -1;
    r->did_cv = does_cv(cfg);
    return 0;
}

int cv_merge(const cv_unit_result *rows, size_t n, fit_method m, long target, cv_result *r)
{
    if (!r->did_cv) return 0; /* a single grid point, not cross-validated: nothing was split */
    for (size_t i = 0; i < n; i++) {
        const cv_unit_result *u = &rows[i];
        if (u->method != m || u->target != target) continue;
        if (u->point < 0 || u->point >= r->npoints || u->fold < 0 || u->fold >= CV_FOLDS) {
            set_error("%s, T %ld: grid point %d fold %d is not in this grid", method_names[m], target, u->point,
                      u->fold);
            return -1;
        }
        double *a = &r->points[u->point].fold_acc[u->fold];
        if (!isnan(*a)) {
            set_error("%s, T %ld: grid point %d fold %d comes twice (the same shard collected twice?)",
                      method_names[m], target, u->point, u->fold);
            return -1;
        }
        *a = u->acc;
    }
    for (int p = 0; p < r->npoints; p++)
        for (int f = 0; f < CV_FOLDS; f++)
            if (isnan(r->points[p].fold_acc[f])) {
                set_error("%s, T %ld: no shard has grid point %d (lr %g, steps %ld, coef %g, F %g) fold %d",
                          method_names[m], target, p, r->points[p].lr, r->points[p].steps, r->points[p].coef,
                          r->points[p].frac, f + 1);
                return -1;
            }
    cv_summarize(r);
    return 0;
}

static void append_list(char *out, size_t cap, const char *name, const double *v, int n)
{
    size_t len = strlen(out);
    len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, " %s ", name);
    for (int i = 0; i < n && len < cap; i++) len += (size_t)snprintf(out + len, cap - len, "%s%.17g", i ? "," : "", v[i]);
}

void cv_grid_id(const fit_config *cfg, size_t n, size_t d, int k, char *out, size_t cap)
{
    const grid_axes a = axes_of(cfg);
    double steps[GRID_MAX];
    for (int i = 0; i < cfg->nsteps; i++) steps[i] = (double)cfg->steps[i];
    snprintf(out, cap, "%s n %zu D %zu K %d seed %llu batch %d", method_names[cfg->method], n, d, k,
             (unsigned long long)cfg->seed, cfg->batch);
    append_list(out, cap, "lr", cfg->lr, cfg->nlr);
    append_list(out, cap, "steps", steps, cfg->nsteps);
    append_list(out, cap, "coef", a.coef, a.ncoef);
    append_list(out, cap, "fraction", a.frac, a.nfrac);
}
