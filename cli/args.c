/* args.c: the one flag parser every knob command uses, driven by a table of arg_def rows.
 *
 * cli_parse walks argv once: `--name value` and `--name=value` set the row's variable after checking
 * its type and range (values are rejected, never clamped; nan and inf are never floats), `--name`
 * alone sets a bool, `--` ends the flags, and the other words are positional arguments. Every
 * mistake is a KNOB_ERR_USAGE with one line that starts "knob CMD: " and says what was expected,
 * with a "did you mean" for a mistyped flag. cli_usage prints the --help text from the same table,
 * with each flag's current value as its default, so the help can never disagree with the parser.
 *
 * Not here: what the flags mean (the commands) and the global flags' policy (main.c, which parses
 * them with a spec of its own). Conventions: lo == hi == 0 on a number row means "no range beyond
 * the type's own"; a spec with max_pos < 0 takes any number of positional arguments, and then pos
 * must have room for argc of them.
 */
#include "cli.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define USER_TEXT "%.64s"   /* every piece of user text in a message is bounded by this */

/* ------------------------------------------------------------------------------------------------
 * Small helpers */

/* "knob fit" for a command's spec, "knob" for the global one (cmd NULL or empty). */
static const char *cmd_name(const cli_spec *spec, char *buf, size_t size)
{
    if (spec->cmd && spec->cmd[0])
        snprintf(buf, size, "knob %s", spec->cmd);
    else
        snprintf(buf, size, "knob");
    return buf;
}

static int is_number_type(arg_type t)
{
    return t == ARG_INT || t == ARG_U64 || t == ARG_FLOAT;
}

static int has_range(const arg_def *a)
{
    return is_number_type(a->type) && !(a->lo == 0 && a->hi == 0);
}

static int takes_value(const arg_def *a)
{
    return a->type != ARG_BOOL;
}

static const char *meta_of(const arg_def *a)
{
    if (a->meta)
        return a->meta;
    switch (a->type) {
    case ARG_INT:    return "INT";
    case ARG_U64:    return "N";
    case ARG_FLOAT:  return "FLOAT";
    case ARG_STRING: return "STRING";
    case ARG_CHOICE: return "CHOICE";
    case ARG_BOOL:   return "";
    }
    return "";
}

/* A range bound as a person writes it: integers without exponent, others with %g. */
static void fmt_bound(char *buf, size_t size, double v)
{
    if (v == floor(v) && fabs(v) < 1e16)
        snprintf(buf, size, "%.0f", v);
    else
        snprintf(buf, size, "%g", v);
}

/* "sgd|adam|adamw" -> "sgd, adam, adamw" */
static void fmt_choices(char *buf, size_t size, const char *choices)
{
    size_t j = 0;
    for (const char *c = choices ? choices : ""; *c && j + 3 < size; c++) {
        if (*c == '|') {
            buf[j++] = ',';
            buf[j++] = ' ';
        } else {
            buf[j++] = *c;
        }
    }
    buf[j] = '\0';
}

static int choice_ok(const char *choices, const char *s)
{
    size_t n = strlen(s);
    for (const char *c = choices ? choices : ""; *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && strncmp(c, s, n) == 0)
            return 1;
        c += len + (bar != NULL);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * Did you mean: Levenshtein distance, two rows, strings cut at 64 characters. */

#define DIST_MAX 64

int cli_edit_distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > DIST_MAX) na = DIST_MAX;
    if (nb > DIST_MAX) nb = DIST_MAX;
    int prev[DIST_MAX + 1], cur[DIST_MAX + 1];
    for (size_t j = 0; j <= nb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (nb + 1) * sizeof *cur);
    }
    return prev[nb];
}

int cli_close_enough(const char *typed, int distance)
{
    return distance <= 2 && (size_t)distance < strlen(typed);
}

/* The flag name closest to name (help included), or NULL when none is within distance 2. */
static const char *closest_flag(const cli_spec *spec, const char *name)
{
    if (!name[0])
        return NULL;
    const char *best = "help";
    int best_d = cli_edit_distance(name, best);
    for (const arg_def *a = spec->args; a && a->name; a++) {
        int d = cli_edit_distance(name, a->name);
        if (d < best_d) {
            best = a->name;
            best_d = d;
        }
    }
    return cli_close_enough(name, best_d) ? best : NULL;
}

