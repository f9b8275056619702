/* checkpoint.c: classifier checkpoints as safetensors. One file holds everything a run needs to
 * continue bit for bit: the parameters under their own names, the optimizer's moments as
 * "optim.m.<name>" / "optim.v.<name>" (same shapes), and __metadata__ strings:
 *   format   "knob-classifier"
 *   model    the model config text (knob_vision_config_str), from which eval/predict rebuild it
 *   dataset  the data spec ("digits", "fashion", "idx:DIR"); classes "name|name|..."
 *   train    the training config text (knob_train_config_str)
 *   state    JSON: epoch, step, optimizer step, the three RNG states (hex, 4 words each), best
 *            validation loss and epoch, epochs since it, and the per-epoch history
 * Wall-clock times are not stored, so the same run gives the same bytes.
 *
 * Not here: the loop that decides when to save (loop.c). */
#include "knob_internal.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#define FORMAT "knob-classifier"

/* ------------------------------------------------------------------------------------------------
 * State as JSON */

static cJSON *rng_json(const knob_rng *r)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < 4; i++) {
        char hex[24];
        snprintf(hex, sizeof hex, "%016" PRIx64, r->s[i]);
        if (!cJSON_AddItemToArray(a, cJSON_CreateString(hex))) {
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

/* The state as one line of JSON (cJSON_free it), or NULL when an allocation failed: every add is
 * checked, so a failure never leaves a field out silently. */
static char *state_json(const knob_optim *o, const knob_train_state *st)
{
    cJSON *j = cJSON_CreateObject(), *h = cJSON_CreateArray();
    int ok = j && h;
    ok = ok && cJSON_AddNumberToObject(j, "epoch", st->epoch);
    ok = ok && cJSON_AddNumberToObject(j, "step", (double)st->step);
    ok = ok && cJSON_AddNumberToObject(j, "optim_step", o ? (double)o->step : 0.0);
    ok = ok && cJSON_AddItemToObjectCS(j, "order_rng", rng_json(&st->order_rng));
    ok = ok && cJSON_AddItemToObjectCS(j, "aug_rng", rng_json(&st->aug_rng));
    ok = ok && cJSON_AddItemToObjectCS(j, "drop_rng", rng_json(&st->drop_rng));
    ok = ok && cJSON_AddItemToObjectCS(j, "best_val_loss", num_or_null(st->best_val_loss));
    ok = ok && cJSON_AddNumberToObject(j, "best_epoch", st->best_epoch);
    ok = ok && cJSON_AddNumberToObject(j, "bad_epochs", st->bad_epochs);
    ok = ok && cJSON_AddNumberToObject(j, "stopped_early", st->stopped_early);
    for (int i = 0; ok && i < st->n_hist; i++) {
        const knob_epoch_stats *e = &st->hist[i];
        cJSON *row = cJSON_CreateArray();
        ok = cJSON_AddItemToArray(h, row);
        ok = ok && cJSON_AddItemToArray(row, cJSON_CreateNumber(e->epoch));
        ok = ok && cJSON_AddItemToArray(row, num_or_null(e->train_loss));
        ok = ok && cJSON_AddItemToArray(row, num_or_null(e->train_acc));
        ok = ok && cJSON_AddItemToArray(row, num_or_null(e->val_loss));
        ok = ok && cJSON_AddItemToArray(row, num_or_null(e->val_acc));
        ok = ok && cJSON_AddItemToArray(row, num_or_null(e->lr));
        if (!row)
            break;
    }
    if (ok && cJSON_AddItemToObjectCS(j, "history", h))
        h = NULL;   /* owned by j now */
    else
        ok = 0;
    char *s = ok ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(h);
    cJSON_Delete(j);
    return s;
}

static int json_int(const cJSON *j, const char *key, long lo, long hi, long *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)lo ||
        v->valuedouble > (double)hi)
        return 0;
    *out = (long)v->valuedouble;
    return 1;
}

static double json_num(const cJSON *v)
{
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int json_rng(const cJSON *j, const char *key, knob_rng *r)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 4)
        return 0;
    int i = 0;
    for (const cJSON *w = a->child; w; w = w->next, i++) {
        char *end;
        if (!cJSON_IsString(w) || strlen(w->valuestring) != 16)
            return 0;
        unsigned long long v = strtoull(w->valuestring, &end, 16);
        if (*end)
            return 0;
        r->s[i] = (uint64_t)v;
    }
    return (r->s[0] | r->s[1] | r->s[2] | r->s[3]) != 0;   /* all-zero is not a xoshiro state */
}

