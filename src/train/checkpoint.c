/* checkpoint.c: the one training checkpoint, for every model family. A safetensors file holds
 * everything a run needs to continue bit for bit:
 *   tensors   the parameters under their own names, the optimizer's moments as "optim.m.<name>"
 *             and "optim.v.<name>" (same shapes)
 *   metadata  "knob.model"       the family ("gpt", "classifier"), which knows what the rest means
 *             "<family>.config"  the family's model config, JSON (GPT readers use gpt.config)
 *             "knob.train"       JSON: {"step": N, "optim_step": N,
 *                                       "rng": {"<name>": ["16 hex", x4], ...},
 *                                       "config": {the training config},
 *                                       "state": {the family's own: history, corpus, ...}}
 *             and any other strings the family adds (a GPT's "tokenizer").
 * One encoding of an RNG state (four 64-bit words as 16-digit hex strings: JSON numbers would lose
 * bits) and one of the training config (a JSON object). Wall-clock times are never stored, so the
 * same run gives the same bytes.
 *
 * Older files: knob wrote two other encodings before this one (classifiers: "format" =
 * "knob-classifier" with a key=value "train" text and a "state" JSON; GPTs: "gpt.train" JSON,
 * "train.step", "optim.step" and space-separated hex "rng.data" / "rng.dropout"). knob_ckpt_open
 * turns both into the tree above (legacy_*), so the families read one shape.
 *
 * Writing off the critical path (knob_ckpt_writer): the trainer's thread copies the state into a
 * buffer allocated once and builds the header; one background thread writes the file (atomically,
 * as knob_ckpt_save) while training goes on; the next save, or the end, waits for it and reports
 * its error. The bytes are those knob_ckpt_save writes for the same state.
 *
 * Not here: what a family's config means (src/models/), when to save (the trainers). */
#include "knob_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * RNG states and key=value text */

/* a deep copy (through the printed text: json.c has no copy); NULL when out of memory */
static knob_json *json_copy(const knob_json *j)
{
    char *text = j ? knob_json_print(j) : NULL;
    knob_json *c = NULL;
    knob_err ignore;
    if (text && knob_json_parse_str(&c, text, "copy", &ignore) != KNOB_OK)
        c = NULL;
    knob_free(text);
    return c;
}

knob_json *knob_ckpt_rng_json(const knob_rng *r)
{
    knob_json *a = knob_json_new_array();
    for (int i = 0; a && i < 4; i++) {
        char hex[24];
        snprintf(hex, sizeof hex, "%016" PRIx64, r->s[i]);
        if (!knob_json_push(a, knob_json_new_string(hex))) {
            knob_json_free(a);
            return NULL;
        }
    }
    return a;
}

static int rng_from_json(const knob_json *a, knob_rng *r)
{
    if (!knob_json_is_array(a) || knob_json_size(a) != 4)
        return 0;
    int i = 0;
    for (const knob_json *w = knob_json_child(a); w; w = knob_json_next(w), i++) {
        const char *s = knob_json_string(w);
        char *end;
        if (!s || strlen(s) != 16)
            return 0;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 16);
        if (*end || errno)
            return 0;
        r->s[i] = (uint64_t)v;
    }
    return (r->s[0] | r->s[1] | r->s[2] | r->s[3]) != 0;   /* all-zero is not a xoshiro state */
}

/* "a=1 b=x" -> {"a":1,"b":"x"}: a value that reads as a number below 2^53 becomes a JSON number
 * (%.17g prints it back exactly), anything else a string (so a 64-bit seed keeps its digits); NULL
 * when out of memory or a word lacks '='. */