static knob_status unknown_flag(const cli_spec *spec, const char *word, size_t name_len, knob_err *err)
{
    char who[80];
    cmd_name(spec, who, sizeof who);
    char name[DIST_MAX + 1];
    const char *bare = word + strspn(word, "-");
    size_t n = name_len - (size_t)(bare - word);
    snprintf(name, sizeof name, "%.*s", (int)(n < DIST_MAX ? n : DIST_MAX), bare);
    const char *near = closest_flag(spec, name);
    if (near)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: unknown flag '%.*s' (did you mean '--%s'?)", who,
                         (int)(name_len < 64 ? name_len : 64), word, near);
    return knob_fail(err, KNOB_ERR_USAGE, "%s: unknown flag '%.*s'; see '%s --help'", who,
                     (int)(name_len < 64 ? name_len : 64), word, who);
}

/* ------------------------------------------------------------------------------------------------
 * Values */

static knob_status bad_number(const char *who, const arg_def *a, const char *s, const char *what,
                              knob_err *err)
{
    return knob_fail(err, KNOB_ERR_USAGE, "%s: --%s: '" USER_TEXT "' is not %s", who, a->name, s, what);
}

static knob_status check_range(const char *who, const arg_def *a, const char *s, double v, knob_err *err)
{
    if (!has_range(a) || (v >= a->lo && v <= a->hi))
        return KNOB_OK;
    char lo[32], hi[32];
    fmt_bound(lo, sizeof lo, a->lo);
    fmt_bound(hi, sizeof hi, a->hi);
    return knob_fail(err, KNOB_ERR_USAGE, "%s: --%s " USER_TEXT " is out of range [%s, %s]", who, a->name,
                     s, lo, hi);
}

/* strto* skip leading blanks; a value must start with its first character. */
static int starts_clean(const char *s)
{
    return s[0] && s[0] != ' ' && s[0] != '\t' && s[0] != '\n' && s[0] != '\r' && s[0] != '\f' &&
           s[0] != '\v';
}

static knob_status set_int(const char *who, const arg_def *a, const char *s, knob_err *err)
{
    if (!starts_clean(s))
        return bad_number(who, a, s, "an integer", err);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end)
        return bad_number(who, a, s, "an integer", err);
    if ((errno == ERANGE || v < INT_MIN || v > INT_MAX) && has_range(a))
        return check_range(who, a, s, v < 0 ? -HUGE_VAL : HUGE_VAL, err);
    if (errno == ERANGE || v < INT_MIN || v > INT_MAX)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: --%s " USER_TEXT " is too large for an integer", who,
                         a->name, s);
    knob_status st = check_range(who, a, s, (double)v, err);
    if (!st)
        *(int *)a->dest = (int)v;
    return st;
}

static knob_status set_u64(const char *who, const arg_def *a, const char *s, knob_err *err)
{
    /* strtoull accepts "-1" and wraps it: a minus sign is refused before it gets the chance */
    if (!starts_clean(s) || s[0] == '-')
        return bad_number(who, a, s, "a non-negative integer", err);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end)
        return bad_number(who, a, s, "a non-negative integer", err);
    if (errno == ERANGE && has_range(a) && a->hi < 0x1p64)
        return check_range(who, a, s, HUGE_VAL, err);
    if (errno == ERANGE)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: --%s " USER_TEXT " is too large (at most %llu)", who,
                         a->name, s, (unsigned long long)UINT64_MAX);
    knob_status st = check_range(who, a, s, (double)v, err);
    if (!st)
        *(uint64_t *)a->dest = (uint64_t)v;
    return st;
}

