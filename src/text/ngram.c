/* ngram.c: n-gram language models over letters or words, counted in hash maps (knob ngram).
 *
 * A text is cut into units: at the letter level one UTF-8 character (an invalid byte is a unit of
 * its own, so every byte is kept), at the word level a run of letters, digits, apostrophes and
 * hyphens (bytes >= 0x80 count as letters, so accented words stay whole) or any other single
 * non-space character; whitespace only separates words. Each distinct unit gets an id in order of
 * first appearance. Texts added separately are separate documents: no n-gram spans two.
 *
 * knob_ngram_build counts, for every order k = 1..n_max, each k-gram of ids in an open-addressing
 * hash map (linear probing, power-of-two capacity, at most half full), then regroups the counts by
 * context: a second map from the k-1 leading ids to the context's total and a linked list of its
 * continuations (next id, count). The k-gram maps are then freed; a k-gram's count is found by
 * walking its context's list. Sampling draws the next unit in proportion to its count given the last
 * k-1 units (P(next | context) = count(context next) / count(context)); a context never seen (or
 * only at a document's end) backs off to the next lower order. Everything is deterministic for a
 * seed: iteration orders depend only on the inserted keys.
 *
 * Not here: reading files and the fortunes corpus format (cli/cmd_ngram.c).
 */
#include "knob_internal.h"

#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * A hash map from keys of klen int32 ids to a count (0 marks an empty slot) and a list head. */

typedef struct {
    int klen;
    size_t cap, n;        /* slots (a power of two), used */
    int32_t *keys;        /* (cap, klen) */
    uint64_t *val;        /* (cap) count; 0 = empty */
    int32_t *head;        /* (cap) first continuation; context maps only */
} ng_map;

typedef struct {
    int32_t next;         /* unit id */
    int32_t link;         /* next continuation of the same context, -1 at the end */
    uint64_t count;
} ng_cont;

static uint64_t hash_ids(const int32_t *k, int n)
{
    uint64_t h = 0x9e3779b97f4a7c15u ^ (uint64_t)n;
    for (int i = 0; i < n; i++) {
        h ^= (uint32_t)k[i];
        h *= 0xbf58476d1ce4e5b9u;
        h ^= h >> 31;
    }
    return h ^ (h >> 29);
}

static void map_free(ng_map *m)
{
    knob_free(m->keys);
    knob_free(m->val);
    knob_free(m->head);
    m->keys = NULL;
    m->val = NULL;
    m->head = NULL;
    m->cap = m->n = 0;
}

static knob_status map_init(ng_map *m, int klen, size_t cap, int with_head, knob_err *err)
{
    m->klen = klen;
    m->cap = cap;
    m->n = 0;
    m->keys = knob_malloc(knob_mul_sat(cap, (size_t)KNOB_MAX(klen, 1) * sizeof *m->keys));
    m->val = knob_calloc(cap, sizeof *m->val);
    m->head = with_head ? knob_malloc(cap * sizeof *m->head) : NULL;
    if (!m->keys || !m->val || (with_head && !m->head)) {
        map_free(m);
        return knob_fail(err, KNOB_ERR_NOMEM, "ngram: out of memory for a map of %zu entries", cap);
    }
    return KNOB_OK;
}

/* Slot holding key, or the empty slot where it would go. */
static size_t map_slot(const ng_map *m, const int32_t *key)
{
    size_t mask = m->cap - 1, i = (size_t)hash_ids(key, m->klen) & mask;
    size_t kb = (size_t)m->klen * sizeof *key;
    while (m->val[i] && memcmp(m->keys + i * (size_t)m->klen, key, kb) != 0)
        i = (i + 1) & mask;
    return i;
}

static long map_find(const ng_map *m, const int32_t *key)
{
    if (!m->cap)
        return -1;
    size_t i = map_slot(m, key);
    return m->val[i] ? (long)i : -1;
}

static knob_status map_grow(ng_map *m, knob_err *err)
{
    ng_map g;
    knob_status s = map_init(&g, m->klen, m->cap * 2, m->head != NULL, err);
    if (s)
        return s;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->val[i])
            continue;
        size_t j = map_slot(&g, m->keys + i * (size_t)m->klen);
        memcpy(g.keys + j * (size_t)g.klen, m->keys + i * (size_t)m->klen, (size_t)m->klen * sizeof *m->keys);
        g.val[j] = m->val[i];
        if (g.head)
            g.head[j] = m->head[i];
        g.n++;
    }
    map_free(m);
    *m = g;
    return KNOB_OK;
}

