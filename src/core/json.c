/* json.c: cJSON behind one file. Every other file reads and writes JSON through the functions
 * below (declared in knob_internal.h), so knob's allocator is installed once, for everyone, and a
 * parse that fails tells an out-of-memory apart from malformed text.
 *
 * Limits on trust: a parse refuses text over KNOB_JSON_MAX_BYTES and nesting deeper than
 * KNOB_JSON_MAX_DEPTH (checked by a scan before cJSON recurses), with a message naming `what`.
 *
 * Not here: the safetensors header rules (io/safetensors.c), the digit files' fast scanner
 * (io/digits.c). */
#include "knob_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

static _Thread_local int json_oom;
static pthread_once_t json_once = PTHREAD_ONCE_INIT;

static void *json_malloc(size_t n)
{
    void *p = knob_malloc(n);
    if (!p)
        json_oom = 1;
    return p;
}

static void json_hooks_init(void)
{
    cJSON_Hooks h = {json_malloc, knob_free};
    cJSON_InitHooks(&h);
}

static void json_begin(void)
{
    pthread_once(&json_once, json_hooks_init);
    json_oom = 0;
}

/* Deepest nesting of [ and { outside strings. */
static int json_depth(const char *s, size_t n)
{
    int depth = 0, max = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                max = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return max;
}

knob_status knob_json_parse(knob_json **out, const char *text, size_t n, size_t *end, const char *what,
                            knob_err *err)
{
    *out = NULL;
    if (end)
        *end = 0;
    if (n > KNOB_JSON_MAX_BYTES)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: JSON of %zu bytes is over the limit of %zu", what, n,
                         (size_t)KNOB_JSON_MAX_BYTES);
    int depth = json_depth(text, n);
    if (depth > KNOB_JSON_MAX_DEPTH)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: JSON nested %d deep; the limit is %d", what, depth,
                         KNOB_JSON_MAX_DEPTH);
    json_begin();
    const char *stop = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, n, &stop, 0);
    if (!j && json_oom)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory parsing %zu bytes of JSON", what, n);
    if (!j)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: malformed JSON near byte %zu", what,
                         stop && stop >= text ? (size_t)(stop - text) : (size_t)0);
    if (end)
        *end = (size_t)(stop - text);
    *out = j;
    return KNOB_OK;
}

