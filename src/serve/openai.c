/* openai.c: the wire format of knob serve. Parses the bodies of /v1/completions and
 * /v1/chat/completions into a knob_serve_req (every field checked, a bad one named in a 400),
 * turns chat messages into the model's text with a plain template, and writes the responses:
 * whole completions, server-sent-event chunks, /v1/models, /tokenize, /detokenize, and errors in
 * OpenAI's shape {"error": {"message", "type", "param", "code"}}. JSON through knob_json_* (cJSON
 * lives in src/core/json.c only). Text that goes into JSON is made valid UTF-8 first (a byte
 * tokenizer can sample half a character): bad bytes become U+FFFD.
 *
 * The chat template (docs/SERVE.md): each message is "System: ...\n", "User: ...\n" or
 * "Assistant: ...\n" by role, and "Assistant:" follows for the reply, which ends at "\nUser:" (a
 * stop string of its own) or at any of the request's stop strings.
 *
 * Not here: HTTP (http.c), generation and batching (sched.c). */
#include "knob_internal.h"

#include <math.h>
#include <string.h>
#include <time.h>

void knob_serve_req_free(knob_serve_req *r)
{
    if (!r)
        return;
    knob_free(r->prompt);
    knob_free(r->prompt_text);
    for (int i = 0; i < r->n_stop; i++)
        knob_free(r->stop[i]);
    knob_free(r->text);
    knob_free(r->toks);
    knob_free(r);
}

/* ------------------------------------------------------------------------------------------------
 * UTF-8 for JSON */

char *knob_serve_utf8_clean(const char *s, size_t n)
{
    char *out = knob_malloc(3 * n + 1);   /* a bad byte becomes 3 */
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = knob_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (l > 0 && cp != 0) {
            memcpy(out + k, s + i, (size_t)l);
            k += (size_t)l;
            i += (size_t)l;
        } else {   /* U+FFFD; a NUL too, which would cut the string */
            memcpy(out + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i++;
        }
    }
    out[k] = '\0';
    return out;
}

static int add_clean(knob_json *o, const char *key, const char *s, size_t n)
{
    char *c = knob_serve_utf8_clean(s, n);
    if (!c)
        return 0;
    int ok = knob_json_add_string(o, key, c);
    knob_free(c);
    return ok;
}

static int push_clean(knob_json *a, const char *s, size_t n)
{
    char *c = knob_serve_utf8_clean(s, n);
    if (!c)
        return 0;
    int ok = knob_json_push(a, knob_json_new_string(c));
    knob_free(c);
    return ok;
}

/* ------------------------------------------------------------------------------------------------
 * Errors */

