/* alloc.c: every library allocation goes through here, so tests can count allocations (to prove a
 * training step makes none) and fail the n-th one (to prove every failure path is clean). */
#include "knob_internal.h"

static long n_calls;
static long fail_at;    /* absolute call number that fails; 0 = never */

static int should_fail(void)
{
    n_calls++;
    return fail_at > 0 && n_calls == fail_at;
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

void knob_alloc_fail_at(long n) { fail_at = n > 0 ? n_calls + n : 0; }

long knob_alloc_count(void) { return n_calls; }
