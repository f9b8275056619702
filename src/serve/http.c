/* http.c: knob serve's HTTP side, on GNU libmicrohttpd (the only file that includes it): a thread
 * per connection, bodies up to max_body bytes (413 beyond, refused from Content-Length before
 * they are read), the routes, the API key, and the two ways a generation is answered: a whole
 * JSON response once the scheduler has finished, or server-sent events written as tokens become
 * final. A thread that waits on the scheduler looks at its socket every 50 ms, so a client that
 * goes away cancels its request at once and its sequence leaves the batch before the next step.
 *
 * Routes: GET / (the chat page), GET /health, GET /metrics (Prometheus text), GET /v1/models,
 * GET /v1/models/ID, POST /v1/completions, POST /v1/chat/completions, POST /tokenize,
 * POST /detokenize. With an API key, every route but / and /health wants "Authorization: Bearer
 * KEY" (compared in constant time).
 *
 * Not here: the JSON (openai.c), generation and batching (sched.c). */
#include "knob_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define N_STATUS 10
static const int status_codes[N_STATUS] = {200, 400, 401, 404, 405, 413, 429, 500, 503, 0};

struct knob_server {
    struct MHD_Daemon *d;
    knob_serve_sched *sched;
    knob_serve_opts opts;
    size_t max_body;
    char *api_key;
    char *model_id;
    char host[64];
    int port;
    FILE *log;
    pthread_mutex_t mu;          /* the counters below and the log */
    uint64_t next_id;
    uint64_t n_status[N_STATUS]; /* responses by status (the last: others) */
    uint64_t n_cancelled;
    double t_start;
};

typedef struct conn {
    knob_server *S;
    char *body;
    size_t n, cap;
    int responded;               /* a response was queued already (413) */
    MHD_socket fd;
    /* a generation */
    knob_serve_req *r;
    char id[48];
    size_t sent_text;
    int sent_tok, first, finished;
    char *out;
    size_t out_n, out_pos;
    double t0;
    int status;
    char what[48];               /* "POST /v1/completions", for the log */
} conn;

/* ------------------------------------------------------------------------------------------------
 * Responses */

static void count_status(knob_server *S, int status)
{
    pthread_mutex_lock(&S->mu);
    int i = 0;
    while (status_codes[i] && status_codes[i] != status)
        i++;
    S->n_status[i]++;
    pthread_mutex_unlock(&S->mu);
}

static enum MHD_Result send_buf(conn *k, struct MHD_Connection *c, int status, const char *type, const char *body,
                                size_t n)
{
    struct MHD_Response *rsp = MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!rsp)
        return MHD_NO;
    MHD_add_response_header(rsp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == 401)
        MHD_add_response_header(rsp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == 405)
        MHD_add_response_header(rsp, MHD_HTTP_HEADER_ALLOW, strncmp(k->what, "POST", 4) == 0 ? "GET" : "POST");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, rsp);
    MHD_destroy_response(rsp);
    k->responded = 1;
    k->status = status;
    count_status(k->S, status);
    return ok;
}

static enum MHD_Result send_json(conn *k, struct MHD_Connection *c, int status, char *json)
{
    if (!json)
        return send_buf(k, c, 500, "application/json", "{\"error\":{\"message\":\"server: out of memory\"}}", 46);
    enum MHD_Result ok = send_buf(k, c, status, "application/json", json, strlen(json));
    knob_free(json);
    return ok;
}

static enum MHD_Result send_error(conn *k, struct MHD_Connection *c, int status, const char *msg)
{
    return send_json(k, c, status, knob_serve_error_json(status, msg));
}

/* ------------------------------------------------------------------------------------------------
 * The client's socket: closed by the other side? (a peek that reads nothing: end of stream) */

