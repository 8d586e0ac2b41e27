/* experiments.c: `h2t demo --experiments`, the paper's analysis experiments
 * in miniature (docs/ALGORITHM.md §17). See experiments.h. Sections:
 *   features and heads   a task's features at several T, a head at a point
 *                        on a selection, its test accuracy
 *   reference fits       Linear and Head2Toe, 5-fold CV over the demo grid:
 *                        the hyperparameters every experiment reuses
 *   the experiments      one function each, on one task's features
 *   figures              one SVG (and PNG) per experiment
 *   experiments.md       the claim, what the miniature shows, the verdict
 *
 * Every experiment trains at the task's reference point (no further CV)
 * and reports test accuracy on the task's test images, as the paper's
 * figures do. Work per task: features at T/4, T, 4T in one backbone pass
 * per split; one scoring run at the reference point shared by Fig. 6 and
 * Fig. 11; everything else as §17 lists. */
#include "experiments.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"
#include "headio.h"
#include "scores.h"
#include "svg.h"
#include "util.h"

const char *const experiment_names[] = {"fig6",  "fig7-transfer", "fig7-scaling", "fig11-overlap", "fig11-offset",
                                        "fig13", "fig4",          "table6",       "table7",        NULL};
enum { EX_FIG6, EX_TRANSFER, EX_SCALING, EX_OVERLAP, EX_OFFSET, EX_DATA, EX_ONE_LOC, EX_TAPS, EX_CLS, EX_N };

#define NT 3        /* target sizes of the scaling curve: T/4, T, 4T (index 1: the demo's T) */
#define NLOCF 3     /* fractions of the locations: 1/16, 1/4, 1 */
#define NDATA 4     /* fractions of the training data: 0.1, 0.25, 0.5, 1 */
#define NOFF 6      /* offsets 0, k, 2k, 4k, 8k, 16k (those that fit) */
#define NVAR 4      /* Table 6: post-activation, pre-activation, pre-normalization, post + input */
#define NKIND 3     /* Fig. 6: feature-wise (l2), layer-wise, layer-wise (group) */
#define PATH_CAP 1100

static const long loc_every[NLOCF] = {16, 4, 1};
static const double data_frac[NDATA] = {0.1, 0.25, 0.5, 1.0};
static const score_kind fig6_kind[NKIND] = {SCORE_L2, SCORE_LAYER, SCORE_LAYER_GROUP};
static const char *const fig6_name[NKIND] = {"feature-wise (l2)", "layer-wise", "layer-wise (group)"};
static const char *const var_name[NVAR] = {"post-activation", "pre-activation", "pre-normalization",
                                           "post-activation + input"};

int experiments_check(const char *list)
{
    const char *it;
    size_t len;
    if (strcmp(list, "all") == 0) return 0;
    for (const char *p = list; list_item(&p, &it, &len);) {
        int found = 0;
        for (int i = 0; experiment_names[i]; i++) found |= strlen(experiment_names[i]) == len && !strncmp(experiment_names[i], it, len);
        if (!found) {
            set_error("--experiments: no experiment '%.*s' (expected all, or a comma list of fig6, fig7-transfer, "
                      "fig7-scaling, fig11-overlap, fig11-offset, fig13, fig4, table6, table7)", (int)len, it);
            return -1;
        }
    }
    return 0;
}

static int wanted(const exp_opts *o, int e) { return strcmp(o->only, "all") == 0 || list_has(o->only, experiment_names[e]); }

/* ==========================================================================
 * Features and heads */

typedef struct {
    size_t n;
    float *x;                /* [n, lay.d] */
    feat_layout lay;
} feats;

typedef struct {
    int *ytr, *yte;
    size_t ntr, nte;
    int k;
} labels;

static void feats_free(feats *f)
{
    free_array(f->x);
    f->x = NULL;
}

/* The features of the images in path through m at T[0..nt) (every default
 * location, class tokens as cls), one backbone pass, into f[nt]. */
static int extract_feats(model *m, const char *path, const long *T, int nt, int batch, feats *f)
{
    image_source s;
    extract_target t[NT];
    extract_stats st;
    int use[MODEL_MAX_LOCATIONS], rc = -1;
    if (images_open(path, &s)) return -1;
    if (taps_parse(m, NULL, use)) goto done;
    for (int i = 0; i < nt; i++) {
        size_t size;
        f[i].n = s.n;
        if (layout_make(m, use, T[i], CLS_NORMAL, &f[i].lay) || size_mul(s.n, f[i].lay.d, &size) ||
            !(f[i].x = alloc_array(size, sizeof(float))))
            goto done;
        t[i] = (extract_target){&f[i].lay, NULL, 0, rows_to_memory, f[i].x};
    }
    rc = extract_pass(m, &s, 0, s.n, t, nt, batch, NULL, &st);
done:
    images_close(&s);
    return rc;
}

/* out = the locations of full that --tap-fraction 1/every keeps, as columns
 * copied from full (each location is normalized on its own, so these are
 * the features a pass with those locations would give). */
static int feats_subset(const model *m, const feats *full, long T, long every, feats *out)
{
    int use[MODEL_MAX_LOCATIONS];
    size_t size;
    if (taps_parse(m, NULL, use)) return -1;
    taps_thin(m, every, use);
    if (layout_make(m, use, T, CLS_NORMAL, &out->lay) || size_mul(full->n, out->lay.d, &size) ||
        !(out->x = alloc_array(size, sizeof(float))))
        return -1;
    out->n = full->n;
    for (int e = 0; e < out->lay.n; e++) {
        const layout_entry *src = &full->lay.e[layout_find(&full->lay, out->lay.e[e].name)];
        for (size_t r = 0; r < full->n; r++)
            memcpy(out->x + r * out->lay.d + out->lay.e[e].offset, full->x + r * full->lay.d + src->offset,
                   src->dim * sizeof(float));
    }
    return 0;
}

/* Test accuracy of h (fitted on te's layout) on the test features te. */
static int head_test(const fitted_head *h, const feats *te, const int *y, double *acc)
{
    float *xs = alloc_array(te->n * h->nsel, sizeof(float)), *z = alloc_array(te->n * (size_t)h->k, sizeof(float));
    int *pred = alloc_array(te->n, sizeof(int)), rc = -1;
    if (xs && z && pred) {
        lasso_gather(te->x, te->n, te->lay.d, &te->lay, h->selected, h->nsel, xs);
        head_predict(h, xs, te->n, h->nsel, z, pred);
        size_t correct = 0;
        for (size_t i = 0; i < te->n; i++) correct += pred[i] == y[i];
        *acc = (double)correct / (double)te->n;
        rc = 0;
    }
    free_array(xs);
    free_array(z);
    free_array(pred);
    return rc;
}

