/* cv.c: model selection (docs/ALGORITHM.md §9, §10). See cv.h.
 *
 * One grid point of one fold: Head2Toe runs one group-lasso scoring run on
 * the fold's training examples and then, for each fraction F, selects,
 * gathers and renormalizes the kept features and trains a fresh head on
 * them without penalty (same lr and steps); Linear trains a head on the
 * pre_logits location; All-l* a head on all features with its penalty.
 * Seeds: the scoring head of fold f (f = 5 for the final fit) is drawn from
 * seed_mix(seed, 1, f) and the trained head from seed_mix(seed, 2, f), so
 * every grid point of a fold starts alike (§9). The scoring runs of a fold
 * with the same steps are trained together (lasso_train_many, §11), with
 * the same bits as one by one.
 *
 * Head2Toe's other selection options (§15): another score instead of the
 * group-lasso row norm (scores.c), the mean of several scoring runs, scores
 * moved towards their location's mean, an offset into the ranking, or a
 * fixed selection (--select-from) trained like Linear's pre_logits
 * columns. With train_fraction < 1 every method uses a seeded stratified
 * subset of the examples, and the folds are cut from that subset (§16). */
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

/* Whether the method trains on one set of gathered columns (Linear's
 * pre_logits, or a --select-from selection) instead of scoring features. */
static int gathers_once(const fit_config *cfg)
{
    return cfg->method == METHOD_LINEAR || (cfg->method == METHOD_HEAD2TOE && cfg->fixed_sel);
}

static grid_axes axes_of(const fit_config *cfg)
{
    static const double zero = 0.0, one = 1.0;
    grid_axes a = {cfg->ncoef, cfg->nfrac, cfg->coef, cfg->frac};
    if (gathers_once(cfg)) a.ncoef = 1, a.coef = &zero;
    if (cfg->method != METHOD_HEAD2TOE || cfg->fixed_sel) a.nfrac = 1, a.frac = &one;
    return a;
}

static int check_grid(const fit_config *cfg)
{
    const char *what = NULL;
    const int coefs = !gathers_once(cfg), fracs = cfg->method == METHOD_HEAD2TOE && !cfg->fixed_sel;
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

int fit_check_features(const fit_config *cfg, size_t d)
{
    for (int f = 0; cfg->method == METHOD_HEAD2TOE && !cfg->fixed_sel && f < cfg->nfrac; f++)
        if (cfg->keep_offset > d - lasso_keep_count(d, cfg->frac[f])) {
            set_error("--keep-offset %zu: with F %g the ranks %zu .. %zu are kept, beyond the %zu features",
                      cfg->keep_offset, cfg->frac[f], cfg->keep_offset,
                      cfg->keep_offset + lasso_keep_count(d, cfg->frac[f]) - 1, d);
            return -1;
        }
    return 0;
}

/* The options of docs/ALGORITHM.md §15 and §16: in range, given to the
 * method they apply to, and consistent with the data. */
static int check_selection(const lasso_data *X, const fit_config *cfg)
{
    const int plain = cfg->score == SCORE_L2 && cfg->average_over <= 1 && cfg->keep_offset == 0 &&
                      cfg->interpolation == 0;
    if (!(cfg->train_fraction >= 0 && cfg->train_fraction <= 1) || cfg->average_over < 0 ||
        cfg->average_over > 100 || !(cfg->interpolation >= 0 && cfg->interpolation <= 1)) {
        set_error("out of range: --train-fraction in (0, 1], --average-over in 1..100, --score-interpolation in "
                  "[0, 1]");
        return -1;
    }
    if (cfg->method != METHOD_HEAD2TOE && (!plain || cfg->fixed_sel)) {
        set_error("--score, --average-over, --keep-offset, --score-interpolation and --select-from apply to "
                  "--method head2toe only");
        return -1;
    }
    if (cfg->fixed_sel) {
        int ok = plain && cfg->nfixed >= 1;
        for (size_t j = 0; ok && j < cfg->nfixed; j++)
            ok = cfg->fixed_sel[j] >= 0 && (size_t)cfg->fixed_sel[j] < X->d && (j == 0 || cfg->fixed_sel[j] > cfg->fixed_sel[j - 1]);
        if (!ok) {
            set_error("--select-from: expected 1 or more ascending feature indices below %zu, and no --score, "
                      "--average-over, --keep-offset or --score-interpolation (nothing is scored)", X->d);
            return -1;
        }
        return 0;
    }
    if (fit_check_features(cfg, X->d)) return -1;
    if (cfg->method == METHOD_HEAD2TOE && cfg->score == SCORE_CHI2) {
        size_t *all = alloc_array(X->n, sizeof *all);
        if (!all) return -1;
        for (size_t i = 0; i < X->n; i++) all[i] = i;
        const int rc = scores_check_data(SCORE_CHI2, X, all, X->n);
        free_array(all);
        return rc;
    }
    return 0;
}

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
    if (does_cv(cfg) && fit_examples(X, cfg->train_fraction) < CV_FOLDS) {
        set_error("cross-validation needs at least %d examples, got %zu", CV_FOLDS,
                  fit_examples(X, cfg->train_fraction));
        return -1;
    }
    return check_selection(X, cfg);
}