static knob_status set_float(const char *who, const arg_def *a, const char *s, knob_err *err)
{
    if (!starts_clean(s))
        return bad_number(who, a, s, "a number", err);
    const char *digits = s + (s[0] == '-' || s[0] == '+');
    if (digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X'))   /* strtod reads "0x10" as 16 */
        return bad_number(who, a, s, "a decimal number", err);
    char *end;
    double v = strtod(s, &end);
    if (*end)
        return bad_number(who, a, s, "a number", err);
    if (!isfinite(v) || fabs(v) > FLT_MAX)
        return bad_number(who, a, s, "a finite number", err);
    knob_status st = check_range(who, a, s, v, err);
    if (!st)
        *(float *)a->dest = (float)v;
    return st;
}

static knob_status set_choice(const char *who, const arg_def *a, const char *s, knob_err *err)
{
    if (!choice_ok(a->choices, s)) {
        char list[256];
        fmt_choices(list, sizeof list, a->choices);
        return knob_fail(err, KNOB_ERR_USAGE, "%s: --%s '" USER_TEXT "' is not one of %s", who, a->name, s,
                         list);
    }
    *(const char **)a->dest = s;
    return KNOB_OK;
}

static knob_status set_value(const cli_spec *spec, const arg_def *a, const char *s, knob_err *err)
{
    char who[80];
    cmd_name(spec, who, sizeof who);
    switch (a->type) {
    case ARG_INT:    return set_int(who, a, s, err);
    case ARG_U64:    return set_u64(who, a, s, err);
    case ARG_FLOAT:  return set_float(who, a, s, err);
    case ARG_CHOICE: return set_choice(who, a, s, err);
    case ARG_STRING: *(const char **)a->dest = s; return KNOB_OK;
    case ARG_BOOL:   *(int *)a->dest = 1; return KNOB_OK;
    }
    return knob_fail(err, KNOB_ERR_USAGE, "%s: --%s has an unknown type", who, a->name);
}

/* ------------------------------------------------------------------------------------------------
 * Parsing */

static const arg_def *find_flag(const cli_spec *spec, const char *name, size_t len)
{
    for (const arg_def *a = spec->args; a && a->name; a++)
        if (strlen(a->name) == len && strncmp(a->name, name, len) == 0)
            return a;
    return NULL;
}

/* A word that is a flag, not a value: "--x", "-x"; but not "-", "--" or a negative number. */
static int looks_like_flag(const char *s)
{
    if (s[0] != '-' || s[1] == '\0')
        return 0;
    if (s[1] == '-')
        return s[2] != '\0';
    return !(s[1] == '.' || (s[1] >= '0' && s[1] <= '9'));
}

/* Parses the flag at argv[*i] (and its value, which may be argv[*i + 1]); advances *i. */
static knob_status parse_flag(const cli_spec *spec, int argc, char **argv, int *i, knob_err *err)
{
    char who[80];
    cmd_name(spec, who, sizeof who);
    const char *word = argv[*i];
    const char *eq = strchr(word, '=');
    size_t word_len = eq ? (size_t)(eq - word) : strlen(word);
    const arg_def *a = word[1] == '-' ? find_flag(spec, word + 2, word_len - 2) : NULL;
    if (!a && word_len == 6 && strncmp(word, "--help", 6) == 0)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: --help takes no value", who);
    if (!a)
        return unknown_flag(spec, word, word_len, err);
    if (!takes_value(a)) {
        if (eq)
            return knob_fail(err, KNOB_ERR_USAGE, "%s: --%s takes no value (got '" USER_TEXT "')", who,
                             a->name, eq + 1);
        return set_value(spec, a, NULL, err);
    }
    const char *value = eq ? eq + 1 : NULL;
    if (!eq) {
        if (*i + 1 >= argc || (argv[*i + 1][0] == '-' && argv[*i + 1][1] == '-'))
            return knob_fail(err, KNOB_ERR_USAGE, "%s: --%s needs a value (%s)", who, a->name, meta_of(a));
        value = argv[++*i];
    }
    return set_value(spec, a, value, err);
}

/* The positional names in the usage line, for messages: "knob inspect FILE [--json]" -> "FILE". */
static void positional_names(const cli_spec *spec, char *buf, size_t size)
{
    buf[0] = '\0';
    const char *u = spec->usage ? spec->usage : "";
    int word = 0;
    size_t j = 0;
    while (*u) {
        u += strspn(u, " ");
        size_t len = strcspn(u, " ");
        int skip = word < (spec->cmd && spec->cmd[0] ? 2 : 1) || u[0] == '[' || u[0] == '-' || len == 0;
        if (!skip && j + len + 2 < size) {
            if (j)
                buf[j++] = ' ';
            memcpy(buf + j, u, len);
            j += len;
            buf[j] = '\0';
        }
        u += len;
        word++;
    }
}

static knob_status count_error(const cli_spec *spec, int got, char **argv, int first_extra, knob_err *err)
{
    char who[80], names[128], want[64];
    cmd_name(spec, who, sizeof who);
    if (spec->max_pos == 0 && first_extra >= 0)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: unexpected argument '" USER_TEXT "'; see '%s --help'", who,
                         argv[first_extra], who);
    positional_names(spec, names, sizeof names);
    if (spec->min_pos == spec->max_pos)
        snprintf(want, sizeof want, "%d argument%s", spec->min_pos, spec->min_pos == 1 ? "" : "s");
    else if (spec->max_pos < 0)
        snprintf(want, sizeof want, "at least %d argument%s", spec->min_pos, spec->min_pos == 1 ? "" : "s");
    else
        snprintf(want, sizeof want, "%d to %d arguments", spec->min_pos, spec->max_pos);
    if (names[0])
        return knob_fail(err, KNOB_ERR_USAGE, "%s: expected %s (%s), got %d", who, want, names, got);
    return knob_fail(err, KNOB_ERR_USAGE, "%s: expected %s, got %d", who, want, got);
}

static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

