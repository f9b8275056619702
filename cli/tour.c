/* tour.c: `knob tour`, every idea behind ChatGPT run for real, in the order of the story.
 *
 * `knob tour [--chapter N|NAME] [--list] [--quick] [--out DIR] [--threads N] [--seed N]`. The
 * chapter table below holds the story's order, each chapter's folder name and its time budget
 * (full and --quick; the GPT of chapter 13 gets most of it). Each chapter is a function in a
 * cli/tour_*.c file (the contract is cli/tour.h): it explains in plain sentences, runs a real
 * computation through the library and reports text, pictures and numbers through tour_say,
 * tour_picture, tour_number... The framework prints them on stdout as they come and keeps them, so
 * that out/tour/index.html (the report page: a table of contents, every chapter's text, pictures,
 * figures and time) is rewritten atomically after each chapter; a tour stopped half-way leaves a
 * readable page. A chapter that fails is named and the tour goes on; the command fails at the end.
 *
 * Chapters written on another branch are declared weak here, so this file links without them; a
 * binary built without one says so when it is asked for (it is never silently skipped).
 */
#include "cli.h"
#include "tour.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct chapter {
    int num;
    const char *name;     /* --chapter NAME and the folder "NN-name" */
    const char *title;
    double budget, budget_quick;   /* seconds */
    tour_chapter_fn fn;
} chapter;

static const chapter chapters[] = {
    {  1, "model",       "A model is a function with knobs",  10,   2, tour_ch_model },
    {  2, "neuron",      "A neuron, a layer",                 15,   3, tour_ch_neuron },
    {  3, "descent",     "Gradient descent",                  10,   2, tour_ch_descent },
    {  4, "backprop",    "Backpropagation",                    5,   1, tour_ch_backprop },
    {  5, "digits",      "Digits",                            30,   5, tour_ch_digits },
    {  6, "edges",       "Images and edges",                  60,   8, tour_ch_edges },
    {  7, "epochs",      "Epochs and varied examples",        45,   8, tour_ch_epochs },
    {  8, "hyper",       "Hyperparameters",                   40,   6, tour_ch_hyper },
    {  9, "general",     "Generalization",                    30,   6, tour_ch_general },
    { 10, "landscape",   "The landscape",                     40,   8, tour_ch_landscape },
    { 11, "counting",    "Counting",                          10,   2, tour_ch_counting },
    { 12, "tokens",      "Tokens and embeddings",             30,   3, tour_ch_tokens },
    { 13, "gpt",         "A GPT",                            220,  25, tour_ch_gpt },
    { 14, "temperature", "Temperature",                       10,   3, tour_ch_temperature },
    { 15, "scale",       "175 billion knobs",                  5,   1, tour_ch_scale },
};
enum { N_CHAPTERS = (int)(sizeof chapters / sizeof chapters[0]) };

/* What a chapter reported, in order. */
typedef enum { ITEM_SAY, ITEM_HEADING, ITEM_PICTURE, ITEM_NUMBER, ITEM_PRE } item_kind;
typedef struct item {
    item_kind kind;
    char *a, *b;   /* text; PICTURE: file, caption; NUMBER: name, value */
} item;

typedef struct chapter_run {
    int ran;        /* 0 not run (yet), 1 running, 2 done */
    int failed;
    knob_status code;
    char err[512];
    double seconds;
    item *items;
    int n_items, cap_items;
} chapter_run;

struct tour_ctx {
    const char *out;           /* out/tour */
    char dir[3072];            /* the current chapter's folder (room for a file name in 4096) */
    int quick, threads, tty, progress_shown;
    int after_number;          /* the last line printed was a figure: a blank line before text */
    uint64_t seed;
    double budget;
    char data[4096];
    const chapter *ch;         /* the chapter running */
    chapter_run runs[N_CHAPTERS];
    chapter_run *run;
    char gpt_path[4096];
    double gpt_tokens_per_s, gpt_flops_per_s;
    int nomem;                 /* an item could not be kept (the page says so) */
    double started;
};

/* ------------------------------------------------------------------------------------------------
 * What a chapter may use */

