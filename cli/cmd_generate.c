/* cmd_generate.c: `knob generate MODEL --prompt TEXT`: continue a text with a GPT (a knob
 * checkpoint, a Hugging Face GPT-2 folder, an llm.c .bin), streamed to stdout as tokens arrive:
 * the prompt is fed in one batched pass, then tokens are sampled (temperature, top-k, top-p) until
 * --max-tokens, <|endoftext|> or the --stop string. --json prints one object instead, with the
 * prompt's and the generation's speeds apart, the weights' dtype (--dtype) and the kernel.
 *
 * Not here: the model, streaming and stop strings (src/models/lm.c), sampling (sample.c). */
#include "cli.h"

#include <math.h>
#include <string.h>

/* "\n", "\t", "\\" in flag values */
static void unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1]) {
            r++;
            *w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : *r;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

static void emit_stdout(void *ud, const char *text, size_t n)
{
    (void)ud;
    fwrite(text, 1, n, stdout);
    fflush(stdout);
}

knob_status cmd_generate(int argc, char **argv, knob_err *err)
{
    const char *prompt = "", *stop = NULL, *dtype = "f32";
    int max_tokens = 200, top_k = 0, json = 0;
    float temperature = 0.8f, top_p = 1.0f;
    uint64_t seed = 42;
    const arg_def args[] = {
        {"prompt", ARG_STRING, &prompt, "TEXT", 0, 0, NULL, "text to continue (empty: start from scratch)"},
        {"max-tokens", ARG_INT, &max_tokens, "N", 1, 1000000, NULL, "tokens to generate at most"},
        {"temperature", ARG_FLOAT, &temperature, "T", 0, 100, NULL, "0: always the most likely token; higher: more random"},
        {"top-k", ARG_INT, &top_k, "K", 0, 1 << 20, NULL, "sample among the K most likely tokens (0: all)"},
        {"top-p", ARG_FLOAT, &top_p, "P", 0.001, 1, NULL, "sample among the fewest tokens holding probability P (1: all)"},
        {"stop", ARG_STRING, &stop, "TEXT", 0, 0, NULL, "stop before this text (\\n for a newline)"},
        {"seed", ARG_U64, &seed, "N", 0, 1.8446744073709552e19, NULL, "seed for sampling"},
        {"json", ARG_BOOL, &json, NULL, 0, 0, NULL, "print one JSON object instead of streaming"},
        {"dtype", ARG_CHOICE, &dtype, "DTYPE", 0, 0, "f32|bf16|int8",
         "weights in memory: f32, or converted once to bf16 or int8 (2x, 3.5x less to read a token)"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "generate", "knob generate MODEL [--prompt TEXT] [options]",
        "Continue --prompt with a GPT (a knob checkpoint, a Hugging Face GPT-2 folder or an llm.c .bin),\n"
        "one token at a time with a key/value cache, streamed to stdout. --temperature 0 is greedy.",
        args, 1, 1,
    };
    char *pos[1];
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help)
        return s;
    char *stop_s = stop ? knob_strdup(stop) : NULL;
    if (stop && !stop_s)
        return knob_fail(err, KNOB_ERR_NOMEM, "generate: out of memory");
    if (stop_s)
        unescape(stop_s);
    knob_lm *lm = NULL;
    knob_lm_seq *q = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    knob_lm_dtype dt;
    if ((s = knob_lm_dtype_parse(dtype, &dt, err)) || (s = knob_lm_open_as(&lm, pos[0], dt, err)) ||
        (s = knob_lm_seq_new(lm, &q, err)))
        goto done;
    if ((s = knob_lm_encode(lm, prompt, strlen(prompt), 1, &ids, &n, err)) != KNOB_OK) {
        knob_err_prefix(err, "--prompt");
        goto done;
    }
    int T = knob_lm_config(lm)->block_size;
    int32_t first;
    size_t n_feed = n;
    double t0 = knob_now();
    if (n == 0) {
        if (!(s = knob_lm_start_token(lm, &first, err)))
            s = knob_lm_feed(q, &first, 1, err);
        n_feed = 1;
    } else {
        if (n > (size_t)T && !json)
            fprintf(stderr, "knob: note: the text has %zu tokens; the model sees the last %d (its context)\n", n, T);
        s = knob_lm_feed_tail(q, ids, n, err);
        n_feed = n < (size_t)T ? n : (size_t)T;
    }
    double prompt_secs = knob_now() - t0;
    if (s)
        goto done;
    if (!json) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    knob_rng r;
    knob_rng_seed(&r, seed);
    knob_lm_gen g = {.max_tokens = max_tokens,
                     .sampler = {.temperature = temperature, .top_k = top_k, .top_p = top_p},
                     .rng = &r,
                     .stop = stop_s && stop_s[0] ? stop_s : NULL,
                     .emit = json ? NULL : emit_stdout};
    knob_lm_gen_result res;
    t0 = knob_now();
    s = knob_lm_generate(q, &g, &res, err);
    double secs = knob_now() - t0;
    if (s)
        goto done;
    if (json) {
        printf("{\"prompt\":");
        cli_json_str(stdout, prompt);
        printf(",\"text\":");
        cli_json_str(stdout, res.text);
        printf(",\"prompt_tokens\":%zu,\"tokens\":%d,\"finish\":\"%s\",\"dtype\":\"%s\",\"kernel\":\"%s\",\"threads\":%d,"
               "\"prompt_tokens_per_s\":%.1f,\"tokens_per_s\":%.1f}\n", n, res.n_tokens, res.finish, dtype,
               knob_lm_kernel(lm), knob_threads_get(), (double)n_feed / fmax(prompt_secs, 1e-9),
               res.n_tokens / fmax(secs, 1e-9));
    } else {
        printf("\n");
        if (cli_is_tty())
            fprintf(stderr, "(%zu prompt tokens at %.1f tokens/s; %d generated at %.1f tokens/s, %s; %s weights, "
                    "%s, %d threads)\n", n_feed, (double)n_feed / fmax(prompt_secs, 1e-9), res.n_tokens,
                    res.n_tokens / fmax(secs, 1e-9), res.finish, dtype, knob_lm_kernel(lm), knob_threads_get());
    }
done:
    knob_free(ids);
    knob_free(stop_s);
    knob_lm_seq_free(q);
    knob_lm_free(lm);
    return s;
}
