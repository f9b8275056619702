/* tensor.c: shapes, and knob_params: a model's named tensors in one contiguous block (values) and
 * one more (gradients), so optimizers and file formats are flat loops over a name table. */
#include "knob_internal.h"

#include <string.h>

size_t knob_shape_elems(int n_dims, const int *shape)
{
    size_t n = 1;
    for (int i = 0; i < n_dims; i++)
        n *= (size_t)shape[i];
    return n;
}

int knob_shape_elems_checked(int n_dims, const int *shape, size_t *n)
{
    size_t p = 1;
    for (int i = 0; i < n_dims; i++) {
        if (shape[i] < 0)
            return 0;
        if (shape[i] && p > KNOB_MAX_ELEMS / (size_t)shape[i])
            return 0;
        p *= (size_t)shape[i];
    }
    *n = p;
    return 1;
}

char *knob_shape_str(char *buf, size_t size, int n_dims, const int *shape)
{
    size_t at = 0;
    at += (size_t)snprintf(buf + at, size - at, "(");
    for (int i = 0; i < n_dims && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, i ? ", %d" : "%d", shape[i]);
    if (at < size)
        snprintf(buf + at, size - at, ")");
    return buf;
}

void knob_params_init(knob_params *p) { memset(p, 0, sizeof *p); }

knob_tensor *knob_params_find(const knob_params *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->t[i]->name, name) == 0)
            return p->t[i];
    return NULL;
}

knob_tensor *knob_params_add(knob_params *p, const char *name, int n_dims, const int *shape, knob_err *err)
{
    if (p->data) {
        knob_fail(err, KNOB_ERR_USAGE, "params: cannot add '%.128s' after knob_params_alloc", name);
        return NULL;
    }
    if (strlen(name) >= KNOB_NAME_MAX || !name[0]) {
        knob_fail(err, KNOB_ERR_USAGE, "params: name '%.128s' must have 1 to %d characters", name, KNOB_NAME_MAX - 1);
        return NULL;
    }
    if (n_dims < 1 || n_dims > KNOB_MAX_DIMS) {
        knob_fail(err, KNOB_ERR_SHAPE, "params: '%s' has %d dims; 1 to %d supported", name, n_dims, KNOB_MAX_DIMS);
        return NULL;
    }
    for (int i = 0; i < n_dims; i++)
        if (shape[i] < 1) {
            knob_fail(err, KNOB_ERR_SHAPE, "params: '%s' dim %d is %d; dims must be positive", name, i, shape[i]);
            return NULL;
        }
    size_t n_elems;
    if (!knob_shape_elems_checked(n_dims, shape, &n_elems) || n_elems > KNOB_MAX_ELEMS - p->n_elems) {
        char s[64];
        knob_fail(err, KNOB_ERR_SHAPE, "params: '%s' %s is too large (at most 2^40 elements in all)", name,
                  knob_shape_str(s, sizeof s, n_dims, shape));
        return NULL;
    }
    if (knob_params_find(p, name)) {
        knob_fail(err, KNOB_ERR_USAGE, "params: duplicate name '%s'", name);
        return NULL;
    }
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        knob_tensor **t = knob_realloc(p->t, (size_t)cap * sizeof *t);
        if (!t) {
            knob_fail(err, KNOB_ERR_NOMEM, "params: out of memory adding '%s'", name);
            return NULL;
        }
        p->t = t;
        p->cap = cap;
    }
    knob_tensor *t = knob_calloc(1, sizeof *t);
    if (!t) {
        knob_fail(err, KNOB_ERR_NOMEM, "params: out of memory adding '%s'", name);
        return NULL;
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = KNOB_F32;
    t->n_dims = n_dims;
    memcpy(t->shape, shape, (size_t)n_dims * sizeof *shape);
    t->n_elems = knob_shape_elems(n_dims, shape);
    t->decay = n_dims >= 2;
    p->t[p->n++] = t;
    p->n_elems += t->n_elems;
    return t;
}

knob_status knob_params_alloc(knob_params *p, knob_err *err)
{
    if (p->data)
        return knob_fail(err, KNOB_ERR_USAGE, "params: already allocated");
    p->data = knob_calloc(p->n_elems, sizeof(float));
    p->grad = knob_calloc(p->n_elems, sizeof(float));
    if (!p->data || !p->grad) {
        knob_free(p->data);
        knob_free(p->grad);
        p->data = p->grad = NULL;
        return knob_fail(err, KNOB_ERR_NOMEM, "params: cannot allocate %zu floats", p->n_elems);
    }
    size_t at = 0;
    for (int i = 0; i < p->n; i++) {
        p->t[i]->data = p->data + at;
        p->t[i]->grad = p->grad + at;
        at += p->t[i]->n_elems;
    }
    return KNOB_OK;
}

void knob_params_zero_grad(knob_params *p)
{
    if (p->grad)
        memset(p->grad, 0, p->n_elems * sizeof(float));
}

void knob_params_free(knob_params *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        knob_free(p->t[i]);
    knob_free(p->t);
    knob_free(p->data);
    knob_free(p->grad);
    memset(p, 0, sizeof *p);
}
