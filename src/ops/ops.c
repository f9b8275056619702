/* ops.c: the op table, generated from KNOB_OP_LIST (src/knob_internal.h), the one place an op is
 * registered. Each row's forward, backward and shape live together in the family file the list
 * names. The graph (src/graph/graph.c) walks this table; op files never read it. */
#include "knob_internal.h"

const knob_op_def *const knob_ops[KNOB_OP_COUNT] = {
#define ROW(E, name, file) [KNOB_OP_##E] = &knob_op_##name,
    KNOB_OP_LIST(ROW)
#undef ROW
};

_Static_assert(KNOB_OP_COUNT == 34, "new op: add a row to KNOB_OP_LIST and a gradient check case in tests/");