char *knob_serve_error_json(int status, const char *msg)
{
    const char *type = status == 401 ? "authentication_error"
                     : status == 404 ? "not_found_error"
                     : status == 503 || status == 429 ? "server_busy"
                     : status >= 500 ? "server_error" : "invalid_request_error";
    const char *code = status == 401 ? "invalid_api_key" : status == 404 ? "not_found" : status == 413 ? "body_too_large"
                     : status == 503 || status == 429 ? "server_busy" : status >= 500 ? "internal_error"
                     : strstr(msg, "context") ? "context_length_exceeded" : "invalid_request";
    knob_json *root = knob_json_new_object(), *e = knob_json_new_object();
    int ok = add_clean(e, "message", msg, strlen(msg)) && knob_json_add_string(e, "type", type) &&
             knob_json_add(e, "param", knob_json_new_null()) && knob_json_add_string(e, "code", code);
    ok = ok && knob_json_add(root, "error", e);
    if (!ok) {
        knob_json_free(root);
        return NULL;
    }
    char *s = knob_json_print(root);
    knob_json_free(root);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Request fields: null counts as absent (clients send "stop": null); a wrong type or range is a
 * 400 naming the field. */

static const knob_json *field(const knob_json *o, const char *key)
{
    const knob_json *v = knob_json_get(o, key);
    return v && knob_json_is_null(v) ? NULL : v;
}

static int get_num(const knob_json *o, const char *key, double lo, double hi, double *out, knob_err *err)
{
    const knob_json *v = field(o, key);
    if (!v)
        return 200;
    double d = knob_json_number(v);
    if (!knob_json_is_number(v) || !(d >= lo && d <= hi)) {
        knob_fail(err, KNOB_ERR_USAGE, "'%s' must be a number in [%g, %g]", key, lo, hi);
        return 400;
    }
    *out = d;
    return 200;
}

static int get_int(const knob_json *o, const char *key, long lo, long hi, long *out, knob_err *err)
{
    const knob_json *v = field(o, key);
    if (!v)
        return 200;
    if (!knob_json_as_long(v, lo, hi, out)) {
        knob_fail(err, KNOB_ERR_USAGE, "'%s' must be an integer in [%ld, %ld]", key, lo, hi);
        return 400;
    }
    return 200;
}

static int get_bool(const knob_json *o, const char *key, int *out, knob_err *err)
{
    const knob_json *v = field(o, key);
    if (!v)
        return 200;
    if (!knob_json_is_bool(v)) {
        knob_fail(err, KNOB_ERR_USAGE, "'%s' must be true or false", key);
        return 400;
    }
    *out = knob_json_is_true(v);
    return 200;
}

static int body_json(const char *body, size_t n, knob_json **j, knob_err *err)
{
    *j = NULL;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = knob_utf8_decode((const unsigned char *)body + i, n - i, &cp);
        if (!l) {
            knob_fail(err, KNOB_ERR_USAGE, "request body: invalid UTF-8 at byte %zu", i);
            return 400;
        }
        i += (size_t)l;
    }
    size_t end = 0;
    knob_status s = knob_json_parse(j, body, n, &end, "request body", err);
    if (s == KNOB_ERR_NOMEM)
        return 500;
    if (s)
        return 400;
    for (size_t i = end; i < n; i++)   /* nothing but whitespace after the value */
        if (!strchr(" \t\r\n", body[i]) || !body[i]) {
            knob_json_free(*j);
            *j = NULL;
            knob_fail(err, KNOB_ERR_USAGE, "request body: text after the JSON value at byte %zu", i);
            return 400;
        }
    if (!knob_json_is_object(*j)) {
        knob_json_free(*j);
        *j = NULL;
        knob_fail(err, KNOB_ERR_USAGE, "request body: must be a JSON object");
        return 400;
    }
    return 200;
}

/* ------------------------------------------------------------------------------------------------
 * A growing string */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? 2 * b->cap : 256;
        while (c < b->n + n + 1)
            c *= 2;
        char *q = knob_realloc(b->p, c);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* ------------------------------------------------------------------------------------------------
 * Parsing a completion or chat request */

static int add_stop(knob_serve_req *r, const char *s, knob_err *err)
{
    if (!s[0]) {
        knob_fail(err, KNOB_ERR_USAGE, "'stop' strings must not be empty");
        return 400;
    }
    if (strlen(s) > 256) {
        knob_fail(err, KNOB_ERR_USAGE, "'stop' strings must be at most 256 bytes");
        return 400;
    }
    if (!(r->stop[r->n_stop] = knob_strdup(s))) {
        knob_fail(err, KNOB_ERR_NOMEM, "server: out of memory");
        return 500;
    }
    r->n_stop++;
    return 200;
}

static const char *role_name(const char *role)
{
    if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)
        return "System";
    if (strcmp(role, "user") == 0)
        return "User";
    if (strcmp(role, "assistant") == 0)
        return "Assistant";
    return NULL;
}

