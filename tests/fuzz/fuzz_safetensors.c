/* fuzz_safetensors.c: knob_st_open on arbitrary bytes, then every tensor it accepts read back as
 * float32 (the conversions F16/BF16/F32 included) and the metadata looked up. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("in.safetensors", data, size);
    knob_st st;
    knob_err err = {0};
    knob_status s = knob_st_open(&st, path, &err);
    fuzz_check_err(s, &err);
    if (s)
        return 0;
    for (int i = 0; i < st.n; i++) {
        const knob_st_entry *e = &st.e[i];
        if (e->dtype != KNOB_ST_F32 && e->dtype != KNOB_ST_F16 && e->dtype != KNOB_ST_BF16)
            continue;
        size_t n = 1;
        for (int d = 0; d < e->n_dims && n <= (1u << 20); d++)
            n *= (size_t)e->shape[d];
        if (n > (1u << 20))
            continue;
        float *buf = malloc((n ? n : 1) * sizeof *buf);
        if (!buf)
            abort();
        fuzz_check_err(knob_st_read_f32(&st, e, buf, n, &err), &err);
        free(buf);
        (void)knob_st_find(&st, e->name);
    }
    (void)knob_st_meta(&st, "format");
    knob_st_close(&st);
    return 0;
}
