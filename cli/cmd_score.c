/* cmd_score.c: `knob score MODEL FILE`: how well a GPT predicts a text: the mean next-token
 * cross-entropy (nats per token), the perplexity e^loss and bits per byte, with a sliding window
 * over texts longer than the context. --dtype bf16|int8 scores with the weights converted, to see
 * what the conversion costs (tests/cli/test_dtype.sh).
 *
 * Not here: the passes and the log-softmax (src/models/lm.c, src/kernels/nn.c). */
#include "cli.h"

#include <math.h>

knob_status cmd_score(int argc, char **argv, knob_err *err)
{
    int json = 0;
    const char *dtype = "f32";
    const arg_def args[] = {
        {"json", ARG_BOOL, &json, NULL, 0, 0, NULL, "print one JSON object"},
        {"dtype", ARG_CHOICE, &dtype, "DTYPE", 0, 0, "f32|bf16|int8",
         "weights in memory: f32, or converted once to bf16 or int8"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "score", "knob score MODEL FILE [--json] [--dtype f32|bf16|int8]",
        "How well a GPT predicts a text: the mean cross-entropy of each next token given the ones before\n"
        "(nats per token; lower is better) and the perplexity e^loss. Texts longer than the context are\n"
        "scored with a sliding window: when the context fills, its older half is dropped.",
        args, 2, 2,
    };
    char *pos[2];
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help)
        return s;
    knob_lm *lm = NULL;
    knob_lm_seq *q = NULL;
    unsigned char *text = NULL;
    size_t len = 0, n = 0;
    int32_t *ids = NULL;
    knob_lm_dtype dt;
    if ((s = knob_lm_dtype_parse(dtype, &dt, err)) || (s = knob_lm_open_as(&lm, pos[0], dt, err)) ||
        (s = knob_lm_seq_new(lm, &q, err)))
        goto done;
    if ((s = knob_read_file(pos[1], &text, &len, err)))
        goto done;
    if ((s = knob_lm_encode(lm, (const char *)text, len, 1, &ids, &n, err))) {
        knob_err_prefix(err, "%s", pos[1]);
        goto done;
    }
    if (n < 2) {
        s = knob_fail(err, KNOB_ERR_USAGE, "%s: %zu token%s; scoring needs at least 2", pos[1], n, n == 1 ? "" : "s");
        goto done;
    }
    int T = knob_lm_config(lm)->block_size;
    double t0 = knob_now(), nll = 0;
    if ((s = knob_lm_nll(q, ids, n, &nll, err)))
        goto done;
    double secs = knob_now() - t0, loss = nll / (double)(n - 1), bpb = nll / log(2.0) / (double)len;
    if (json) {
        printf("{\"file\":");
        cli_json_str(stdout, pos[1]);
        printf(",\"bytes\":%zu,\"tokens\":%zu,\"scored\":%zu,\"loss\":%.6f,\"perplexity\":%.6g,\"bits_per_byte\":%.6f,"
               "\"context\":%d,\"seconds\":%.3f,\"dtype\":\"%s\"}\n", len, n, n - 1, loss, exp(loss), bpb, T, secs,
               dtype);
    } else {
        printf("%s: %zu bytes, %zu tokens, %zu scored with a context of %d (%s weights).\n", pos[1], len, n, n - 1,
               T, dtype);
        printf("cross-entropy %.4f nats/token, perplexity %.3f, %.4f bits/byte (%.1f s)\n", loss, exp(loss), bpb, secs);
    }
done:
    knob_free(ids);
    knob_free(text);
    knob_lm_seq_free(q);
    knob_lm_free(lm);
    return s;
}
