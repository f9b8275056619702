/* main.c: the knob binary's entry point: global flags, the command table, and the one place that
 * exits.
 *
 * `knob [--threads N] [--version] [--help] COMMAND [ARGS]`. Global flags come before the command and
 * are parsed by cli_parse with a spec of their own, so they get the same checks and messages as a
 * command's flags. `knob help CMD` is rewritten once into `knob CMD --help` (as git does), so a
 * command's help has exactly one source: its own flag table. Each command returns a knob_status
 * and fills a knob_err; main prints that message once on stderr and exits 1, or 2 for usage errors.
 *
 * Message shape: library errors become "knob: error: <msg>". Usage errors from cli_parse already
 * name the command ("knob fit: unknown flag ..."), so main puts "error: " after that prefix
 * ("knob fit: error: unknown flag ...") instead of saying "knob" twice.
 *
 * Not here: flag parsing (args.c) and anything a command does (cmd_*.c).
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static knob_status cmd_help(int argc, char **argv, knob_err *err);

static const struct command {
    const char *name;
    cli_command_fn fn;
    const char *summary;   /* one line for `knob help` */
} commands[] = {
    { "fit",     cmd_fit,     "fit a line, a quadratic and a small neural net to falling-ball timings" },
    { "inspect", cmd_inspect, "list the tensors and metadata in a safetensors file" },
    { "train",   cmd_train,   "train an MLP or CNN image classifier on digits, Fashion-MNIST or IDX files" },
    { "eval",    cmd_eval,    "test accuracy and confusion matrix of a trained classifier" },
    { "predict", cmd_predict, "classify a PNG or PGM image with a trained classifier" },
    { "tokenize", cmd_tokenize, "text -> token ids and pieces (GPT-2 BPE, bytes, a trained BPE); --decode for ids -> text" },
    { "bpe",     cmd_bpe,     "train a byte-level BPE tokenizer: knob bpe train CORPUS... --vocab N --out DIR" },
    { "train-gpt", cmd_train_gpt, "train a GPT on text (default: the fortune files); resumable checkpoints" },
    { "generate", cmd_generate, "continue a prompt with a GPT: temperature, top-k, top-p, stop text" },
    { "score",   cmd_score,   "a GPT's cross-entropy and perplexity on a text file" },
    { "next",    cmd_next,    "the most likely next tokens after a text, at temperatures 0.5, 1 and 2" },
    { "chat",    cmd_chat,    "talk with a GPT, one line a turn (stdin)" },
    { "ngram",   cmd_ngram,   "count letter or word n-grams in a corpus and sample text at n = 1..N" },
    { "convert", cmd_convert, "convert a GPT between knob, Hugging Face (safetensors) and llm.c (.bin) files" },
    { "embed",   cmd_embed,   "nearest tokens to words by embedding cosine, and a 2-D PCA plot of them" },
    { "attention", cmd_attention, "per-layer, per-head attention heat maps of a GPT reading a text" },
    { "tour",    cmd_tour,    "every idea behind ChatGPT run for real, pictured, in one page: out/tour/index.html" },
    { "help",    cmd_help,    "show this list, or a command's flags: knob help COMMAND" },
};
enum { N_COMMANDS = (int)(sizeof commands / sizeof commands[0]) };

/* ------------------------------------------------------------------------------------------------
 * Global flags */

static int opt_threads;    /* 0: not given (KNOB_THREADS, else all cores) */
static int opt_version;

static const arg_def global_args[] = {
    { "threads", ARG_INT,  &opt_threads, "N", 1, 1024, NULL,
      "threads for the kernels; also KNOB_THREADS, else all cores" },
    { "version", ARG_BOOL, &opt_version, NULL, 0, 0, NULL, "print the version and exit" },
    { NULL, ARG_BOOL, NULL, NULL, 0, 0, NULL, NULL },
};

/* "usage", the summary (with the command list) and the global flags, from the table above. */
static void print_help(FILE *f)
{
    static char summary[2048];
    size_t n = (size_t)snprintf(summary, sizeof summary,
                                "knob: a small deep-learning engine in C.\n\ncommands:");
    for (int i = 0; i < N_COMMANDS && n < sizeof summary; i++)
        n += (size_t)snprintf(summary + n, sizeof summary - n, "\n  %-9s %s", commands[i].name,
                              commands[i].summary);
    const cli_spec spec = { NULL, "knob [--threads N] [--version] [--help] COMMAND [ARGS]", summary,
                            global_args, 0, 0 };
    int given = opt_threads;
    opt_threads = knob_threads_get();   /* the help shows the count in effect as the default */
    cli_usage(&spec, f);
    opt_threads = given;
    fprintf(f, "\nRun 'knob help COMMAND' or 'knob COMMAND --help' for a command's flags.\n");
}