const char *tour_dir(const tour_ctx *t) { return t->dir; }
int tour_quick(const tour_ctx *t) { return t->quick; }
int tour_threads(const tour_ctx *t) { return t->threads; }
double tour_budget(const tour_ctx *t) { return t->budget; }
uint64_t tour_seed(const tour_ctx *t) { return t->seed; }
const char *tour_data(const tour_ctx *t) { return t->data; }

const char *tour_path(const tour_ctx *t, const char *file, char *buf)
{
    snprintf(buf, 4096, "%s/%s", t->dir, file);
    return buf;
}

const char *tour_gpt_path(const tour_ctx *t) { return t->gpt_path[0] ? t->gpt_path : NULL; }
double tour_gpt_tokens_per_s(const tour_ctx *t) { return t->gpt_tokens_per_s; }
double tour_gpt_flops_per_s(const tour_ctx *t) { return t->gpt_flops_per_s; }

void tour_set_gpt(tour_ctx *t, const char *path, double tokens_per_s, double flops_per_s)
{
    snprintf(t->gpt_path, sizeof t->gpt_path, "%s", path ? path : "");
    t->gpt_tokens_per_s = tokens_per_s;
    t->gpt_flops_per_s = flops_per_s;
}

/* ------------------------------------------------------------------------------------------------
 * What a chapter reports: printed at once, kept for the page */

static void clear_progress(tour_ctx *t)
{
    if (t->tty && t->progress_shown) {
        fputs("\r\033[K", stderr);
        t->progress_shown = 0;
    }
}

/* Before a paragraph, picture or block: clears the progress line and ends a run of figures. */
static void before_block(tour_ctx *t)
{
    clear_progress(t);
    if (t->after_number)
        fputc('\n', stdout);
    t->after_number = 0;
}

static void keep(tour_ctx *t, item_kind kind, const char *a, const char *b)
{
    chapter_run *r = t->run;
    if (!r)
        return;
    if (r->n_items == r->cap_items) {
        int cap = r->cap_items ? 2 * r->cap_items : 16;
        item *p = knob_realloc(r->items, (size_t)cap * sizeof *p);
        if (!p) {
            t->nomem = 1;
            return;
        }
        r->items = p;
        r->cap_items = cap;
    }
    item it = { kind, knob_strdup(a), b ? knob_strdup(b) : NULL };
    if (!it.a || (b && !it.b)) {
        knob_free(it.a);
        knob_free(it.b);
        t->nomem = 1;
        return;
    }
    r->items[r->n_items++] = it;
}

/* Prints text wrapped at 96 columns, each line indented by two spaces. */
static void print_wrapped(const char *s)
{
    const int width = 96;
    while (*s) {
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        int n = (int)strlen(s), cut = n;
        const char *nl = strchr(s, '\n');
        if (nl && nl - s < cut)
            cut = (int)(nl - s);
        if (cut > width) {
            cut = width;
            while (cut > 0 && s[cut] != ' ')
                cut--;
            if (cut == 0)
                cut = width;
        }
        printf("  %.*s\n", cut, s);
        s += cut;
        if (*s == '\n')
            s++;
    }
}

static char *vformat(const char *fmt, va_list ap)
{
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0)
        return NULL;
    char *s = knob_malloc((size_t)n + 1);
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

knob_status tour_read_fortunes(char **text, size_t *len, knob_err *err)
{
    char **files = NULL;
    int n_files = 0;
    const char *corpus[1] = {"/usr/share/games/fortunes"};
    knob_status s = knob_corpus_files(corpus, 1, &files, &n_files, err);
    if (!s)
        s = knob_corpus_read(files, n_files, text, len, err);
    knob_corpus_files_free(files, n_files);
    return s;
}

void tour_say(tour_ctx *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    if (!s) {
        t->nomem = 1;
        return;
    }
    before_block(t);
    print_wrapped(s);
    printf("\n");
    fflush(stdout);
    keep(t, ITEM_SAY, s, NULL);
    knob_free(s);
}

