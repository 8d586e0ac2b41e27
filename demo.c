/* demo.c: `h2t demo`. See demo.h. Sections:
 *   demo.cfg and tasks.tsv   the backbone, the grid, the task list
 *   one task                 `h2t run` on it, and the summary kept of it
 *   outputs                  the table, the summary figures, the JSON report */
#include "demo.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiments.h"
#include "run.h"
#include "svg.h"
#include "util.h"

#define PATH_CAP 1024
#define DEMO_MAX_TASKS 16

/* What the table, the figures and the report need of one task. */
typedef struct {
    char name[64], desc[160];
    int ood, classes, ran, k;
    method_result lin, h2t;             /* scalars only: the pointers are released */
    grid_point lin_p, h2t_p;            /* the chosen grid points */
    long target;                        /* head2toe's T */
    size_t d;                           /* features at that T */
    feat_layout lay;                    /* head2toe's layout */
    size_t kept[MODEL_MAX_LOCATIONS];   /* head2toe's selected features per location */
    double seconds;
} task_summary;

/* ==========================================================================
 * demo.cfg and tasks.tsv */

static int read_tasks(const char *path, task_summary *t, int *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        set_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char line[512];
    int ln = 0;
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        line[strcspn(line, "\r\n")] = 0;
        if (line[0] == '#' || line[0] == 0) continue;
        char name[64] = "";
        int ood, k, used = 0;
        if (sscanf(line, "%63[^\t]\t%d\t%d\t%n", name, &ood, &k, &used) != 3 || used == 0 || (ood != 0 && ood != 1) ||
            k < 2 || strchr(name, '/') || *n >= DEMO_MAX_TASKS) {
            set_error("%s:%d: expected 'name<TAB>ood (0|1)<TAB>classes<TAB>description' (at most %d tasks)", path,
                      ln, DEMO_MAX_TASKS);
            fclose(f);
            return -1;
        }
        snprintf(t[*n].name, sizeof t[*n].name, "%s", name);
        snprintf(t[*n].desc, sizeof t[*n].desc, "%s", line + used);
        t[*n].ood = ood;
        t[*n].classes = k;
        (*n)++;
    }
    fclose(f);
    if (*n == 0) {
        set_error("%s: no tasks", path);
        return -1;
    }
    return 0;
}

/* A path from demo.cfg: relative ones are relative to the demo directory. */
static int cfg_path(const config *c, const char *key, const char *dir, char *out, size_t cap)
{
    const char *v = config_get(c, key);
    if (!v) {
        set_error("%s: missing key '%s'", c->path, key);
        return -1;
    }
    const int n = v[0] == '/' ? snprintf(out, cap, "%s", v) : snprintf(out, cap, "%s/%s", dir, v);
    if (n < 0 || (size_t)n >= cap) {
        set_error("%s: %s: path too long", c->path, key);
        return -1;
    }
    return 0;
}

/* A comma list of demo.cfg (required). */
static int cfg_list(const config *c, const char *key, int whole, double lo, double hi, double *out, int *n)
{
    const char *v = config_get(c, key);
    char what[PATH_CAP];
    snprintf(what, sizeof what, "%s: %s", c->path, key);
    if (!v) {
        set_error("%s: missing key '%s'", c->path, key);
        return -1;
    }
    return parse_list(what, v, whole, lo, hi, out, GRID_MAX, n);
}

static int cfg_steps(const config *c, const char *key, fit_config *g)
{
    double v[GRID_MAX];
    if (cfg_list(c, key, 1, 1, 1e9, v, &g->nsteps)) return -1;
    for (int i = 0; i < g->nsteps; i++) g->steps[i] = (long)v[i];
    return 0;
}

/* demo.cfg -> the options every task shares: methods linear (grid
 * linear_lr x linear_steps) and head2toe (lr x steps x coef x fraction),
 * both cross-validated. */
