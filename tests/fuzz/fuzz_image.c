/* fuzz_image.c: a PNG or PGM (told apart by content) through knob_image_load, then turned into an
 * MNIST-style input as knob predict does. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("in.img", data, size);
    knob_image im;
    knob_err err = {0};
    knob_status s = knob_image_load(&im, path, &err);
    fuzz_check_err(s, &err);
    if (s)
        return 0;
    float out[28 * 28];
    knob_image_to_mnist(&im, out);
    knob_image_free(&im);
    return 0;
}