/* grid reduced to its point p, silent, not cross-validated. */
static fit_config at_point(const fit_config *grid, const grid_point *p)
{
    fit_config c = *grid;
    c.nlr = c.nsteps = c.ncoef = c.nfrac = 1;
    c.lr[0] = p->lr, c.steps[0] = p->steps, c.coef[0] = p->coef, c.frac[0] = p->frac;
    c.force_cv = 0, c.quiet = 1;
    return c;
}

/* The final head of c (one point) on tr, its accuracy on te; keep: the
 * head (NULL: freed). */
static int fit_test(const fit_config *c, const feats *tr, const feats *te, const labels *lb, double *acc,
                    fitted_head *keep)
{
    const lasso_data X = {tr->x, tr->n, tr->lay.d, tr->lay.d, lb->ytr, lb->k};
    const grid_point p = {c->lr[0], c->steps[0], c->coef[0], c->frac[0], 0, NAN, NAN, {0}};
    fitted_head h;
    const int rc = fit_final(&X, &tr->lay, c, &p, &h) || head_test(&h, te, lb->yte, acc);
    if (keep && !rc) *keep = h;
    else fitted_head_free(&h);
    return rc;
}

/* A head at p's lr and steps on the features sel[0..nsel) (as --select-from). */
static int selection_test(const fit_config *grid, const grid_point *p, const int64_t *sel, size_t nsel,
                          const feats *tr, const feats *te, const labels *lb, double *acc)
{
    fit_config c = at_point(grid, p);
    c.method = METHOD_HEAD2TOE;
    c.fixed_sel = sel, c.nfixed = nsel;
    return fit_test(&c, tr, te, lb, acc, NULL);
}

/* ==========================================================================
 * Reference fits: Linear and Head2Toe by 5-fold CV over the demo's grids */

typedef struct {
    grid_point lin, h2t;         /* the points CV chose */
    double lin_acc, h2t_acc;     /* test accuracy of the final heads */
    int64_t *sel;                /* [nsel] Head2Toe's final selection, at T */
    size_t nsel, d;
} task_ref;

static int reference_fit(const fit_config *grid, const feats *tr, const feats *te, const labels *lb,
                         grid_point *p, double *acc, fitted_head *h)
{
    const lasso_data X = {tr->x, tr->n, tr->lay.d, tr->lay.d, lb->ytr, lb->k};
    cv_result r;
    if (cv_run(&X, &tr->lay, grid, &r)) return -1;
    *p = r.points[r.best];
    cv_result_free(&r);
    return fit_final(&X, &tr->lay, grid, p, h) || head_test(h, te, lb->yte, acc);
}

static int labels_load(const exp_task *t, size_t ntr, size_t nte, labels *lb)
{
    int ktr, kte;
    memset(lb, 0, sizeof *lb);
    lb->ntr = ntr, lb->nte = nte;
    if (labels_read(t->train_labels, ntr, &lb->ytr, &ktr) || labels_read(t->test_labels, nte, &lb->yte, &kte))
        return -1;
    lb->k = ktr > kte ? ktr : kte;
    return 0;
}

static void labels_free(labels *lb)
{
    free_array(lb->ytr);
    free_array(lb->yte);
    lb->ytr = lb->yte = NULL;
}

/* ==========================================================================
 * The experiments, on one task */

typedef struct {
    double fig6[NKIND][GRID_MAX];          /* accuracy per score kind and F */
    double transfer[EXP_MAX_TASKS];        /* with task j's selection */
    double scaling[NLOCF][NT];             /* per fraction of locations and T */
    size_t scaling_d[NLOCF][NT];
    double overlap2, overlap3, chance;     /* selections of 3 seeds: pairwise, all three; k / D */
    double offset_acc[NOFF];
    size_t offset_at[NOFF], offset_k;
    int noff;
    double data_lin[NDATA], data_h2t[NDATA];
    double one_loc[MODEL_MAX_LOCATIONS];   /* pre_logits + location e (NaN for pre_logits) */
    double one_base;                       /* pre_logits alone */
    double taps[NVAR];
} task_results;

/* One task: its features, labels and reference fits (kept from the first
 * pass over the tasks to the second), and the shared scoring run. */
typedef struct {
    const exp_opts *o;
    model *m;
    const exp_task *t;
    const task_ref *refs;                  /* every task's, [o->ntasks] */
    int i;                                 /* this task */
    labels lb;
    feats tr[NT], te[NT];                  /* T/4, T, 4T */
    double *s;                             /* [D] l2 scores of the scoring run at the reference point (T) */
    float *w;                              /* [D, K] its head */
} task_ctx;

static const task_ref *ref_of(const task_ctx *c) { return &c->refs[c->i]; }

static void task_free(task_ctx *c)
{
    for (int t = 0; t < NT; t++) feats_free(&c->tr[t]), feats_free(&c->te[t]);
    labels_free(&c->lb);
    free_array(c->s);
    free_array(c->w);
    c->s = NULL, c->w = NULL;
}

/* Task i's features at T/4, T, 4T (one backbone pass per split), labels,
 * and reference fits at T into ref. */
static int task_load(const exp_opts *o, model *m, const task_ref *refs, int i, task_ctx *c, task_ref *ref)
{
    const long T[NT] = {o->target / 4, o->target, o->target * 4};
    fitted_head lin = {0}, h2t = {0};
    *c = (task_ctx){o, m, &o->tasks[i], refs, i, {0}, {{0}}, {{0}}, NULL, NULL};
    int rc = extract_feats(m, c->t->train_images, T, NT, o->image_batch, c->tr) ||
             extract_feats(m, c->t->test_images, T, NT, o->image_batch, c->te) ||
             labels_load(c->t, c->tr[0].n, c->te[0].n, &c->lb) ||
             reference_fit(&o->linear, &c->tr[1], &c->te[1], &c->lb, &ref->lin, &ref->lin_acc, &lin) ||
             reference_fit(&o->h2t, &c->tr[1], &c->te[1], &c->lb, &ref->h2t, &ref->h2t_acc, &h2t);
    if (!rc) {
        ref->sel = h2t.selected, ref->nsel = h2t.nsel, ref->d = c->tr[1].lay.d;
        h2t.selected = NULL;
    }
    fitted_head_free(&lin);
    fitted_head_free(&h2t);
    if (rc) set_error("%s: %s", c->t->name, last_error());
    return rc;
}

/* Fig. 6 left: feature-wise vs layer-wise selection at every F of the grid,
 * all from the one scoring run at the reference point. */
static int exp_fig6(task_ctx *c, task_results *r)
{
    const feats *tr = &c->tr[1];
    const size_t D = tr->lay.d;
    double *s = alloc_array(D, sizeof *s);
    int64_t *sel = alloc_array(D, sizeof *sel);
    int rc = !s || !sel;
    for (int q = 0; !rc && q < NKIND; q++) {
        scores_from_head(fig6_kind[q], c->w, D, c->lb.k, &tr->lay, s);
        for (int f = 0; !rc && f < c->o->h2t.nfrac; f++) {
            const size_t k = lasso_keep_count(D, c->o->h2t.frac[f]);
            rc = lasso_select(s, D, k, sel) ||
                 selection_test(&c->o->h2t, &ref_of(c)->h2t, sel, k, tr, &c->te[1], &c->lb, &r->fig6[q][f]);
        }
    }
    free_array(s);
    free_array(sel);
    return rc;
}