static int client_gone(conn *k)
{
    if (k->fd == MHD_INVALID_SOCKET)
        return 0;
    char b;
    ssize_t n = recv(k->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return 1;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* ------------------------------------------------------------------------------------------------
 * Generation */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    conn *k = cls;
    knob_server *S = k->S;
    for (;;) {
        if (k->out_pos < k->out_n) {
            size_t n = KNOB_MIN(max, k->out_n - k->out_pos);
            memcpy(buf, k->out + k->out_pos, n);
            k->out_pos += n;
            return (ssize_t)n;
        }
        if (k->finished)
            return MHD_CONTENT_READER_END_OF_STREAM;
        knob_free(k->out);
        k->out = NULL;
        k->out_n = k->out_pos = 0;
        knob_serve_req *r = k->r;
        knob_serve_sched_lock(S->sched);
        while (!k->first && !r->done && r->final_len <= k->sent_text && r->final_toks <= k->sent_tok) {
            knob_serve_sched_wait(S->sched, 0.05);
            if (client_gone(k)) {
                knob_serve_sched_unlock(S->sched);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
        }
        char *chunk;
        if (r->err_status) {
            char *e = knob_serve_error_json(r->err_status, r->err_msg);
            size_t n = e ? strlen(e) : 0;
            chunk = knob_malloc(n + 32);
            if (chunk)
                snprintf(chunk, n + 32, "data: %s\n\ndata: [DONE]\n\n", e ? e : "{}");
            knob_free(e);
            k->finished = 1;
        } else {
            chunk = knob_serve_chunks(&S->opts, r, k->id, k->sent_text, k->sent_tok, k->first);
            k->sent_text = r->final_len;
            k->sent_tok = r->final_toks;
            k->finished = r->done;
        }
        k->first = 0;
        knob_serve_sched_unlock(S->sched);
        if (!chunk)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        k->out = chunk;
        k->out_n = strlen(chunk);
    }
}

static enum MHD_Result generate(conn *k, struct MHD_Connection *c, int chat)
{
    knob_server *S = k->S;
    knob_err err = {0};
    knob_serve_req *r;
    int st = knob_serve_parse(&S->opts, chat, k->body ? k->body : "", k->n, &r, &err);
    if (st != 200)
        return send_error(k, c, st, err.msg);
    pthread_mutex_lock(&S->mu);
    snprintf(k->id, sizeof k->id, "%s-%llu", chat ? "chatcmpl" : "cmpl", (unsigned long long)++S->next_id);
    pthread_mutex_unlock(&S->mu);
    if ((st = knob_serve_sched_submit(S->sched, r, &err)) != 200) {
        knob_serve_req_free(r);
        return send_error(k, c, st, err.msg);
    }
    k->r = r;
    if (r->stream) {
        k->first = 1;
        struct MHD_Response *rsp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, k, NULL);
        if (!rsp)
            return MHD_NO;
        MHD_add_response_header(rsp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(rsp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, rsp);
        MHD_destroy_response(rsp);
        k->responded = 1;
        k->status = 200;
        count_status(S, 200);
        return ok;
    }
    knob_serve_sched_lock(S->sched);
    while (!r->done) {
        knob_serve_sched_wait(S->sched, 0.05);
        if (!r->done && client_gone(k)) {
            knob_serve_sched_unlock(S->sched);
            return MHD_NO;   /* notify_completed releases (cancels) it */
        }
    }
    char *json = r->err_status ? knob_serve_error_json(r->err_status, r->err_msg)
                               : knob_serve_response_json(&S->opts, r, k->id);
    int status = r->err_status ? r->err_status : 200;
    knob_serve_sched_unlock(S->sched);
    return send_json(k, c, status, json);
}

/* ------------------------------------------------------------------------------------------------
 * Small routes */

static enum MHD_Result health(conn *k, struct MHD_Connection *c)
{
    knob_serve_stats st;
    knob_serve_sched_stats(k->S->sched, &st);
    char b[160];
    snprintf(b, sizeof b, "{\"status\":\"ok\",\"slots_idle\":%d,\"slots_processing\":%d,\"queue\":%d}",
             st.slots - st.active, st.active, st.queued);
    return send_buf(k, c, 200, "application/json", b, strlen(b));
}

static void metric(char *b, size_t size, size_t *n, const char *name, const char *type, const char *help, double v)
{
    if (*n < size)
        *n += (size_t)snprintf(b + *n, size - *n, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type,
                               name, v);
}

static enum MHD_Result metrics(conn *k, struct MHD_Connection *c)
{
    knob_server *S = k->S;
    knob_serve_stats st;
    knob_serve_sched_stats(S->sched, &st);
    char b[4096];
    size_t n = 0, size = sizeof b;
    metric(b, size, &n, "knob_requests_total", "counter", "Generation requests accepted.", (double)st.requests);
    metric(b, size, &n, "knob_requests_rejected_total", "counter", "Generation requests refused: queue full.",
           (double)st.rejected);
    metric(b, size, &n, "knob_prompt_tokens_total", "counter", "Prompt tokens fed.", (double)st.prompt_tokens);
    metric(b, size, &n, "knob_completion_tokens_total", "counter", "Tokens generated.", (double)st.completion_tokens);
    metric(b, size, &n, "knob_busy_seconds_total", "counter", "Seconds spent prefilling, sampling and decoding.",
           st.busy_seconds);
    metric(b, size, &n, "knob_tokens_per_second", "gauge", "Generated tokens per busy second.",
           st.busy_seconds > 0 ? (double)st.completion_tokens / st.busy_seconds : 0);
    metric(b, size, &n, "knob_decode_steps_total", "counter", "Batched decode passes.", (double)st.decode_steps);
    metric(b, size, &n, "knob_decode_rows_total", "counter", "Sequences decoded, summed over passes.",
           (double)st.decode_rows);
    metric(b, size, &n, "knob_queue_depth", "gauge", "Requests waiting for a sequence.", (double)st.queued);
    metric(b, size, &n, "knob_slots_busy", "gauge", "Sequences generating now.", (double)st.active);
    metric(b, size, &n, "knob_slots_total", "gauge", "Sequences (--parallel).", (double)st.slots);
    pthread_mutex_lock(&S->mu);
    metric(b, size, &n, "knob_cancelled_total", "counter", "Requests whose client went away.", (double)S->n_cancelled);
    if (n < size)
        n += (size_t)snprintf(b + n, size - n, "# HELP knob_http_responses_total HTTP responses by status.\n"
                              "# TYPE knob_http_responses_total counter\n");
    for (int i = 0; i < N_STATUS && n < size; i++)
        if (status_codes[i])
            n += (size_t)snprintf(b + n, size - n, "knob_http_responses_total{status=\"%d\"} %llu\n", status_codes[i],
                                  (unsigned long long)S->n_status[i]);
    pthread_mutex_unlock(&S->mu);
    metric(b, size, &n, "knob_uptime_seconds", "gauge", "Seconds since the server started.", knob_now() - S->t_start);
    if (n >= size)
        n = size - 1;
    return send_buf(k, c, 200, "text/plain; version=0.0.4", b, n);
}

/* a == b without an early exit (the time does not tell how much of a key matched) */
static int same_secret(const char *given, const char *want)
{
    size_t ng = strlen(given), nw = strlen(want);
    unsigned d = ng != nw;
    for (size_t i = 0; i < nw; i++)
        d |= (unsigned)((unsigned char)(i < ng ? given[i] : 0) ^ (unsigned char)want[i]);
    return d == 0;
}

static enum MHD_Result route(conn *k, struct MHD_Connection *c, const char *url, const char *method)
{
    knob_server *S = k->S;
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0, post = strcmp(method, "POST") == 0;
    int is_page = strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0;
    if (S->api_key && !is_page && strcmp(url, "/health") != 0) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!h || strncmp(h, "Bearer ", 7) != 0 || !same_secret(h + 7, S->api_key))
            return send_error(k, c, 401, h ? "invalid API key" : "an API key is needed: send 'Authorization: Bearer "
                              "KEY'");
    }
    static const char *const posts[] = {"/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize",
                                        "/completions", "/chat/completions", NULL};
    static const char *const gets[] = {"/", "/index.html", "/health", "/metrics", "/v1/models", NULL};
    for (int i = 0; posts[i]; i++)
        if (strcmp(url, posts[i]) == 0) {
            if (!post)
                return send_error(k, c, 405, "use POST here");
            knob_err err = {0};
            char *json = NULL;
            int st;
            switch (i) {
            case 0: case 4: return generate(k, c, 0);
            case 1: case 5: return generate(k, c, 1);
            case 2: st = knob_serve_tokenize(&S->opts, k->body ? k->body : "", k->n, &json, &err); break;
            default: st = knob_serve_detokenize(&S->opts, k->body ? k->body : "", k->n, &json, &err); break;
            }
            return st == 200 ? send_json(k, c, 200, json) : send_error(k, c, st, err.msg);
        }
    int known_get = strncmp(url, "/v1/models/", 11) == 0;
    for (int i = 0; gets[i]; i++)
        known_get |= strcmp(url, gets[i]) == 0;
    if (known_get && !get)
        return send_error(k, c, 405, "use GET here");
    if (is_page)
        return send_buf(k, c, 200, "text/html; charset=utf-8", (const char *)knob_serve_page, knob_serve_page_len);
    if (strcmp(url, "/health") == 0)
        return health(k, c);
    if (strcmp(url, "/metrics") == 0)
        return metrics(k, c);
    if (strcmp(url, "/v1/models") == 0)
        return send_json(k, c, 200, knob_serve_models_json(&S->opts));
    if (known_get) {   /* /v1/models/ID */
        if (strcmp(url + 11, S->model_id) != 0) {
            char m[320];
            snprintf(m, sizeof m, "model '%.128s' not found; this server has '%.128s'", url + 11, S->model_id);
            return send_error(k, c, 404, m);
        }
        return send_json(k, c, 200, knob_serve_model_json(&S->opts));
    }
    char m[256];
    snprintf(m, sizeof m, "no route %.16s %.128s; see GET /v1/models, POST /v1/chat/completions", method, url);
    for (char *p = m; *p; p++)   /* a URL's control characters stay out of the message */
        if ((unsigned char)*p < 0x20)
            *p = '?';
    return send_error(k, c, 404, m);
}

