/* cmd_eval.c: `knob eval MODEL`: the test accuracy, mean loss and confusion matrix of a classifier
 * checkpoint. The model is rebuilt from the checkpoint's metadata; the data is the dataset it was
 * trained on unless --dataset names another with the same image size. --errors FILE also draws
 * the misclassified images. --json prints one object for scripts. */
#include "cli.h"

#include <string.h>

void cli_print_confusion(FILE *f, const knob_eval_result *r, const char names[][24], int n_classes)
{
    fprintf(f, "confusion matrix (rows: true class, columns: predicted)\n%14s", "");
    for (int j = 0; j < n_classes; j++)
        fprintf(f, " %5d", j);
    fprintf(f, "\n");
    for (int i = 0; i < n_classes; i++) {
        fprintf(f, "%2d %-11.11s", i, names[i]);
        for (int j = 0; j < n_classes; j++)
            fprintf(f, " %5d", r->confusion[i][j]);
        fprintf(f, "\n");
    }
}

knob_status cli_data_load(knob_splits *s, const char *dataset, const char *data_dir, int n_val, uint64_t seed,
                          knob_err *err)
{
    if (data_dir && !data_dir[0])
        return knob_fail(err, KNOB_ERR_USAGE, "--data: the folder name is empty");
    if (data_dir && strncmp(dataset, "idx:", 4) == 0)
        return knob_fail(err, KNOB_ERR_USAGE, "--data %.256s: does not apply to %.256s, which names its own folder",
                         data_dir, dataset);
    int known = strcmp(dataset, "digits") == 0 || strcmp(dataset, "fashion") == 0 ||
                (strncmp(dataset, "idx:", 4) == 0 && dataset[4]);
    knob_status st = knob_data_load(s, dataset, data_dir, n_val, seed, err);
    return st && !known ? knob_err_prefix(err, "--dataset") : st;
}

knob_status cmd_eval(int argc, char **argv, knob_err *err)
{
    const char *dataset = NULL, *data_dir = NULL, *split = "test", *errors = NULL;
    int json = 0, batch = 256;
    const arg_def args[] = {
        {"dataset", ARG_STRING, &dataset, "SPEC", 0, 0, NULL, "digits, fashion or idx:DIR (default: the model's own)"},
        {"data", ARG_STRING, &data_dir, "DIR", 0, 0, NULL, "folder of the dataset's files"},
        {"split", ARG_CHOICE, &split, "NAME", 0, 0, "test|val|train", "which part of the data"},
        {"batch-size", ARG_INT, &batch, "N", 1, 65536, NULL, "images per forward pass (does not change the result)"},
        {"errors", ARG_STRING, &errors, "FILE", 0, 0, NULL, "also write a PNG grid of misclassified images"},
        {"json", ARG_BOOL, &json, NULL, 0, 0, NULL, "print the results as one JSON object on stdout"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "eval", "knob eval MODEL [options]",
        "Evaluate a classifier checkpoint (from knob train) on its dataset's test images: accuracy,\n"
        "mean cross-entropy and the confusion matrix.",
        args, 1, 1,
    };
    char *pos[1];
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help)
        return s;
    const char *path = pos[0];
    knob_vision m;
    knob_checkpoint_info info;
    if ((errors && (s = cli_check_out_file(errors, "--errors", err))) ||
        (s = knob_vision_load(&m, &info, path, err)) != KNOB_OK)
        return s;
    knob_train_config tc;
    knob_err ignore;
    if (knob_train_config_parse(&tc, info.train, &ignore) != KNOB_OK)
        knob_train_config_default(&tc);   /* only n_val and seed matter here (the val split) */
    knob_splits data;
    memset(&data, 0, sizeof data);
    knob_vision_net n = {0};
    int32_t *pred = NULL;
    if (!dataset)
        dataset = info.dataset[0] ? info.dataset : "digits";
    if ((s = cli_data_load(&data, dataset, data_dir, tc.n_val, tc.seed, err)) != KNOB_OK)
        goto done;
    const knob_dataset *d = strcmp(split, "val") == 0 ? &data.val : strcmp(split, "train") == 0 ? &data.train : &data.test;
    if (d->n < 1) {
        s = knob_fail(err, KNOB_ERR_USAGE, "%s: the %s split is empty", data.name, split);
        goto done;
    }
    pred = knob_malloc((size_t)d->n * sizeof *pred);
    if (!pred) {
        s = knob_fail(err, KNOB_ERR_NOMEM, "eval: out of memory");
        goto done;
    }
    knob_eval_result r;
    if ((s = knob_vision_net_build(&n, &m, batch < d->n ? batch : d->n, 0, err)) != KNOB_OK)
        goto done;
    if ((s = knob_vision_evaluate(&n, d, &r, pred, err)) != KNOB_OK) {
        s = knob_err_prefix(err, "%s on %s", path, data.name);
        goto done;
    }
    int n_err = 0;
    if (errors && (s = knob_vision_errors_png(errors, d, pred, &n_err, err)) != KNOB_OK)
        goto done;
    char mdesc[512];
    knob_vision_config_str(&m.cfg, mdesc, sizeof mdesc);
    if (json) {
        printf("{\"model\":");
        cli_json_str(stdout, path);
        printf(",\"config\":");
        cli_json_str(stdout, mdesc);
        printf(",\"dataset\":");
        cli_json_str(stdout, data.name);
        printf(",\"split\":\"%s\",\"n\":%d,\"correct\":%d,\"accuracy\":%.6f,\"loss\":%.6f,\"classes\":[", split, r.n,
               r.correct, r.accuracy, r.loss);
        for (int k = 0; k < d->n_classes; k++) {
            printf(k ? "," : "");
            cli_json_str(stdout, d->class_names[k]);
        }
        printf("],\"confusion\":[");
        for (int i = 0; i < d->n_classes; i++) {
            printf("%s[", i ? "," : "");
            for (int j = 0; j < d->n_classes; j++)
                printf("%s%d", j ? "," : "", r.confusion[i][j]);
            printf("]");
        }
        printf("]}\n");
    } else {
        printf("%s: %s\n", path, mdesc);
        printf("%s %s split: accuracy %.2f%% (%d/%d), mean loss %.4f\n", data.name, split, 100 * r.accuracy, r.correct,
               r.n, r.loss);
        cli_print_confusion(stdout, &r, d->class_names, d->n_classes);
        if (errors)
            printf("wrote %s (%d misclassified images, captions true>predicted)\n", errors, n_err);
    }
done:
    knob_free(pred);
    knob_vision_net_free(&n);
    knob_splits_free(&data);
    knob_vision_free(&m);
    return s;
}