static int read_demo_cfg(const char *dir, run_opts *ro, char *model_dir, char *tasks)
{
    static const char *const keys[] = {"model", "tasks", "target_size", "lr", "steps", "coef", "fraction",
                                       "linear_lr", "linear_steps", "batch", "image_batch", "seed", NULL};
    char path[PATH_CAP];
    config c;
    double v[GRID_MAX];
    if (snprintf(path, sizeof path, "%s/demo.cfg", dir) >= (int)sizeof path || config_read(path, &c) ||
        config_check_keys(&c, keys) || cfg_path(&c, "model", dir, model_dir, PATH_CAP) ||
        cfg_path(&c, "tasks", dir, tasks, PATH_CAP) || cfg_list(&c, "target_size", 1, 1, 1e9, v, &ro->ntarget))
        return -1;
    if (ro->ntarget > FEAT_MAX_TARGETS) ro->ntarget = FEAT_MAX_TARGETS;
    for (int i = 0; i < ro->ntarget; i++) ro->target[i] = (long)v[i];
    fit_config *gl = &ro->grid[0], *gh = &ro->grid[1];
    gl->method = METHOD_LINEAR, gh->method = METHOD_HEAD2TOE;
    if (cfg_list(&c, "linear_lr", 0, 1e-12, 1e3, gl->lr, &gl->nlr) || cfg_steps(&c, "linear_steps", gl) ||
        cfg_list(&c, "lr", 0, 1e-12, 1e3, gh->lr, &gh->nlr) || cfg_steps(&c, "steps", gh) ||
        cfg_list(&c, "coef", 0, 0, 1e3, gh->coef, &gh->ncoef) ||
        cfg_list(&c, "fraction", 0, 1e-9, 1, gh->frac, &gh->nfrac))
        return -1;
    int batch = GRID_BATCH, ibatch = 64, seed = 0;
    if (config_int(&c, "batch", 0, 1, 1 << 20, &batch) || config_int(&c, "image_batch", 0, 1, 4096, &ibatch) ||
        config_int(&c, "seed", 0, 0, 2147483647, &seed))
        return -1;
    for (int m = 0; m < 2; m++) {
        ro->grid[m].batch = batch;
        ro->grid[m].seed = (uint64_t)seed;
        ro->grid[m].force_cv = 1; /* a validation accuracy for every method, even a single point */
        ro->grid[m].quiet = 1;
    }
    ro->image_batch = ibatch;
    ro->nmethods = 2;
    ro->quiet = 1;
    return 0;
}

/* ==========================================================================
 * One task */

static void summarize(task_summary *s, const run_opts *o, const pipeline_result *r)
{
    const method_result *l = &r->m[0], *h = &r->m[1];
    s->ran = 1;
    s->k = r->k;
    s->lin = *l, s->h2t = *h;
    s->lin_p = l->cv[l->t].points[l->cv[l->t].best];
    s->h2t_p = h->cv[h->t].points[h->cv[h->t].best];
    s->target = o->target[h->t];
    s->lay = r->lay[h->t];
    s->d = s->lay.d;
    layout_count(&s->lay, h->head.selected, h->head.nsel, s->kept);
    s->seconds = r->t_total;
}

