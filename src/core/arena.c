/* arena.c: one allocation carved into aligned, zeroed pieces; freed all at once. Graphs plan their
 * memory into one of these so forward and backward allocate nothing. */
#include "knob_internal.h"

#include <string.h>

knob_status knob_arena_init(knob_arena *a, size_t bytes, knob_err *err)
{
    a->used = 0;
    a->cap = bytes;
    a->base = knob_calloc(1, bytes ? bytes : 1);
    if (!a->base) {
        a->cap = 0;
        return knob_fail(err, KNOB_ERR_NOMEM, "arena: cannot allocate %zu bytes", bytes);
    }
    return KNOB_OK;
}

void *knob_arena_alloc(knob_arena *a, size_t bytes, size_t align, knob_err *err)
{
    if (align == 0)
        align = 1;
    uintptr_t at = (uintptr_t)a->base + a->used;
    size_t pad = (size_t)((align - at % align) % align);
    if (a->used + pad > a->cap || bytes > a->cap - a->used - pad) {
        knob_fail(err, KNOB_ERR_NOMEM, "arena: need %zu bytes, %zu available", bytes + pad,
                  a->cap - a->used);
        return NULL;
    }
    void *p = a->base + a->used + pad;
    a->used += pad + bytes;
    return p;
}

void knob_arena_reset(knob_arena *a)
{
    if (a->base)
        memset(a->base, 0, a->used);
    a->used = 0;
}

void knob_arena_free(knob_arena *a)
{
    if (!a)
        return;
    knob_free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
}

size_t knob_arena_used(const knob_arena *a) { return a->used; }