/* Fig. 7 left: this task's head on every task's final selection. */
static int exp_transfer(task_ctx *c, task_results *r)
{
    for (int j = 0; j < c->o->ntasks; j++) {
        const task_ref *src = &c->refs[j];
        if (src->d != c->tr[1].lay.d) {
            set_error("fig7-transfer: task %s has %zu features, %s %zu", c->o->tasks[j].name, src->d, c->t->name,
                      c->tr[1].lay.d);
            return -1;
        }
        if (selection_test(&c->o->h2t, &ref_of(c)->h2t, src->sel, src->nsel, &c->tr[1], &c->te[1], &c->lb,
                           &r->transfer[j]))
            return -1;
    }
    return 0;
}

/* Fig. 7 right: Head2Toe at the reference point with 1/16, 1/4 and all
 * locations at T/4, T, 4T (all locations at T: the reference fit). */
static int exp_scaling(task_ctx *c, task_results *r)
{
    const fit_config cfg = at_point(&c->o->h2t, &ref_of(c)->h2t);
    const long T[NT] = {c->o->target / 4, c->o->target, c->o->target * 4};
    for (int q = 0; q < NLOCF; q++)
        for (int t = 0; t < NT; t++) {
            feats tr = {0}, te = {0};
            const int whole = loc_every[q] == 1;
            if (whole && t == 1) {
                r->scaling[q][t] = ref_of(c)->h2t_acc, r->scaling_d[q][t] = c->tr[1].lay.d;
                continue;
            }
            int rc = !whole && (feats_subset(c->m, &c->tr[t], T[t], loc_every[q], &tr) ||
                                feats_subset(c->m, &c->te[t], T[t], loc_every[q], &te));
            const feats *a = whole ? &c->tr[t] : &tr, *b = whole ? &c->te[t] : &te;
            rc = rc || fit_test(&cfg, a, b, &c->lb, &r->scaling[q][t], NULL);
            r->scaling_d[q][t] = a->lay.d;
            feats_free(&tr);
            feats_free(&te);
            if (rc) return -1;
        }
    return 0;
}

/* |a ∩ b| of two ascending index lists of length k. */
static size_t common(const int64_t *a, const int64_t *b, size_t k)
{
    size_t i = 0, j = 0, n = 0;
    while (i < k && j < k) {
        if (a[i] == b[j]) n++, i++, j++;
        else if (a[i] < b[j]) i++;
        else j++;
    }
    return n;
}

/* Fig. 11 centre: the selections (at the reference F) of the scoring runs
 * with seeds seed, seed+1, seed+2: mean pairwise overlap, the share all
 * three keep, and k / D (two random selections' expected overlap). */
static int exp_overlap(task_ctx *c, task_results *r)
{
    const feats *tr = &c->tr[1];
    const size_t D = tr->lay.d, k = lasso_keep_count(D, ref_of(c)->h2t.frac);
    const lasso_data X = {tr->x, tr->n, D, D, c->lb.ytr, c->lb.k};
    int64_t *sel[3];
    double *s = alloc_array(D, sizeof *s);
    int rc = !s;
    for (int j = 0; j < 3; j++) sel[j] = alloc_array(k, sizeof(int64_t)), rc |= !sel[j];
    for (int j = 0; !rc && j < 3; j++) {
        fit_config cfg = at_point(&c->o->h2t, &ref_of(c)->h2t);
        cfg.seed += (uint64_t)j;
        if (j == 0) memcpy(s, c->s, D * sizeof *s); /* seed: the shared run */
        else rc = fit_scores(&X, &tr->lay, &cfg, &ref_of(c)->h2t, s, NULL);
        rc = rc || lasso_select(s, D, k, sel[j]);
    }
    if (!rc) {
        const double p = ((double)common(sel[0], sel[1], k) + common(sel[0], sel[2], k) + common(sel[1], sel[2], k)) / 3;
        size_t all = 0;
        for (size_t q = 0, j1 = 0, j2 = 0; q < k; q++) {
            while (j1 < k && sel[1][j1] < sel[0][q]) j1++;
            while (j2 < k && sel[2][j2] < sel[0][q]) j2++;
            all += j1 < k && j2 < k && sel[1][j1] == sel[0][q] && sel[2][j2] == sel[0][q];
        }
        r->overlap2 = p / (double)k, r->overlap3 = (double)all / (double)k, r->chance = (double)k / (double)D;
    }
    for (int j = 0; j < 3; j++) free_array(sel[j]);
    free_array(s);
    return rc;
}

/* Fig. 11 right: k = int(D F) features kept from ranks offset .. offset+k-1
 * of the reference scores, offset 0, k, 2k, 4k, 8k, 16k while they fit. */
static int exp_offset(task_ctx *c, task_results *r)
{
    const feats *tr = &c->tr[1];
    const size_t D = tr->lay.d, k = lasso_keep_count(D, ref_of(c)->h2t.frac);
    int64_t *sel = alloc_array(k, sizeof *sel);
    int rc = !sel;
    r->noff = 0, r->offset_k = k;
    for (int q = 0; !rc && q < NOFF; q++) {
        const size_t off = q == 0 ? 0 : k << (q - 1);
        if (off + k > D) break;
        r->offset_at[r->noff] = off;
        rc = lasso_select_offset(c->s, D, off, k, sel) ||
             selection_test(&c->o->h2t, &ref_of(c)->h2t, sel, k, tr, &c->te[1], &c->lb, &r->offset_acc[r->noff]);
        r->noff++;
    }
    free_array(sel);
    return rc;
}

/* Fig. 13: Linear and Head2Toe at their reference points on a seeded
 * stratified 10%, 25%, 50% of the training images (100%: the reference). */
static int exp_data(task_ctx *c, task_results *r)
{
    for (int q = 0; q < NDATA; q++) {
        if (data_frac[q] == 1.0) {
            r->data_lin[q] = ref_of(c)->lin_acc, r->data_h2t[q] = ref_of(c)->h2t_acc;
            continue;
        }
        fit_config lin = at_point(&c->o->linear, &ref_of(c)->lin), h2t = at_point(&c->o->h2t, &ref_of(c)->h2t);
        lin.train_fraction = h2t.train_fraction = data_frac[q];
        if (fit_test(&lin, &c->tr[1], &c->te[1], &c->lb, &r->data_lin[q], NULL) ||
            fit_test(&h2t, &c->tr[1], &c->te[1], &c->lb, &r->data_h2t[q], NULL))
            return -1;
    }
    return 0;
}

