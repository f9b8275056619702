/* fuzz_gpt2_encode.c: GPT-2's tokenizer (data/gpt2, loaded once) on arbitrary bytes: every byte
 * string must encode, every id must be in range, and decoding must give the bytes back exactly. */
#include "fuzz.h"

static knob_tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    knob_err err = {0};
    if (!tok && knob_tok_load_gpt2(&tok, &err) != KNOB_OK) {
        fprintf(stderr, "fuzz_gpt2_encode: %s (run scripts/setup.sh --deps)\n", err.msg);
        exit(1);
    }
    int allow_special = size > 0 && (data[0] & 1);
    int32_t *ids = NULL;
    size_t n = 0;
    knob_status s = knob_tok_encode(tok, (const char *)data, size, allow_special, &ids, &n, &err);
    if (s == KNOB_ERR_NOMEM)
        return 0;
    if (s)
        abort();   /* byte-level BPE covers every byte string */
    int V = knob_tok_vocab_size(tok);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            abort();
    char *back = NULL;
    size_t nb = 0;
    s = knob_tok_decode(tok, ids, n, &back, &nb, &err);
    if (s == KNOB_OK && !allow_special && (nb != size || memcmp(back, data, size) != 0))
        abort();   /* decode(encode(b)) == b */
    knob_free(back);
    knob_free(ids);
    return 0;
}
