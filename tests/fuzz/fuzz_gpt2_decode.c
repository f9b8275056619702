/* fuzz_gpt2_decode.c: GPT-2's tokenizer decoding arbitrary ids (the input read as little-endian
 * int32s, in range or not): an out-of-range id is an error, never a read out of bounds. */
#include "fuzz.h"

static knob_tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    knob_err err = {0};
    if (!tok && knob_tok_load_gpt2(&tok, &err) != KNOB_OK) {
        fprintf(stderr, "fuzz_gpt2_decode: %s (run scripts/setup.sh --deps)\n", err.msg);
        exit(1);
    }
    size_t n = size / 4;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids)
        return 0;
    memcpy(ids, data, n * 4);
    char *text = NULL;
    size_t len = 0;
    knob_status s = knob_tok_decode(tok, ids, n, &text, &len, &err);
    fuzz_check_err(s, &err);
    knob_free(text);
    free(ids);
    return 0;
}