/* Figs. 4 and 9: a head on pre_logits plus one other location (all its
 * features), for every location, at the Head2Toe reference's lr and steps;
 * and on pre_logits alone, the same way. */
static int exp_one_location(task_ctx *c, task_results *r)
{
    const feats *tr = &c->tr[1];
    const feat_layout *l = &tr->lay;
    const int pl = layout_find(l, "pre_logits");
    int64_t *sel = alloc_array(l->d, sizeof *sel);
    int rc = !sel || pl < 0;
    for (int e = -1; !rc && e < l->n; e++) {
        if (e == pl) {
            r->one_loc[e] = NAN;
            continue;
        }
        size_t n = 0; /* ascending: the two locations in depth order */
        for (int q = 0; q < l->n; q++)
            if (q == pl || q == e)
                for (size_t j = 0; j < l->e[q].dim; j++) sel[n++] = (int64_t)(l->e[q].offset + j);
        rc = selection_test(&c->o->h2t, &ref_of(c)->h2t, sel, n, tr, &c->te[1], &c->lb,
                            e < 0 ? &r->one_base : &r->one_loc[e]);
    }
    free_array(sel);
    return rc;
}

/* Table 6: Head2Toe at the reference point with the taps before the ReLU,
 * before the BatchNorm, and with the input as one more location. */
static int exp_taps(task_ctx *c, task_results *r)
{
    const model_options opt[NVAR] = {{TAP_POST_ACTIVATION, 0, 0, 0}, {TAP_PRE_ACTIVATION, 0, 0, 0},
                                     {TAP_PRE_NORMALIZATION, 0, 0, 0}, {TAP_POST_ACTIVATION, 1, 0, 0}};
    const fit_config cfg = at_point(&c->o->h2t, &ref_of(c)->h2t);
    r->taps[0] = ref_of(c)->h2t_acc;
    for (int v = 1; v < NVAR; v++) {
        model *m = calloc(1, sizeof *m);
        feats tr = {0}, te = {0};
        int rc = !m || model_load_with(c->o->model_dir, &opt[v], m) ||
                 extract_feats(m, c->t->train_images, &c->o->target, 1, c->o->image_batch, &tr) ||
                 extract_feats(m, c->t->test_images, &c->o->target, 1, c->o->image_batch, &te) ||
                 fit_test(&cfg, &tr, &te, &c->lb, &r->taps[v], NULL);
        feats_free(&tr);
        feats_free(&te);
        if (m) model_free(m);
        free(m);
        if (rc) return -1;
    }
    return 0;
}

/* The shared scoring run (Fig. 6, Fig. 11): scores and head at the
 * reference point on all training examples, as the final fit draws them. */
static int shared_scores(task_ctx *c)
{
    const feats *tr = &c->tr[1];
    const lasso_data X = {tr->x, tr->n, tr->lay.d, tr->lay.d, c->lb.ytr, c->lb.k};
    const fit_config cfg = at_point(&c->o->h2t, &ref_of(c)->h2t);
    if (!(c->s = alloc_array(X.d, sizeof *c->s)) || !(c->w = alloc_array(X.d * (size_t)X.k, sizeof *c->w))) return -1;
    return fit_scores(&X, &tr->lay, &cfg, &ref_of(c)->h2t, c->s, c->w);
}

typedef int (*experiment_fn)(task_ctx *c, task_results *r);

/* Every wanted experiment on a loaded task. */
static int run_task_experiments(task_ctx *c, task_results *r)
{
    static const experiment_fn fn[EX_N] = {exp_fig6, exp_transfer, exp_scaling, exp_overlap, exp_offset,
                                           exp_data, exp_one_location, exp_taps, NULL};
    int rc = shared_scores(c);
    for (int e = 0; !rc && e < EX_N; e++) {
        if (!fn[e] || !wanted(c->o, e)) continue;
        const double t0 = now_seconds();
        rc = fn[e](c, r);
        if (!c->o->quiet)
            fprintf(stderr, "experiments: %s: %s (%.1f s)\n", c->t->name, experiment_names[e], now_seconds() - t0);
    }
    if (rc) set_error("%s: %s", c->t->name, last_error());
    return rc;
}

/* ==========================================================================
 * Figures and experiments.md */

typedef struct {
    const exp_opts *o;
    const task_ref *refs;          /* [ntasks] */
    const task_results *res;       /* [ntasks] */
    const feat_layout *lay;        /* at T: the same backbone, so the same for every task */
    textbuf rows, details;         /* experiments.md: the table, then the numbers per task */
} report;

/* out/<name>.svg, and a PNG beside it when rsvg-convert is installed. */
static int figure_path(const report *rp, const char *name, char *path)
{
    if ((size_t)snprintf(path, PATH_CAP, "%s/%s.svg", rp->o->out, name) >= PATH_CAP) {
        set_error("%s/%s.svg: path too long", rp->o->out, name);
        return -1;
    }
    return 0;
}

static void png_beside(const char *svg)
{
    char cmd[3 * PATH_CAP];
    const size_t n = strlen(svg);
    if (n < 5 || strchr(svg, '\'')) return; /* quoted in single quotes below */
    snprintf(cmd, sizeof cmd, "command -v rsvg-convert >/dev/null 2>&1 && rsvg-convert -o '%.*s.png' '%s'",
             (int)(n - 4), svg, svg);
    if (system(cmd) != 0) return; /* no rsvg-convert: SVG only */
}

static const char *verdict(double effect, double threshold)
{
    return effect > threshold ? "agree" : effect < -threshold ? "disagree" : "inconclusive";
}

static void row(report *rp, const char *what, const char *claim, const char *shows, const char *v, const char *fig)
{
    tb_printf(&rp->rows, "| %s | %s | %s | **%s** |", what, claim, shows, v);
    if (fig) tb_printf(&rp->rows, " [%s.svg](%s.svg) |\n", fig, fig);
    else tb_printf(&rp->rows, " none |\n");
}

/* A y range that shows differences of a point: [floor(min) - 5, ceil(max) + 1]. */
static void y_range(const double *v, int n, svg_chart *c)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) lo = v[i] < lo ? v[i] : lo, hi = v[i] > hi ? v[i] : hi;
    if (lo <= hi) c->ymin = floor(lo) - 5 < 0 ? 0 : floor(lo) - 5, c->ymax = ceil(hi) + 1;
}

static double mean_of(const double *x, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s / n;
}