/* messages -> the template's text */
static int chat_text(const knob_json *msgs, sbuf *b, knob_err *err)
{
    if (!msgs || !knob_json_is_array(msgs) || knob_json_size(msgs) == 0) {
        knob_fail(err, KNOB_ERR_USAGE, "'messages' must be a non-empty array of {\"role\", \"content\"} objects");
        return 400;
    }
    int i = 0;
    for (const knob_json *m = knob_json_child(msgs); m; m = knob_json_next(m), i++) {
        const char *role = knob_json_string(field(m, "role"));
        const char *name = role ? role_name(role) : NULL;
        if (!knob_json_is_object(m) || !name) {
            knob_fail(err, KNOB_ERR_USAGE, "'messages[%d].role' must be \"system\", \"user\" or \"assistant\"", i);
            return 400;
        }
        const knob_json *c = field(m, "content");
        sb_str(b, name);
        sb_str(b, ": ");
        if (c && knob_json_is_string(c)) {
            sb_str(b, knob_json_string(c));
        } else if (c && knob_json_is_array(c)) {   /* [{"type": "text", "text": ...}, ...] */
            for (const knob_json *p = knob_json_child(c); p; p = knob_json_next(p)) {
                const char *type = knob_json_string(field(p, "type")), *t = knob_json_string(field(p, "text"));
                if (!type || strcmp(type, "text") != 0 || !t) {
                    knob_fail(err, KNOB_ERR_USAGE, "'messages[%d].content' parts must be {\"type\": \"text\", "
                              "\"text\": ...}", i);
                    return 400;
                }
                sb_str(b, t);
            }
        } else if (c || strcmp(name, "Assistant") != 0) {
            knob_fail(err, KNOB_ERR_USAGE, "'messages[%d].content' must be a string", i);
            return 400;
        }
        sb_str(b, "\n");
    }
    sb_str(b, "Assistant:");
    return 200;
}