/* ==========================================================================
 * The examples of a fit and its folds */

static uint64_t seed_mix(uint64_t seed, uint64_t what, uint64_t fold)
{
    return seed ^ (what * 0x9E3779B97F4A7C15ull) ^ ((fold + 1) * 0xD1B54A32D192ED03ull);
}

/* Examples kept of a class of m with train_fraction f (§16): int(m f), at least 1. */
static size_t class_take(size_t m, double f)
{
    const size_t t = (size_t)((double)m * f);
    return t < 1 ? 1 : t > m ? m : t;
}

static int subset_wanted(double f) { return f > 0 && f < 1; }

size_t fit_examples(const lasso_data *X, double f)
{
    if (!subset_wanted(f)) return X->n;
    size_t *count = alloc_zeros((size_t)X->k, sizeof *count), total = 0;
    if (!count) return 0;
    for (size_t i = 0; i < X->n; i++) count[X->y[i]]++;
    for (int c = 0; c < X->k; c++) total += count[c] ? class_take(count[c], f) : 0;
    free_array(count);
    return total;
}

/* base[0..*nbase): the examples the fit uses, ascending (§16). All of them;
 * or, with train_fraction f in (0, 1), from each class's examples (in
 * order) class_take of them, drawn by a partial Fisher-Yates shuffle with
 * the RNG seeded seed_mix(seed, 3, 0), for classes 0, 1, .. in turn. */