/* ---- Fig. 6 left */
static int out_fig6(report *rp)
{
    const int nt = rp->o->ntasks, nf = rp->o->h2t.nfrac;
    double x[GRID_MAX], y[NKIND][GRID_MAX], eff[2] = {0, 0};
    svg_series s[NKIND];
    char path[PATH_CAP], shows[512];
    for (int f = 0; f < nf; f++) {
        x[f] = (double)lasso_keep_count(rp->lay->d, rp->o->h2t.frac[f]);
        for (int q = 0; q < NKIND; q++) {
            double v[EXP_MAX_TASKS];
            for (int i = 0; i < nt; i++) v[i] = 100 * rp->res[i].fig6[q][f];
            y[q][f] = mean_of(v, nt);
        }
        eff[0] += (y[0][f] - y[1][f]) / nf, eff[1] += (y[0][f] - y[2][f]) / nf;
    }
    for (int q = 0; q < NKIND; q++) s[q] = (svg_series){fig6_name[q], nf, x, y[q], NULL};
    const svg_chart ch = {"Fig. 6 (miniature): feature-wise vs layer-wise selection", "features kept (k = int(D F))",
                          "mean test accuracy over the tasks (%)", NAN, NAN, NULL};
    if (figure_path(rp, "fig6", path) || svg_lines(path, &ch, 1, NKIND, s, NAN, NAN)) return -1;
    png_beside(path);
    snprintf(shows, sizeof shows, "mean over %d tasks and %d values of k (%g .. %g): feature-wise %.1f%%, layer-wise "
             "%.1f%% (%+.1f), layer-wise (group) %.1f%% (%+.1f)", nt, nf, x[0], x[nf - 1], mean_of(y[0], nf),
             mean_of(y[1], nf), -eff[0], mean_of(y[2], nf), -eff[1]);
    const double e = eff[0] < eff[1] ? eff[0] : eff[1];
    row(rp, "Fig. 6 left: feature-wise vs layer-wise selection",
        "Selecting individual features beats selecting whole layers at the same number of features.", shows,
        verdict(e, 1.0), "fig6");
    tb_printf(&rp->details, "\n### Fig. 6 left (mean test accuracy, %%)\n\n| k |");
    for (int q = 0; q < NKIND; q++) tb_printf(&rp->details, " %s |", fig6_name[q]);
    tb_printf(&rp->details, "\n|---|---|---|---|\n");
    for (int f = 0; f < nf; f++) tb_printf(&rp->details, "| %g | %.1f | %.1f | %.1f |\n", x[f], y[0][f], y[1][f], y[2][f]);
    return 0;
}

/* ---- Fig. 7 left */
static int out_transfer(report *rp)
{
    const int nt = rp->o->ntasks;
    const char *names[EXP_MAX_TASKS], *series[EXP_MAX_TASKS];
    char series_name[EXP_MAX_TASKS][96];
    double v[EXP_MAX_TASKS * EXP_MAX_TASKS], diag = 0, off = 0;
    int own_best = 0;
    char path[PATH_CAP], shows[512];
    for (int i = 0; i < nt; i++) {
        names[i] = rp->o->tasks[i].name;
        snprintf(series_name[i], sizeof series_name[i], "selection of %s", names[i]);
        series[i] = series_name[i];
    }
    for (int j = 0; j < nt; j++)          /* row: whose selection; column: the task trained and tested */
        for (int i = 0; i < nt; i++) v[j * nt + i] = 100 * rp->res[i].transfer[j];
    for (int i = 0; i < nt; i++) {
        int best = 0;
        for (int j = 0; j < nt; j++) {
            if (v[j * nt + i] > v[best * nt + i]) best = j;
            if (j == i) diag += v[j * nt + i] / nt;
            else off += nt > 1 ? v[j * nt + i] / (nt * (nt - 1)) : 0;
        }
        own_best += v[i * nt + i] >= v[best * nt + i];
    }
    svg_chart ch = {"Fig. 7 left (miniature): each task on each task's selection", "task trained and tested",
                    "test accuracy", NAN, NAN, "%.0f%%"};
    y_range(v, nt * nt, &ch);
    if (figure_path(rp, "fig7_transfer", path) || svg_bars(path, &ch, nt, names, nt, series, v, NULL)) return -1;
    png_beside(path);
    snprintf(shows, sizeof shows, "own selection %.1f%% on average, another task's %.1f%% (%+.1f); the own selection "
             "is the best for %d of %d tasks", diag, off, off - diag, own_best, nt);
    const double e = own_best * 4 >= nt * 3 ? diag - off : own_best * 2 <= nt ? -(fabs(diag - off) + 2) : 0;
    row(rp, "Fig. 7 left: selections moved between tasks",
        "Selection is task-specific: features selected for one task do worse on another than its own selection.",
        shows, verdict(e, 1.0), "fig7_transfer");
    tb_printf(&rp->details, "\n### Fig. 7 left (test accuracy %%; row: selection of, column: task)\n\n| selection of |");
    for (int i = 0; i < nt; i++) tb_printf(&rp->details, " %s |", names[i]);
    tb_printf(&rp->details, "\n|---|");
    for (int i = 0; i < nt; i++) tb_printf(&rp->details, "---|");
    for (int j = 0; j < nt; j++) {
        tb_printf(&rp->details, "\n| %s |", names[j]);
        for (int i = 0; i < nt; i++) tb_printf(&rp->details, i == j ? " **%.1f** |" : " %.1f |", v[j * nt + i]);
    }
    tb_printf(&rp->details, "\n");
    return 0;
}

/* ---- Fig. 7 right */
static int out_scaling(report *rp)
{
    const int nt = rp->o->ntasks;
    static const char *const name[NLOCF] = {"1/16 of the locations", "1/4 of the locations", "all locations"};
    double x[NT], y[NLOCF][NT], locs = 0, size = 0;
    svg_series s[NLOCF];
    char path[PATH_CAP], shows[600];
    for (int t = 0; t < NT; t++) x[t] = (double)(t == 0 ? rp->o->target / 4 : t == 1 ? rp->o->target : rp->o->target * 4);
    for (int q = 0; q < NLOCF; q++) {
        for (int t = 0; t < NT; t++) {
            double v[EXP_MAX_TASKS];
            for (int i = 0; i < nt; i++) v[i] = 100 * rp->res[i].scaling[q][t];
            y[q][t] = mean_of(v, nt);
        }
        s[q] = (svg_series){name[q], NT, x, y[q], NULL};
        size += (y[q][NT - 1] - y[q][0]) / NLOCF;
    }
    for (int t = 0; t < NT; t++) locs += (y[NLOCF - 1][t] - y[0][t]) / NT;
    const svg_chart ch = {"Fig. 7 right (miniature): target size T and fraction of locations", "target size T",
                          "mean test accuracy over the tasks (%)", NAN, NAN, NULL};
    if (figure_path(rp, "fig7_scaling", path) || svg_lines(path, &ch, 1, NLOCF, s, NAN, NAN)) return -1;
    png_beside(path);
    snprintf(shows, sizeof shows, "all locations vs 1/16: %+.1f points (mean over T); T %g vs %g: %+.1f points (mean "
             "over the fractions); best %.1f%% (all locations, T %g)", locs, x[NT - 1], x[0], size,
             y[NLOCF - 1][1] > y[NLOCF - 1][NT - 1] ? y[NLOCF - 1][1] : y[NLOCF - 1][NT - 1],
             y[NLOCF - 1][1] > y[NLOCF - 1][NT - 1] ? x[1] : x[NT - 1]);
    row(rp, "Fig. 7 right: target size and number of locations",
        "Accuracy grows with the target size T and with the fraction of layers used.", shows,
        verdict(locs < size ? locs : size, 1.0), "fig7_scaling");
    tb_printf(&rp->details, "\n### Fig. 7 right (mean test accuracy %%; D in brackets, first task)\n\n| locations |");
    for (int t = 0; t < NT; t++) tb_printf(&rp->details, " T %g |", x[t]);
    tb_printf(&rp->details, "\n|---|---|---|---|\n");
    for (int q = 0; q < NLOCF; q++) {
        tb_printf(&rp->details, "| %s |", name[q]);
        for (int t = 0; t < NT; t++) tb_printf(&rp->details, " %.1f (%zu) |", y[q][t], rp->res[0].scaling_d[q][t]);
        tb_printf(&rp->details, "\n");
    }
    return 0;
}

