/* fuzz_tokens.c: the corpus token cache (KNOBTOK1) through knob_tokens_read; the key and vocabulary
 * asked for come from the input's first bytes too, so both the match and mismatch paths run. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t key = 0;
    uint32_t vocab = 256;
    if (size >= 32) {   /* ask for what the file claims, so the reading path runs too */
        memcpy(&key, data + 8, 8);
        memcpy(&vocab, data + 24, 4);
        vocab = vocab % 70000;
    }
    const char *path = fuzz_file("tokens.bin", data, size);
    uint16_t *ids = NULL;
    size_t n = 0;
    int match = 0;
    knob_err err = {0};
    knob_status s = knob_tokens_read(path, key, (int)vocab, &ids, &n, &match, &err);
    fuzz_check_err(s, &err);
    knob_free(ids);
    return 0;
}
