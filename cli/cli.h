/* cli.h: what the knob binary's files share: the command signature and the declarative flag parser.
 * Commands are thin: parse flags, call the library, print. Only main() exits. */
#ifndef KNOB_CLI_H
#define KNOB_CLI_H

#include "knob.h"

/* A command returns KNOB_OK or fills err; main prints "knob: error: <msg>" and exits 1 (2 when the
 * status is KNOB_ERR_USAGE). Output already written stays valid (writes are atomic). */
typedef knob_status (*cli_command_fn)(int argc, char **argv, knob_err *err);

/* One row per flag. dest points at the variable holding the default, which --help shows. */
typedef enum {
    ARG_INT,      /* int *, range [lo, hi] */
    ARG_U64,      /* uint64_t *, range [lo, hi] (seeds) */
    ARG_FLOAT,    /* float *, range [lo, hi]; nan and inf rejected */
    ARG_STRING,   /* const char ** */
    ARG_CHOICE,   /* const char **, one of choices "a|b|c" */
    ARG_BOOL,     /* int *, set to 1 by --name (no value) */
} arg_type;

typedef struct arg_def {
    const char *name;      /* without dashes: "lr" */
    arg_type type;
    void *dest;
    const char *meta;      /* "FLOAT", "DIR", ... */
    double lo, hi;         /* inclusive range for numbers */
    const char *choices;   /* ARG_CHOICE: "sgd|adam|adamw" */
    const char *help;
} arg_def;

typedef struct cli_spec {
    const char *cmd;       /* "fit" */
    const char *usage;     /* "knob fit [options]" */
    const char *summary;   /* a paragraph: what it does */
    const arg_def *args;   /* NULL-name-terminated */
    int min_pos, max_pos;  /* positional arguments allowed */
} cli_spec;

/* Parses argv (argv[0] is the command name). Positional arguments go to pos[0 .. *n_pos).
 * Returns KNOB_OK, or KNOB_ERR_USAGE with a message such as
 * "knob fit: unknown flag '--lr0' (did you mean '--lr'?)". Sets *help when --help/-h was given
 * (then nothing else is checked) and, for a command's spec (cmd not NULL), prints its usage on
 * stdout, so the command only returns. */
knob_status cli_parse(const cli_spec *spec, int argc, char **argv, char **pos, int *n_pos, int *help, knob_err *err);
/* The first of names (NULL-terminated, without dashes) given as a flag in argv before any "--", or
 * NULL: for flags that a resumed run takes from its checkpoint and so must not be given. */
const char *cli_first_given(int argc, char **argv, const char *const *names);
/* Prints usage, summary and every flag with its default and range. */
void cli_usage(const cli_spec *spec, FILE *f);

/* Levenshtein distance between a and b (each cut at 64 characters), for "did you mean" hints. */
int cli_edit_distance(const char *a, const char *b);
/* Whether a name at that distance from what was typed is worth suggesting: at most 2 edits, and
 * fewer edits than typed characters (so '-x' does not suggest '--lr'). */
int cli_close_enough(const char *typed, int distance);

/* Global: prints a progress line on stderr only when stderr is a terminal. */
int cli_is_tty(void);

/* Writes s as a JSON string literal (quotes, backslashes, control characters escaped). */
void cli_json_str(FILE *f, const char *s);

/* Checks, before any work, that an output path can be written (output.c); nothing is created.
 * cli_check_out_dir: dir is a folder, or does not exist yet and no part of it is a file.
 * cli_check_out_file: path is not a folder, and its folder exists. flag names the flag in the
 * message ("--out"), or NULL for a positional argument. KNOB_ERR_IO with "PATH: ..." otherwise. */
knob_status cli_check_out_dir(const char *dir, const char *flag, knob_err *err);
knob_status cli_check_out_file(const char *path, const char *flag, knob_err *err);

/* The commands */
knob_status cmd_fit(int argc, char **argv, knob_err *err);
knob_status cmd_inspect(int argc, char **argv, knob_err *err);
knob_status cmd_train(int argc, char **argv, knob_err *err);
knob_status cmd_eval(int argc, char **argv, knob_err *err);
knob_status cmd_predict(int argc, char **argv, knob_err *err);
/* The confusion matrix of an evaluation as a table with class names (cmd_eval.c). */
void cli_print_confusion(FILE *f, const knob_eval_result *r, const char names[][24], int n_classes);
/* knob_data_load for --dataset SPEC and --data DIR (cmd_eval.c): --data with an idx:DIR set is
 * refused (the set names its own folder), and a SPEC that is not a data set names --dataset. */
knob_status cli_data_load(knob_splits *s, const char *dataset, const char *data_dir, int n_val, uint64_t seed,
                          knob_err *err);
knob_status cmd_tokenize(int argc, char **argv, knob_err *err);
knob_status cmd_bpe(int argc, char **argv, knob_err *err);
knob_status cmd_train_gpt(int argc, char **argv, knob_err *err);
knob_status cmd_generate(int argc, char **argv, knob_err *err);
knob_status cmd_score(int argc, char **argv, knob_err *err);
knob_status cmd_next(int argc, char **argv, knob_err *err);
knob_status cmd_chat(int argc, char **argv, knob_err *err);
knob_status cmd_ngram(int argc, char **argv, knob_err *err);
knob_status cmd_convert(int argc, char **argv, knob_err *err);
knob_status cmd_embed(int argc, char **argv, knob_err *err);
knob_status cmd_attention(int argc, char **argv, knob_err *err);
knob_status cmd_tour(int argc, char **argv, knob_err *err);   /* tour.c; chapters in tour_*.c */

#endif