static knob_status parse_state(const char *path, const char *text, knob_train_state *st, long *optim_step,
                               knob_err *err)
{
    cJSON *j = cJSON_Parse(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: metadata 'state' is not a JSON object", path);
    }
    const char *bad = NULL;
    long epoch = 0, step = 0, ostep = 0, best_epoch = 0, bad_epochs = 0, stopped = 0;
    if (!json_int(j, "epoch", 0, 1000, &epoch))
        bad = "epoch";
    else if (!json_int(j, "step", 0, 1L << 50, &step))
        bad = "step";
    else if (!json_int(j, "optim_step", 0, 1L << 50, &ostep))
        bad = "optim_step";
    else if (!json_int(j, "best_epoch", 0, 1000, &best_epoch))
        bad = "best_epoch";
    else if (!json_int(j, "bad_epochs", 0, 1000, &bad_epochs))
        bad = "bad_epochs";
    else if (!json_int(j, "stopped_early", 0, 1, &stopped))
        bad = "stopped_early";
    else if (!json_rng(j, "order_rng", &st->order_rng))
        bad = "order_rng";
    else if (!json_rng(j, "aug_rng", &st->aug_rng))
        bad = "aug_rng";
    else if (!json_rng(j, "drop_rng", &st->drop_rng))
        bad = "drop_rng";
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "history");
    if (!bad && (!cJSON_IsArray(h) || cJSON_GetArraySize(h) != epoch))
        bad = "history";
    if (!bad) {
        st->epoch = (int)epoch;
        st->step = step;
        *optim_step = ostep;
        st->best_epoch = (int)best_epoch;
        st->bad_epochs = (int)bad_epochs;
        st->stopped_early = (int)stopped;
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "best_val_loss");
        st->best_val_loss = cJSON_IsNumber(b) ? b->valuedouble : INFINITY;
        st->n_hist = 0;
        for (const cJSON *row = h->child; row && !bad; row = row->next) {
            if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != 6) {
                bad = "history";
                break;
            }
            knob_epoch_stats *e = &st->hist[st->n_hist++];
            const cJSON *c = row->child;
            e->epoch = (int)json_num(c);
            e->train_loss = json_num(c = c->next);
            e->train_acc = json_num(c = c->next);
            e->val_loss = json_num(c = c->next);
            e->val_acc = json_num(c = c->next);
            e->lr = json_num(c->next);
            e->seconds = NAN;
        }
    }
    cJSON_Delete(j);
    if (bad)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: metadata 'state' has a missing or bad '%s'", path, bad);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Save */

knob_status knob_checkpoint_save(const char *path, const knob_vision *m, const knob_optim *o,
                                 const knob_train_config *tc, const knob_train_state *st, knob_err *err)
{
    const knob_params *P = &m->P;
    int n_moments = o ? (o->v ? 2 : 1) : 0;
    int n = P->n * (1 + n_moments);
    knob_tensor *copies = knob_calloc((size_t)KNOB_MAX(n, 1), sizeof *copies);
    const knob_tensor **list = knob_calloc((size_t)KNOB_MAX(n, 1), sizeof *list);
    char *state = state_json(o, st);
    knob_status s = KNOB_OK;
    if (!copies || !list || !state) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory building the checkpoint", path);
        goto done;
    }
    size_t at = 0;
    for (int i = 0; i < P->n; i++) {
        list[i] = P->t[i];
        for (int k = 0; k < n_moments; k++) {
            knob_tensor *c = &copies[P->n * (1 + k) + i];
            *c = *P->t[i];
            snprintf(c->name, sizeof c->name, "optim.%c.%.100s", k ? 'v' : 'm', P->t[i]->name);
            c->data = (k ? o->v : o->m) + at;
            c->grad = NULL;
            list[P->n * (1 + k) + i] = c;
        }
        at += P->t[i]->n_elems;
    }
    char model[512], train[1024];
    knob_vision_config_str(&m->cfg, model, sizeof model);
    knob_train_config_str(tc, train, sizeof train);
    knob_kv meta[] = {
        {"format", FORMAT},
        {"model", model},
        {"dataset", tc->dataset ? tc->dataset : ""},
        {"classes", tc->class_names ? tc->class_names : ""},
        {"train", train},
        {"state", state},
    };
    s = knob_st_save(path, list, n, meta, (int)(sizeof meta / sizeof meta[0]), err);