void tour_heading(tour_ctx *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    if (!s) {
        t->nomem = 1;
        return;
    }
    before_block(t);
    printf("  -- %s --\n\n", s);
    fflush(stdout);
    keep(t, ITEM_HEADING, s, NULL);
    knob_free(s);
}

void tour_picture(tour_ctx *t, const char *file, const char *caption)
{
    before_block(t);
    printf("  [picture] %s/%s: %s\n\n", t->dir, file, caption ? caption : "");
    fflush(stdout);
    keep(t, ITEM_PICTURE, file, caption ? caption : "");
}

void tour_number(tour_ctx *t, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    if (!s) {
        t->nomem = 1;
        return;
    }
    clear_progress(t);
    t->after_number = 1;
    printf("  %-56s %s\n", name, s);
    fflush(stdout);
    keep(t, ITEM_NUMBER, name, s);
    knob_free(s);
}

void tour_pre(tour_ctx *t, const char *text)
{
    before_block(t);
    const char *s = text;
    fputs("    ", stdout);
    for (; *s; s++) {
        if (*s == '\n' && s[1])
            fputs("\n    ", stdout);
        else if (*s != '\n')
            fputc(*s, stdout);
    }
    fputs("\n\n", stdout);
    fflush(stdout);
    keep(t, ITEM_PRE, text, NULL);
}

void tour_progress(tour_ctx *t, const char *fmt, ...)
{
    if (!t->tty)
        return;
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    double el = t->run ? knob_now() - t->run->seconds : 0;
    fprintf(stderr, "\r\033[K[%d/%d %s %.0fs/%.0fs] %.110s", t->ch ? t->ch->num : 0, N_CHAPTERS,
            t->ch ? t->ch->name : "", el, t->budget, line);
    fflush(stderr);
    t->progress_shown = 1;
}

/* ------------------------------------------------------------------------------------------------
 * The report page: out/tour/index.html */

static void html_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if (c < 0x20 && c != '\n' && c != '\t')
                fputc('?', f);
            else
                fputc(c, f);
        }
    }
}

/* A file name is written into an attribute as it is, percent-encoding anything unusual. */
static void html_url(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-_./", c))
            fputc(c, f);
        else
            fprintf(f, "%%%02X", c);
    }
}

static void chapter_folder(const chapter *c, char *buf, size_t n)
{
    snprintf(buf, n, "%02d-%s", c->num, c->name);
}

static const char *const page_css =
    "body{font-family:sans-serif;max-width:1040px;margin:0 auto;padding:1em 1.5em;line-height:1.45;"
    "color:#222;background:#fff}\n"
    "h1{font-size:1.8em;margin-bottom:.2em}h2{margin-top:2em;border-bottom:2px solid #ddd;padding-bottom:.2em}\n"
    "h3{margin-bottom:.3em}\n"
    "nav ol{columns:2;padding-left:1.5em}nav li{margin:.1em 0}\n"
    ".time{color:#666;font-size:.85em;font-weight:normal}\n"
    ".fail{color:#b00}.notrun{color:#888}\n"
    "figure{margin:1em 0;max-width:100%}figure img{max-width:100%;height:auto;border:1px solid #eee}\n"
    "figcaption{color:#444;font-size:.9em}\n"
    "table{border-collapse:collapse;margin:.8em 0;max-width:100%}\n"
    "td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left;vertical-align:top}\n"
    "td.v{font-family:monospace;overflow-wrap:anywhere}\n"
    "pre{background:#f6f6f6;padding:.6em;overflow-x:auto;max-width:100%;box-sizing:border-box;font-size:.85em}\n";