knob_json *knob_ckpt_kv_to_json(const char *text)
{
    knob_json *o = knob_json_new_object();
    for (const char *p = text; o && *p;) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " ");
        if (!len)
            break;
        const char *eq = memchr(p, '=', len);
        char *key = eq ? knob_strndup(p, (size_t)(eq - p)) : NULL, *val = eq ? knob_strndup(eq + 1, len - (size_t)(eq - p) - 1) : NULL;
        int ok = key && val;
        if (ok) {
            char *end;
            errno = 0;
            double x = strtod(val, &end);
            /* beyond 2^53 a double no longer holds every integer: such values (seeds) stay text */
            int num = *val && !*end && !errno && isfinite(x) && fabs(x) < 9007199254740992.0;
            ok = knob_json_add(o, key, num ? knob_json_new_number(x) : knob_json_new_string(val));
        }
        knob_free(key);
        knob_free(val);
        if (!ok) {
            knob_json_free(o);
            return NULL;
        }
        p += len;
    }
    return o;
}

/* The inverse: an object of numbers and strings -> "a=1 b=x" (knob_malloc'd); NULL: no memory or
 * a member that is neither. */
char *knob_ckpt_json_to_kv(const knob_json *o)
{
    size_t cap = 256, at = 0;
    char *buf = knob_malloc(cap);
    for (const knob_json *m = knob_json_child(o); buf && m; m = knob_json_next(m)) {
        char val[64];
        const char *v = knob_json_string(m);
        if (!v && knob_json_is_number(m)) {
            double x = knob_json_number(m);
            if (x == floor(x) && fabs(x) < 1e15)
                snprintf(val, sizeof val, "%.0f", x);
            else
                snprintf(val, sizeof val, "%.17g", x);
            v = val;
        }
        if (!v) {
            knob_free(buf);
            return NULL;
        }
        size_t need = at + strlen(knob_json_key(m)) + strlen(v) + 3;
        if (need > cap) {
            char *nb = knob_realloc(buf, cap = 2 * need);
            if (!nb) {
                knob_free(buf);
                return NULL;
            }
            buf = nb;
        }
        at += (size_t)snprintf(buf + at, cap - at, "%s%s=%s", at ? " " : "", knob_json_key(m), v);
    }
    if (buf && !at)
        buf[0] = 0;
    return buf;
}

/* ------------------------------------------------------------------------------------------------
 * Save */

/* What a save writes, built from a knob_ckpt: the tensor list (the values, then each moment, named
 * and shaped as P's tensors), the metadata and the knob.train text it points into. vals, m, v:
 * where the data is (NULL vals: P's own tensors; m, v: the optimizer's moments, flat in P's
 * order). Freed with parts_free. */
typedef struct {
    knob_tensor *copies;        // (n) P's tensors with their data elsewhere
    const knob_tensor **list;   // (n)
    knob_kv *meta;              // (n_meta)
    char *train, config_key[64];
    int n, n_meta;
} ckpt_parts;

static void parts_free(ckpt_parts *k)
{
    knob_free(k->train);
    knob_free(k->meta);
    knob_free(k->copies);
    knob_free(k->list);
    memset(k, 0, sizeof *k);
}

static int n_moments_of(const knob_optim *o) { return o ? (o->v ? 2 : 1) : 0; }

