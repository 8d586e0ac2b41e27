/* experiments.h: `h2t demo --experiments`, the paper's analysis
 * experiments in miniature (docs/ALGORITHM.md §17) on the demo's backbone
 * and tasks: feature-wise vs layer-wise selection (Fig. 6 left), selections
 * moved between tasks (Fig. 7 left), target size and fraction of locations
 * (Fig. 7 right), the selection across seeds and past an offset (Fig. 11
 * centre and right), the amount of training data (Fig. 13), pre_logits plus
 * one location (Figs. 4 and 9), the tap points and the input (Table 6) and
 * the ViT's class token (Table 7). Each writes a figure (SVG, and PNG where
 * rsvg-convert exists) and a row of experiments.md: the claim, what the
 * miniature shows, and a verdict with the numbers.
 *
 * demo.c reads demo.cfg and the task list and calls experiments_run; the
 * features come from extract.c, the fits from cv.c, the scores from
 * scores.c. Nothing here is timed into a file: the same seed writes the
 * same bytes. */
#ifndef H2T_EXPERIMENTS_H
#define H2T_EXPERIMENTS_H

#include "cv.h"

#define EXP_MAX_TASKS 16

typedef struct {
    const char *name, *desc;
    int ood;                             /* out of the backbone's distribution */
    char train_images[1024], train_labels[1024], test_images[1024], test_labels[1024];
} exp_task;

typedef struct {
    const char *model_dir;
    const char *out;                     /* figures and experiments.md */
    const exp_task *tasks;
    int ntasks;
    fit_config linear, h2t;              /* the demo's grids (cross-validated reference fits) */
    long target;                         /* the demo's T; the scaling curve also uses T/4 and 4T */
    int image_batch;
    const char *only;                    /* a comma list of experiment names, or "all" */
    int quiet;
} exp_opts;

/* "fig6", "fig7-transfer", "fig7-scaling", "fig11-overlap", "fig11-offset",
 * "fig13", "fig4", "table6", "table7", NULL */
extern const char *const experiment_names[];

/* Whether list ("all" or names) names only known experiments; -1 with
 * "--experiments: no experiment 'x' (expected ...)" otherwise. */
int experiments_check(const char *list);
int experiments_run(const exp_opts *o);

#endif
