/* fuzz_idx.c: an IDX file (plain or gzip: zlib reads both) through knob_idx_read. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("in.idx", data, size);
    int n_dims = 0, dims[4];
    uint8_t *px = NULL;
    knob_err err = {0};
    knob_status s = knob_idx_read(path, &n_dims, dims, &px, &err);
    fuzz_check_err(s, &err);
    knob_free(px);
    return 0;
}
