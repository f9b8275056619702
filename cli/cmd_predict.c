/* cmd_predict.c: `knob predict MODEL IMAGE...`: classify PNG or PGM images of any size with a
 * classifier checkpoint and print the top classes with their probabilities. Each image is turned
 * into the model's input first: --prep digits centres the ink MNIST-style (crop, fit 20x20, centre
 * of mass at the middle: for handwriting); --prep plain shrinks the whole frame (for pictures of
 * objects, as Fashion-MNIST's); auto picks digits for a model trained on the digits, else plain.
 * Both invert dark-on-light images so the object is bright on dark, as in training. */
#include "cli.h"

#include <string.h>

knob_status cmd_predict(int argc, char **argv, knob_err *err)
{
    const char *prep = "auto";
    int top = 3, json = 0;
    const arg_def args[] = {
        {"top", ARG_INT, &top, "K", 1, 16, NULL, "classes to show, most likely first"},
        {"prep", ARG_CHOICE, &prep, "HOW", 0, 0, "auto|digits|plain", "how an image becomes the model's input"},
        {"json", ARG_BOOL, &json, NULL, 0, 0, NULL, "print one JSON object per image on stdout"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "predict", "knob predict MODEL IMAGE... [options]",
        "Classify PNG or PGM images (any size; colour is turned to grey) with a classifier checkpoint\n"
        "from knob train, printing the most likely classes and their probabilities.",
        args, 2, -1,
    };
    char **pos = knob_malloc((size_t)(argc + 1) * sizeof *pos);
    if (!pos)
        return knob_fail(err, KNOB_ERR_NOMEM, "predict: out of memory");
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help) {
        knob_free(pos);
        return s;
    }
    knob_vision m;
    knob_checkpoint_info info;
    knob_vision_net n = {0};
    float *x = NULL, probs[16];
    if ((s = knob_vision_load(&m, &info, pos[0], err)) != KNOB_OK) {
        knob_free(pos);
        return s;
    }
    const knob_vision_config *c = &m.cfg;
    int digits = strcmp(prep, "digits") == 0 || (strcmp(prep, "auto") == 0 && strcmp(info.dataset, "digits") == 0);
    if (c->c != 1 || (digits && (c->h != 28 || c->w != 28))) {
        s = knob_fail(err, KNOB_ERR_USAGE, "%s: model takes %dx%dx%d images; predict handles one channel%s", pos[0], c->c,
                      c->h, c->w, digits ? " of 28x28 with --prep digits" : "");
        goto done;
    }
    x = knob_malloc((size_t)c->h * c->w * sizeof *x);
    if (!x) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "predict: out of memory");
        goto done;
    }
    if ((s = knob_vision_net_build(&n, &m, 1, 0, err)) != KNOB_OK)
        goto done;
    for (int i = 1; i < n_pos; i++) {
        knob_image im;
        if ((s = knob_image_load(&im, pos[i], err)) != KNOB_OK)
            goto done;
        if (digits)
            knob_image_to_mnist(&im, x);
        else
            knob_image_fit(&im, x, c->h, c->w);
        int w = im.w, h = im.h;
        knob_image_free(&im);
        if ((s = knob_vision_classify(&n, x, probs, err)) != KNOB_OK)
            goto done;
        int order[16], K = c->n_classes;
        for (int k = 0; k < K; k++)
            order[k] = k;
        for (int a = 1; a < K; a++)   /* insertion sort, most likely first; ties by class index */
            for (int b = a; b > 0 && probs[order[b]] > probs[order[b - 1]]; b--) {
                int t = order[b];
                order[b] = order[b - 1];
                order[b - 1] = t;
            }
        int shown = top < K ? top : K;
        if (json) {
            printf("{\"image\":");
            cli_json_str(stdout, pos[i]);
            printf(",\"width\":%d,\"height\":%d,\"top\":[", w, h);
            for (int k = 0; k < shown; k++) {
                printf("%s{\"class\":%d,\"name\":", k ? "," : "", order[k]);
                cli_json_str(stdout, info.classes[order[k]]);
                printf(",\"p\":%.6f}", (double)probs[order[k]]);
            }
            printf("]}\n");
        } else {
            printf("%s (%dx%d): %s\n", pos[i], w, h, info.classes[order[0]]);
            for (int k = 0; k < shown; k++)
                printf("  %2d %-12s %6.2f%%\n", order[k], info.classes[order[k]], 100 * (double)probs[order[k]]);
        }
    }
done:
    knob_free(x);
    knob_free(pos);
    knob_vision_net_free(&n);
    knob_vision_free(&m);
    return s;
}
