/* fuzz_gpt_hf.c: knob_gpt_open on a Hugging Face folder made of the input: config.json before the
 * separator "\n--\n", model.safetensors after it. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *a, *b;
    size_t na, nb;
    fuzz_split(data, size, &a, &na, &b, &nb);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/hf", fuzz_dir());
    mkdir(dir, 0700);
    fuzz_file("hf/config.json", a, na);
    fuzz_file("hf/model.safetensors", b, nb);
    knob_params P;
    knob_gpt_config c;
    char *tok = NULL;
    knob_err err = {0};
    knob_status s = knob_gpt_open(dir, &P, &c, &tok, NULL, &err);
    fuzz_check_err(s, &err);
    if (!s) {
        knob_params_free(&P);
        knob_free(tok);
    }
    return 0;
}