/* demo/tasks/<name>/{train,test}_{images,labels}.npy through `h2t run`. */
static int run_one(const demo_opts *o, const run_opts *base, const char *tdir, task_summary *s)
{
    char paths[5][PATH_CAP];
    const char *files[4] = {"train_images.npy", "train_labels.npy", "test_images.npy", "test_labels.npy"};
    for (int k = 0; k < 4; k++)
        if ((size_t)snprintf(paths[k], PATH_CAP, "%s/%s/%s", tdir, s->name, files[k]) >= PATH_CAP) goto long_path;
    if ((size_t)snprintf(paths[4], PATH_CAP, "%s/%s", o->out, s->name) >= PATH_CAP) goto long_path;
    run_opts ro = *base;
    ro.task = s->name;
    ro.train_images = paths[0], ro.train_labels = paths[1];
    ro.test_images = paths[2], ro.test_labels = paths[3];
    ro.out = paths[4];
    ro.figures = 1;
    if (!o->quiet) fprintf(stderr, "demo: %s (%s) ...\n", s->name, s->desc);
    model *m = calloc(1, sizeof *m);      /* large (config + locations): not on the stack */
    pipeline_result r;
    int rc = m ? run_task(&ro, m, &r) : (set_error("out of memory"), -1);
    if (rc) set_error("task %s: %s", s->name, last_error());
    else summarize(s, &ro, &r);
    if (m) pipeline_result_free(&r), model_free(m);
    free(m);
    if (!rc && !o->quiet)
        fprintf(stderr, "demo: %s: linear %.1f%%, head2toe %.1f%% (%.1f s)\n", s->name, 100 * s->lin.test_acc,
                100 * s->h2t.test_acc, s->seconds);
    return rc;
long_path:
    set_error("task %s: path too long", s->name);
    return -1;
}

/* ==========================================================================
 * Outputs */

/* The three locations holding most of head2toe's selected features. */
static void top_locations(const task_summary *s, int *idx)
{
    int used[MODEL_MAX_LOCATIONS] = {0};
    for (int r = 0; r < 3; r++) {
        int b = -1;
        for (int i = 0; i < s->lay.n; i++)
            if (!used[i] && s->kept[i] > 0 && (b < 0 || s->kept[i] > s->kept[b])) b = i;
        idx[r] = b;
        if (b >= 0) used[b] = 1;
    }
}

static void print_table(const task_summary *t, int n, double secs, int threads, const char *out)
{
    printf("%-14s %-4s %7s %9s %7s %6s %6s  %s\n", "task", "dist", "Linear", "Head2Toe", "gain", "T", "F",
           "most-used locations (Head2Toe)");
    for (int i = 0; i < n; i++) {
        const task_summary *s = &t[i];
        int idx[3];
        char top[256] = "";
        top_locations(s, idx);
        for (int r = 0; r < 3 && idx[r] >= 0; r++)
            snprintf(top + strlen(top), sizeof top - strlen(top), "%s%s", r ? ", " : "", s->lay.e[idx[r]].name);
        printf("%-14s %-4s %6.1f%% %8.1f%% %+7.1f %6ld %6g  %s\n", s->name, s->ood ? "out" : "in",
               100 * s->lin.test_acc, 100 * s->h2t.test_acc, 100 * (s->h2t.test_acc - s->lin.test_acc), s->target,
               s->h2t_p.frac, top);
    }
    printf("demo: %d tasks in %.1f s on %d thread%s; per-task runs and figures in %s/\n", n, secs, threads,
           threads == 1 ? "" : "s", out);
}

/* accuracy.svg (Linear vs Head2Toe per task) and locations.svg (tasks x
 * locations of the first task's layout: they share the backbone). */
static int summary_figures(const task_summary *t, int n, const char *out)
{
    const char *names[DEMO_MAX_TASKS], *locs[MODEL_MAX_LOCATIONS], *series[2] = {"Linear", "Head2Toe"};
    double acc[2 * DEMO_MAX_TASKS];
    char path[PATH_CAP];
    for (int j = 0; j < n; j++) {
        names[j] = t[j].name;
        acc[j] = 100 * t[j].lin.test_acc;
        acc[n + j] = 100 * t[j].h2t.test_acc;
    }
    const svg_chart ca = {"Linear vs Head2Toe: test accuracy per task", NULL, "test accuracy", 0, 100, "%.0f%%"};
    snprintf(path, sizeof path, "%s/accuracy.svg", out);
    if (svg_bars(path, &ca, n, names, 2, series, acc, NULL)) return -1;
    const feat_layout *l0 = &t[0].lay;
    double *heat = alloc_array((size_t)n * (size_t)(l0->n ? l0->n : 1), sizeof *heat);
    if (!heat) return -1;
    for (int k = 0; k < l0->n; k++) locs[k] = l0->e[k].name;
    for (int j = 0; j < n; j++)
        for (int k = 0; k < l0->n; k++) {
            const int q = layout_find(&t[j].lay, locs[k]);
            heat[(size_t)j * l0->n + k] = q < 0 ? NAN : t[j].h2t.head.nsel ? (double)t[j].kept[q] / (double)t[j].h2t.head.nsel : 0;
        }
    const svg_chart ch = {"Head2Toe: share of each task's selected features per location", "location (depth order)",
                          NULL, NAN, NAN, NULL};
    snprintf(path, sizeof path, "%s/locations.svg", out);
    const int rc = svg_heatmap(path, &ch, n, names, l0->n, locs, heat);
    free_array(heat);
    return rc;
}

