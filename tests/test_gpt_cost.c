/* test_gpt_cost.c: knob_gpt_cost_of, the cost of a GPT from its config (knob tour's chapter 15),
 * against figures worked out by hand from the shapes of the tensors and against GPT-2 124M's
 * published parameter count (124,439,808 with the output projection tied to the embedding). */
#include "test.h"

TEST(gpt_cost_gpt2_124m)
{
    knob_gpt_config c = {.n_layer = 12, .n_head = 12, .n_embd = 768, .block_size = 1024, .vocab_size = 50257,
                         .dropout = 0, .bias = 1};
    knob_gpt_cost k;
    knob_gpt_cost_of(&c, &k);
    CHECK(k.n_params == 124439808.0);
    /* matrix weights: 12 layers x (2304 + 768 + 3072 + 3072) x 768, and the 50257 x 768 output */
    CHECK(k.n_params_matmul == 12.0 * (2304 + 768 + 3072 + 3072) * 768 + 50257.0 * 768);
    CHECK(k.n_params_matmul == 123532032.0);
    /* 2 x 123,532,032 + 4 x 12 x 1024 x 768 = 247,064,064 + 37,748,736 */
    CHECK(k.flops_forward == 284812800.0);
    CHECK(k.flops_train == 854438400.0);
    CHECK(k.bytes_weights == 497759232.0);
    CHECK(k.bytes_train == 1991036928.0);
    CHECK(k.bytes_kv == 75497472.0);   /* 2 x 12 x 1024 x 768 floats */
}

TEST(gpt_cost_tiny_by_hand)
{
    /* 1 layer, C 4, T 3, V 5, no biases: wte 20 + wpe 12 + layer 12 x 16 = 192 + LN gains 4 + 4 + ln_f 4 */
    knob_gpt_config c = {.n_layer = 1, .n_head = 2, .n_embd = 4, .block_size = 3, .vocab_size = 5,
                         .dropout = 0, .bias = 0};
    knob_gpt_cost k;
    knob_gpt_cost_of(&c, &k);
    CHECK(k.n_params == 20 + 12 + 192 + 12);
    CHECK(k.n_params_matmul == 192 + 20);
    CHECK(k.flops_forward == 2 * 212 + 4 * 1 * 3 * 4);
    CHECK(k.flops_train == 3 * (2 * 212 + 48));
    /* a 175B-class config stays exact in doubles: 96 layers of 12 x 12288^2 and 50257 x 12288 */
    knob_gpt_config g = {.n_layer = 96, .n_head = 96, .n_embd = 12288, .block_size = 2048, .vocab_size = 50257,
                         .dropout = 0, .bias = 1};
    knob_gpt_cost_of(&g, &k);
    CHECK(k.n_params_matmul == 96.0 * 12 * 12288 * 12288 + 50257.0 * 12288);
    CHECK(k.n_params > 1.74e11 && k.n_params < 1.76e11);
}
