/* test_pad.c: unpadded convolutions in the image classifiers (knob train --pad 0): the config text
 * round-trips, text without "pad=" (every file written before the flag) means "same", the feature
 * maps shrink by K - 1 per stage (28 -> 24 -> 12 -> 8 -> 4 for 5x5 convs), the dense layer takes
 * the flattened size that follows, and images too small for the stages are refused with a message. */
#include "test.h"

TEST(pad_config_round_trips_and_old_text_means_same)
{
    knob_err err;
    knob_vision_config c;
    CHECK_OK(knob_vision_config_parse(&c, "kind=cnn in=1x28x28 classes=10 conv=8,16 kernel=5 hidden=0 dropout=0", &err));
    CHECK(c.unpadded == 0);
    CHECK_OK(knob_vision_config_parse(&c, "kind=cnn in=1x28x28 classes=10 conv=8,16 kernel=5 pad=0 hidden=0 dropout=0", &err));
    CHECK(c.unpadded == 1 && c.kernel == 5 && c.n_conv == 2);
    char buf[256];
    knob_vision_config_str(&c, buf, sizeof buf);
    CHECK(strstr(buf, " kernel=5 pad=0 ") != NULL);
    c.unpadded = 0;
    knob_vision_config_str(&c, buf, sizeof buf);
    CHECK(strstr(buf, "pad=") == NULL);   /* "same" writes what old files hold */
    CHECK_FAILS_WITH(knob_vision_config_parse(&c, "kind=cnn in=1x28x28 classes=10 conv=8 kernel=5 pad=1 hidden=0 dropout=0", &err),
                     KNOB_ERR_FORMAT, "pad '1' is not 0 or same");
}

TEST(pad_zero_shrinks_the_feature_maps)
{
    knob_err err;
    knob_vision_config c = {.kind = KNOB_VISION_CNN, .c = 1, .h = 28, .w = 28, .n_classes = 10, .n_conv = 2,
                            .conv = {8, 16}, .kernel = 5, .unpadded = 1, .n_hidden = 0};
    knob_vision m;
    CHECK_OK(knob_vision_init(&m, &c, 1, &err));
    if (test_failed_now)
        return;
    /* the one dense layer: (10, 16 * 4 * 4) */
    CHECK(m.fc_w[0]->shape[0] == 10 && m.fc_w[0]->shape[1] == 16 * 4 * 4);
    /* 8*1*25 + 8 + 16*8*25 + 16 + 10*256 + 10 parameters, as PyTorch counts the same net */
    CHECK(m.P.n_elems == 208 + 3216 + 2570);
    knob_vision_net n;
    CHECK_OK(knob_vision_net_build(&n, &m, 3, 1, &err));
    if (!test_failed_now) {
        const knob_tensor *f0 = knob_node_tensor(n.feat[0]), *f1 = knob_node_tensor(n.feat[1]);
        CHECK(f0->shape[1] == 8 && f0->shape[2] == 24 && f0->shape[3] == 24);
        CHECK(f1->shape[1] == 16 && f1->shape[2] == 8 && f1->shape[3] == 8);
        knob_vision_net_free(&n);
    }
    knob_vision_free(&m);
    c.h = c.w = 12;   /* 12 -> 8 -> 4 -> 0: refused */
    CHECK_FAILS_WITH(knob_vision_init(&m, &c, 1, &err), KNOB_ERR_USAGE, "shrink a 12x12 image below 1x1; try --pad same");
}
