/* fuzz_bpe_files.c: GPT-2's tokenizer files from the input (encoder.json before the separator
 * "\n--\n", vocab.bpe after it) through knob_tok_load_bpe, then a short text encoded and decoded:
 * what loads must round-trip. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *a, *b;
    size_t na, nb;
    fuzz_split(data, size, &a, &na, &b, &nb);
    const char *enc = fuzz_file("encoder.json", a, na);
    const char *voc = fuzz_file("vocab.bpe", b, nb);
    knob_tokenizer *t = NULL;
    knob_err err = {0};
    knob_status s = knob_tok_load_bpe(&t, enc, voc, &err);
    fuzz_check_err(s, &err);
    if (s)
        return 0;
    static const char text[] = "Hello world, it's 2026!\n";
    int32_t *ids = NULL;
    size_t n = 0;
    if (knob_tok_encode(t, text, sizeof text - 1, 0, &ids, &n, &err) == KNOB_OK) {
        char *back = NULL;
        size_t nb2 = 0;
        if (knob_tok_decode(t, ids, n, &back, &nb2, &err) == KNOB_OK) {
            if (nb2 != sizeof text - 1 || memcmp(back, text, nb2) != 0)
                abort();   /* a tokenizer that loaded must give the text back */
            knob_free(back);
        }
        knob_free(ids);
    }
    knob_tok_free(t);
    return 0;
}