static void page_chapter(FILE *f, const tour_ctx *t, int i)
{
    const chapter *c = &chapters[i];
    const chapter_run *r = &t->runs[i];
    char folder[64];
    chapter_folder(c, folder, sizeof folder);
    fprintf(f, "<section id=\"ch%d\">\n<h2>%d. ", c->num, c->num);
    html_text(f, c->title);
    if (r->ran == 2)
        fprintf(f, " <span class=\"time\">(%.1f s of a %.0f s budget)</span>", r->seconds, t->quick ? c->budget_quick : c->budget);
    else if (r->ran == 1)
        fputs(" <span class=\"time\">(running)</span>", f);
    fputs("</h2>\n", f);
    int in_table = 0;
    for (int k = 0; k < r->n_items; k++) {
        const item *it = &r->items[k];
        if (it->kind != ITEM_NUMBER && in_table) {
            fputs("</table>\n", f);
            in_table = 0;
        }
        switch (it->kind) {
        case ITEM_SAY:
            fputs("<p>", f);
            html_text(f, it->a);
            fputs("</p>\n", f);
            break;
        case ITEM_HEADING:
            fputs("<h3>", f);
            html_text(f, it->a);
            fputs("</h3>\n", f);
            break;
        case ITEM_PICTURE:
            fputs("<figure><img src=\"", f);
            html_url(f, folder);
            fputc('/', f);
            html_url(f, it->a);
            fputs("\" alt=\"", f);
            html_text(f, it->b);
            fputs("\"><figcaption>", f);
            html_text(f, it->b);
            fputs("</figcaption></figure>\n", f);
            break;
        case ITEM_NUMBER:
            if (!in_table) {
                fputs("<table>\n", f);
                in_table = 1;
            }
            fputs("<tr><td>", f);
            html_text(f, it->a);
            fputs("</td><td class=\"v\">", f);
            html_text(f, it->b);
            fputs("</td></tr>\n", f);
            break;
        case ITEM_PRE:
            fputs("<pre>", f);
            html_text(f, it->a);
            fputs("</pre>\n", f);
            break;
        }
    }
    if (in_table)
        fputs("</table>\n", f);
    if (r->failed) {
        fputs("<p class=\"fail\">This chapter failed: ", f);
        html_text(f, r->err);
        fputs("</p>\n", f);
    } else if (r->ran == 0) {
        fputs("<p class=\"notrun\">Not run in this tour.</p>\n", f);
    }
    fputs("</section>\n", f);
}

static knob_status write_page(tour_ctx *t, int finished, knob_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/index.html", t->out);
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s)
        return s;
    FILE *f = a.f;
    double total = 0;
    int n_ran = 0;
    for (int i = 0; i < N_CHAPTERS; i++)
        if (t->runs[i].ran == 2) {
            total += t->runs[i].seconds;
            n_ran++;
        }
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<title>knob tour: every idea behind ChatGPT, run for real</title>\n<style>\n", f);
    fputs(page_css, f);
    fputs("</style>\n</head>\n<body>\n<h1>knob tour</h1>\n"
          "<p>Every idea behind ChatGPT, run for real on this machine by knob, a small deep-learning "
          "engine in C. Each chapter below explains what happens, runs a real computation and shows "
          "its pictures and numbers. Nothing on this page was stored in advance.</p>\n", f);
    fprintf(f, "<p class=\"time\">%s%s: %d of %d chapters run in %.1f s, %d thread%s, seed %llu.%s</p>\n",
            finished ? "Finished" : "In progress", t->quick ? " (quick version)" : "", n_ran, N_CHAPTERS, total,
            t->threads, t->threads == 1 ? "" : "s", (unsigned long long)t->seed,
            t->nomem ? " Some items were lost for lack of memory." : "");
    fputs("<nav>\n<h2>Contents</h2>\n<ol>\n", f);
    for (int i = 0; i < N_CHAPTERS; i++) {
        const chapter_run *r = &t->runs[i];
        fprintf(f, "<li><a href=\"#ch%d\">", chapters[i].num);
        html_text(f, chapters[i].title);
        fputs("</a> ", f);
        if (r->ran == 2 && r->failed)
            fprintf(f, "<span class=\"fail\">(failed, %.1f s)</span>", r->seconds);
        else if (r->ran == 2)
            fprintf(f, "<span class=\"time\">(%.1f s)</span>", r->seconds);
        else if (r->ran == 1)
            fputs("<span class=\"time\">(running)</span>", f);
        else
            fputs("<span class=\"notrun\">(not run)</span>", f);
        fputs("</li>\n", f);
    }
    fputs("</ol>\n</nav>\n", f);
    for (int i = 0; i < N_CHAPTERS; i++)
        page_chapter(f, t, i);
    fputs("</body>\n</html>\n", f);
    return knob_atomic_commit(&a, err);
}