static knob_status parts_build(ckpt_parts *k, const char *path, const knob_ckpt *c, const float *vals, const float *m,
                               const float *v, knob_err *err)
{
    memset(k, 0, sizeof *k);
    const knob_params *P = c->P;
    int n_moments = n_moments_of(c->opt);
    int n = P->n * (1 + n_moments);
    k->copies = knob_calloc((size_t)KNOB_MAX(n, 1), sizeof *k->copies);
    k->list = knob_calloc((size_t)KNOB_MAX(n, 1), sizeof *k->list);
    k->meta = knob_calloc((size_t)(3 + c->n_extra), sizeof *k->meta);
    knob_json *t = knob_json_new_object(), *rng = knob_json_new_object();
    knob_status s = KNOB_OK;
    int ok = k->copies && k->list && k->meta && t && rng;
    ok = ok && knob_json_add_number(t, "step", (double)c->step);
    ok = ok && knob_json_add_number(t, "optim_step", c->opt ? (double)c->opt->step : 0.0);
    for (int i = 0; ok && i < c->n_rng; i++)
        ok = knob_json_add(rng, c->rng[i].name, knob_ckpt_rng_json(c->rng[i].rng));
    if (ok) {
        ok = knob_json_add(t, "rng", rng);
        rng = NULL;   /* t owns it now (or freed it) */
    }
    ok = ok && knob_json_add(t, "config", json_copy(c->train));
    if (ok && c->state)
        ok = knob_json_add(t, "state", json_copy(c->state));
    if (ok)
        k->train = knob_json_print(t);
    knob_json_free(rng);
    knob_json_free(t);
    if (!ok || !k->train) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory building the checkpoint", path);
        goto done;
    }
    for (int i = 0; i < P->n; i++) {   /* a moment's name must hold the whole parameter name */
        if (n_moments && strlen(P->t[i]->name) + sizeof "optim.m." > sizeof k->list[0]->name) {
            s = knob_fail(err, KNOB_ERR_USAGE, "%s: parameter name '%.40s...' is too long for its optimizer moments "
                          "(at most %zu characters)", path, P->t[i]->name, sizeof k->list[0]->name - sizeof "optim.m.");
            goto done;
        }
    }
    size_t at = 0;
    for (int i = 0; i < P->n; i++) {
        if (vals) {
            knob_tensor *x = &k->copies[i];
            *x = *P->t[i];
            x->data = (float *)vals + at;
            x->grad = NULL;
            k->list[i] = x;
        } else {
            k->list[i] = P->t[i];
        }
        for (int j = 0; j < n_moments; j++) {
            knob_tensor *x = &k->copies[P->n * (1 + j) + i];
            *x = *P->t[i];
            snprintf(x->name, sizeof x->name, "optim.%c.%.119s", j ? 'v' : 'm', P->t[i]->name);   /* whole: checked above */
            x->data = (float *)(j ? v : m) + at;
            x->grad = NULL;
            k->list[P->n * (1 + j) + i] = x;
        }
        at += P->t[i]->n_elems;
    }
    snprintf(k->config_key, sizeof k->config_key, "%.48s.config", c->family);
    k->meta[0] = (knob_kv){"knob.model", (char *)c->family};
    k->meta[1] = (knob_kv){k->config_key, (char *)c->config};
    k->meta[2] = (knob_kv){"knob.train", k->train};
    for (int i = 0; i < c->n_extra; i++)
        k->meta[3 + i] = c->extra[i];
    k->n = n;
    k->n_meta = 3 + c->n_extra;
done:
    if (s)
        parts_free(k);
    return s;
}