knob_status knob_json_parse_str(knob_json **out, const char *text, const char *what, knob_err *err)
{
    if (!text) {
        *out = NULL;
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: no JSON", what);
    }
    size_t end = 0, n = strlen(text);
    knob_status s = knob_json_parse(out, text, n, &end, what, err);
    if (s)
        return s;
    for (size_t i = end; i < n; i++)
        if (!(text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) {
            knob_json_free(*out);
            *out = NULL;
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: text after the JSON at byte %zu", what, i);
        }
    return KNOB_OK;
}

void knob_json_free(knob_json *j) { cJSON_Delete(j); }

/* ------------------------------------------------------------------------------------------------
 * Reading */

int knob_json_is_object(const knob_json *j) { return cJSON_IsObject(j); }
int knob_json_is_array(const knob_json *j) { return cJSON_IsArray(j); }
int knob_json_is_string(const knob_json *j) { return cJSON_IsString(j); }
int knob_json_is_number(const knob_json *j) { return cJSON_IsNumber(j); }
int knob_json_is_null(const knob_json *j) { return cJSON_IsNull(j); }
int knob_json_is_bool(const knob_json *j) { return cJSON_IsBool(j); }
int knob_json_is_true(const knob_json *j) { return cJSON_IsTrue(j); }

const knob_json *knob_json_get(const knob_json *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

const knob_json *knob_json_child(const knob_json *j) { return j && (cJSON_IsObject(j) || cJSON_IsArray(j)) ? j->child : NULL; }
const knob_json *knob_json_next(const knob_json *j) { return j ? j->next : NULL; }
const char *knob_json_key(const knob_json *j) { return j ? j->string : NULL; }
int knob_json_size(const knob_json *j) { return cJSON_IsObject(j) || cJSON_IsArray(j) ? cJSON_GetArraySize(j) : 0; }
double knob_json_number(const knob_json *j) { return cJSON_IsNumber(j) ? j->valuedouble : NAN; }
const char *knob_json_string(const knob_json *j) { return cJSON_IsString(j) ? j->valuestring : NULL; }

int knob_json_as_long(const knob_json *j, long lo, long hi, long *out)
{
    if (!cJSON_IsNumber(j))
        return 0;
    double d = j->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return 0;
    *out = (long)d;
    return 1;
}

/* *v = obj's member key; a missing one is an error only when required (then *v is NULL and OK) */
static knob_status member(const knob_json *obj, const char *key, int required, const knob_json **v, const char *what,
                          knob_err *err)
{
    *v = knob_json_get(obj, key);
    if (!*v && required)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: '%s' is missing", what, key);
    return KNOB_OK;
}

knob_status knob_json_get_long(const knob_json *obj, const char *key, long lo, long hi, int required, long *out,
                               const char *what, knob_err *err)
{
    const knob_json *v;
    knob_status s = member(obj, key, required, &v, what, err);
    if (s || !v)
        return s;
    if (!knob_json_as_long(v, lo, hi, out))
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: '%s' must be an integer in [%ld, %ld]", what, key, lo, hi);
    return KNOB_OK;
}

knob_status knob_json_get_int(const knob_json *obj, const char *key, int lo, int hi, int required, int *out,
                              const char *what, knob_err *err)
{
    long v = *out;
    knob_status s = knob_json_get_long(obj, key, lo, hi, required, &v, what, err);
    if (!s)
        *out = (int)v;
    return s;
}

knob_status knob_json_get_double(const knob_json *obj, const char *key, int required, double *out,
                                 const char *what, knob_err *err)
{
    const knob_json *v;
    knob_status s = member(obj, key, required, &v, what, err);
    if (s || !v)
        return s;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: '%s' must be a finite number", what, key);
    *out = v->valuedouble;
    return KNOB_OK;
}

knob_status knob_json_get_string(const knob_json *obj, const char *key, int required, const char **out,
                                 const char *what, knob_err *err)
{
    const knob_json *v;
    knob_status s = member(obj, key, required, &v, what, err);
    if (s || !v)
        return s;
    if (!cJSON_IsString(v))
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: '%s' must be a string", what, key);
    *out = v->valuestring;
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Writing: builders return NULL (or 0) when an allocation fails; a NULL argument is passed through
 * as a failure, so a chain of adds needs one check at the end. */

knob_json *knob_json_new_object(void) { json_begin(); return cJSON_CreateObject(); }
knob_json *knob_json_new_array(void) { json_begin(); return cJSON_CreateArray(); }
knob_json *knob_json_new_number(double v) { json_begin(); return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }
knob_json *knob_json_new_string(const char *s) { json_begin(); return s ? cJSON_CreateString(s) : NULL; }
knob_json *knob_json_new_null(void) { json_begin(); return cJSON_CreateNull(); }
knob_json *knob_json_new_bool(int v) { json_begin(); return cJSON_CreateBool(v); }

int knob_json_add(knob_json *obj, const char *key, knob_json *item)
{
    if (!obj || !item || !cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return 0;
    }
    return 1;
}

int knob_json_push(knob_json *arr, knob_json *item)
{
    if (!arr || !item || !cJSON_AddItemToArray(arr, item)) {
        cJSON_Delete(item);
        return 0;
    }
    return 1;
}

int knob_json_add_number(knob_json *obj, const char *key, double v) { return knob_json_add(obj, key, knob_json_new_number(v)); }
int knob_json_add_string(knob_json *obj, const char *key, const char *s) { return knob_json_add(obj, key, knob_json_new_string(s)); }

char *knob_json_print(const knob_json *j)
{
    if (!j)
        return NULL;
    json_begin();
    return cJSON_PrintUnformatted(j);   /* knob_malloc'd through the hooks: knob_free it */
}