static void json_task(textbuf *f, const task_summary *s)
{
    int idx[3];
    tb_printf(f, "\n  {\"name\": ");
    tb_json_str(f, s->name);
    tb_printf(f, ", \"ood\": %s, \"classes\": %d, \"description\": ", s->ood ? "true" : "false", s->k);
    tb_json_str(f, s->desc);
    tb_printf(f, ",\n   \"linear\": ");
    tb_json_num(f, s->lin.test_acc);
    tb_printf(f, ", \"head2toe\": ");
    tb_json_num(f, s->h2t.test_acc);
    tb_printf(f, ", \"gain\": ");
    tb_json_num(f, s->h2t.test_acc - s->lin.test_acc);
    tb_printf(f, ",\n   \"linear_validation\": ");
    tb_json_num(f, s->lin_p.mean);
    tb_printf(f, ", \"head2toe_validation\": ");
    tb_json_num(f, s->h2t_p.mean);
    tb_printf(f, ",\n   \"linear_lr\": ");
    tb_json_num(f, s->lin_p.lr);
    tb_printf(f, ", \"linear_steps\": %ld, \"target_size\": %ld, \"features_total\": %zu, \"features\": %zu, "
                 "\"fraction\": ", s->lin_p.steps, s->target, s->d, s->h2t.head.nsel);
    tb_json_num(f, s->h2t_p.frac);
    tb_printf(f, ", \"lr\": ");
    tb_json_num(f, s->h2t_p.lr);
    tb_printf(f, ", \"steps\": %ld, \"coef\": ", s->h2t_p.steps);
    tb_json_num(f, s->h2t_p.coef);
    tb_printf(f, ",\n   \"top_locations\": [");
    top_locations(s, idx);
    for (int q = 0; q < 3 && idx[q] >= 0; q++) {
        tb_printf(f, "%s", q ? ", " : "");
        tb_json_str(f, s->lay.e[idx[q]].name);
    }
    tb_printf(f, "], \"seconds\": %.2f}", s->seconds);
}

static int write_report(const char *path, const char *model_dir, const task_summary *t, int n, int threads,
                        double secs)
{
    textbuf f = {0};
    tb_printf(&f, "{\"backbone\": ");
    tb_json_str(&f, model_dir);
    tb_printf(&f, ", \"threads\": %d, \"seconds\": %.2f,\n \"tasks\": [", threads, secs);
    for (int j = 0; j < n; j++) {
        tb_printf(&f, "%s", j ? "," : "");
        json_task(&f, &t[j]);
    }
    tb_printf(&f, "\n ]}\n");
    return tb_write(&f, path);
}

/* The folder of the task list (tasks.tsv): the tasks' folders are in it. */
static void tasks_dir(const char *tasks_path, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s", tasks_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, cap, ".");
}

/* ==========================================================================
 * --experiments: the same backbone, tasks and grid, to experiments.c */

