/* generalize.c: generalization on the real digits (the tour's chapter 9). The same MLP is trained
 * on the first 100, 1,000, ... images of the training split, each size for about the same number
 * of optimizer steps (a small set is seen for many more epochs), and validated on the same
 * validation images after every epoch: with few examples the net learns them by heart (train
 * accuracy near 100%) while validation accuracy stays low, and the validation loss climbs as it
 * overfits. Training is knob_vision_train's (src/models/vision_train.c), unchanged.
 *
 * Not here: the pictures and the words (cli/tour_lab.c). */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

knob_status knob_size_sweep(const knob_splits *s, const knob_vision_config *mc, const knob_train_config *tc,
                            const int *sizes, int n, long images_seen, knob_size_run *out, knob_err *err)
{
    knob_train_state *st = knob_malloc(sizeof *st);
    if (!st)
        return knob_fail(err, KNOB_ERR_NOMEM, "size sweep: out of memory");
    knob_status rc = KNOB_OK;
    for (int k = 0; k < n && !rc; k++) {
        knob_size_run *o = &out[k];
        memset(o, 0, sizeof *o);
        if (sizes[k] < 1 || sizes[k] > s->train.n) {
            rc = knob_fail(err, KNOB_ERR_USAGE, "size sweep: %d training images asked; the split has %d", sizes[k],
                           s->train.n);
            break;
        }
        /* a view of the first sizes[k] training images (the split's order is already shuffled) */
        knob_splits sub = *s;
        sub.train.n = sizes[k];
        knob_train_config c = *tc;
        c.batch = KNOB_MIN(tc->batch, sizes[k]);
        long per_epoch = sizes[k] / c.batch * c.batch;
        long epochs = (images_seen + per_epoch / 2) / per_epoch;
        c.epochs = (int)KNOB_MAX(1, KNOB_MIN(epochs, 900));
        c.last_path = c.best_path = NULL;
        c.patience = 0;
        c.stop_after = 0;
        o->n_train = sizes[k];
        o->epochs = c.epochs;
        double t0 = knob_now();
        knob_vision m;
        memset(&m, 0, sizeof m);
        rc = knob_vision_init(&m, mc, tc->seed, err);
        if (!rc) {
            knob_train_state_init(st, tc->seed);
            rc = knob_vision_train(&m, &sub, &c, st, NULL, NULL, NULL, err);
        }
        knob_vision_net en;
        memset(&en, 0, sizeof en);
        if (!rc)
            rc = knob_vision_net_build(&en, &m, 250, 0, err);
        knob_eval_result tr, va;
        if (!rc)
            rc = knob_vision_evaluate(&en, &sub.train, &tr, NULL, err);
        if (!rc)
            rc = knob_vision_evaluate(&en, &sub.val, &va, NULL, err);
        if (!rc) {
            o->train_acc = tr.accuracy;
            o->train_loss = tr.loss;
            o->val_acc = va.accuracy;
            o->val_loss = va.loss;
            int first = st->n_hist > 256 ? st->n_hist - 256 : 0;
            o->n_hist = st->n_hist - first;
            for (int i = 0; i < o->n_hist; i++) {
                o->hist_train_loss[i] = st->hist[first + i].train_loss;
                o->hist_val_loss[i] = st->hist[first + i].val_loss;
                o->hist_val_acc[i] = st->hist[first + i].val_acc;
            }
        }
        o->seconds = knob_now() - t0;
        knob_vision_net_free(&en);
        knob_vision_free(&m);
        if (rc)
            knob_err_prefix(err, "size sweep: %d images", sizes[k]);
    }
    knob_free(st);
    return rc;
}