static int parse_req(const knob_serve_opts *o, int chat, const knob_json *j, knob_serve_req *r, knob_err *err)
{
    const knob_lm *lm = o->lm;
    int st;
    const knob_json *v;
    if ((v = field(j, "model"))) {
        const char *m = knob_json_string(v);
        if (!m) {
            knob_fail(err, KNOB_ERR_USAGE, "'model' must be a string");
            return 400;
        }
        if (strcmp(m, o->model_id) != 0) {
            knob_fail(err, KNOB_ERR_USAGE, "model '%.128s' not found; this server has '%.128s'", m, o->model_id);
            return 404;
        }
    }
    long n = 1;
    if ((st = get_int(j, "n", 1, 1, &n, err)) != 200)
        return st;
    double temp = 1.0, top_p = 1.0;
    long top_k = 0, max_tokens = -1, seed = -1;
    if ((st = get_num(j, "temperature", 0, 100, &temp, err)) != 200 ||
        (st = get_num(j, "top_p", 0, 1, &top_p, err)) != 200 ||
        (st = get_int(j, "top_k", 0, 1 << 20, &top_k, err)) != 200 ||
        (st = get_int(j, "max_tokens", 1, 1000000, &max_tokens, err)) != 200 ||
        (st = get_int(j, "max_completion_tokens", 1, 1000000, &max_tokens, err)) != 200 ||
        (st = get_int(j, "seed", -(1L << 53), 1L << 53, &seed, err)) != 200 ||
        (st = get_bool(j, "stream", &r->stream, err)) != 200)
        return st;
    if (field(j, "seed"))
        r->seed = (uint64_t)seed;
    else
        r->seed = (uint64_t)(knob_now() * 1e9) ^ (uint64_t)(uintptr_t)r;
    r->sampler = (knob_sampler){.temperature = (float)temp, .top_k = (int)top_k, .top_p = (float)top_p};
    if ((v = field(j, "stream_options"))) {
        if (!knob_json_is_object(v)) {
            knob_fail(err, KNOB_ERR_USAGE, "'stream_options' must be an object");
            return 400;
        }
        if ((st = get_bool(v, "include_usage", &r->include_usage, err)) != 200)
            return st;
    }
    if ((v = field(j, "stop"))) {
        if (knob_json_is_string(v)) {
            if ((st = add_stop(r, knob_json_string(v), err)) != 200)
                return st;
        } else if (knob_json_is_array(v) && knob_json_size(v) <= 4) {
            for (const knob_json *s = knob_json_child(v); s; s = knob_json_next(s)) {
                if (!knob_json_is_string(s)) {
                    knob_fail(err, KNOB_ERR_USAGE, "'stop' must be a string or an array of up to 4 strings");
                    return 400;
                }
                if ((st = add_stop(r, knob_json_string(s), err)) != 200)
                    return st;
            }
        } else {
            knob_fail(err, KNOB_ERR_USAGE, "'stop' must be a string or an array of up to 4 strings");
            return 400;
        }
    }
    /* the prompt */
    sbuf text = {0};
    const knob_json *ids_in = NULL;
    if (chat) {
        r->chat = 1;
        int lp = 0;
        long top = 0;
        if ((st = get_bool(j, "logprobs", &lp, err)) != 200 ||
            (st = get_int(j, "top_logprobs", 0, KNOB_SERVE_MAX_TOP, &top, err)) != 200)
            return st;
        r->logprobs = lp;
        r->n_top = lp ? (int)top : 0;
        if ((st = chat_text(field(j, "messages"), &text, err)) != 200) {
            knob_free(text.p);
            return st;
        }
        if ((st = add_stop(r, "\nUser:", err)) != 200) {
            knob_free(text.p);
            return st;
        }
    } else {
        long lp = 0;
        if ((st = get_bool(j, "echo", &r->echo, err)) != 200 ||
            (st = get_int(j, "logprobs", 0, 5, &lp, err)) != 200)
            return st;
        r->logprobs = lp > 0;
        r->n_top = (int)lp;
        v = field(j, "prompt");
        if (v && knob_json_is_array(v) && knob_json_size(v) == 1 && knob_json_is_string(knob_json_child(v)))
            v = knob_json_child(v);   /* ["text"] */
        if (!v) {
            sb_str(&text, "");
        } else if (knob_json_is_string(v)) {
            sb_str(&text, knob_json_string(v));
        } else if (knob_json_is_array(v) && knob_json_size(v) > 0 && knob_json_is_number(knob_json_child(v))) {
            ids_in = v;   /* token ids */
        } else {
            knob_fail(err, KNOB_ERR_USAGE, "'prompt' must be a string, an array of one string, or an array of "
                      "token ids");
            return 400;
        }
    }
    if (text.oom) {
        knob_free(text.p);
        knob_fail(err, KNOB_ERR_NOMEM, "server: out of memory");
        return 500;
    }
    int V = knob_lm_config(lm)->vocab_size;
    if (ids_in) {
        size_t k = 0, m = (size_t)knob_json_size(ids_in);
        if (!(r->prompt = knob_malloc(m * sizeof *r->prompt))) {
            knob_fail(err, KNOB_ERR_NOMEM, "server: out of memory");
            return 500;
        }
        for (const knob_json *e = knob_json_child(ids_in); e; e = knob_json_next(e)) {
            long id;
            if (!knob_json_as_long(e, 0, V - 1, &id)) {
                knob_fail(err, KNOB_ERR_USAGE, "'prompt[%zu]' must be a token id in [0, %d]", k, V - 1);
                return 400;
            }
            r->prompt[k++] = (int32_t)id;
        }
        r->n_prompt = k;
        char *t = NULL;
        size_t tl = 0;
        if (knob_lm_tokenizer(lm) && knob_tok_decode(knob_lm_tokenizer(lm), r->prompt, k, &t, &tl, err) == KNOB_OK)
            r->prompt_text = t;
    } else {
        if (!knob_lm_tokenizer(lm)) {
            knob_free(text.p);
            knob_fail(err, KNOB_ERR_USAGE, "the model has no tokenizer: send 'prompt' as token ids");
            return 400;
        }
        r->prompt_text = text.p ? text.p : knob_strdup("");
        if (!r->prompt_text) {
            knob_fail(err, KNOB_ERR_NOMEM, "server: out of memory");
            return 500;
        }
        knob_status s = knob_lm_encode(lm, r->prompt_text, strlen(r->prompt_text), 0, &r->prompt, &r->n_prompt, err);
        if (s) {
            knob_err_prefix(err, chat ? "'messages'" : "'prompt'");
            return s == KNOB_ERR_NOMEM ? 500 : 400;
        }
        if (r->n_prompt == 0) {   /* the start token, as knob generate does */
            int32_t t0;
            if (knob_lm_start_token(lm, &t0, err) != KNOB_OK)
                return 400;
            knob_free(r->prompt);
            if (!(r->prompt = knob_malloc(sizeof *r->prompt))) {
                knob_fail(err, KNOB_ERR_NOMEM, "server: out of memory");
                return 500;
            }
            r->prompt[0] = t0;
            r->n_prompt = 1;
        }
    }
    if (r->n_prompt >= (size_t)o->ctx) {
        knob_fail(err, KNOB_ERR_USAGE, "the prompt has %zu tokens, and the context holds %d with at least one "
                  "to generate", r->n_prompt, o->ctx);
        return 400;
    }
    long room = (long)o->ctx - (long)r->n_prompt;
    if (max_tokens < 0)
        max_tokens = chat ? room : KNOB_MIN(16, room);   /* OpenAI's defaults: all (chat), 16 (completions) */
    r->max_tokens = (int)KNOB_MIN(max_tokens, room);
    return 200;
}