/* Adds add to key's value (inserting it); *slot gets its slot, *added whether it was new. */
static knob_status map_add(ng_map *m, const int32_t *key, uint64_t add, size_t *slot, int *added, knob_err *err)
{
    if (2 * (m->n + 1) > m->cap) {
        knob_status s = map_grow(m, err);
        if (s)
            return s;
    }
    size_t i = map_slot(m, key);
    *added = m->val[i] == 0;
    if (*added) {
        memcpy(m->keys + i * (size_t)m->klen, key, (size_t)m->klen * sizeof *key);
        if (m->head)
            m->head[i] = -1;
        m->n++;
    }
    m->val[i] += add;
    *slot = i;
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * The model */

struct knob_ngram {
    int n_max;
    knob_ngram_level level;
    int built;
    /* vocabulary: unit strings in a pool, found by a string hash map of ids (-1 empty) */
    char *pool;
    size_t pool_len, pool_cap;
    size_t *off;          /* (n_vocab) start of each unit in pool */
    uint32_t *len;        /* (n_vocab) bytes */
    int n_vocab, vocab_cap;
    int32_t *vslot;       /* (vcap) */
    size_t vcap;
    /* the corpus as ids; -1 between documents */
    int32_t *units;
    size_t n_units, units_cap, n_tokens;
    /* per order k: contexts (k-1 ids) -> total and continuations */
    ng_map ctx[KNOB_NGRAM_MAX + 1];
    ng_cont *cont[KNOB_NGRAM_MAX + 1];
    size_t n_cont[KNOB_NGRAM_MAX + 1];
};

knob_status knob_ngram_new(knob_ngram **out, int n_max, knob_ngram_level level, knob_err *err)
{
    *out = NULL;
    if (n_max < 1 || n_max > KNOB_NGRAM_MAX)
        return knob_fail(err, KNOB_ERR_USAGE, "ngram: n %d is out of range [1, %d]", n_max, KNOB_NGRAM_MAX);
    if (level != KNOB_NGRAM_LETTER && level != KNOB_NGRAM_WORD)
        return knob_fail(err, KNOB_ERR_USAGE, "ngram: unknown level %d", (int)level);
    knob_ngram *m = knob_calloc(1, sizeof *m);
    if (!m)
        return knob_fail(err, KNOB_ERR_NOMEM, "ngram: out of memory");
    m->n_max = n_max;
    m->level = level;
    m->vcap = 1024;
    m->vslot = knob_malloc(m->vcap * sizeof *m->vslot);
    if (!m->vslot) {
        knob_free(m);
        return knob_fail(err, KNOB_ERR_NOMEM, "ngram: out of memory");
    }
    memset(m->vslot, 0xff, m->vcap * sizeof *m->vslot);
    *out = m;
    return KNOB_OK;
}

void knob_ngram_free(knob_ngram *m)
{
    if (!m)
        return;
    for (int k = 0; k <= KNOB_NGRAM_MAX; k++) {
        map_free(&m->ctx[k]);
        knob_free(m->cont[k]);
    }
    knob_free(m->pool);
    knob_free(m->off);
    knob_free(m->len);
    knob_free(m->vslot);
    knob_free(m->units);
    knob_free(m);
}

/* ------------------------------------------------------------------------------------------------
 * Units */

static size_t vocab_slot(const knob_ngram *m, const char *s, size_t n)
{
    size_t mask = m->vcap - 1, i = (size_t)knob_fnv1a(KNOB_FNV_SEED, s, n) & mask;
    for (;; i = (i + 1) & mask) {
        int32_t id = m->vslot[i];
        if (id < 0 || (m->len[id] == n && memcmp(m->pool + m->off[id], s, n) == 0))
            return i;
    }
}

static int32_t vocab_find(const knob_ngram *m, const char *s, size_t n)
{
    return m->vslot[vocab_slot(m, s, n)];
}

static knob_status vocab_add(knob_ngram *m, const char *s, size_t n, int32_t *id, knob_err *err)
{
    size_t i = vocab_slot(m, s, n);
    if (m->vslot[i] >= 0) {
        *id = m->vslot[i];
        return KNOB_OK;
    }
    if (m->n_vocab == INT32_MAX - 1 || n > UINT32_MAX)
        return knob_fail(err, KNOB_ERR_USAGE, "ngram: too many distinct units");
    if (m->n_vocab == m->vocab_cap) {
        int cap = KNOB_MAX(256, 2 * m->vocab_cap);
        size_t *off = knob_realloc(m->off, (size_t)cap * sizeof *off);
        if (off)
            m->off = off;
        uint32_t *len = off ? knob_realloc(m->len, (size_t)cap * sizeof *len) : NULL;
        if (!len)
            return knob_fail(err, KNOB_ERR_NOMEM, "ngram: out of memory growing the vocabulary");
        m->len = len;
        m->vocab_cap = cap;
    }
    if (m->pool_len + n > m->pool_cap) {
        size_t cap = KNOB_MAX(m->pool_cap * 2, m->pool_len + n + 4096);
        char *p = knob_realloc(m->pool, cap);
        if (!p)
            return knob_fail(err, KNOB_ERR_NOMEM, "ngram: out of memory growing the vocabulary");
        m->pool = p;
        m->pool_cap = cap;
    }
    memcpy(m->pool + m->pool_len, s, n);
    m->off[m->n_vocab] = m->pool_len;
    m->len[m->n_vocab] = (uint32_t)n;
    m->pool_len += n;
    *id = m->n_vocab++;
    m->vslot[i] = *id;
    if (2 * (size_t)m->n_vocab > m->vcap) {   /* keep the map at most half full */
        size_t cap = m->vcap * 2;
        int32_t *v = knob_malloc(cap * sizeof *v);
        if (!v)
            return knob_fail(err, KNOB_ERR_NOMEM, "ngram: out of memory growing the vocabulary");
        knob_free(m->vslot);
        m->vslot = v;
        m->vcap = cap;
        memset(v, 0xff, cap * sizeof *v);
        for (int32_t u = 0; u < m->n_vocab; u++)
            m->vslot[vocab_slot(m, m->pool + m->off[u], m->len[u])] = u;
    }
    return KNOB_OK;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static int is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '\'' || c == '-' ||
           c >= 0x80;
}

/* The next unit of text at *at (advancing it); 0 when only whitespace (word level) is left. */
static size_t next_unit(knob_ngram_level level, const char *text, size_t n, size_t *at, size_t *start)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = *at;
    if (level == KNOB_NGRAM_WORD)
        while (i < n && is_space(s[i]))
            i++;
    if (i >= n) {
        *at = n;
        return 0;
    }
    size_t j = i;
    if (level == KNOB_NGRAM_LETTER)
        j += knob_utf8_len(s + i, n - i);
    else if (is_word_byte(s[i]))
        while (j < n && is_word_byte(s[j]))
            j++;
    else
        j += knob_utf8_len(s + i, n - i);
    *start = i;
    *at = j;
    return j - i;
}

