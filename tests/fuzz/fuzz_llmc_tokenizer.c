/* fuzz_llmc_tokenizer.c: an llm.c gpt2_tokenizer.bin read as a decode-only tokenizer, then every
 * id decoded. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("tok.bin", data, size);
    knob_tokenizer *t = NULL;
    knob_err err = {0};
    knob_status s = knob_tok_read_llmc_pieces(&t, path, &err);
    fuzz_check_err(s, &err);
    if (s)
        return 0;
    int V = knob_tok_vocab_size(t);
    for (int32_t id = 0; id < V && id < 70000; id++) {
        char *text = NULL;
        size_t n = 0;
        if (knob_tok_decode(t, &id, 1, &text, &n, &err) == KNOB_OK)
            knob_free(text);
    }
    knob_tok_free(t);
    return 0;
}