knob_status knob_ckpt_save(const char *path, const knob_ckpt *c, knob_err *err)
{
    ckpt_parts k;
    knob_status s = parts_build(&k, path, c, NULL, c->opt ? c->opt->m : NULL, c->opt ? c->opt->v : NULL, err);
    if (!s)
        s = knob_st_save(path, k.list, k.n, k.meta, k.n_meta, err);
    parts_free(&k);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * The background writer. The caller's thread builds everything (copies, header: all allocation);
 * the writer thread only writes the files. busy, quit and the result are under lock. */

enum { WRITER_MAX_PATHS = 4 };

struct knob_ckpt_writer {
    size_t n_elems;
    int n_moments;
    float *snap;                      // ((1 + n_moments) * n_elems): values, m, v
    pthread_t thread;
    int has_thread;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    int busy, quit;
    /* the job: filled before busy is set, read by the writer, freed by the caller after */
    ckpt_parts parts;
    unsigned char *hdr;
    size_t hdr_len;
    char *paths[WRITER_MAX_PATHS];
    int n_paths;
    knob_status status;               /* the last write's, until a wait reports it */
    knob_err err;
};

static knob_status write_job(knob_ckpt_writer *w, knob_err *err)
{
    knob_status s = KNOB_OK;
    for (int i = 0; i < w->n_paths && !s; i++)
        s = knob_st_write(w->paths[i], w->hdr, w->hdr_len, w->parts.list, w->parts.n, err);
    return s;
}

static void *writer_main(void *arg)
{
    knob_ckpt_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->busy && !w->quit)
            pthread_cond_wait(&w->cv, &w->lock);
        if (!w->busy)
            break;   /* quit, nothing left to write */
        pthread_mutex_unlock(&w->lock);
        knob_err e = {0};
        knob_status s = write_job(w, &e);
        pthread_mutex_lock(&w->lock);
        w->status = s;
        w->err = e;
        w->busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

knob_ckpt_writer *knob_ckpt_writer_new(const knob_params *P, int n_moments, knob_err *err)
{
    if (n_moments < 0 || n_moments > 2) {
        knob_fail(err, KNOB_ERR_USAGE, "checkpoint writer: %d optimizer moments (0, 1 or 2)", n_moments);
        return NULL;
    }
    knob_ckpt_writer *w = knob_calloc(1, sizeof *w);
    size_t n = P->n_elems * (size_t)(1 + n_moments);
    if (w)
        w->snap = knob_malloc(KNOB_MAX(n, 1) * sizeof(float));
    if (!w || !w->snap) {
        knob_free(w);
        knob_fail(err, KNOB_ERR_NOMEM, "checkpoint writer: cannot allocate %zu floats for the state's copy", n);
        return NULL;
    }
    w->n_elems = P->n_elems;
    w->n_moments = n_moments;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->has_thread = pthread_create(&w->thread, NULL, writer_main, w) == 0;   /* else: written in _save */
    return w;
}

/* the finished job's memory; on the caller's thread, the writer idle */
static void job_free(knob_ckpt_writer *w)
{
    parts_free(&w->parts);
    knob_free(w->hdr);
    w->hdr = NULL;
    for (int i = 0; i < w->n_paths; i++)
        knob_free(w->paths[i]);
    w->n_paths = 0;
}

knob_status knob_ckpt_writer_wait(knob_ckpt_writer *w, knob_err *err)
{
    if (!w)
        return KNOB_OK;
    pthread_mutex_lock(&w->lock);
    while (w->busy)
        pthread_cond_wait(&w->cv, &w->lock);
    knob_status s = w->status;
    if (s)
        *err = w->err;
    w->status = KNOB_OK;   /* reported once */
    pthread_mutex_unlock(&w->lock);
    job_free(w);
    return s;
}

knob_status knob_ckpt_writer_save(knob_ckpt_writer *w, const char *const *paths, int n_paths, const knob_ckpt *c,
                                  knob_err *err)
{
    knob_status s = knob_ckpt_writer_wait(w, err);
    if (s)
        return s;
    const knob_params *P = c->P;
    int n_moments = n_moments_of(c->opt);
    const char *path0 = n_paths > 0 ? paths[0] : "checkpoint";
    if (n_paths < 1 || n_paths > WRITER_MAX_PATHS)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: %d files for one checkpoint (1 to %d)", path0, n_paths,
                         WRITER_MAX_PATHS);
    if (P->n_elems != w->n_elems || n_moments > w->n_moments)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: the checkpoint writer holds %zu values and %d moments; the state "
                         "has %zu values and %d moments", path0, w->n_elems, w->n_moments, P->n_elems, n_moments);
    size_t N = w->n_elems, at = 0;
    for (int i = 0; i < P->n; i++) {
        memcpy(w->snap + at, P->t[i]->data, P->t[i]->n_elems * sizeof(float));
        at += P->t[i]->n_elems;
    }
    float *m = n_moments > 0 ? w->snap + N : NULL, *v = n_moments > 1 ? w->snap + 2 * N : NULL;
    if (m)
        memcpy(m, c->opt->m, N * sizeof(float));
    if (v)
        memcpy(v, c->opt->v, N * sizeof(float));
    s = parts_build(&w->parts, paths[0], c, w->snap, m, v, err);
    if (!s)
        s = knob_st_header(paths[0], w->parts.list, w->parts.n, w->parts.meta, w->parts.n_meta, &w->hdr, &w->hdr_len,
                           err);
    for (int i = 0; !s && i < n_paths; i++) {
        if (!(w->paths[i] = knob_strdup(paths[i])))
            s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", paths[i]);
        w->n_paths = i + 1;
    }
    if (s || !w->has_thread) {
        if (!s)
            s = write_job(w, err);
        job_free(w);
        return s;
    }
    pthread_mutex_lock(&w->lock);
    w->busy = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->lock);
    return KNOB_OK;
}

