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
 * Not here: what a family's config means (src/models/), when to save (the trainers). */
#include "knob_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
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

knob_status knob_ckpt_save(const char *path, const knob_ckpt *c, knob_err *err)
{
    const knob_params *P = c->P;
    int n_moments = c->opt ? (c->opt->v ? 2 : 1) : 0;
    int n = P->n * (1 + n_moments);
    knob_tensor *copies = knob_calloc((size_t)KNOB_MAX(n, 1), sizeof *copies);
    const knob_tensor **list = knob_calloc((size_t)KNOB_MAX(n, 1), sizeof *list);
    knob_kv *meta = knob_calloc((size_t)(3 + c->n_extra), sizeof *meta);
    knob_json *t = knob_json_new_object(), *rng = knob_json_new_object();
    char *train = NULL, config_key[64];
    knob_status s = KNOB_OK;
    int ok = copies && list && meta && t && rng;
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
        train = knob_json_print(t);
    if (!ok || !train) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory building the checkpoint", path);
        goto done;
    }
    size_t at = 0;
    for (int i = 0; i < P->n; i++) {   /* a moment's name must hold the whole parameter name */
        if (n_moments && strlen(P->t[i]->name) + sizeof "optim.m." > sizeof list[0]->name) {
            s = knob_fail(err, KNOB_ERR_USAGE, "%s: parameter name '%.40s...' is too long for its optimizer moments "
                          "(at most %zu characters)", path, P->t[i]->name, sizeof list[0]->name - sizeof "optim.m.");
            goto done;
        }
    }
    for (int i = 0; i < P->n; i++) {
        list[i] = P->t[i];
        for (int k = 0; k < n_moments; k++) {
            knob_tensor *v = &copies[P->n * (1 + k) + i];
            *v = *P->t[i];
            snprintf(v->name, sizeof v->name, "optim.%c.%.119s", k ? 'v' : 'm', P->t[i]->name);   /* whole: checked above */
            v->data = (k ? c->opt->v : c->opt->m) + at;
            v->grad = NULL;
            list[P->n * (1 + k) + i] = v;
        }
        at += P->t[i]->n_elems;
    }
    snprintf(config_key, sizeof config_key, "%.48s.config", c->family);
    meta[0] = (knob_kv){"knob.model", (char *)c->family};
    meta[1] = (knob_kv){config_key, (char *)c->config};
    meta[2] = (knob_kv){"knob.train", train};
    for (int i = 0; i < c->n_extra; i++)
        meta[3 + i] = c->extra[i];
    s = knob_st_save(path, list, n, meta, 3 + c->n_extra, err);
done:
    knob_json_free(rng);
    knob_json_free(t);
    knob_free(train);
    knob_free(meta);
    knob_free(copies);
    knob_free(list);
    return s;
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