/* ---- Fig. 11 centre */
static int out_overlap(report *rp)
{
    const int nt = rp->o->ntasks;
    const char *names[EXP_MAX_TASKS], *series[3] = {"two seeds (mean of 3 pairs)", "all three seeds", "chance (k / D)"};
    double v[3 * EXP_MAX_TASKS], o2[EXP_MAX_TASKS], ch[EXP_MAX_TASKS];
    char path[PATH_CAP], shows[512];
    for (int i = 0; i < nt; i++) {
        names[i] = rp->o->tasks[i].name;
        v[i] = o2[i] = 100 * rp->res[i].overlap2;
        v[nt + i] = 100 * rp->res[i].overlap3;
        v[2 * nt + i] = ch[i] = 100 * rp->res[i].chance;
    }
    const svg_chart c = {"Fig. 11 centre (miniature): selected features kept by every seed", NULL,
                         "share of the k selected features (%)", 0, 100, "%.0f%%"};
    if (figure_path(rp, "fig11_overlap", path) || svg_bars(path, &c, nt, names, 3, series, v, NULL)) return -1;
    png_beside(path);
    const double m2 = mean_of(o2, nt), mc = mean_of(ch, nt);
    snprintf(shows, sizeof shows, "two seeds share %.1f%% of their selection on average (all three %.1f%%); chance "
             "%.1f%%, so %.0f%% of the way from chance to identical", m2, mean_of(v + nt, nt), mc,
             100 * (m2 - mc) / (100 - mc));
    const double above = (m2 - mc) / (100 - mc); /* 0: chance, 1: the same selection */
    const double e = above >= 0.5 ? 2 : above <= 0.1 ? -2 : 0;
    row(rp, "Fig. 11 centre: the selection across seeds",
        "The selected features are stable: scoring runs with different seeds select largely the same features.",
        shows, verdict(e, 1.0), "fig11_overlap");
    tb_printf(&rp->details, "\n### Fig. 11 centre (%% of the k selected features)\n\n| task | two seeds | three | chance |\n"
                            "|---|---|---|---|\n");
    for (int i = 0; i < nt; i++)
        tb_printf(&rp->details, "| %s | %.1f | %.1f | %.1f |\n", names[i], v[i], v[nt + i], v[2 * nt + i]);
    return 0;
}

/* ---- Fig. 11 right: offsets in units of each task's k */
static int out_offset(report *rp)
{
    static const char *const mult[NOFF] = {"0", "k", "2k", "4k", "8k", "16k"};
    const int nt = rp->o->ntasks;
    svg_series s[EXP_MAX_TASKS];
    double x[EXP_MAX_TASKS][NOFF], y[EXP_MAX_TASKS][NOFF], mean[NOFF] = {0};
    int n = NOFF, mono = 1;
    char path[PATH_CAP], shows[600];
    for (int i = 0; i < nt; i++) {
        const task_results *r = &rp->res[i];
        if (r->noff < n) n = r->noff;
        for (int q = 0; q < r->noff; q++)
            x[i][q] = (double)r->offset_at[q] / (double)r->offset_k, y[i][q] = 100 * r->offset_acc[q];
        s[i] = (svg_series){rp->o->tasks[i].name, r->noff, x[i], y[i], NULL};
    }
    for (int q = 0; q < n; q++) {
        for (int i = 0; i < nt; i++) mean[q] += y[i][q] / nt;
        if (q > 0 && mean[q] > mean[q - 1] + 0.5) mono = 0;
    }
    const svg_chart c = {"Fig. 11 right (miniature): the k features at ranks offset .. offset + k - 1",
                         "offset in units of k (each task's reference count kept)", "test accuracy (%)", NAN, NAN, NULL};
    if (figure_path(rp, "fig11_offset", path) || svg_lines(path, &c, 0, nt, s, NAN, NAN)) return -1;
    png_beside(path);
    int w = snprintf(shows, sizeof shows, "mean accuracy at offsets");
    for (int q = 0; q < n && w < (int)sizeof shows; q++)
        w += snprintf(shows + w, sizeof shows - (size_t)w, "%s %s: %.1f%%", q ? "," : "", mult[q], mean[q]);
    if (w < (int)sizeof shows)
        snprintf(shows + w, sizeof shows - (size_t)w, " (k = int(D F) at each task's F)%s",
                 mono ? ", never rising by more than 0.5" : ", not monotone");
    const double drop = n > 1 ? mean[0] - mean[n - 1] : 0;
    row(rp, "Fig. 11 right: skipping the best-ranked features",
        "Accuracy falls monotonically as the kept block starts further down the ranking.", shows,
        verdict(mono ? drop - 1 : drop < 0 ? -2 : 0, 1.0), "fig11_offset");
    tb_printf(&rp->details, "\n### Fig. 11 right (test accuracy %%; offsets in units of k)\n\n| task | k |");
    for (int q = 0; q < NOFF; q++) tb_printf(&rp->details, " %s |", mult[q]);
    tb_printf(&rp->details, "\n|---|---|");
    for (int q = 0; q < NOFF; q++) tb_printf(&rp->details, "---|");
    for (int i = 0; i < nt; i++) {
        tb_printf(&rp->details, "\n| %s | %zu |", rp->o->tasks[i].name, rp->res[i].offset_k);
        for (int q = 0; q < NOFF; q++)
            if (q < rp->res[i].noff) tb_printf(&rp->details, " %.1f |", y[i][q]);
            else tb_printf(&rp->details, " - |");
    }
    tb_printf(&rp->details, "\n");
    return 0;
}