void knob_ckpt_writer_free(knob_ckpt_writer *w)
{
    if (!w)
        return;
    knob_err ignore;
    (void)knob_ckpt_writer_wait(w, &ignore);
    if (w->has_thread) {
        pthread_mutex_lock(&w->lock);
        w->quit = 1;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
    }
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cv);
    knob_free(w->snap);
    knob_free(w);
}

/* ------------------------------------------------------------------------------------------------
 * Older encodings, turned into the tree above */

static int add_rng_hex_words(knob_json *rng, const char *name, const char *s)
{
    knob_rng r;
    for (int i = 0; i < 4; i++) {
        char *end;
        errno = 0;
        unsigned long long v = s ? strtoull(s, &end, 16) : 0;
        if (!s || end == s || errno || (i < 3 && *end != ' ') || (i == 3 && *end))
            return 0;
        r.s[i] = (uint64_t)v;
        s = end;
    }
    return knob_json_add(rng, name, knob_ckpt_rng_json(&r));
}

/* GPT files before the one checkpoint: gpt.train, train.step, optim.step, rng.data, rng.dropout */
static knob_status legacy_gpt(knob_ckpt_file *f, knob_err *err)
{
    const char *path = f->st.path, *train = knob_st_meta(&f->st, "gpt.train");
    const char *step = knob_st_meta(&f->st, "train.step"), *ostep = knob_st_meta(&f->st, "optim.step");
    knob_json *cfg = NULL, *rng = knob_json_new_object();
    knob_status s = knob_json_parse_str(&cfg, train, "gpt.train", err);
    if (s) {
        knob_json_free(rng);
        return knob_err_prefix(err, "%s", path);
    }
    char *e1 = NULL, *e2 = NULL;
    long st_step = step ? strtol(step, &e1, 10) : -1, op_step = ostep ? strtol(ostep, &e2, 10) : -1;
    if (!step || *e1 || st_step < 0 || !ostep || *e2 || op_step < 0) {
        knob_json_free(cfg);
        knob_json_free(rng);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: metadata train.step / optim.step missing or not a count", path);
    }
    int ok = rng && add_rng_hex_words(rng, "data", knob_st_meta(&f->st, "rng.data")) &&
             add_rng_hex_words(rng, "dropout", knob_st_meta(&f->st, "rng.dropout"));
    if (!ok) {
        knob_json_free(cfg);
        knob_json_free(rng);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: metadata rng.data / rng.dropout missing or malformed", path);
    }
    f->tree = knob_json_new_object();
    ok = knob_json_add(f->tree, "rng", rng);   /* each add owns its item, also when it fails */
    ok = knob_json_add(f->tree, "config", cfg) && ok;
    ok = ok && knob_json_add_number(f->tree, "step", (double)st_step) &&
         knob_json_add_number(f->tree, "optim_step", (double)op_step);
    return ok ? KNOB_OK : knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
}

/* Classifier files before the one checkpoint: format "knob-classifier", model (config text),
 * dataset, classes ("a|b|..."), train (key=value text) and state (JSON with the step, the RNG
 * states as order_rng / aug_rng / drop_rng and the rest, which becomes "state" as it is). */