/* ------------------------------------------------------------------------------------------------
 * libmicrohttpd's callbacks */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    knob_server *S = cls;
    conn *k = *con_cls;
    if (!k) {
        if (!(k = knob_calloc(1, sizeof *k)))
            return MHD_NO;
        *con_cls = k;
        k->S = S;
        k->t0 = knob_now();
        snprintf(k->what, sizeof k->what, "%.8s %.38s", method, url);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        k->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            if (errno || end == cl || v > S->max_body) {
                char m[128];
                snprintf(m, sizeof m, "request body: more than %zu bytes", S->max_body);
                return send_error(k, c, 413, m);
            }
        }
        return MHD_YES;
    }
    if (k->responded) {   /* the 413 went out: whatever the client still sends is dropped */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (k->n + *upload_size > S->max_body) {
            *upload_size = 0;
            char m[128];
            snprintf(m, sizeof m, "request body: more than %zu bytes", S->max_body);
            return send_error(k, c, 413, m);
        }
        if (k->n + *upload_size + 1 > k->cap) {
            size_t cap = k->cap ? 2 * k->cap : 4096;
            while (cap < k->n + *upload_size + 1)
                cap *= 2;
            char *b = knob_realloc(k->body, cap);
            if (!b)
                return MHD_NO;
            k->body = b;
            k->cap = cap;
        }
        memcpy(k->body + k->n, upload, *upload_size);
        k->n += *upload_size;
        k->body[k->n] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    return route(k, c, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)c;
    knob_server *S = cls;
    conn *k = *con_cls;
    if (!k)
        return;
    *con_cls = NULL;
    if (k->r) {
        knob_serve_sched_lock(S->sched);
        int cancelled = !k->r->done;
        knob_serve_sched_unlock(S->sched);
        if (cancelled) {
            pthread_mutex_lock(&S->mu);
            S->n_cancelled++;
            pthread_mutex_unlock(&S->mu);
        }
        knob_serve_sched_release(S->sched, k->r);
    }
    if (S->log) {
        pthread_mutex_lock(&S->mu);
        fprintf(S->log, "%s %d %.3f s%s\n", k->what, k->status ? k->status : 0, knob_now() - k->t0,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
        fflush(S->log);
        pthread_mutex_unlock(&S->mu);
    }
    knob_free(k->body);
    knob_free(k->out);
    knob_free(k);
}

/* ------------------------------------------------------------------------------------------------
 * Start and stop */

knob_status knob_server_start(knob_server **out, knob_lm *lm, const knob_serve_config *cfg, knob_err *err)
{
    *out = NULL;
    const char *host = cfg->host && cfg->host[0] ? cfg->host : "127.0.0.1";
    int T = knob_lm_config(lm)->block_size;
    int ctx = cfg->ctx ? cfg->ctx : T;
    if (ctx < 2 || ctx > T)
        return knob_fail(err, KNOB_ERR_USAGE, "serve: --ctx %d is outside [2, %d] (the model's block size)", ctx, T);
    if (cfg->port < 0 || cfg->port > 65535)
        return knob_fail(err, KNOB_ERR_USAGE, "serve: --port %d is outside [0, 65535]", cfg->port);
    if (strlen(host) >= 64)
        return knob_fail(err, KNOB_ERR_USAGE, "serve: --host '%.64s...' is too long", host);
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    int v6 = strchr(host, ':') != NULL;
    if (v6) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)cfg->port);
        if (inet_pton(AF_INET6, host, &a6.sin6_addr) != 1)
            return knob_fail(err, KNOB_ERR_USAGE, "serve: --host '%s' is not an IPv6 address", host);
    } else {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)cfg->port);
        if (inet_pton(AF_INET, host, &a4.sin_addr) != 1)
            return knob_fail(err, KNOB_ERR_USAGE, "serve: --host '%s' is not an IPv4 address (such as 127.0.0.1 "
                             "or 0.0.0.0)", host);
    }
    knob_server *S = knob_calloc(1, sizeof *S);
    if (!S)
        return knob_fail(err, KNOB_ERR_NOMEM, "serve: out of memory");
    pthread_mutex_init(&S->mu, NULL);
    S->t_start = knob_now();
    S->max_body = cfg->max_body ? cfg->max_body : (size_t)1 << 20;
    S->api_key = cfg->api_key && cfg->api_key[0] ? knob_strdup(cfg->api_key) : NULL;
    S->model_id = knob_strdup(cfg->model_id && cfg->model_id[0] ? cfg->model_id : "knob");
    S->log = cfg->log;
    snprintf(S->host, sizeof S->host, "%s", host);
    S->opts = (knob_serve_opts){.lm = lm, .model_id = S->model_id, .ctx = ctx};
    knob_status s = KNOB_OK;
    if (!S->model_id || (cfg->api_key && cfg->api_key[0] && !S->api_key))
        s = knob_fail(err, KNOB_ERR_NOMEM, "serve: out of memory");
    if (!s)
        s = knob_serve_sched_new(&S->sched, lm, cfg->parallel ? cfg->parallel : 4, cfg->queue ? cfg->queue : 64, err);
    if (!s) {
        unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC;
        if (v6)
            flags |= MHD_USE_IPv6;
        errno = 0;
        S->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, S,
                                MHD_OPTION_SOCK_ADDR, v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4,
                                MHD_OPTION_NOTIFY_COMPLETED, on_completed, S,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                MHD_OPTION_END);
        if (!S->d)
            s = knob_fail(err, KNOB_ERR_IO, "serve: cannot listen on %s port %d%s%s", host, cfg->port,
                          errno ? ": " : "", errno ? strerror(errno) : "");
    }
    if (s) {
        knob_server_stop(S);
        return s;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(S->d, MHD_DAEMON_INFO_BIND_PORT);
    S->port = di ? di->port : cfg->port;
    *out = S;
    return KNOB_OK;
}

int knob_server_port(const knob_server *s) { return s->port; }
const char *knob_server_host(const knob_server *s) { return s->host; }

void knob_server_stop(knob_server *S)
{
    if (!S)
        return;
    MHD_socket lfd = MHD_INVALID_SOCKET;
    if (S->d)
        lfd = MHD_quiesce_daemon(S->d);   /* no new connections */
    knob_serve_sched_stop(S->sched);     /* the waiting get 503, the running end now */
    if (S->d) {
        /* let the connection threads write what they have (at most 3 s) */
        for (int i = 0; i < 300; i++) {
            const union MHD_DaemonInfo *di = MHD_get_daemon_info(S->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
            if (!di || di->num_connections == 0)
                break;
            struct timespec ts = {0, 10000000L};
            nanosleep(&ts, NULL);
        }
        MHD_stop_daemon(S->d);
    }
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
    knob_serve_sched_free(S->sched);
    pthread_mutex_destroy(&S->mu);
    knob_free(S->api_key);
    knob_free(S->model_id);
    knob_free(S);
}
