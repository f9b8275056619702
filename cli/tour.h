/* tour.h: what the chapters of `knob tour` share (cli/tour.c runs them and writes the report page).
 * A chapter explains in a few plain sentences, runs a real computation through the library, writes
 * its pictures into its own folder and reports its numbers; the framework prints everything on the
 * terminal and gathers it, as it happens, in out/tour/index.html (rewritten atomically after each
 * chapter, so a tour stopped half-way leaves a readable page). */
#ifndef KNOB_TOUR_H
#define KNOB_TOUR_H

#include "knob.h"

typedef struct tour_ctx tour_ctx;   /* opaque: cli/tour.c */

/* What the chapter may use. */
const char *tour_dir(const tour_ctx *t);     /* its folder, already made: "out/tour/03-descent" */
int         tour_quick(const tour_ctx *t);   /* 1 under --quick: a small version of everything */
int         tour_threads(const tour_ctx *t); /* the --threads value */
double      tour_budget(const tour_ctx *t);  /* seconds this chapter is given (the GPT gets most) */
uint64_t    tour_seed(const tour_ctx *t);    /* --seed, so a tour is repeatable */
const char *tour_data(const tour_ctx *t);    /* the data folder (KNOB_DATA or "data") */

/* What the chapter reports, in order; each is printed and added to the page. */
void tour_say(tour_ctx *t, const char *fmt, ...) KNOB_PRINTF(2, 3);       /* a paragraph of plain text */
void tour_heading(tour_ctx *t, const char *fmt, ...) KNOB_PRINTF(2, 3);   /* a sub-heading inside the chapter */
/* a picture written by the chapter into tour_dir (file is the name inside it: "landscape.svg") */
void tour_picture(tour_ctx *t, const char *file, const char *caption);
/* a measured number, shown in the chapter's table of figures: name, value with its unit */
void tour_number(tour_ctx *t, const char *name, const char *fmt, ...) KNOB_PRINTF(3, 4);
/* a block of fixed-width text (a table, generated samples) */
void tour_pre(tour_ctx *t, const char *text);
/* progress on a terminal (stderr, overwritten in place; nothing when not a terminal) */
void tour_progress(tour_ctx *t, const char *fmt, ...) KNOB_PRINTF(2, 3);
/* a path inside tour_dir for a file the chapter writes: buf must hold 4096 bytes */
const char *tour_path(const tour_ctx *t, const char *file, char *buf);

/* A chapter returns KNOB_OK or fills err (the tour says which chapter failed and goes on). */
typedef knob_status (*tour_chapter_fn)(tour_ctx *t, knob_err *err);

/* The chapters (each defined in a cli/tour_*.c file; the table is in cli/tour.c) */
knob_status tour_ch_model(tour_ctx *t, knob_err *err);        /*  1 a model is a function with knobs */
knob_status tour_ch_neuron(tour_ctx *t, knob_err *err);       /*  2 a neuron, a layer */
knob_status tour_ch_descent(tour_ctx *t, knob_err *err);      /*  3 gradient descent */
knob_status tour_ch_backprop(tour_ctx *t, knob_err *err);     /*  4 backpropagation */
knob_status tour_ch_digits(tour_ctx *t, knob_err *err);       /*  5 digits */
knob_status tour_ch_edges(tour_ctx *t, knob_err *err);        /*  6 images and edges */
knob_status tour_ch_epochs(tour_ctx *t, knob_err *err);       /*  7 epochs and varied examples */
knob_status tour_ch_hyper(tour_ctx *t, knob_err *err);        /*  8 hyperparameters */
knob_status tour_ch_general(tour_ctx *t, knob_err *err);      /*  9 generalization */
knob_status tour_ch_landscape(tour_ctx *t, knob_err *err);    /* 10 the landscape */
knob_status tour_ch_counting(tour_ctx *t, knob_err *err);     /* 11 counting (n-grams) */
knob_status tour_ch_tokens(tour_ctx *t, knob_err *err);       /* 12 tokens and embeddings */
knob_status tour_ch_gpt(tour_ctx *t, knob_err *err);          /* 13 a GPT */
knob_status tour_ch_temperature(tour_ctx *t, knob_err *err);  /* 14 temperature */
knob_status tour_ch_scale(tour_ctx *t, knob_err *err);        /* 15 175 billion knobs */

/* The fortune files (/usr/share/games/fortunes, Debian's fortunes package) as one text, knob_malloc'd. */
knob_status tour_read_fortunes(char **text, size_t *len, knob_err *err);

/* Shared between chapters 13 -> 14 -> 15: the GPT the tour trained (its checkpoint path, or NULL when
 * chapter 13 has not run in this tour: then a later chapter trains a small one of its own or says
 * why it cannot) and the training speed measured there (tokens/s; 0 when not measured). */
const char *tour_gpt_path(const tour_ctx *t);
void        tour_set_gpt(tour_ctx *t, const char *path, double tokens_per_s, double flops_per_s);
double      tour_gpt_tokens_per_s(const tour_ctx *t);
double      tour_gpt_flops_per_s(const tour_ctx *t);

/* Shared by the text chapters (cli/tour_gpt.c): a character-level GPT trained on the fortunes for
 * about `seconds` (small: 2 layers of width 64, context 32; else chapter 13's 4 layers of width 128),
 * its checkpoint written to ckpt (a path inside the chapter's folder). */
knob_status tour_train_fortune_gpt(tour_ctx *t, double seconds, int small, const char *ckpt, knob_err *err);

#endif