static knob_status legacy_classifier(knob_ckpt_file *f, knob_err *err)
{
    const char *path = f->st.path;
    const char *model = knob_st_meta(&f->st, "model"), *dataset = knob_st_meta(&f->st, "dataset");
    const char *classes = knob_st_meta(&f->st, "classes"), *train = knob_st_meta(&f->st, "train");
    const char *state = knob_st_meta(&f->st, "state");
    if (!model)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: checkpoint has no 'model' metadata", path);
    knob_json *cfg = knob_json_new_object(), *names = knob_json_new_array();
    int ok = cfg && names;
    for (const char *p = classes ? classes : ""; ok && *p;) {
        size_t len = strcspn(p, "|");
        char *name = knob_strndup(p, len);
        ok = name && knob_json_push(names, knob_json_new_string(name));
        knob_free(name);
        p += len + (p[len] == '|');
    }
    ok = ok && knob_json_add_string(cfg, "model", model) && knob_json_add_string(cfg, "dataset", dataset ? dataset : "");
    if (ok) {
        ok = knob_json_add(cfg, "classes", names);
        names = NULL;
    }
    f->owned_config = ok ? knob_json_print(cfg) : NULL;
    knob_json_free(cfg);
    knob_json_free(names);
    if (!f->owned_config)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    f->config = f->owned_config;
    f->tree = knob_json_new_object();
    knob_json *tc = knob_ckpt_kv_to_json(train ? train : "");
    if (!tc)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: metadata 'train' is not key=value text (or memory ran out)", path);
    ok = knob_json_add(f->tree, "config", tc);   /* owns tc, also when it fails */
    if (ok && state) {
        knob_json *old = NULL;
        knob_status s = knob_json_parse_str(&old, state, "metadata 'state'", err);
        if (s)
            return knob_err_prefix(err, "%s", path);
        if (!knob_json_is_object(old)) {
            knob_json_free(old);
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: metadata 'state' is not a JSON object", path);
        }
        const knob_json *v;
        knob_json *rng = knob_json_new_object();
        static const char *const from[3] = {"order_rng", "aug_rng", "drop_rng"}, *const to[3] = {"order", "aug", "dropout"};
        ok = rng != NULL;
        for (int i = 0; ok && i < 3; i++)
            if ((v = knob_json_get(old, from[i])))
                ok = knob_json_add(rng, to[i], json_copy(v));
        if ((v = knob_json_get(old, "step")))
            ok = ok && knob_json_add(f->tree, "step", json_copy(v));
        if ((v = knob_json_get(old, "optim_step")))
            ok = ok && knob_json_add(f->tree, "optim_step", json_copy(v));
        if (ok)
            ok = knob_json_add(f->tree, "rng", rng);
        else
            knob_json_free(rng);
        if (ok)
            ok = knob_json_add(f->tree, "state", old);
        else
            knob_json_free(old);
        if (!ok)
            return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
    }
    return ok ? KNOB_OK : knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory", path);
}

/* ------------------------------------------------------------------------------------------------
 * Open and read */