int knob_serve_parse(const knob_serve_opts *o, int chat, const char *body, size_t n, knob_serve_req **out,
                     knob_err *err)
{
    *out = NULL;
    knob_json *j;
    int st = body_json(body, n, &j, err);
    if (st != 200)
        return st;
    knob_serve_req *r = knob_calloc(1, sizeof *r);
    if (!r) {
        knob_json_free(j);
        knob_fail(err, KNOB_ERR_NOMEM, "server: out of memory");
        return 500;
    }
    r->created = (long)time(NULL);
    st = parse_req(o, chat, j, r, err);
    knob_json_free(j);
    if (st != 200) {
        knob_serve_req_free(r);
        return st;
    }
    *out = r;
    return 200;
}

/* ------------------------------------------------------------------------------------------------
 * Tokenize, detokenize, models */

static char *print_free(knob_json *root, int ok)
{
    char *s = ok ? knob_json_print(root) : NULL;
    knob_json_free(root);
    return s;
}

int knob_serve_tokenize(const knob_serve_opts *o, const char *body, size_t n, char **json, knob_err *err)
{
    *json = NULL;
    knob_json *j;
    int st = body_json(body, n, &j, err);
    if (st != 200)
        return st;
    const char *text = knob_json_string(field(j, "content"));
    int with_pieces = 0;
    if (!text) {
        knob_json_free(j);
        knob_fail(err, KNOB_ERR_USAGE, "'content' must be a string");
        return 400;
    }
    if ((st = get_bool(j, "with_pieces", &with_pieces, err)) != 200) {
        knob_json_free(j);
        return st;
    }
    if (!knob_lm_tokenizer(o->lm)) {
        knob_json_free(j);
        knob_fail(err, KNOB_ERR_USAGE, "the model has no tokenizer");
        return 400;
    }
    int32_t *ids = NULL;
    size_t m = 0;
    knob_status s = knob_lm_encode(o->lm, text, strlen(text), 0, &ids, &m, err);
    knob_json_free(j);
    if (s) {
        knob_err_prefix(err, "'content'");
        return s == KNOB_ERR_NOMEM ? 500 : 400;
    }
    knob_json *root = knob_json_new_object(), *a = knob_json_new_array();
    int ok = root && a;
    for (size_t i = 0; ok && i < m; i++) {
        if (with_pieces) {
            size_t pl;
            const char *p = knob_tok_piece(knob_lm_tokenizer(o->lm), ids[i], &pl);
            knob_json *e = knob_json_new_object();
            ok = knob_json_push(a, e) && knob_json_add_number(e, "id", ids[i]) &&
                 add_clean(e, "piece", p ? p : "", p ? pl : 0);
        } else {
            ok = knob_json_push(a, knob_json_new_number(ids[i]));
        }
    }
    knob_free(ids);
    ok = knob_json_add(root, "tokens", a) && ok;
    *json = print_free(root, ok);
    if (!*json) {
        knob_fail(err, KNOB_ERR_NOMEM, "server: out of memory");
        return 500;
    }
    return 200;
}