done:
    knob_free(copies);
    knob_free(list);
    cJSON_free(state);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Load */

static knob_status open_classifier(knob_st *st, const char *path, knob_err *err)
{
    knob_status s = knob_st_open(st, path, err);
    if (s)
        return s;
    const char *f = knob_st_meta(st, "format");
    if (!f || strcmp(f, FORMAT) != 0) {
        if (!f)
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: not a knob classifier checkpoint (no 'format' metadata)", path);
        else
            s = knob_fail(err, KNOB_ERR_FORMAT, "%s: not a knob classifier checkpoint (format '%.64s', expected '%s')",
                          path, f, FORMAT);
        knob_st_close(st);   /* f points into st */
        return s;
    }
    return KNOB_OK;
}

knob_status knob_vision_load(knob_vision *m, knob_checkpoint_info *info, const char *path, knob_err *err)
{
    memset(m, 0, sizeof *m);
    memset(info, 0, sizeof *info);
    knob_st st;
    knob_status s = open_classifier(&st, path, err);
    if (s)
        return s;
    const char *model = knob_st_meta(&st, "model"), *classes = knob_st_meta(&st, "classes");
    const char *dataset = knob_st_meta(&st, "dataset"), *train = knob_st_meta(&st, "train");
    knob_vision_config c;
    knob_err e2;
    if (!model) {
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: checkpoint has no 'model' metadata", path);
        goto done;
    }
    if ((s = knob_vision_config_parse(&c, model, &e2)) != KNOB_OK) {
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: %s", path, e2.msg);
        goto done;
    }
    snprintf(info->dataset, sizeof info->dataset, "%s", dataset ? dataset : "");
    snprintf(info->train, sizeof info->train, "%s", train ? train : "");
    for (const char *p = classes ? classes : ""; *p && info->n_classes < 16;) {
        size_t len = strcspn(p, "|");
        snprintf(info->classes[info->n_classes++], sizeof info->classes[0], "%.*s", (int)KNOB_MIN(len, 23), p);
        p += len + (p[len] == '|');
    }
    for (int k = info->n_classes; k < c.n_classes && k < 16; k++)   /* names missing: numbers */
        snprintf(info->classes[k], sizeof info->classes[0], "%d", k);
    info->n_classes = c.n_classes;
    if ((s = knob_vision_init(m, &c, 0, err)) != KNOB_OK)
        goto done;
    knob_st_close(&st);
    if ((s = knob_params_load(&m->P, path, err)) != KNOB_OK) {
        knob_vision_free(m);
        return s;
    }
    return KNOB_OK;
done:
    knob_st_close(&st);
    return s;
}

knob_status knob_checkpoint_load_state(const char *path, knob_optim *o, knob_train_state *st, knob_err *err)
{
    knob_st f;
    knob_status s = open_classifier(&f, path, err);
    if (s)
        return s;
    const char *state = knob_st_meta(&f, "state");
    long ostep = 0;
    if (!state)
        s = knob_fail(err, KNOB_ERR_FORMAT, "%s: checkpoint has no 'state' metadata; cannot resume from it", path);
    else
        s = parse_state(path, state, st, &ostep, err);
    const knob_params *P = o->p;
    size_t at = 0;
    for (int i = 0; i < P->n && !s; i++) {
        const knob_tensor *t = P->t[i];
        for (int k = 0; k < (o->v ? 2 : 1) && !s; k++) {
            char name[KNOB_NAME_MAX + 16];
            snprintf(name, sizeof name, "optim.%c.%s", k ? 'v' : 'm', t->name);
            const knob_st_entry *e = knob_st_find(&f, name);
            size_t n = 1;
            for (int d = 0; e && d < e->n_dims; d++)
                n *= (size_t)e->shape[d];
            if (!e)
                s = knob_fail(err, KNOB_ERR_FORMAT, "%s: optimizer state '%.128s' not found (saved with another optimizer?)",
                              path, name);
            else if (n != t->n_elems || e->n_dims != t->n_dims)
                s = knob_fail(err, KNOB_ERR_SHAPE, "%s: '%.128s' has %zu elements, the model's '%.128s' has %zu", path,
                              name, n, t->name, t->n_elems);
            else
                s = knob_st_read_f32(&f, e, (k ? o->v : o->m) + at, t->n_elems, err);
        }
        at += t->n_elems;
    }
    if (!s)
        o->step = ostep;
    knob_st_close(&f);
    return s;
}