knob_status knob_ckpt_open(knob_ckpt_file *f, const char *path, const char *family, knob_err *err)
{
    memset(f, 0, sizeof *f);
    knob_status s = knob_st_open(&f->st, path, err);
    if (s)
        return s;
    const char *fam = knob_st_meta(&f->st, "knob.model"), *fmt = knob_st_meta(&f->st, "format");
    const char *train = knob_st_meta(&f->st, "knob.train");
    if (!fam && fmt && strcmp(fmt, "knob-classifier") == 0) {
        f->family = "classifier";
        f->legacy = 1;
        s = legacy_classifier(f, err);
    } else if (!fam) {
        if (fmt)
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: not a knob %s checkpoint (format '%.64s')", path, family, fmt);
        else
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: not a knob %s checkpoint (no 'knob.model' metadata)", path, family);
    } else {
        f->family = fam;
        char key[64];
        snprintf(key, sizeof key, "%.48s.config", fam);
        f->config = knob_st_meta(&f->st, key);
        if (strcmp(fam, family) != 0)
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: a knob '%.64s' checkpoint, not a %s one", path, fam, family);
        else if (!f->config)
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: metadata '%s' missing", path, key);
        else if (train)
            s = knob_json_parse_str(&f->tree, train, "metadata 'knob.train'", err) ? knob_err_prefix(err, "%s", path)
                                                                                     : KNOB_OK;
        else if (knob_st_meta(&f->st, "gpt.train")) {
            f->legacy = 1;
            s = legacy_gpt(f, err);
        }
        /* else: a model file without training state (loads; cannot resume) */
    }
    if (!s && f->legacy && strcmp(f->family, family) != 0)
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: a knob '%s' checkpoint, not a %s one", path, f->family, family);
    if (!s && f->tree && !knob_json_is_object(f->tree))
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: metadata 'knob.train' is not a JSON object", path);
    if (!s && f->tree) {
        f->train = knob_json_get(f->tree, "config");
        f->state = knob_json_get(f->tree, "state");
        if ((s = knob_json_get_long(f->tree, "step", 0, 1L << 50, 0, &f->step, path, err)) ||
            (s = knob_json_get_long(f->tree, "optim_step", 0, 1L << 50, 0, &f->optim_step, path, err)))
            ;
        else if (f->train && !knob_json_is_object(f->train))
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: the training config is not a JSON object", path);
    }
    if (s)
        knob_ckpt_close(f);
    return s;
}

void knob_ckpt_close(knob_ckpt_file *f)
{
    if (!f)
        return;
    knob_json_free(f->tree);
    knob_free(f->owned_config);
    knob_st_close(&f->st);
    memset(f, 0, sizeof *f);
}

knob_status knob_ckpt_need_state(const knob_ckpt_file *f, knob_err *err)
{
    if (!f->tree)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: no training state in the file; cannot resume from it", f->st.path);
    return KNOB_OK;
}

knob_status knob_ckpt_read(const knob_ckpt_file *f, const knob_params *P, const char *prefix, float *out, knob_err *err)
{
    size_t at = 0;
    for (int i = 0; i < P->n; i++) {
        const knob_tensor *t = P->t[i];
        char name[KNOB_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        const knob_st_entry *e = knob_st_find(&f->st, name);
        if (!e)
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: tensor '%.128s' not found%s", f->st.path, name,
                             *prefix ? " (saved with another optimizer?)" : "");
        int same = e->n_dims == t->n_dims;
        for (int d = 0; same && d < e->n_dims; d++)
            same = e->shape[d] == t->shape[d];
        if (!same) {
            char have[96], want[96];
            int dims[8];
            for (int d = 0; d < e->n_dims && d < 8; d++)
                dims[d] = e->shape[d] > INT32_MAX ? -1 : (int)e->shape[d];
            knob_shape_str(have, sizeof have, e->n_dims, dims);
            knob_shape_str(want, sizeof want, t->n_dims, t->shape);
            return knob_fail(err, KNOB_ERR_SHAPE, "%s: '%.128s' is %s in file, model expects %s", f->st.path, name, have,
                             want);
        }
        knob_status s = knob_st_read_f32(&f->st, e, out + at, t->n_elems, err);
        if (s)
            return s;
        at += t->n_elems;
    }
    return KNOB_OK;
}

knob_status knob_ckpt_read_rng(const knob_ckpt_file *f, const char *name, knob_rng *r, knob_err *err)
{
    const knob_json *a = knob_json_get(knob_json_get(f->tree, "rng"), name);
    if (!rng_from_json(a, r))
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: RNG state '%s' missing or malformed", f->st.path, name);
    return KNOB_OK;
}