int knob_serve_detokenize(const knob_serve_opts *o, const char *body, size_t n, char **json, knob_err *err)
{
    *json = NULL;
    knob_json *j;
    int st = body_json(body, n, &j, err);
    if (st != 200)
        return st;
    const knob_json *t = field(j, "tokens");
    int V = knob_lm_config(o->lm)->vocab_size;
    if (!t || !knob_json_is_array(t)) {
        knob_json_free(j);
        knob_fail(err, KNOB_ERR_USAGE, "'tokens' must be an array of token ids");
        return 400;
    }
    size_t m = (size_t)knob_json_size(t), k = 0;
    int32_t *ids = knob_malloc((m ? m : 1) * sizeof *ids);
    if (!ids) {
        knob_json_free(j);
        knob_fail(err, KNOB_ERR_NOMEM, "server: out of memory");
        return 500;
    }
    for (const knob_json *e = knob_json_child(t); e; e = knob_json_next(e), k++) {
        long id;
        if (!knob_json_as_long(e, 0, V - 1, &id)) {
            knob_free(ids);
            knob_json_free(j);
            knob_fail(err, KNOB_ERR_USAGE, "'tokens[%zu]' must be a token id in [0, %d]", k, V - 1);
            return 400;
        }
        ids[k] = (int32_t)id;
    }
    knob_json_free(j);
    if (!knob_lm_tokenizer(o->lm)) {
        knob_free(ids);
        knob_fail(err, KNOB_ERR_USAGE, "the model has no tokenizer");
        return 400;
    }
    char *text = NULL;
    size_t tl = 0;
    knob_status s = knob_tok_decode(knob_lm_tokenizer(o->lm), ids, m, &text, &tl, err);
    knob_free(ids);
    if (s)
        return s == KNOB_ERR_NOMEM ? 500 : 400;
    knob_json *root = knob_json_new_object();
    int ok = add_clean(root, "content", text, tl);
    knob_free(text);
    *json = print_free(root, ok);
    if (!*json) {
        knob_fail(err, KNOB_ERR_NOMEM, "server: out of memory");
        return 500;
    }
    return 200;
}

static knob_json *model_obj(const knob_serve_opts *o)
{
    knob_json *m = knob_json_new_object();
    int ok = knob_json_add_string(m, "id", o->model_id) && knob_json_add_string(m, "object", "model") &&
             knob_json_add_number(m, "created", 0) && knob_json_add_string(m, "owned_by", "knob") &&
             knob_json_add_number(m, "context_length", o->ctx);
    if (!ok) {
        knob_json_free(m);
        return NULL;
    }
    return m;
}

char *knob_serve_model_json(const knob_serve_opts *o)
{
    knob_json *m = model_obj(o);
    return print_free(m, m != NULL);
}

char *knob_serve_models_json(const knob_serve_opts *o)
{
    knob_json *root = knob_json_new_object(), *a = knob_json_new_array();
    int ok = knob_json_add_string(root, "object", "list") && knob_json_push(a, model_obj(o));
    ok = knob_json_add(root, "data", a) && ok;
    return print_free(root, ok);
}

/* ------------------------------------------------------------------------------------------------
 * Responses */

static knob_json *usage_obj(const knob_serve_req *r)
{
    knob_json *u = knob_json_new_object();
    int ok = knob_json_add_number(u, "prompt_tokens", (double)r->n_prompt) &&
             knob_json_add_number(u, "completion_tokens", r->n_completion) &&
             knob_json_add_number(u, "total_tokens", (double)r->n_prompt + r->n_completion);
    if (!ok) {
        knob_json_free(u);
        return NULL;
    }
    return u;
}

static int piece_of(const knob_serve_opts *o, int32_t id, const char **p, size_t *n)
{
    *p = knob_tok_piece(knob_lm_tokenizer(o->lm), id, n);
    if (!*p)
        *p = "", *n = 0;
    return 1;
}

static knob_json *bytes_arr(const char *p, size_t n)
{
    knob_json *a = knob_json_new_array();
    for (size_t i = 0; a && i < n; i++)
        if (!knob_json_push(a, knob_json_new_number((unsigned char)p[i]))) {
            knob_json_free(a);
            return NULL;
        }
    return a;
}

/* chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}]} */
static knob_json *chat_logprobs(const knob_serve_opts *o, const knob_serve_req *r, int from, int to)
{
    knob_json *lp = knob_json_new_object(), *content = knob_json_new_array();
    int ok = lp && content;
    for (int i = from; ok && i < to; i++) {
        const knob_serve_tok *t = &r->toks[i];
        const char *p;
        size_t n;
        piece_of(o, t->id, &p, &n);
        knob_json *e = knob_json_new_object(), *tops = knob_json_new_array();
        ok = knob_json_push(content, e);
        ok = knob_json_add(e, "top_logprobs", tops) && ok;
        ok = ok && add_clean(e, "token", p, n) && knob_json_add_number(e, "logprob", t->logprob) &&
             knob_json_add(e, "bytes", bytes_arr(p, n));
        for (int k = 0; ok && k < t->n_top; k++) {
            const char *tp;
            size_t tn;
            piece_of(o, t->top_id[k], &tp, &tn);
            knob_json *te = knob_json_new_object();
            ok = knob_json_push(tops, te) && add_clean(te, "token", tp, tn) &&
                 knob_json_add_number(te, "logprob", t->top_lp[k]) && knob_json_add(te, "bytes", bytes_arr(tp, tn));
        }
    }
    ok = knob_json_add(lp, "content", content) && ok;
    if (!ok) {
        knob_json_free(lp);
        return NULL;
    }
    return lp;
}

/* completions: {"tokens", "token_logprobs", "top_logprobs": [{piece: lp}], "text_offset"} */
static knob_json *text_logprobs(const knob_serve_opts *o, const knob_serve_req *r, int from, int to, size_t base)
{
    knob_json *lp = knob_json_new_object(), *toks = knob_json_new_array(), *lps = knob_json_new_array(),
              *tops = knob_json_new_array(), *offs = knob_json_new_array();
    int ok = lp && toks && lps && tops && offs;
    for (int i = from; ok && i < to; i++) {
        const knob_serve_tok *t = &r->toks[i];
        const char *p;
        size_t n;
        piece_of(o, t->id, &p, &n);
        ok = push_clean(toks, p, n) && knob_json_push(lps, knob_json_new_number(t->logprob)) &&
             knob_json_push(offs, knob_json_new_number((double)(base + t->offset)));
        knob_json *m = knob_json_new_object();
        ok = knob_json_push(tops, m) && ok;
        for (int k = 0; ok && k < t->n_top; k++) {
            const char *tp;
            size_t tn;
            piece_of(o, t->top_id[k], &tp, &tn);
            char *c = knob_serve_utf8_clean(tp, tn);
            ok = c && (knob_json_get(m, c) || knob_json_add_number(m, c, t->top_lp[k]));
            knob_free(c);
        }
    }
    ok = knob_json_add(lp, "tokens", toks) && ok;
    ok = knob_json_add(lp, "token_logprobs", lps) && ok;
    ok = knob_json_add(lp, "top_logprobs", tops) && ok;
    ok = knob_json_add(lp, "text_offset", offs) && ok;
    if (!ok) {
        knob_json_free(lp);
        return NULL;
    }
    return lp;
}

static knob_json *envelope(const knob_serve_opts *o, const knob_serve_req *r, const char *id, const char *object)
{
    knob_json *root = knob_json_new_object();
    int ok = knob_json_add_string(root, "id", id) && knob_json_add_string(root, "object", object) &&
             knob_json_add_number(root, "created", (double)r->created) &&
             knob_json_add_string(root, "model", o->model_id) &&
             knob_json_add_string(root, "system_fingerprint", "knob-" KNOB_VERSION);
    if (!ok) {
        knob_json_free(root);
        return NULL;
    }
    return root;
}

char *knob_serve_response_json(const knob_serve_opts *o, const knob_serve_req *r, const char *id)
{
    knob_json *root = envelope(o, r, id, r->chat ? "chat.completion" : "text_completion");
    if (!root)
        return NULL;
    knob_json *choices = knob_json_new_array(), *c = knob_json_new_object();
    int ok = knob_json_add(root, "choices", choices);
    ok = knob_json_push(choices, c) && ok;
    ok = ok && knob_json_add_number(c, "index", 0);
    if (r->chat) {
        knob_json *msg = knob_json_new_object();
        ok = knob_json_add(c, "message", msg) && ok;
        ok = ok && knob_json_add_string(msg, "role", "assistant") && add_clean(msg, "content", r->text, r->text_len);
    } else {
        sbuf t = {0};
        if (r->echo && r->prompt_text)
            sb_str(&t, r->prompt_text);
        sb_put(&t, r->text ? r->text : "", r->text_len);
        ok = ok && !t.oom && add_clean(c, "text", t.p ? t.p : "", t.n);
        knob_free(t.p);
    }
    knob_json *lp = !r->logprobs ? knob_json_new_null()
                  : r->chat ? chat_logprobs(o, r, 0, r->n_toks)
                  : text_logprobs(o, r, 0, r->n_toks, r->echo && r->prompt_text ? strlen(r->prompt_text) : 0);
    ok = knob_json_add(c, "logprobs", lp) && ok;
    ok = ok && knob_json_add_string(c, "finish_reason", r->finish ? r->finish : "length");
    ok = knob_json_add(root, "usage", usage_obj(r)) && ok;
    return print_free(root, ok);
}

