/* fuzz_gpt_file.c: knob_gpt_open on one arbitrary file, which it tells apart by content: a knob
 * GPT checkpoint (safetensors), an llm.c gpt2_*.bin, or neither. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("model.bin", data, size);
    knob_params P;
    knob_gpt_config c;
    char *tok = NULL;
    knob_err err = {0};
    knob_status s = knob_gpt_open(path, &P, &c, &tok, NULL, &err);
    fuzz_check_err(s, &err);
    if (!s) {
        knob_params_free(&P);
        knob_free(tok);
    }
    return 0;
}
