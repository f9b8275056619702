/* ops.c: the op table, the only place an op is registered. Each row's forward, backward and shape
 * live together in the family file named beside it. */
#include "knob_internal.h"

const knob_op_def *const knob_ops[KNOB_OP_COUNT] = {
    [KNOB_OP_ADD]           = &knob_op_add,            /* elementwise.c */
    [KNOB_OP_SUB]           = &knob_op_sub,
    [KNOB_OP_MUL]           = &knob_op_mul,
    [KNOB_OP_DIV]           = &knob_op_div,
    [KNOB_OP_SCALE]         = &knob_op_scale,
    [KNOB_OP_EXP]           = &knob_op_exp,
    [KNOB_OP_LOG]           = &knob_op_log,
    [KNOB_OP_SQRT]          = &knob_op_sqrt,
    [KNOB_OP_ABS]           = &knob_op_abs,
    [KNOB_OP_RELU]          = &knob_op_relu,
    [KNOB_OP_GELU]          = &knob_op_gelu,
    [KNOB_OP_SIGMOID]       = &knob_op_sigmoid,
    [KNOB_OP_TANH]          = &knob_op_tanh,
    [KNOB_OP_MATMUL]        = &knob_op_matmul,         /* matmul.c */
    [KNOB_OP_SUM]           = &knob_op_sum,            /* reduce.c */
    [KNOB_OP_MEAN]          = &knob_op_mean,
    [KNOB_OP_SOFTMAX]       = &knob_op_softmax,
    [KNOB_OP_LOG_SOFTMAX]   = &knob_op_log_softmax,
    [KNOB_OP_LAYERNORM]     = &knob_op_layernorm,      /* norm.c */
    [KNOB_OP_CROSS_ENTROPY] = &knob_op_cross_entropy,  /* loss.c */
    [KNOB_OP_MSE]           = &knob_op_mse,
    [KNOB_OP_MAE]           = &knob_op_mae,
    [KNOB_OP_EMBEDDING]     = &knob_op_embedding,      /* embedding.c */
    [KNOB_OP_DROPOUT]       = &knob_op_dropout,
    [KNOB_OP_CONV2D]        = &knob_op_conv2d,         /* conv.c */
    [KNOB_OP_MAXPOOL2D]     = &knob_op_maxpool2d,      /* pool.c */
    [KNOB_OP_AVGPOOL2D]     = &knob_op_avgpool2d,
    [KNOB_OP_RESHAPE]       = &knob_op_reshape,        /* shape.c */
    [KNOB_OP_TRANSPOSE]     = &knob_op_transpose,
    [KNOB_OP_PERMUTE]       = &knob_op_permute,
    [KNOB_OP_CONCAT]        = &knob_op_concat,
    [KNOB_OP_SLICE]         = &knob_op_slice,
    [KNOB_OP_ATTENTION]     = &knob_op_attention,      /* attention.c */
};

_Static_assert(KNOB_OP_COUNT == 34, "new op: add a row here and a gradient check case in tests/");