/* ---- Fig. 13 */
static int out_data(report *rp)
{
    const int nt = rp->o->ntasks;
    double x[NDATA], y[4][NDATA], gain_min = INFINITY;
    int nin = 0, nout = 0;
    static const char *const name[4] = {"Linear, out of distribution", "Head2Toe, out of distribution",
                                        "Linear, in distribution", "Head2Toe, in distribution"};
    svg_series s[4];
    char path[PATH_CAP], shows[600];
    for (int i = 0; i < nt; i++) nout += rp->o->tasks[i].ood, nin += !rp->o->tasks[i].ood;
    for (int q = 0; q < NDATA; q++) {
        x[q] = 100 * data_frac[q];
        for (int k = 0; k < 4; k++) y[k][q] = 0;
        for (int i = 0; i < nt; i++) {
            const int ood = rp->o->tasks[i].ood, b = ood ? 0 : 2, cnt = ood ? nout : nin;
            y[b][q] += 100 * rp->res[i].data_lin[q] / cnt, y[b + 1][q] += 100 * rp->res[i].data_h2t[q] / cnt;
        }
        if (nout && y[1][q] - y[0][q] < gain_min) gain_min = y[1][q] - y[0][q];
    }
    int ns = 0;
    for (int k = 0; k < 4; k++)
        if ((k < 2 && nout) || (k >= 2 && nin)) s[ns++] = (svg_series){name[k], NDATA, x, y[k], NULL};
    const svg_chart c = {"Fig. 13 (miniature): training data", "training images used (%)", "mean test accuracy (%)",
                         NAN, NAN, NULL};
    if (figure_path(rp, "fig13", path) || svg_lines(path, &c, 1, ns, s, NAN, NAN)) return -1;
    png_beside(path);
    snprintf(shows, sizeof shows, "out-of-distribution tasks, Head2Toe minus Linear at 10/25/50/100%% of the images: "
             "%+.1f / %+.1f / %+.1f / %+.1f points", y[1][0] - y[0][0], y[1][1] - y[0][1], y[1][2] - y[0][2],
             y[1][3] - y[0][3]);
    row(rp, "Fig. 13: amount of training data",
        "Head2Toe's gain over Linear probing holds across training-set sizes.", shows,
        nout ? verdict(gain_min > 1 ? 2 : gain_min < 0 ? -2 : 0, 1.0) : "inconclusive", "fig13");
    tb_printf(&rp->details, "\n### Fig. 13 (test accuracy %%, Linear / Head2Toe)\n\n| task | 10%% | 25%% | 50%% | 100%% |\n"
                            "|---|---|---|---|---|\n");
    for (int i = 0; i < nt; i++) {
        tb_printf(&rp->details, "| %s |", rp->o->tasks[i].name);
        for (int q = 0; q < NDATA; q++)
            tb_printf(&rp->details, " %.1f / %.1f |", 100 * rp->res[i].data_lin[q], 100 * rp->res[i].data_h2t[q]);
        tb_printf(&rp->details, "\n");
    }
    return 0;
}

/* ---- Figs. 4 and 9 */
static int out_one_location(report *rp)
{
    const int nt = rp->o->ntasks, nl = rp->lay->n;
    svg_series s[EXP_MAX_TASKS];
    double x[MODEL_MAX_LOCATIONS], y[EXP_MAX_TASKS][MODEL_MAX_LOCATIONS], best[EXP_MAX_TASKS], out_gain = 0,
        in_gain = 0;
    int arg[EXP_MAX_TASKS], nin = 0, nout = 0;
    char path[PATH_CAP], shows[700];
    for (int e = 0; e < nl; e++) x[e] = e;
    for (int i = 0; i < nt; i++) {
        const task_results *r = &rp->res[i];
        best[i] = -INFINITY, arg[i] = 0;
        for (int e = 0; e < nl; e++) {
            y[i][e] = 100 * (r->one_loc[e] - r->one_base); /* NaN at pre_logits: no point */
            if (isfinite(y[i][e]) && y[i][e] > best[i]) best[i] = y[i][e], arg[i] = e;
        }
        s[i] = (svg_series){rp->o->tasks[i].name, nl, x, y[i], NULL};
        if (rp->o->tasks[i].ood) out_gain += best[i], nout++;
        else in_gain += best[i], nin++;
    }
    out_gain /= nout ? nout : 1, in_gain /= nin ? nin : 1;
    const svg_chart c = {"Figs. 4/9 (miniature): pre_logits plus one location, gain over pre_logits alone",
                         "location (depth order, index into the layout)", "test accuracy gain (points)", NAN, NAN, NULL};
    if (figure_path(rp, "fig4", path) || svg_lines(path, &c, 0, nt, s, NAN, NAN)) return -1;
    png_beside(path);
    int w = snprintf(shows, sizeof shows, "best single location added to pre_logits:");
    for (int i = 0; i < nt && w < (int)sizeof shows; i++)
        w += snprintf(shows + w, sizeof shows - (size_t)w, "%s %s %+.1f (%s)", i ? ";" : "", rp->o->tasks[i].name,
                      best[i], rp->lay->e[arg[i]].name);
    const double e = nout && out_gain > 2 && out_gain > in_gain ? 2 : nout && out_gain <= 0 ? -2 : 0;
    row(rp, "Figs. 4 and 9: pre_logits plus one location",
        "One intermediate location added to pre_logits already helps, most on tasks far from the pretraining data, "
        "and the most useful location differs between tasks.", shows, verdict(e, 1.0), "fig4");
    tb_printf(&rp->details, "\n### Figs. 4 and 9 (test accuracy %%: pre_logits alone, best location added)\n\n"
                            "| task | pre_logits | best added | location |\n|---|---|---|---|\n");
    for (int i = 0; i < nt; i++)
        tb_printf(&rp->details, "| %s | %.1f | %.1f | %s |\n", rp->o->tasks[i].name, 100 * rp->res[i].one_base,
                  100 * rp->res[i].one_base + best[i], rp->lay->e[arg[i]].name);
    return 0;
}

