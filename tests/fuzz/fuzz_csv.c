/* fuzz_csv.c: an x,y CSV through knob_fit_read_csv (what knob fit --csv reads). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("in.csv", data, size);
    knob_fit_config c;
    knob_fit_config_default(&c);
    knob_fit_data d;
    knob_err err = {0};
    knob_status s = knob_fit_read_csv(&d, path, &c, &err);
    fuzz_check_err(s, &err);
    if (!s)
        knob_fit_data_free(&d);
    return 0;
}