/* Index of the first word after the global flags (the command); --threads takes the next word. */
static int global_end(int argc, char **argv)
{
    int i = 1;
    while (i < argc && argv[i][0] == '-' && argv[i][1] != '\0') {
        if (strcmp(argv[i], "--") == 0)
            return i + 1;
        i += strcmp(argv[i], "--threads") == 0 ? 2 : 1;
    }
    return i < argc ? i : argc;
}

/* --threads wins; otherwise KNOB_THREADS is checked with the same rule before the library reads it. */
static knob_status set_threads(knob_err *err)
{
    if (opt_threads > 0) {
        knob_threads_set(opt_threads);
        return KNOB_OK;
    }
    const char *env = getenv("KNOB_THREADS");
    if (env && env[0]) {
        char *end;
        errno = 0;
        long n = strtol(env, &end, 10);
        if (errno || *end || n < 1 || n > 1024 || env[0] == ' ')
            return knob_fail(err, KNOB_ERR_USAGE, "KNOB_THREADS='%.64s' is not an integer in [1, 1024]", env);
    }
    knob_threads_set(0);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Commands */

static knob_status cmd_help(int argc, char **argv, knob_err *err)
{
    (void)argc, (void)argv, (void)err;   /* `help CMD` was rewritten to `CMD --help` before dispatch */
    print_help(stdout);
    return KNOB_OK;
}

static const struct command *find_command(const char *name)
{
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static knob_status unknown_command(const char *name, knob_err *err)
{
    const char *best = commands[0].name;
    int best_d = cli_edit_distance(name, best);
    for (int i = 1; i < N_COMMANDS; i++) {
        int d = cli_edit_distance(name, commands[i].name);
        if (d < best_d) {
            best = commands[i].name;
            best_d = d;
        }
    }
    if (cli_close_enough(name, best_d))
        return knob_fail(err, KNOB_ERR_USAGE, "unknown command '%.64s' (did you mean '%s'?); see 'knob help'",
                         name, best);
    return knob_fail(err, KNOB_ERR_USAGE, "unknown command '%.64s'; see 'knob help'", name);
}

/* ------------------------------------------------------------------------------------------------
 * Reporting and exit */

/* Length of a leading "knob: " or "knob CMD: " in msg, else 0. */
static size_t knob_prefix(const char *msg)
{
    if (strncmp(msg, "knob", 4) != 0)
        return 0;
    const char *p = msg + 4;
    if (*p == ' ')
        p += 1 + strcspn(p + 1, " :");
    return p[0] == ':' && p[1] == ' ' ? (size_t)(p + 2 - msg) : 0;
}

static int report(knob_status s, const knob_err *err)
{
    const char *msg = err->msg[0] ? err->msg : knob_status_name(s);
    size_t pre = knob_prefix(msg);
    if (pre)
        fprintf(stderr, "%.*serror: %s\n", (int)pre, msg, msg + pre);
    else
        fprintf(stderr, "knob: error: %s\n", msg);
    return s == KNOB_ERR_USAGE ? 2 : 1;
}

/* Results went to stdout: a failed write (disk full, closed pipe) must not exit 0. */
static int finish(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "knob: error: cannot write to stdout: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    knob_err err = { KNOB_OK, "" };
    int cmd_at = global_end(argc, argv), help = 0;
    const cli_spec global = { NULL, "knob [--threads N] [--version] [--help] COMMAND [ARGS]", NULL,
                              global_args, 0, 0 };
    knob_status s = cli_parse(&global, cmd_at, argv, NULL, NULL, &help, &err);
    if (s)
        return report(s, &err);
    if (opt_version) {
        printf("knob %s\n", KNOB_VERSION);
        return finish();
    }
    knob_threads_set(opt_threads);   /* for the count the help shows; set_threads checks it below */
    if (help) {
        print_help(stdout);
        return finish();
    }
    if (cmd_at >= argc) {
        print_help(stderr);
        return 2;
    }
    if ((s = set_threads(&err)))
        return report(s, &err);

    char **cmd_argv = argv + cmd_at;
    int cmd_argc = argc - cmd_at;
    static char help_flag[] = "--help";
    char *help_argv[3] = { NULL, help_flag, NULL };
    if (strcmp(cmd_argv[0], "help") == 0 && cmd_argc > 1) {   /* knob help CMD == knob CMD --help */
        help_argv[0] = cmd_argv[1];
        cmd_argv = help_argv;
        cmd_argc = 2;
    }
    const struct command *cmd = find_command(cmd_argv[0]);
    s = cmd ? cmd->fn(cmd_argc, cmd_argv, &err) : unknown_command(cmd_argv[0], &err);
    if (s) {
        fflush(stdout);
        return report(s, &err);
    }
    return finish();
}
