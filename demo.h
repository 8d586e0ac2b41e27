/* demo.h: `h2t demo` -- the bundled backbone and tasks (demo/), Linear vs
 * Head2Toe on each: demo.cfg names the backbone, the task list and the
 * grid; every task goes through `h2t run` (run.c) into out/<task>/; then a
 * table on stdout, summary figures and an optional JSON report. With
 * --experiments, the same backbone, tasks and grid go to the paper's
 * analysis experiments instead (experiments.c). */
#ifndef H2T_DEMO_H
#define H2T_DEMO_H

typedef struct {
    const char *dir;                    /* demo/ : demo.cfg, backbone/, tasks/ */
    const char *out;                    /* where per-task runs and figures go */
    const char *report;                 /* JSON report, or NULL */
    const char *only;                   /* run only these tasks (comma list), or NULL */
    const char *experiments;            /* the paper's experiments instead (experiments.h): "all" or
                                           a comma list of names; NULL: the demo's table */
    int quiet;
    int winograd;                       /* the backbone's 3x3 convs by Winograd (model.h), 0: off */
} demo_opts;

int demo_run(const demo_opts *o);

#endif