/* ------------------------------------------------------------------------------------------------
 * The command */

static const chapter *find_chapter(const char *s)
{
    char *end;
    long n = strtol(s, &end, 10);
    if (end != s && *end == '\0') {
        for (int i = 0; i < N_CHAPTERS; i++)
            if (chapters[i].num == n)
                return &chapters[i];
        return NULL;
    }
    for (int i = 0; i < N_CHAPTERS; i++) {
        char folder[64];
        chapter_folder(&chapters[i], folder, sizeof folder);
        if (strcasecmp(chapters[i].name, s) == 0 || strcasecmp(folder, s) == 0)
            return &chapters[i];
    }
    return NULL;
}

static void list_chapters(int quick)
{
    double total = 0;
    printf("The chapters of knob tour, in the order of the story (budget: seconds on two cores%s):\n",
           quick ? ", --quick" : "");
    for (int i = 0; i < N_CHAPTERS; i++) {
        const chapter *c = &chapters[i];
        double b = quick ? c->budget_quick : c->budget;
        total += b;
        printf("  %2d  %-12s %-36s %4.0f s\n", c->num, c->name, c->title, b);
    }
    printf("  total budget %.0f s\n", total);
}

static void free_runs(tour_ctx *t)
{
    for (int i = 0; i < N_CHAPTERS; i++) {
        chapter_run *r = &t->runs[i];
        for (int k = 0; k < r->n_items; k++) {
            knob_free(r->items[k].a);
            knob_free(r->items[k].b);
        }
        knob_free(r->items);
        r->items = NULL;
        r->n_items = r->cap_items = 0;
    }
}

/* Runs chapter i; its failure is kept in its run (the tour goes on). */
static void run_chapter(tour_ctx *t, int i)
{
    const chapter *c = &chapters[i];
    chapter_run *r = &t->runs[i];
    knob_err err = { KNOB_OK, "" };
    char folder[64];
    chapter_folder(c, folder, sizeof folder);
    snprintf(t->dir, sizeof t->dir, "%s/%s", t->out, folder);
    t->ch = c;
    t->run = r;
    t->budget = t->quick ? c->budget_quick : c->budget;
    r->ran = 1;
    r->seconds = knob_now();   /* the start while it runs, then its length */
    printf("== Chapter %d: %s (about %.0f s) ==\n\n", c->num, c->title, t->budget);
    fflush(stdout);
    knob_status s;
    if ((s = knob_mkdirs(t->dir, &err)) == KNOB_OK) {
        knob_err page_err;
        write_page(t, 0, &page_err);   /* "running": a failure here shows again below */
        knob_threads_set(t->threads);  /* a chapter may have changed it */
        s = c->fn(t, &err);
    }
    before_block(t);
    r->seconds = knob_now() - r->seconds;
    r->ran = 2;
    if (s) {
        r->failed = 1;
        r->code = s;
        snprintf(r->err, sizeof r->err, "%s", err.msg[0] ? err.msg : knob_status_name(s));
        printf("  Chapter %d failed: %s\n\n", c->num, r->err);
    } else {
        printf("  (chapter %d took %.1f s)\n\n", c->num, r->seconds);
    }
    fflush(stdout);
    t->ch = NULL;
    t->run = NULL;
}