int fit_rows(const lasso_data *X, const fit_config *cfg, size_t *base, size_t *nbase)
{
    const size_t n = X->n;
    *nbase = 0;
    if (!subset_wanted(cfg->train_fraction)) {
        for (size_t i = 0; i < n; i++) base[(*nbase)++] = i;
        return 0;
    }
    unsigned char *keep = alloc_zeros(n, 1);
    size_t *idx = alloc_array(n, sizeof *idx);
    if (!keep || !idx) {
        free_array(keep);
        free_array(idx);
        return -1;
    }
    rng_t r;
    rng_seed(&r, seed_mix(cfg->seed, 3, 0));
    for (int k = 0; k < X->k; k++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (X->y[i] == k) idx[m++] = i;
        const size_t take = m ? class_take(m, cfg->train_fraction) : 0;
        for (size_t i = 0; i < take; i++) {
            const size_t j = i + (size_t)(rng_u64(&r) % (uint64_t)(m - i)), t = idx[i];
            idx[i] = idx[j], idx[j] = t;
            keep[idx[i]] = 1;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (keep[i]) base[(*nbase)++] = i;
    free_array(keep);
    free_array(idx);
    return 0;
}

void fold_bounds(size_t n, int nfolds, int fold, size_t *start, size_t *end)
{
    *start = (size_t)fold * n / (size_t)nfolds;
    *end = (size_t)(fold + 1) * n / (size_t)nfolds;
}

/* ==========================================================================
 * One grid point of one fold */

/* Every buffer of a fit, sized once for the largest head of the grid. */
typedef struct {
    const lasso_data *X;
    const feat_layout *l;
    const fit_config *cfg;
    lasso_head sc[CV_STACK]; /* head2toe with scoring runs: the scoring heads, [D, K] (sc[0] alone) */
    int nsc;               /* how many are allocated: the scoring runs trained together (stack_size) */
    lasso_head hd;         /* the head that is trained and validated */
    float *xs;             /* [n, nsel] the selected features, renormalized (head2toe, linear) */
    double *scores;        /* [D] head2toe */
    double *stacked[CV_STACK]; /* [D] the scores of each run trained together (when nsc > 1) */
    double *run;           /* [D] one run's scores (--average-over) */
    int64_t *sel;          /* [nsel] */
    size_t nsel;
    size_t *base, nbase;   /* [n] the examples the fit uses (§16), ascending */
    size_t *trows, *vrows; /* [n] training and validation examples */
    size_t ntr, nval;
    lasso_data sub;        /* a --train-fraction subset copied into rows of its own (X then points here) */
    float *subx;           /* [nbase, D] */
    int *suby;             /* [nbase] */
} fit_ctx;

static void ctx_free(fit_ctx *c)
{
    for (int i = 0; i < CV_STACK; i++) {
        lasso_head_free(&c->sc[i]);
        free_array(c->stacked[i]);
    }
    lasso_head_free(&c->hd);
    free_array(c->xs);
    free_array(c->scores);
    free_array(c->run);
    free_array(c->sel);
    free_array(c->base);
    free_array(c->trows);
    free_array(c->vrows);
    free_array(c->subx);
    free_array(c->suby);
}

/* With a --train-fraction subset, c->X becomes a copy of its rows, in order,
 * so that batches are runs of consecutive rows: the fused step calls gemm
 * once per run of a batch (§11), and a scattered subset would make that one
 * call per row, several times slower. */
static int compact_subset(fit_ctx *c)
{
    const lasso_data *X = c->X;
    size_t size;
    if (c->nbase == X->n) return 0;
    if (size_mul(c->nbase, X->d, &size) || !(c->subx = alloc_array(size, sizeof(float))) ||
        !(c->suby = alloc_array(c->nbase, sizeof(int))))
        return -1;
    for (size_t i = 0; i < c->nbase; i++) {
        memcpy(c->subx + i * X->d, X->x + c->base[i] * X->ld, X->d * sizeof(float));
        c->suby[i] = X->y[c->base[i]];
        c->base[i] = i;
    }
    c->sub = (lasso_data){c->subx, c->nbase, X->d, X->d, c->suby, X->k};
    c->X = &c->sub;
    return 0;
}

/* The widest head the grid trains: the most features any F keeps
 * (head2toe), the fixed selection, pre_logits (linear), everything (all-*). */
static size_t widest_head(const fit_config *cfg, const lasso_data *X, const feat_layout *l)
{
    if (cfg->method == METHOD_LINEAR) return l->e[layout_find(l, "pre_logits")].dim;
    if (cfg->method != METHOD_HEAD2TOE) return X->d;
    if (cfg->fixed_sel) return cfg->nfixed;
    size_t cap = 0;
    for (int f = 0; f < cfg->nfrac; f++) {
        const size_t keep = lasso_keep_count(X->d, cfg->frac[f]);
        if (keep > cap) cap = keep;
    }
    return cap;
}

/* The columns gathered once (gathers_once): Linear's pre_logits or the
 * fixed selection, renormalized per location, for every example. */
static void gather_once(fit_ctx *c)
{
    const fit_config *cfg = c->cfg;
    if (cfg->fixed_sel) {
        memcpy(c->sel, cfg->fixed_sel, cfg->nfixed * sizeof *c->sel);
    } else {
        const layout_entry *e = &c->l->e[layout_find(c->l, "pre_logits")];
        for (size_t j = 0; j < e->dim; j++) c->sel[j] = (int64_t)(e->offset + j);
    }
    c->nsel = widest_head(cfg, c->X, c->l);
    lasso_gather(c->X->x, c->X->n, c->X->ld, c->l, c->sel, c->nsel, c->xs);
}

/* How many head2toe scoring runs of one fold CV trains together (§11):
 * those of the grid rows with the same steps, at most CV_STACK, and no more
 * than CV_STACK_BYTES of heads (W, Adam's m and v, a gradient: 16 D K
 * bytes each). 1: one at a time (also for --average-over, which averages
 * runs of several seeds). */
static int stack_size(const fit_config *cfg, const lasso_data *X)
{
    const grid_axes a = axes_of(cfg);
    int n = cfg->nlr * a.ncoef;
    if (n > CV_STACK) n = CV_STACK;
    const double head = 16.0 * (double)X->d * (double)X->k;
    while (n > 1 && n * head > CV_STACK_BYTES) n--;
    return does_cv(cfg) && cfg->average_over <= 1 ? n : 1;
}

static int ctx_alloc(fit_ctx *c, const lasso_data *X, const feat_layout *l, const fit_config *cfg, int stack)
{
    memset(c, 0, sizeof *c);
    c->X = X, c->l = l, c->cfg = cfg;
    const size_t n = X->n, cap = widest_head(cfg, X, l);
    const int scoring = cfg->method == METHOD_HEAD2TOE && !cfg->fixed_sel;
    size_t ncap;
    if (!(c->trows = alloc_array(n, sizeof(size_t))) || !(c->vrows = alloc_array(n, sizeof(size_t))) ||
        !(c->base = alloc_array(n, sizeof(size_t))) || fit_rows(X, cfg, c->base, &c->nbase) || compact_subset(c) ||
        !(c->sel = alloc_array(cap, sizeof(int64_t))) || lasso_head_alloc(&c->hd, cap, X->k, cfg->batch))
        return -1;
    if (cfg->method == METHOD_HEAD2TOE || cfg->method == METHOD_LINEAR)
        if (size_mul(n, cap, &ncap) || !(c->xs = alloc_array(ncap, sizeof(float)))) return -1;
    if (scoring && (!(c->scores = alloc_array(X->d, sizeof(double))) || !(c->run = alloc_array(X->d, sizeof(double)))))
        return -1;
    c->nsc = scoring && score_uses_head(cfg->score) ? (stack ? stack_size(cfg, X) : 1) : 0;
    for (int i = 0; i < c->nsc; i++)
        if (lasso_head_alloc(&c->sc[i], X->d, X->k, cfg->batch) ||
            (c->nsc > 1 && !(c->stacked[i] = alloc_array(X->d, sizeof(double)))))
            return -1;
    if (gathers_once(cfg)) gather_once(c);
    return 0;
}

/* The examples of fold f (f = CV_FOLDS: all of them, nothing validated):
 * the folds are consecutive slices of the fit's examples (c->base). */
static void split_fold(fit_ctx *c, int fold)
{
    const size_t n = c->nbase;
    size_t vs = n, ve = n;
    if (fold < CV_FOLDS) fold_bounds(n, CV_FOLDS, fold, &vs, &ve);
    c->ntr = c->nval = 0;
    for (size_t i = 0; i < n; i++) {
        if (i >= vs && i < ve) c->vrows[c->nval++] = c->base[i];
        else c->trows[c->ntr++] = c->base[i];
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

/* c->scores: the scores of fold `fold` on its training examples (§7, §15).
 * Run j of --average-over K uses seed + j: a group-lasso scoring run
 * (coefficient p->coef) whose head gives the score, or the score computed
 * from the examples; the runs' scores are added in order and divided by K
 * (a score that uses no seed is computed once). Then, with
 * --score-interpolation c, each is moved towards its location's mean. */
static int fold_scores(fit_ctx *c, const grid_point *p, int fold, const char *progress)
{
    const fit_config *cfg = c->cfg;
    const lasso_data *X = c->X;
    const lasso_opts score = {p->lr, p->steps, p->coef, PENALTY_GROUP, cfg->batch};
    const int runs = score_uses_seed(cfg->score) && cfg->average_over > 1 ? cfg->average_over : 1;
    for (int j = 0; j < runs; j++) {
        double *s = j == 0 ? c->scores : c->run;
        const uint64_t seed = seed_mix(cfg->seed + (uint64_t)j, 1, (uint64_t)fold);
        if (score_uses_head(cfg->score)) {
            if (lasso_scoring_run(&c->sc[0], X, c->trows, c->ntr, &score, seed, s, progress)) return -1;
            if (cfg->score != SCORE_L2) scores_from_head(cfg->score, c->sc[0].w, X->d, X->k, c->l, s);
        } else if (scores_from_data(cfg->score, X, c->trows, c->ntr, seed, s)) {
            return -1;
        }
        for (size_t i = 0; j > 0 && i < X->d; i++) c->scores[i] += s[i];
    }
    for (size_t i = 0; runs > 1 && i < X->d; i++) c->scores[i] /= (double)runs;
    if (cfg->interpolation > 0) scores_interpolate(c->scores, c->l, cfg->interpolation);
    return 0;
}

/* Head2Toe at (lr, steps) given the fold's scores: a head per F on the
 * features at ranks keep_offset .. keep_offset + int(D F) - 1. */
static int heads_per_fraction(fit_ctx *c, const double *scores, const grid_point *p, const double *fracs, int nf,
                              int fold, double *acc, const char *progress)
{
    const lasso_data *X = c->X;
    const lasso_opts plain = {p->lr, p->steps, 0.0, PENALTY_NONE, c->cfg->batch};
    for (int f = 0; f < nf; f++) {
        c->nsel = lasso_keep_count(X->d, fracs[f]);
        if (lasso_select_offset(scores, X->d, c->cfg->keep_offset, c->nsel, c->sel)) return -1;
        lasso_gather(X->x, X->n, X->ld, c->l, c->sel, c->nsel, c->xs);
        const lasso_data xs = {c->xs, X->n, c->nsel, c->nsel, X->y, X->k};
        if (train_head(c, &xs, &plain, fold, &acc[f], progress)) return -1;
    }
    return 0;
}

/* Head2Toe at (lr, steps, coef): the fold's scores, then a head per F. */
static int point_head2toe(fit_ctx *c, const grid_point *p, const double *fracs, int nf, int fold, double *acc,
                          const char *progress)
{
    if (fold_scores(c, p, fold, progress)) return -1;
    return heads_per_fraction(c, c->scores, p, fracs, nf, fold, acc, progress);
}

/* The scoring runs of n grid rows of one fold with the same steps, trained
 * together (lasso_train_many: bitwise what fold_scores gives each alone,
 * with X read once per step for all): c->stacked[i] for pts[i]. */
static int stacked_scores(fit_ctx *c, grid_point *const *pts, int n, int fold, const char *progress)
{
    const fit_config *cfg = c->cfg;
    const lasso_data *X = c->X;
    lasso_head *h[CV_STACK];
    lasso_opts o[CV_STACK];
    for (int i = 0; i < n; i++) {
        h[i] = &c->sc[i];
        lasso_head_init_glorot(h[i], X->d, seed_mix(cfg->seed, 1, (uint64_t)fold));
        o[i] = (lasso_opts){pts[i]->lr, pts[i]->steps, pts[i]->coef, PENALTY_GROUP, cfg->batch};
    }
    if (lasso_train_many(h, o, n, X, c->trows, c->ntr, progress)) return -1;
    for (int i = 0; i < n; i++) {
        lasso_scores(h[i]->w, X->d, X->k, c->stacked[i]);
        if (cfg->score != SCORE_L2) scores_from_head(cfg->score, h[i]->w, X->d, X->k, c->l, c->stacked[i]);
        if (cfg->interpolation > 0) scores_interpolate(c->stacked[i], c->l, cfg->interpolation);
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
    if (gathers_once(c->cfg)) { /* linear, or head2toe on a given selection */
        const lasso_data xs = {c->xs, c->X->n, c->nsel, c->nsel, c->X->y, c->X->k};
        const lasso_opts plain = {p->lr, p->steps, 0.0, PENALTY_NONE, c->cfg->batch};
        return train_head(c, &xs, &plain, fold, acc, progress);
    }
    if (m == METHOD_HEAD2TOE) return point_head2toe(c, p, fracs, nf, fold, acc, progress);
    const lasso_penalty pen = m == METHOD_ALL_L1 ? PENALTY_L1 : m == METHOD_ALL_L2 ? PENALTY_L2 : PENALTY_GROUP;
    const lasso_opts all = {p->lr, p->steps, p->coef, pen, c->cfg->batch};
    return train_head(c, c->X, &all, fold, acc, progress);
}

/* ==========================================================================
 * Cross-validation and the final head */

/* The points in grid order (lr, steps, coef, F), accuracies NaN;
 * gathered: the columns of a method that gathers them once. */
static int make_points(const fit_config *cfg, size_t D, size_t gathered, cv_result *r)
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
                    if (gathers_once(cfg)) g->features = gathered;
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

/* The units of one fold whose rows are pts[0..n) (head2toe: the same
 * steps, scored together when there are several; otherwise one by one). */
static int run_units(fit_ctx *c, grid_point *const *pts, int n, int fold)
{
    const grid_axes a = axes_of(c->cfg);
    double acc[CV_STACK][GRID_MAX], t0 = now_seconds(), t;
    char label[96];
    snprintf(label, sizeof label, "fit: fold %d steps %ld, %d runs together", fold + 1, pts[0]->steps, n);
    if (n > 1) {
        split_fold(c, fold);
        if (stacked_scores(c, pts, n, fold, c->cfg->quiet ? NULL : label)) return -1;
    }
    for (int i = 0; i < n; i++, t0 = t) {
        if (n == 1 && run_point(c, pts[i], a.frac, a.nfrac, fold, acc[i])) return -1;
        if (n > 1 && heads_per_fraction(c, c->stacked[i], pts[i], a.frac, a.nfrac, fold, acc[i], NULL)) return -1;
        for (int f = 0; f < a.nfrac; f++) pts[i][f].fold_acc[fold] = acc[i][f];
        t = now_seconds();
        if (!c->cfg->quiet) print_fold(c->cfg, pts[i], fold, acc[i], a.nfrac, t - t0);
    }
    return 0;
}

int cv_run_shard(const lasso_data *X, const feat_layout *l, const fit_config *cfg, const cv_shard *s,
                 cv_result *r)
{
    memset(r, 0, sizeof *r);
    fit_ctx c = {0};
    const grid_axes a = axes_of(cfg);
    if (fit_check(X, l, cfg)) return -1;
    const int alloc_failed = ctx_alloc(&c, X, l, cfg, 1);
    if (alloc_failed || make_points(cfg, X->d, c.nsel, r)) goto fail;
    r->did_cv = does_cv(cfg);
    /* The unit: a row of the grid (lr, steps, coef; F is swept inside it)
     * and a fold, u = row * CV_FOLDS + fold. This shard's units of one fold
     * with the same steps go to run_units together, c.nsc at a time. */
    const int nrows = r->did_cv ? r->npoints / a.nfrac : 0;
    for (int fold = 0; fold < CV_FOLDS; fold++)
        for (int st = 0; st < cfg->nsteps; st++) {
            grid_point *pts[CV_STACK];
            int n = 0;
            for (int row = 0; row < nrows; row++) {
                grid_point *p = r->points + row * a.nfrac;
                const long u = (long)row * CV_FOLDS + fold;
                if (row / a.ncoef % cfg->nsteps != st || (s->first + u) % s->n != s->k) continue;
                pts[n++] = p;
                if (n == (c.nsc > 1 ? c.nsc : 1)) {
                    if (run_units(&c, pts, n, fold)) goto fail;
                    n = 0;
                }
            }
            if (n > 0 && run_units(&c, pts, n, fold)) goto fail;
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
    if (fit_check(X, l, cfg) || ctx_alloc(&c, X, l, cfg, 0) || run_point(&c, p, &p->frac, 1, CV_FOLDS, &unused)) {
        ctx_free(&c);
        return -1;
    }
    const int selects = cfg->method == METHOD_HEAD2TOE || cfg->method == METHOD_LINEAR;
    const lasso_data *Xc = c.X; /* X, or its --train-fraction rows */
    const lasso_data xs = {c.xs, Xc->n, c.nsel, c.nsel, Xc->y, Xc->k};
    h->train_acc = (double)lasso_predict(&c.hd, selects ? &xs : Xc, c.trows, c.ntr, NULL) / (double)c.ntr;
    h->examples = c.ntr;
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

int fit_scores(const lasso_data *X, const feat_layout *l, const fit_config *cfg, const grid_point *p, double *s,
               float *w)
{
    fit_ctx c = {0};
    if (fit_check(X, l, cfg)) return -1;
    if (cfg->method != METHOD_HEAD2TOE || cfg->fixed_sel) {
        set_error("scores: only --method head2toe without --select-from scores features");
        return -1;
    }
    int rc = ctx_alloc(&c, X, l, cfg, 0);
    if (!rc) {
        split_fold(&c, CV_FOLDS);
        rc = fold_scores(&c, p, CV_FOLDS, NULL);
    }
    if (!rc) {
        memcpy(s, c.scores, X->d * sizeof *s);
        if (w && score_uses_head(cfg->score)) memcpy(w, c.sc[0].w, X->d * (size_t)X->k * sizeof *w);
    }
    ctx_free(&c);
    return rc;
}
