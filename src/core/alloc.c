/* alloc.c: every library allocation goes through here, so tests can count allocations (to prove a
 * training step makes none) and fail the n-th one (to prove every failure path is clean). */
#include "knob_internal.h"

#include <stdatomic.h>

/* Atomic: the server's threads allocate at the same time (the counts only matter to tests). */
static _Atomic long n_calls;
static _Atomic long fail_at;    /* absolute call number that fails; 0 = never */

static int should_fail(void)
{
    long c = atomic_fetch_add_explicit(&n_calls, 1, memory_order_relaxed) + 1;
    long f = atomic_load_explicit(&fail_at, memory_order_relaxed);
    return f > 0 && c == f;
}

void *knob_malloc(size_t bytes)
{
    if (should_fail())
        return NULL;
    return malloc(bytes ? bytes : 1);
}

void *knob_calloc(size_t n, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *knob_realloc(void *p, size_t bytes)
{
    if (should_fail())
        return NULL;
    return realloc(p, bytes ? bytes : 1);
}

void knob_free(void *p) { free(p); }

void knob_alloc_fail_at(long n)
{
    atomic_store_explicit(&fail_at, n > 0 ? atomic_load_explicit(&n_calls, memory_order_relaxed) + n : 0,
                          memory_order_relaxed);
}

long knob_alloc_count(void) { return atomic_load_explicit(&n_calls, memory_order_relaxed); }
