/* test_edge_score.c: knob_edge_score and knob_vision_edge_scores (knob tour's chapter 6), against
 * correlations worked out by hand on 3 x 3 filters with 4 orientations (0, 45, 90, 135 degrees). */
#include "test.h"

#include <math.h>

TEST(edge_score_by_hand)
{
    /* a perfect vertical step (dark left, light right) matches the 0-degree edge exactly */
    const float vert[9] = {-1, 0, 1, -1, 0, 1, -1, 0, 1};
    int o = -1;
    CHECK_NEAR(knob_edge_score(vert, 3, 4, &o), 1.0, 0, 1e-12);
    CHECK(o == 0);
    /* the 45-degree template is sign(x + y): -1 -1 0 / -1 0 1 / 0 1 1; scaled by -3 it still scores 1 */
    const float diag[9] = {3, 3, 0, 3, 0, -3, 0, -3, -3};
    CHECK_NEAR(knob_edge_score(diag, 3, 4, &o), 1.0, 0, 1e-12);
    CHECK(o == 1);
    /* one bright corner pixel: centred it is 8/9 there and -1/9 elsewhere (sum of squares 8/9); the
     * 0, 45 and 90 degree templates give it -1 with sum of squares 6, so |corr| = 1 / sqrt(16/3) =
     * sqrt(3)/4; the 135-degree template is 0 there (corr 0). The best is the first of the ties. */
    const float corner[9] = {1, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_NEAR(knob_edge_score(corner, 3, 4, &o), sqrt(3.0) / 4, 0, 1e-12);
    CHECK(o == 0);
    /* a constant filter has no direction at all */
    const float flat[9] = {2, 2, 2, 2, 2, 2, 2, 2, 2};
    CHECK(knob_edge_score(flat, 3, 4, NULL) == 0);
    /* a centre-surround blob correlates with no edge: every template sums to 0 over the ring */
    const float blob[9] = {-1, -1, -1, -1, 8, -1, -1, -1, -1};
    CHECK_NEAR(knob_edge_score(blob, 3, 4, NULL), 0.0, 0, 1e-12);
}

TEST(edge_scores_of_a_cnn)
{
    knob_err err;
    knob_vision_config c = {.kind = KNOB_VISION_CNN, .c = 1, .h = 8, .w = 8, .n_classes = 2, .n_conv = 1,
                            .conv = {3}, .kernel = 3, .n_hidden = 0};
    knob_vision m;
    CHECK(knob_vision_init(&m, &c, 1, &err) == KNOB_OK);
    const float f[3][9] = {{-1, 0, 1, -1, 0, 1, -1, 0, 1}, {1, 0, 0, 0, 0, 0, 0, 0, 0}, {2, 2, 2, 2, 2, 2, 2, 2, 2}};
    for (int i = 0; i < 27; i++)
        m.conv_w[0]->data[i] = f[i / 9][i % 9];
    float scores[3], median = -1;
    CHECK(knob_vision_edge_scores(&m, 4, scores, &median, &err) == KNOB_OK);
    CHECK_NEAR(scores[0], 1.0, 0, 1e-6);
    CHECK_NEAR(scores[1], sqrt(3.0) / 4, 0, 1e-6);
    CHECK(scores[2] == 0);
    CHECK_NEAR(median, sqrt(3.0) / 4, 0, 1e-6);
    CHECK(knob_vision_edge_scores(&m, 0, scores, &median, &err) == KNOB_ERR_USAGE);
    knob_vision_free(&m);
    knob_vision_config mc = {.kind = KNOB_VISION_MLP, .c = 1, .h = 4, .w = 4, .n_classes = 2, .n_hidden = 0};
    CHECK(knob_vision_init(&m, &mc, 1, &err) == KNOB_OK);
    CHECK(knob_vision_edge_scores(&m, 4, scores, &median, &err) == KNOB_ERR_USAGE);
    CHECK(strstr(err.msg, "no convolution") != NULL);
    knob_vision_free(&m);
}