static knob_status push_unit(knob_ngram *m, int32_t id, knob_err *err)
{
    if (m->n_units == m->units_cap) {
        size_t cap = KNOB_MAX(4096, 2 * m->units_cap);
        int32_t *u = knob_realloc(m->units, cap * sizeof *u);
        if (!u)
            return knob_fail(err, KNOB_ERR_NOMEM, "ngram: out of memory holding %zu units", m->n_units);
        m->units = u;
        m->units_cap = cap;
    }
    m->units[m->n_units++] = id;
    return KNOB_OK;
}

knob_status knob_ngram_add_text(knob_ngram *m, const char *text, size_t n, knob_err *err)
{
    if (m->built)
        return knob_fail(err, KNOB_ERR_USAGE, "ngram: text added after knob_ngram_build");
    size_t at = 0, start = 0, len;
    knob_status s = KNOB_OK;
    if (m->n_units > 0)
        s = push_unit(m, -1, err);   /* document boundary */
    while (!s && (len = next_unit(m->level, text, n, &at, &start)) > 0) {
        int32_t id = -1;
        s = vocab_add(m, text + start, len, &id, err);
        if (!s)
            s = push_unit(m, id, err);
        m->n_tokens += !s;
    }
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Counting */

static knob_status build_order(knob_ngram *m, int k, knob_err *err)
{
    ng_map grams;
    knob_status s = map_init(&grams, k, 1024, 0, err);
    if (s)
        return s;
    size_t slot;
    int added;
    size_t run = 0;   /* units since the last boundary */
    for (size_t i = 0; i < m->n_units && !s; i++) {
        if (m->units[i] < 0) {
            run = 0;
            continue;
        }
        if (++run >= (size_t)k)
            s = map_add(&grams, m->units + i + 1 - k, 1, &slot, &added, err);
    }
    ng_map *ctx = &m->ctx[k];
    if (!s)
        s = map_init(ctx, k - 1, 64, 1, err);
    if (!s && !(m->cont[k] = knob_malloc(KNOB_MAX(grams.n, 1) * sizeof *m->cont[k])))
        s = knob_fail(err, KNOB_ERR_NOMEM, "ngram: out of memory for %zu %d-grams", grams.n, k);
    for (size_t i = 0; i < grams.cap && !s; i++) {
        if (!grams.val[i])
            continue;
        const int32_t *key = grams.keys + i * (size_t)k;
        s = map_add(ctx, key, grams.val[i], &slot, &added, err);
        if (s)
            break;
        ng_cont *c = &m->cont[k][m->n_cont[k]];
        c->next = key[k - 1];
        c->count = grams.val[i];
        c->link = ctx->head[slot];
        ctx->head[slot] = (int32_t)m->n_cont[k]++;
    }
    map_free(&grams);
    return s;
}

/* One document per fortune: a line holding only '%' ends one. */
knob_status knob_ngram_add_fortunes(knob_ngram *m, const char *text, size_t n, knob_err *err)
{
    size_t start = 0, i = 0;
    while (i <= n) {
        size_t eol = i;
        while (eol < n && text[eol] != '\n')
            eol++;
        int sep = eol - i == 1 && text[i] == '%';
        if (sep || eol >= n) {
            size_t end = sep ? i : n;
            if (end > start) {
                knob_status s = knob_ngram_add_text(m, text + start, end - start, err);
                if (s)
                    return s;
            }
            start = eol + 1;
        }
        i = eol + 1;
    }
    return KNOB_OK;
}

knob_status knob_ngram_build(knob_ngram *m, knob_err *err)
{
    if (m->built)
        return KNOB_OK;
    if (m->n_tokens == 0)
        return knob_fail(err, KNOB_ERR_USAGE, "ngram: the corpus has no %s", m->level == KNOB_NGRAM_WORD ? "words" : "letters");
    if (m->n_units > (size_t)INT32_MAX)
        return knob_fail(err, KNOB_ERR_USAGE, "ngram: corpus too large (%zu units)", m->n_units);
    for (int k = 1; k <= m->n_max; k++) {
        knob_status s = build_order(m, k, err);
        if (s)
            return s;
    }
    m->built = 1;
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Queries */

int    knob_ngram_n_max(const knob_ngram *m) { return m->n_max; }
int    knob_ngram_vocab_size(const knob_ngram *m) { return m->n_vocab; }
size_t knob_ngram_n_tokens(const knob_ngram *m) { return m->n_tokens; }

size_t knob_ngram_n_distinct(const knob_ngram *m, int n)
{
    return m->built && n >= 1 && n <= m->n_max ? m->n_cont[n] : 0;
}

const char *knob_ngram_unit(const knob_ngram *m, int id, size_t *len)
{
    if (id < 0 || id >= m->n_vocab)
        return NULL;
    *len = m->len[id];
    return m->pool + m->off[id];
}

/* Splits text into ids; unknown units become -2 (never match). *n_ids may exceed cap: only the
 * last cap ids are kept (ids[0] is the oldest of them). */
static size_t text_ids(const knob_ngram *m, const char *text, int32_t *ids, size_t cap)
{
    size_t at = 0, start = 0, len, n = 0, n_text = strlen(text);
    while ((len = next_unit(m->level, text, n_text, &at, &start)) > 0) {
        if (n == cap) {
            memmove(ids, ids + 1, (cap - 1) * sizeof *ids);
            n--;
        }
        ids[n++] = vocab_find(m, text + start, len) >= 0 ? vocab_find(m, text + start, len) : -2;
    }
    return n;
}

/* Context slot of order k for the last k-1 of the n ids in hist, or -1. */
static long find_ctx(const knob_ngram *m, int k, const int32_t *hist, size_t n)
{
    if ((size_t)(k - 1) > n)
        return -1;
    return map_find(&m->ctx[k], hist + n - (size_t)(k - 1));
}

knob_status knob_ngram_count(const knob_ngram *m, const char *text, uint64_t *count, knob_err *err)
{
    *count = 0;
    if (!m->built)
        return knob_fail(err, KNOB_ERR_USAGE, "ngram: call knob_ngram_build first");
    int32_t ids[KNOB_NGRAM_MAX + 1];
    size_t n = text_ids(m, text, ids, KNOB_NGRAM_MAX + 1);
    if (n < 1 || n > (size_t)m->n_max)
        return knob_fail(err, KNOB_ERR_USAGE, "ngram: '%.64s' has %zu units; this model counts 1 to %d", text, n,
                         m->n_max);
    int k = (int)n;
    long c = find_ctx(m, k, ids, n - 1);
    if (c < 0)
        return KNOB_OK;
    for (int32_t j = m->ctx[k].head[c]; j >= 0; j = m->cont[k][j].link)
        if (m->cont[k][j].next == ids[n - 1])
            *count = m->cont[k][j].count;
    return KNOB_OK;
}

static int cmp_next(const void *a, const void *b)
{
    const knob_ngram_next *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return x->id - y->id;
}

int knob_ngram_top(const knob_ngram *m, int n, const char *context, knob_ngram_next *out, int k_max,
                   uint64_t *total, int *order)
{
    *total = 0;
    *order = 0;
    if (!m->built || n < 1 || n > m->n_max || k_max < 1)
        return 0;
    int32_t hist[KNOB_NGRAM_MAX];
    size_t nh = text_ids(m, context, hist, KNOB_NGRAM_MAX);
    int k = n;
    long c = -1;
    for (; k >= 1 && (c = find_ctx(m, k, hist, nh)) < 0; k--)
        ;
    if (c < 0)
        return 0;
    *order = k;
    *total = m->ctx[k].val[c];
    int got = 0;
    for (int32_t j = m->ctx[k].head[c]; j >= 0; j = m->cont[k][j].link) {
        knob_ngram_next cand = {m->cont[k][j].next, m->cont[k][j].count, 0};
        cand.prob = (double)cand.count / (double)*total;
        if (got < k_max) {
            out[got++] = cand;
        } else if (cmp_next(&cand, &out[got - 1]) < 0) {
            out[got - 1] = cand;
        } else {
            continue;
        }
        for (int i = got - 1; i > 0 && cmp_next(&out[i], &out[i - 1]) < 0; i--) {   /* keep out sorted */
            knob_ngram_next t = out[i];
            out[i] = out[i - 1];
            out[i - 1] = t;
        }
    }
    return got;
}

/* ------------------------------------------------------------------------------------------------
 * Sampling */

typedef struct {
    char *p;
    size_t len, cap;
} text_buf;

static int put(text_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = KNOB_MAX(2 * b->cap, b->len + n + 256);
        char *p = knob_realloc(b->p, cap);
        if (!p)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 1;
}

/* Word level: a space before each word, none before closing punctuation or after an opening one. */
static int needs_space(const char *prev, size_t pn, const char *s, size_t n)
{
    if (!prev)
        return 0;
    if (n == 1 && strchr(".,;:!?)]}", s[0]))
        return 0;
    if (pn == 1 && strchr("([{", prev[0]))
        return 0;
    return 1;
}

knob_status knob_ngram_sample(const knob_ngram *m, int n, int length, const char *start, knob_rng *r,
                              char **text, knob_err *err)
{
    *text = NULL;
    if (!m->built)
        return knob_fail(err, KNOB_ERR_USAGE, "ngram: call knob_ngram_build first");
    if (n < 1 || n > m->n_max)
        return knob_fail(err, KNOB_ERR_USAGE, "ngram: order %d is out of range [1, %d]", n, m->n_max);
    if (length < 0)
        return knob_fail(err, KNOB_ERR_USAGE, "ngram: length %d is negative", length);
    int32_t hist[KNOB_NGRAM_MAX];
    size_t nh = start ? text_ids(m, start, hist, KNOB_NGRAM_MAX) : 0;
    text_buf b = {NULL, 0, 0};
    const char *prev = NULL;
    size_t pn = 0;
    int ok = put(&b, "", 0);
    for (int i = 0; i < length && ok; i++) {
        int k = n;
        long c = -1;
        for (; k >= 1 && ((c = find_ctx(m, k, hist, nh)) < 0 || m->ctx[k].head[c] < 0); k--)
            ;
        KNOB_ASSERT(c >= 0);   /* order 1's single context holds every unit of a built model */
        uint64_t x = knob_rng_u64(r) % m->ctx[k].val[c], cum = 0;   /* bias < total / 2^64 */
        int32_t id = -1;
        for (int32_t j = m->ctx[k].head[c]; j >= 0 && id < 0; j = m->cont[k][j].link)
            if (x < (cum += m->cont[k][j].count))
                id = m->cont[k][j].next;
        const char *s = m->pool + m->off[id];
        size_t sn = m->len[id];
        if (m->level == KNOB_NGRAM_WORD && needs_space(prev, pn, s, sn))
            ok = put(&b, " ", 1);
        ok = ok && put(&b, s, sn);
        prev = s;
        pn = sn;
        if (nh == KNOB_NGRAM_MAX)
            memmove(hist, hist + 1, (KNOB_NGRAM_MAX - 1) * sizeof *hist);
        else
            nh++;
        hist[nh - 1] = id;
    }
    if (!ok) {
        knob_free(b.p);
        return knob_fail(err, KNOB_ERR_NOMEM, "ngram: out of memory sampling %d units", length);
    }
    *text = b.p;
    return KNOB_OK;
}
