/* prefill.c: prompt speed of knob_lm on a GPT-2 124M-shaped model with random weights (12 layers,
 * 12 heads, C 768, T 1024, V 50257): a 400-token prompt fed token at a time (one pass per token,
 * as knob generate did before knob_lm) and in one batched pass (prefill), in tokens per second.
 *   bench_prefill [--threads N] [--tokens N]
 * Build: make build/bench_prefill */
#include "knob.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int main(int argc, char **argv)
{
    int threads = 2, n = 400;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tokens"))
            n = atoi(argv[i + 1]);
    }
    if (n < 1 || n > 1024)
        n = 400;
    knob_threads_set(threads);
    knob_err err;
    knob_params P;
    knob_gpt_config c = {.n_layer = 12, .n_head = 12, .n_embd = 768, .block_size = 1024, .vocab_size = 50257, .bias = 1};
    knob_lm *lm = NULL;
    knob_lm_seq *q = NULL;
    if (knob_gpt_params(&P, &c, &err) || knob_gpt_init(&P, &c, 1, &err) || knob_lm_new(&lm, &P, &c, NULL, &err) ||
        knob_lm_seq_new(lm, &q, &err)) {
        fprintf(stderr, "bench_prefill: %s\n", err.msg);
        return 1;
    }
    int32_t ids[1024];
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)((i * 7919) % 50257);
    printf("# bench_prefill: GPT-2 124M shape, random weights, %d-token prompt, %d threads\n", n, threads);
    double t0 = knob_now();
    for (int i = 0; i < n; i++)
        if (knob_lm_feed(q, ids + i, 1, &err)) {
            fprintf(stderr, "bench_prefill: %s\n", err.msg);
            return 1;
        }
    double s1 = knob_now() - t0;
    printf("token at a time  %8.1f tokens/s  (%.2f s)\n", n / s1, s1);
    knob_lm_seq_reset(q);
    t0 = knob_now();
    if (knob_lm_feed(q, ids, (size_t)n, &err)) {
        fprintf(stderr, "bench_prefill: %s\n", err.msg);
        return 1;
    }
    double s2 = knob_now() - t0;
    printf("one batched pass %8.1f tokens/s  (%.2f s)\n", n / s2, s2);
    knob_lm_seq_free(q);
    knob_lm_free(lm);
    knob_params_free(&P);
    return 0;
}