/* one "data: {...}\n\n" with one choice holding text (and tokens [from, to)) and finish */
static int sse_chunk(sbuf *b, const knob_serve_opts *o, const knob_serve_req *r, const char *id, const char *text,
                     size_t n, int role, int from, int to, const char *finish, size_t base)
{
    knob_json *root = envelope(o, r, id, r->chat ? "chat.completion.chunk" : "text_completion");
    if (!root)
        return 0;
    knob_json *choices = knob_json_new_array(), *c = knob_json_new_object();
    int ok = knob_json_add(root, "choices", choices);
    ok = knob_json_push(choices, c) && ok;
    ok = ok && knob_json_add_number(c, "index", 0);
    if (r->chat) {
        knob_json *d = knob_json_new_object();
        ok = knob_json_add(c, "delta", d) && ok;
        if (role)
            ok = ok && knob_json_add_string(d, "role", "assistant");
        if (n || role)
            ok = ok && add_clean(d, "content", text, n);
    } else {
        ok = ok && add_clean(c, "text", text, n);
    }
    knob_json *lp = !r->logprobs || from >= to ? knob_json_new_null()
                  : r->chat ? chat_logprobs(o, r, from, to) : text_logprobs(o, r, from, to, base);
    ok = knob_json_add(c, "logprobs", lp) && ok;
    ok = knob_json_add(c, "finish_reason", finish ? knob_json_new_string(finish) : knob_json_new_null()) && ok;
    char *s = print_free(root, ok);
    if (!s)
        return 0;
    sb_str(b, "data: ");
    sb_str(b, s);
    sb_str(b, "\n\n");
    knob_free(s);
    return !b->oom;
}

char *knob_serve_chunks(const knob_serve_opts *o, const knob_serve_req *r, const char *id, size_t from_text,
                        int from_tok, int first)
{
    sbuf b = {0};
    sb_str(&b, "");
    int ok = !b.oom;
    size_t base = r->echo && r->prompt_text ? strlen(r->prompt_text) : 0;
    if (first && ok) {
        if (r->chat)
            ok = sse_chunk(&b, o, r, id, "", 0, 1, 0, 0, NULL, 0);
        else if (r->echo && r->prompt_text)
            ok = sse_chunk(&b, o, r, id, r->prompt_text, strlen(r->prompt_text), 0, 0, 0, NULL, 0);
    }
    size_t to_text = r->final_len;
    int to_tok = r->final_toks;
    if (ok && (to_text > from_text || to_tok > from_tok))
        ok = sse_chunk(&b, o, r, id, r->text + from_text, to_text - from_text, 0, from_tok, to_tok, NULL, base);
    if (ok && r->done) {
        ok = sse_chunk(&b, o, r, id, "", 0, 0, 0, 0, r->finish ? r->finish : "length", base);
        if (ok && r->include_usage) {
            knob_json *root = envelope(o, r, id, r->chat ? "chat.completion.chunk" : "text_completion");
            ok = knob_json_add(root, "choices", knob_json_new_array()) && knob_json_add(root, "usage", usage_obj(r));
            char *s = print_free(root, ok);
            ok = s != NULL;
            sb_str(&b, "data: ");
            sb_str(&b, s ? s : "");
            sb_str(&b, "\n\n");
            knob_free(s);
        }
        sb_str(&b, "data: [DONE]\n\n");
    }
    if (!ok || b.oom) {
        knob_free(b.p);
        return NULL;
    }
    return b.p;
}