knob_status cmd_tour(int argc, char **argv, knob_err *err)
{
    static const char *opt_chapter = NULL, *opt_out = "out/tour";
    static int opt_list, opt_quick, opt_threads;
    static uint64_t opt_seed = 1;
    static const arg_def args[] = {
        { "chapter", ARG_STRING, &opt_chapter, "N|NAME", 0, 0, NULL,
          "run only this chapter: its number (1-15) or name (see --list)" },
        { "list",    ARG_BOOL,   &opt_list,    NULL, 0, 0, NULL, "list the chapters with their time budgets and stop" },
        { "quick",   ARG_BOOL,   &opt_quick,   NULL, 0, 0, NULL, "a small version of every chapter (about 1.5 minutes; CI runs it)" },
        { "out",     ARG_STRING, &opt_out,     "DIR", 0, 0, NULL, "folder for the report page and each chapter's pictures" },
        { "threads", ARG_INT,    &opt_threads, "N", 0, 1024, NULL, "threads for the kernels (0: the global --threads, KNOB_THREADS, else all cores)" },
        { "seed",    ARG_U64,    &opt_seed,    "N", 0, 1.8446744073709552e19, NULL, "seed of every random choice, so a tour is repeatable" },
        { NULL, ARG_BOOL, NULL, NULL, 0, 0, NULL, NULL },
    };
    static const cli_spec spec = { "tour", "knob tour [--chapter N|NAME] [--list] [--quick] [--out DIR] [--threads N] [--seed N]",
        "Every idea behind ChatGPT, run for real: fifteen chapters from a line fitted to a falling ball to "
        "a GPT trained on the fortunes, each explained in a few sentences, computed on this machine and "
        "pictured. Pictures go to DIR/NN-name/; DIR/index.html gathers every chapter's text, pictures, "
        "numbers and time in one page, rewritten as chapters finish.", args, 0, 0 };
    int help = 0;
    knob_status s = cli_parse(&spec, argc, argv, NULL, NULL, &help, err);
    if (s || help)
        return s;
    if (opt_list) {
        list_chapters(opt_quick);
        return KNOB_OK;
    }
    const chapter *only = NULL;
    if (opt_chapter) {
        if (!opt_chapter[0])
            return knob_fail(err, KNOB_ERR_USAGE, "knob tour: --chapter is empty; see 'knob tour --list'");
        if (!(only = find_chapter(opt_chapter)))
            return knob_fail(err, KNOB_ERR_USAGE, "knob tour: --chapter '%.64s' is not a chapter number (1-%d) or name; "
                             "see 'knob tour --list'", opt_chapter, N_CHAPTERS);
    }
    if (!opt_out[0])
        return knob_fail(err, KNOB_ERR_USAGE, "knob tour: --out is empty");
    if ((s = cli_check_out_dir(opt_out, "--out", err)))
        return s;
    if ((s = knob_mkdirs(opt_out, err)))
        return knob_err_prefix(err, "--out");

    static tour_ctx t;   /* big (paths); one per process */
    memset(&t, 0, sizeof t);
    t.out = opt_out;
    t.quick = opt_quick;
    if (opt_threads > 0)
        knob_threads_set(opt_threads);
    t.threads = knob_threads_get();
    t.seed = opt_seed;
    t.tty = cli_is_tty();
    knob_data_dir(t.data, sizeof t.data);
    t.started = knob_now();

    printf("knob tour%s: %s, %d thread%s, seed %llu. The report page is %s/index.html.\n\n",
           t.quick ? " --quick" : "", only ? "one chapter" : "every idea behind ChatGPT, run for real",
           t.threads, t.threads == 1 ? "" : "s", (unsigned long long)t.seed, t.out);
    if ((s = write_page(&t, 0, err)))
        return s;
    int n_failed = 0, first_failed = 0;
    knob_status first_code = KNOB_OK;
    for (int i = 0; i < N_CHAPTERS; i++) {
        if (only && &chapters[i] != only)
            continue;
        run_chapter(&t, i);
        if (t.runs[i].failed && n_failed++ == 0) {
            first_failed = chapters[i].num;
            first_code = t.runs[i].code;
        }
        if ((s = write_page(&t, 0, err))) {
            free_runs(&t);
            return s;
        }
    }
    s = write_page(&t, 1, err);
    double total = knob_now() - t.started;
    free_runs(&t);
    if (s)
        return s;
    printf("Tour done in %.1f s. Open %s/index.html for every chapter's text, pictures and numbers.\n", total, t.out);
    if (n_failed)
        return knob_fail(err, first_code, "tour: %d chapter%s failed (the first: chapter %d; its message is above)",
                         n_failed, n_failed == 1 ? "" : "s", first_failed);
    return KNOB_OK;
}