static int run_experiments(const demo_opts *o, const run_opts *base, const char *tasks_path, const task_summary *t,
                           int n)
{
    exp_task *et = calloc(DEMO_MAX_TASKS, sizeof *et);
    char tdir[PATH_CAP];
    int ne = 0;
    if (!et) {
        set_error("out of memory");
        return -1;
    }
    tasks_dir(tasks_path, tdir, sizeof tdir);
    for (int i = 0; i < n; i++) {
        if (o->only && !list_has(o->only, t[i].name)) continue;
        exp_task *e = &et[ne++];
        e->name = t[i].name, e->desc = t[i].desc, e->ood = t[i].ood;
        char *const files[4] = {e->train_images, e->train_labels, e->test_images, e->test_labels};
        const char *const what[4] = {"train_images", "train_labels", "test_images", "test_labels"};
        for (int k = 0; k < 4; k++)
            if ((size_t)snprintf(files[k], sizeof e->train_images, "%s/%s/%s.npy", tdir, t[i].name, what[k]) >=
                sizeof e->train_images) {
                set_error("task %s: path too long", t[i].name);
                free(et);
                return -1;
            }
    }
    const exp_opts eo = {base->model_dir, o->out, et, ne, base->grid[0], base->grid[1], base->target[0],
                         base->image_batch, o->experiments, o->quiet};
    const int rc = experiments_run(&eo);
    free(et);
    return rc;
}

/* ==========================================================================
 * The demo */

/* Every name in --tasks must be a task of the list. */
static int check_only(const char *only, const task_summary *t, int n, const char *tasks_path)
{
    const char *it;
    size_t len;
    for (const char *p = only; p && list_item(&p, &it, &len);) {
        int found = 0;
        for (int i = 0; i < n; i++) found |= strlen(t[i].name) == len && strncmp(t[i].name, it, len) == 0;
        if (!found) {
            set_error("--tasks: no task '%.*s' in %s", (int)len, it, tasks_path);
            return -1;
        }
    }
    return 0;
}


/* Runs the tasks; the ones that ran are moved to the front: *ran of them. */
static int run_tasks(const demo_opts *o, const run_opts *base, const char *tasks_path, task_summary *t, int n,
                     int *ran)
{
    char tdir[PATH_CAP];
    tasks_dir(tasks_path, tdir, sizeof tdir);
    *ran = 0;
    for (int i = 0; i < n; i++) {
        if (o->only && !list_has(o->only, t[i].name)) continue;
        if (run_one(o, base, tdir, &t[i])) return -1;
        if (*ran != i) t[*ran] = t[i];
        (*ran)++;
    }
    if (*ran == 0) {
        set_error("--tasks '%s': no task to run", o->only ? o->only : "");
        return -1;
    }
    return 0;
}

int demo_run(const demo_opts *o)
{
    const double t0 = now_seconds();
    char model_dir[PATH_CAP], tasks_path[PATH_CAP];
    run_opts base;
    memset(&base, 0, sizeof base);
    task_summary *t = calloc(DEMO_MAX_TASKS, sizeof *t);
    int n, ran, rc = -1;
    if (!t) {
        set_error("out of memory");
        return -1;
    }
    if (read_demo_cfg(o->dir, &base, model_dir, tasks_path) || read_tasks(tasks_path, t, &n) ||
        check_only(o->only, t, n, tasks_path) || (o->experiments && experiments_check(o->experiments)))
        goto done;
    base.model_dir = model_dir;
    base.model_opt.winograd = o->winograd;
    if (o->experiments) {
        rc = run_experiments(o, &base, tasks_path, t, n);
        goto done;
    }
    if (make_dir(o->out)) goto done;
    if (!o->quiet)
        fprintf(stderr, "demo: backbone %s, %d tasks from %s, %d thread%s\n", model_dir, n, tasks_path, threads_max(),
                threads_max() == 1 ? "" : "s");
    if (run_tasks(o, &base, tasks_path, t, n, &ran)) goto done;
    const double secs = now_seconds() - t0;
    print_table(t, ran, secs, threads_max(), o->out);
    if (summary_figures(t, ran, o->out) ||
        (o->report && write_report(o->report, model_dir, t, ran, threads_max(), secs)))
        goto done;
    rc = 0;
done:
    free(t);
    return rc;
}