knob_status cli_parse(const cli_spec *spec, int argc, char **argv, char **pos, int *n_pos, int *help, knob_err *err)
{
    int dummy_n, dummy_help;
    n_pos = n_pos ? n_pos : &dummy_n;
    help = help ? help : &dummy_help;
    *n_pos = 0;
    *help = wants_help(argc, argv);
    if (*help) {
        if (spec->cmd)   /* a command's --help: its usage; the global flags' help is main's */
            cli_usage(spec, stdout);
        return KNOB_OK;
    }

    int got = 0, first_extra = -1, flags_done = 0;
    for (int i = 1; i < argc; i++) {
        if (!flags_done && strcmp(argv[i], "--") == 0) {
            flags_done = 1;
        } else if (!flags_done && looks_like_flag(argv[i])) {
            knob_status s = parse_flag(spec, argc, argv, &i, err);
            if (s)
                return s;
        } else if (spec->max_pos < 0 || got < spec->max_pos) {
            pos[got++] = argv[i];
        } else {
            first_extra = first_extra < 0 ? i : first_extra;
            got++;
        }
    }
    if (first_extra >= 0 || got < spec->min_pos)
        return count_error(spec, got, argv, first_extra, err);
    *n_pos = got;
    return KNOB_OK;
}

const char *cli_first_given(int argc, char **argv, const char *const *names)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (argv[i][0] != '-' || argv[i][1] != '-')
            continue;
        const char *w = argv[i] + 2;
        size_t n = strcspn(w, "=");
        for (const char *const *name = names; *name; name++)
            if (strlen(*name) == n && strncmp(*name, w, n) == 0)
                return *name;
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------------
 * Help */

static void print_default(const arg_def *a, FILE *f)
{
    if (!a->dest || a->type == ARG_BOOL)
        return;
    switch (a->type) {
    case ARG_INT:   fprintf(f, " [%d]", *(const int *)a->dest); break;
    case ARG_U64:   fprintf(f, " [%llu]", (unsigned long long)*(const uint64_t *)a->dest); break;
    case ARG_FLOAT: fprintf(f, " [%g]", (double)*(const float *)a->dest); break;
    case ARG_CHOICE: {
        const char *s = *(const char *const *)a->dest;
        fprintf(f, " [%s]", s ? s : "none");
        break;
    }
    case ARG_STRING: {
        const char *s = *(const char *const *)a->dest;
        if (s)
            fprintf(f, " [\"%s\"]", s);
        else
            fprintf(f, " [none]");
        break;
    }
    case ARG_BOOL: break;
    }
}

static void print_range(const arg_def *a, FILE *f)
{
    if (a->type == ARG_CHOICE) {
        char list[256];
        fmt_choices(list, sizeof list, a->choices);
        fprintf(f, " (%s)", list);
    } else if (has_range(a)) {
        char lo[32], hi[32];
        fmt_bound(lo, sizeof lo, a->lo);
        fmt_bound(hi, sizeof hi, a->hi);
        int no_top = (a->type == ARG_INT && a->hi >= INT_MAX) || (a->type == ARG_U64 && a->hi >= 0x1p64 - 1);
        if (no_top && a->type == ARG_U64 && a->lo <= 0)
            return;   /* the whole type: nothing worth saying */
        if (no_top)
            fprintf(f, " (at least %s)", lo);
        else
            fprintf(f, " (%s to %s)", lo, hi);
    }
}

/* "--lr FLOAT" into buf; returns its length. */
static int flag_label(const arg_def *a, char *buf, size_t size)
{
    if (takes_value(a))
        return snprintf(buf, size, "--%s %s", a->name, meta_of(a));
    return snprintf(buf, size, "--%s", a->name);
}

void cli_usage(const cli_spec *spec, FILE *f)
{
    fprintf(f, "usage: %s\n", spec->usage ? spec->usage : "knob");
    if (spec->summary && spec->summary[0])
        fprintf(f, "\n%s\n", spec->summary);

    static const char help_label[] = "-h, --help";
    int width = (int)sizeof help_label - 1;
    char label[128];
    for (const arg_def *a = spec->args; a && a->name; a++) {
        int n = flag_label(a, label, sizeof label);
        width = n > width ? n : width;
    }
    fprintf(f, "\noptions:\n");
    for (const arg_def *a = spec->args; a && a->name; a++) {
        flag_label(a, label, sizeof label);
        fprintf(f, "  %-*s  %s", width, label, a->help ? a->help : "");
        print_default(a, f);
        print_range(a, f);
        fputc('\n', f);
    }
    fprintf(f, "  %-*s  show this help\n", width, help_label);
}

int cli_is_tty(void)
{
    return isatty(fileno(stderr));
}
