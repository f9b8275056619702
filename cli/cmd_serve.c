/* cmd_serve.c: `knob serve MODEL`: an OpenAI-compatible HTTP server over a GPT, with a chat page at
 * /. Binds to 127.0.0.1 unless --host says otherwise, prints its address on stdout, and stops on
 * SIGINT or SIGTERM (waiting requests get 503, running ones end with what they have).
 *
 * Not here: the server (src/serve/). */
#include "cli.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

/* the model's name in /v1/models: the file or folder name without its extension */
static void model_name(const char *path, char *out, size_t n)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/')
        start--;
    size_t end = len;
    for (size_t i = len; i > start + 1; i--)
        if (path[i - 1] == '.') {
            end = i - 1;
            break;
        }
    snprintf(out, n, "%.*s", (int)(end - start), path + start);
}

knob_status cmd_serve(int argc, char **argv, knob_err *err)
{
    const char *host = "127.0.0.1", *api_key = NULL, *alias = NULL;
    int port = 8080, parallel = 4, ctx = 0, queue = 64, max_body_kb = 1024, quiet = 0;
    const arg_def args[] = {
        {"host", ARG_STRING, &host, "ADDR", 0, 0, NULL, "address to listen on (0.0.0.0: every interface)"},
        {"port", ARG_INT, &port, "N", 0, 65535, NULL, "TCP port (0: any free one, printed)"},
        {"parallel", ARG_INT, &parallel, "N", 1, 64, NULL, "requests generated together, their steps batched"},
        {"queue", ARG_INT, &queue, "N", 1, 1 << 20, NULL, "requests that may wait for a free sequence (more: 503)"},
        {"ctx", ARG_INT, &ctx, "N", 0, 1 << 20, NULL, "tokens a request may use, prompt and reply (0: the model's block size)"},
        {"api-key", ARG_STRING, &api_key, "KEY", 0, 0, NULL, "require 'Authorization: Bearer KEY' (not on / and /health)"},
        {"alias", ARG_STRING, &alias, "NAME", 0, 0, NULL, "the model's name in /v1/models (default: the file name)"},
        {"max-body", ARG_INT, &max_body_kb, "KB", 1, 1 << 20, NULL, "longest request body in KiB (more: 413)"},
        {"quiet", ARG_BOOL, &quiet, NULL, 0, 0, NULL, "no line per request on stderr"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "serve", "knob serve MODEL [options]",
        "Serve a GPT over HTTP in OpenAI's format (POST /v1/completions, /v1/chat/completions, streamed\n"
        "with \"stream\": true; GET /v1/models), with /health, /metrics, /tokenize, /detokenize and a chat\n"
        "page at / that shows each token's top-5 candidates. Up to --parallel requests are decoded\n"
        "together in one batched pass a step. Stop with Ctrl-C.",
        args, 1, 1,
    };
    char *pos[1];
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help)
        return s;
    char name[256];
    model_name(pos[0], name, sizeof name);
    /* SIGINT and SIGTERM are taken by sigwait below, in this thread only: block them before any
     * thread starts (OpenMP's too), so they inherit the mask */
    sigset_t set;
    signal(SIGINT, SIG_DFL);    /* a shell starts background jobs with SIGINT ignored; sigwait */
    signal(SIGTERM, SIG_DFL);   /* never sees an ignored signal */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    knob_lm *lm = NULL;
    if ((s = knob_lm_open(&lm, pos[0], err))) {
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        return s;
    }
    knob_server *srv = NULL;
    knob_serve_config cfg = {.host = host, .port = port, .parallel = parallel, .queue = queue, .ctx = ctx,
                             .max_body = (size_t)max_body_kb << 10, .api_key = api_key,
                             .model_id = alias && alias[0] ? alias : name, .log = quiet ? NULL : stderr};
    if ((s = knob_server_start(&srv, lm, &cfg, err))) {
        knob_lm_free(lm);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        return s;
    }
    const char *h = knob_server_host(srv);
    int v6 = strchr(h, ':') != NULL;
    printf("knob serve: %s on http://%s%s%s:%d (model '%s', %d parallel; Ctrl-C stops)\n", pos[0], v6 ? "[" : "", h,
           v6 ? "]" : "", knob_server_port(srv), cfg.model_id, parallel);
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "knob serve: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    knob_server_stop(srv);
    knob_lm_free(lm);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    return KNOB_OK;
}