/* ---- Table 6 */
static int out_taps(report *rp)
{
    const int nt = rp->o->ntasks;
    const char *names[EXP_MAX_TASKS];
    double v[NVAR * EXP_MAX_TASKS], mean[NVAR] = {0}, other = -INFINITY;
    char path[PATH_CAP], shows[600];
    for (int i = 0; i < nt; i++) {
        names[i] = rp->o->tasks[i].name;
        for (int q = 0; q < NVAR; q++) v[q * nt + i] = 100 * rp->res[i].taps[q], mean[q] += v[q * nt + i] / nt;
    }
    for (int q = 1; q < NVAR; q++) other = mean[q] > other ? mean[q] : other;
    svg_chart c = {"Table 6 (miniature): where the taps sit, and the input", NULL, "test accuracy", NAN, NAN, "%.0f%%"};
    y_range(v, NVAR * nt, &c);
    if (figure_path(rp, "table6", path) || svg_bars(path, &c, nt, names, NVAR, var_name, v, NULL)) return -1;
    png_beside(path);
    snprintf(shows, sizeof shows, "mean test accuracy: post-activation %.1f%%, pre-activation %.1f%%, "
             "pre-normalization %.1f%%, post-activation + input %.1f%% (v1.5 taps: docs/ALGORITHM.md §16)", mean[0],
             mean[1], mean[2], mean[3]);
    const double e = mean[0] >= other - 0.5 ? 2 : mean[0] < other - 1 ? -2 : 0;
    row(rp, "Table 6: tap points and the input",
        "The default (taps after BatchNorm and ReLU, no input location) is at least as good as taking the features "
        "before the ReLU or before the BatchNorm, or adding the input.", shows, verdict(e, 1.0), "table6");
    tb_printf(&rp->details, "\n### Table 6 (test accuracy %%)\n\n| task |");
    for (int q = 0; q < NVAR; q++) tb_printf(&rp->details, " %s |", var_name[q]);
    tb_printf(&rp->details, "\n|---|---|---|---|---|\n");
    for (int i = 0; i < nt; i++) {
        tb_printf(&rp->details, "| %s |", names[i]);
        for (int q = 0; q < NVAR; q++) tb_printf(&rp->details, " %.1f |", v[q * nt + i]);
        tb_printf(&rp->details, "\n");
    }
    return 0;
}

/* ---- Table 7: not run on the demo's backbone */
static int out_cls(report *rp)
{
    row(rp, "Table 7: the ViT's class token",
        "Compares how a ViT's class token is treated in each token map: pooled with the other tokens (the default), "
        "alone, or kept apart from the pooled tokens.",
        "not run: the demo's backbone is a ResNet and a ViT with random weights would say nothing about pretrained "
        "features; with a pretrained ViT, `h2t run --cls` normal, only-cls and original+cls compare them (docs/ALGORITHM.md §16)",
        "not run", NULL);
    return 0;
}

typedef int (*output_fn)(report *rp);

static int write_md(report *rp, const char *path)
{
    textbuf t = {0};
    const exp_opts *o = rp->o;
    tb_printf(&t, "# Head2Toe's analysis experiments in miniature\n\n"
                  "Written by `h2t demo --experiments` (docs/ALGORITHM.md §17): backbone %s, T %ld (D %zu), seed %llu, "
                  "%d tasks; every number is a test accuracy on the task's test images, of a head trained at the "
                  "point its 5-fold cross-validation chose (below). The claims are paraphrased from the paper; a "
                  "verdict is *agree* or *disagree* when the effect exceeds its threshold (§17), *inconclusive* "
                  "otherwise.\n\n",
              o->model_dir, o->target, rp->lay->d, (unsigned long long)o->h2t.seed, o->ntasks);
    tb_printf(&t, "| task | dist | Linear | Head2Toe | Linear lr, steps | Head2Toe lr, F (features) |\n"
                  "|---|---|---|---|---|---|\n");
    for (int i = 0; i < o->ntasks; i++) {
        const task_ref *r = &rp->refs[i];
        tb_printf(&t, "| %s | %s | %.1f%% | %.1f%% | %g, %ld | %g, %g (%zu) |\n", o->tasks[i].name,
                  o->tasks[i].ood ? "out" : "in", 100 * r->lin_acc, 100 * r->h2t_acc, r->lin.lr, r->lin.steps, r->h2t.lr,
                  r->h2t.frac, r->nsel);
    }
    tb_printf(&t, "\n| experiment | the paper's claim | the miniature | verdict | figure |\n|---|---|---|---|---|\n");
    tb_printf(&t, "%s", rp->rows.s ? rp->rows.s : "");
    tb_printf(&t, "\n## The numbers\n%s", rp->details.s ? rp->details.s : "");
    tb_free(&rp->rows);
    tb_free(&rp->details);
    return tb_write(&t, path);
}

/* The figures and experiments.md of the experiments that ran. */
static int write_outputs(const exp_opts *o, const task_ref *refs, const task_results *res, const feat_layout *lay)
{
    static const output_fn fn[EX_N] = {out_fig6,  out_transfer, out_scaling,      out_overlap, out_offset,
                                       out_data,  out_one_location, out_taps, out_cls};
    report rp = {o, refs, res, lay, {0}, {0}};
    char path[PATH_CAP];
    for (int e = 0; e < EX_N; e++)
        if (wanted(o, e) && fn[e](&rp)) {
            tb_free(&rp.rows);
            tb_free(&rp.details);
            return -1;
        }
    if ((size_t)snprintf(path, sizeof path, "%s/experiments.md", o->out) >= sizeof path) {
        set_error("%s/experiments.md: path too long", o->out);
        return -1;
    }
    return write_md(&rp, path);
}

/* ==========================================================================
 * The run */

int experiments_run(const exp_opts *o)
{
    const double t0 = now_seconds();
    model *m = calloc(1, sizeof *m);
    task_ref *refs = calloc((size_t)o->ntasks, sizeof *refs);
    task_results *res = calloc((size_t)o->ntasks, sizeof *res);
    task_ctx *tc = calloc((size_t)o->ntasks, sizeof *tc);
    feat_layout *lay = calloc(1, sizeof *lay);
    int use[MODEL_MAX_LOCATIONS], rc = -1;
    if (!m || !refs || !res || !tc || !lay) {
        set_error("out of memory");
        goto done;
    }
    if (o->ntasks < 1 || o->ntasks > EXP_MAX_TASKS || experiments_check(o->only) || model_load(o->model_dir, m) ||
        taps_parse(m, NULL, use) || layout_make(m, use, o->target, CLS_NORMAL, lay) || make_dir(o->out))
        goto done;
    for (int i = 0; i < o->ntasks; i++) { /* 1. each task's features and reference fits */
        if (task_load(o, m, refs, i, &tc[i], &refs[i])) goto done;
        if (!o->quiet)
            fprintf(stderr, "experiments: %s: reference fits: Linear %.1f%%, Head2Toe %.1f%% (%.0f s)\n",
                    o->tasks[i].name, 100 * refs[i].lin_acc, 100 * refs[i].h2t_acc, now_seconds() - t0);
    }
    for (int i = 0; i < o->ntasks; i++) { /* 2. the experiments, task by task */
        if (run_task_experiments(&tc[i], &res[i])) goto done;
        task_free(&tc[i]);
    }
    rc = write_outputs(o, refs, res, lay); /* 3. figures and experiments.md */
    if (!rc && !o->quiet)
        fprintf(stderr, "experiments: %d tasks in %.1f s; %s/experiments.md\n", o->ntasks, now_seconds() - t0, o->out);
done:
    for (int i = 0; refs && tc && i < o->ntasks; i++) free_array(refs[i].sel), task_free(&tc[i]);
    if (m) model_free(m);
    free(m);
    free(refs);
    free(res);
    free(tc);
    free(lay);
    return rc;
}
