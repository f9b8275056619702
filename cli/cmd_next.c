/* cmd_next.c: `knob next MODEL TEXT`: the model's view of what comes after TEXT: the K most likely
 * next tokens with their probability at temperature 0.5, 1 and 2 (low T sharpens, high T flattens).
 *
 * Not here: the model (src/models/lm.c), sampling (sample.c), the piece escaper (src/text/piece.c). */
#include "cli.h"

#include <string.h>

knob_status cmd_next(int argc, char **argv, knob_err *err)
{
    int k = 10, json = 0;
    const arg_def args[] = {
        {"top", ARG_INT, &k, "K", 1, 1000, NULL, "how many tokens to list"},
        {"json", ARG_BOOL, &json, NULL, 0, 0, NULL, "print one JSON object"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "next", "knob next MODEL TEXT [--top K] [--json]",
        "The model's view of what comes after TEXT: the K most likely next tokens with their probability,\n"
        "and what sampling at temperature 0.5 and 2 would make of them (low T sharpens, high T flattens).",
        args, 2, 2,
    };
    char *pos[2];
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help)
        return s;
    knob_lm *lm = NULL;
    knob_lm_seq *q = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    float *p5 = NULL, *p2 = NULL, *p1 = NULL;
    int *idx = NULL;
    if ((s = knob_lm_open(&lm, pos[0], err)) || (s = knob_lm_seq_new(lm, &q, err)))
        goto done;
    int V = knob_lm_config(lm)->vocab_size, T = knob_lm_config(lm)->block_size;
    const knob_tokenizer *tok = knob_lm_tokenizer(lm);
    p5 = knob_malloc((size_t)V * sizeof *p5);
    p2 = knob_malloc((size_t)V * sizeof *p2);
    p1 = knob_malloc((size_t)V * sizeof *p1);
    idx = knob_malloc(2 * (size_t)V * sizeof *idx);   /* the top ids, then scratch */
    if (!p5 || !p2 || !p1 || !idx) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "next: out of memory");
        goto done;
    }
    if ((s = knob_lm_encode(lm, pos[1], strlen(pos[1]), 1, &ids, &n, err))) {
        knob_err_prefix(err, "TEXT");
        goto done;
    }
    if (n == 0) {
        int32_t first;
        if ((s = knob_lm_start_token(lm, &first, err)) || (s = knob_lm_feed(q, &first, 1, err)))
            goto done;
    } else {
        if (n > (size_t)T && !json)
            fprintf(stderr, "knob: note: the text has %zu tokens; the model sees the last %d (its context)\n", n, T);
        if ((s = knob_lm_feed_tail(q, ids, n, err)))
            goto done;
    }
    const float *logits = knob_lm_logits(q);
    knob_softmax_temp(logits, V, 0.5f, p5);
    knob_softmax_temp(logits, V, 2.0f, p2);
    knob_softmax_temp(logits, V, 1.0f, p1);
    int kept = knob_top_tokens(logits, V, k, idx, idx + V);
    if (json) {
        printf("{\"text\":");
        cli_json_str(stdout, pos[1]);
        printf(",\"tokens\":%zu,\"next\":[", n);
    } else {
        printf("After %zu token%s, the next token is (probabilities at temperature 0.5, 1 and 2):\n\n", n,
               n == 1 ? "" : "s");
        printf("rank  %-20s %8s  %8s  %8s  %8s\n", "token", "id", "T=0.5", "T=1", "T=2");
    }
    double shown = 0;
    for (int r = 0; r < kept; r++) {
        int id = idx[r];
        size_t pl = 0;
        const char *pc = knob_tok_piece(tok, id, &pl);
        char piece[160];
        knob_piece_escape(piece, sizeof piece, pc ? pc : "", pc ? pl : 0, KNOB_PIECE_QUOTED);
        shown += p1[id];
        if (json) {
            char raw[128];
            snprintf(raw, sizeof raw, "%.*s", (int)(pl < 100 ? pl : 100), pc ? pc : "");
            printf("%s{\"id\":%d,\"piece\":", r ? "," : "", id);
            cli_json_str(stdout, raw);
            printf(",\"p_t0.5\":%.6g,\"p_t1\":%.6g,\"p_t2\":%.6g}", (double)p5[id], (double)p1[id], (double)p2[id]);
        } else {
            printf("%4d  %-20s %8d  %8.4f  %8.4f  %8.4f\n", r + 1, piece, id, (double)p5[id], (double)p1[id],
                   (double)p2[id]);
        }
    }
    if (json)
        printf("]}\n");
    else
        printf("\nThese %d tokens hold %.1f%% of the probability at T=1 (the vocabulary has %d).\n", kept, 100 * shown, V);
done:
    knob_free(p5);
    knob_free(p2);
    knob_free(p1);
    knob_free(idx);
    knob_free(ids);
    knob_lm_seq_free(q);
    knob_lm_free(lm);
    return s;
}
