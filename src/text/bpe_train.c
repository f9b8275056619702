/* bpe_train.c: learning a byte-level BPE from a corpus, written in GPT-2's two-file format.
 *
 * 1. knob_bpe_trainer_add splits text with GPT-2's pre-tokenizer (the same one encoding uses) and
 *    counts each distinct pre-token ("word") once: merges never cross pre-token boundaries, so
 *    only the unique words and their counts matter.
 * 2. knob_bpe_trainer_save starts every word as single-byte tokens and counts every adjacent pair
 *    (weighted by the word's count), remembering which words hold each pair. Then, until the
 *    vocabulary is full: take the most frequent pair (ties: lowest left id, then lowest right id)
 *    from a max-heap with lazy deletion; rewrite only the words that hold it, replacing A B by AB
 *    left to right; subtract those words' old pairs and add their new ones. Only pairs that
 *    contain the new token can grow, so only they are pushed again. The cost of a merge is the
 *    length of the words it touches, not the size of the corpus.
 * 3. Ids: 0..255 the bytes in the order of their printable code points (as GPT-2's are), then one
 *    id per merge (a merge whose bytes already form a token reuses its id), then <|endoftext|>.
 *    Writes <dir>/encoder.json and <dir>/vocab.bpe ("#version: 0.2", then "A B" per merge). */
#include "knob_internal.h"

#include <string.h>

#define EOT_TEXT "<|endoftext|>"
#define MIN_PAIR_COUNT 2   /* a pair seen once is memorisation, not compression */

typedef struct {
    size_t off;        /* in blob */
    uint32_t len;      /* 0: empty slot */
    uint64_t count;
} word_slot;

struct knob_bpe_trainer {
    unsigned char *blob;   /* word bytes */
    size_t blob_n, blob_cap;
    word_slot *slot;
    size_t cap, n_unique;
    size_t n_bytes, n_words;
};

static knob_status grow(void **p, size_t *cap, size_t need, size_t elem, knob_err *err)
{
    if (need <= *cap)
        return KNOB_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = knob_realloc(*p, c * elem);
    if (!q)
        return knob_fail(err, KNOB_ERR_NOMEM, "bpe train: out of memory");
    *p = q;
    *cap = c;
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Counting words */

knob_status knob_bpe_trainer_new(knob_bpe_trainer **tr, knob_err *err)
{
    *tr = knob_calloc(1, sizeof **tr);
    if (!*tr)
        return knob_fail(err, KNOB_ERR_NOMEM, "bpe train: out of memory");
    (*tr)->cap = 1 << 12;
    (*tr)->slot = knob_calloc((*tr)->cap, sizeof *(*tr)->slot);
    if (!(*tr)->slot) {
        knob_free(*tr);
        *tr = NULL;
        return knob_fail(err, KNOB_ERR_NOMEM, "bpe train: out of memory");
    }
    return KNOB_OK;
}

void knob_bpe_trainer_free(knob_bpe_trainer *tr)
{
    if (!tr)
        return;
    knob_free(tr->blob);
    knob_free(tr->slot);
    knob_free(tr);
}

static knob_status words_rehash(knob_bpe_trainer *tr, knob_err *err)
{
    size_t cap = tr->cap * 2;
    word_slot *s = knob_calloc(cap, sizeof *s);
    if (!s)
        return knob_fail(err, KNOB_ERR_NOMEM, "bpe train: out of memory");
    for (size_t i = 0; i < tr->cap; i++) {
        if (!tr->slot[i].len)
            continue;
        size_t k = knob_hash_bytes(tr->blob + tr->slot[i].off, tr->slot[i].len) & (cap - 1);
        while (s[k].len)
            k = (k + 1) & (cap - 1);
        s[k] = tr->slot[i];
    }
    knob_free(tr->slot);
    tr->slot = s;
    tr->cap = cap;
    return KNOB_OK;
}

static knob_status count_word(const char *s, size_t n, void *ctx, knob_err *err)
{
    knob_bpe_trainer *tr = ctx;
    const unsigned char *w = (const unsigned char *)s;
    if (n > UINT32_MAX)
        return knob_fail(err, KNOB_ERR_USAGE, "bpe train: a pre-token of %zu bytes is too long", n);
    tr->n_words++;
    knob_status st;
    if (2 * (tr->n_unique + 1) > tr->cap && (st = words_rehash(tr, err)))
        return st;
    size_t k = knob_hash_bytes(w, n) & (tr->cap - 1);
    for (; tr->slot[k].len; k = (k + 1) & (tr->cap - 1))
        if (tr->slot[k].len == n && memcmp(tr->blob + tr->slot[k].off, w, n) == 0) {
            tr->slot[k].count++;
            return KNOB_OK;
        }
    if ((st = grow((void **)&tr->blob, &tr->blob_cap, tr->blob_n + n, 1, err)))
        return st;
    memcpy(tr->blob + tr->blob_n, w, n);
    tr->slot[k] = (word_slot){tr->blob_n, (uint32_t)n, 1};
    tr->blob_n += n;
    tr->n_unique++;
    return KNOB_OK;
}

knob_status knob_bpe_trainer_add(knob_bpe_trainer *tr, const char *text, size_t n, knob_err *err)
{
    tr->n_bytes += n;
    return knob_pretok_split(text, n, count_word, tr, err);
}

/* ------------------------------------------------------------------------------------------------
 * Learning merges */

typedef struct {
    int64_t count;
    int32_t a, b;
    int32_t *where;     /* words holding the pair (may repeat; may be stale) */
    size_t n_where, cap_where;
} pair_info;

typedef struct {
    int64_t count;
    int32_t a, b;
} heap_item;

typedef struct {
    /* words */
    size_t n_w;
    int32_t *sym;       /* all words' tokens, word i at sym[start[i] .. start[i] + len[i]) */
    size_t *start;
    uint32_t *len;
    uint64_t *freq;
    int32_t *stamp;     /* last merge that rewrote the word */
    /* pairs: open addressing map (a, b) -> index into pi */
    uint64_t *pkey;
    int32_t *pval;
    size_t pcap, n_pi, cap_pi;
    pair_info *pi;
    heap_item *heap;
    size_t n_heap, cap_heap;
    /* tokens: bytes and a map bytes -> id */
    unsigned char *tb;
    size_t tb_n, tb_cap;
    size_t *toff;       /* (n_tok + 1) */
    size_t cap_toff;
    int n_tok;
    int32_t *tslot;     /* id + 1, 0 empty */
    size_t tcap;
    int32_t *merges;    /* 2 per merge */
    size_t cap_merges;
    int n_merges;
    knob_err *err;
} trainer_state;

static int heap_before(const heap_item *x, const heap_item *y)
{
    if (x->count != y->count)
        return x->count > y->count;
    if (x->a != y->a)
        return x->a < y->a;
    return x->b < y->b;
}

static knob_status heap_push(trainer_state *t, int64_t count, int32_t a, int32_t b)
{
    knob_status s = grow((void **)&t->heap, &t->cap_heap, t->n_heap + 1, sizeof *t->heap, t->err);
    if (s)
        return s;
    heap_item v = {count, a, b};
    size_t i = t->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_before(&v, &t->heap[p]))
            break;
        t->heap[i] = t->heap[p];
        i = p;
    }
    t->heap[i] = v;
    return KNOB_OK;
}

static heap_item heap_pop(trainer_state *t)
{
    heap_item top = t->heap[0], v = t->heap[--t->n_heap];
    size_t i = 0, n = t->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_before(&t->heap[c + 1], &t->heap[c]))
            c++;
        if (!heap_before(&t->heap[c], &v))
            break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n)
        t->heap[i] = v;
    return top;
}

/* The pair (a, b)'s info, created when absent (NULL on allocation failure, with t->err set). */
static pair_info *pair_get(trainer_state *t, int32_t a, int32_t b, int create)
{
    if (create && 2 * (t->n_pi + 1) > t->pcap) {   /* rehash */
        size_t cap = t->pcap ? 2 * t->pcap : 1 << 14;
        uint64_t *k = knob_calloc(cap, sizeof *k);
        int32_t *v = knob_malloc(cap * sizeof *v);
        if (!k || !v) {
            knob_free(k);
            knob_free(v);
            knob_fail(t->err, KNOB_ERR_NOMEM, "bpe train: out of memory");
            return NULL;
        }
        for (size_t i = 0; i < t->pcap; i++) {
            if (!t->pkey[i])
                continue;
            size_t j = knob_hash_u64(t->pkey[i]) & (cap - 1);
            while (k[j])
                j = (j + 1) & (cap - 1);
            k[j] = t->pkey[i];
            v[j] = t->pval[i];
        }
        knob_free(t->pkey);
        knob_free(t->pval);
        t->pkey = k;
        t->pval = v;
        t->pcap = cap;
    }
    if (!t->pcap)
        return NULL;
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    size_t j = knob_hash_u64(key) & (t->pcap - 1);
    for (; t->pkey[j]; j = (j + 1) & (t->pcap - 1))
        if (t->pkey[j] == key)
            return &t->pi[t->pval[j]];
    if (!create)
        return NULL;
    if (grow((void **)&t->pi, &t->cap_pi, t->n_pi + 1, sizeof *t->pi, t->err))
        return NULL;
    t->pkey[j] = key;
    t->pval[j] = (int32_t)t->n_pi;
    pair_info *p = &t->pi[t->n_pi++];
    memset(p, 0, sizeof *p);
    p->a = a;
    p->b = b;
    return p;
}

static knob_status pair_add(trainer_state *t, int32_t a, int32_t b, int64_t delta, int32_t word)
{
    pair_info *p = pair_get(t, a, b, 1);
    if (!p)
        return t->err->code ? t->err->code : KNOB_ERR_NOMEM;
    p->count += delta;
    if (word >= 0 && (p->n_where == 0 || p->where[p->n_where - 1] != word)) {
        knob_status s = grow((void **)&p->where, &p->cap_where, p->n_where + 1, sizeof *p->where, t->err);
        if (s)
            return s;
        p->where[p->n_where++] = word;
    }
    return KNOB_OK;
}

static int token_find(const trainer_state *t, const unsigned char *p, size_t n, size_t *where)
{
    size_t j = knob_hash_bytes(p, n) & (t->tcap - 1);
    for (; t->tslot[j]; j = (j + 1) & (t->tcap - 1)) {
        int id = t->tslot[j] - 1;
        if (t->toff[id + 1] - t->toff[id] == n && memcmp(t->tb + t->toff[id], p, n) == 0)
            return id;
    }
    *where = j;
    return -1;
}

/* Appends a token with bytes p[0..n) (not pointing into t->tb), which must be new. */
static knob_status token_add(trainer_state *t, const unsigned char *p, size_t n)
{
    knob_status s;
    if (2 * ((size_t)t->n_tok + 1) > t->tcap) {
        size_t cap = t->tcap ? 2 * t->tcap : 1024;
        int32_t *slot = knob_calloc(cap, sizeof *slot);
        if (!slot)
            return knob_fail(t->err, KNOB_ERR_NOMEM, "bpe train: out of memory");
        for (int id = 0; id < t->n_tok; id++) {
            size_t j = knob_hash_bytes(t->tb + t->toff[id], t->toff[id + 1] - t->toff[id]) & (cap - 1);
            while (slot[j])
                j = (j + 1) & (cap - 1);
            slot[j] = id + 1;
        }
        knob_free(t->tslot);
        t->tslot = slot;
        t->tcap = cap;
    }
    if ((s = grow((void **)&t->tb, &t->tb_cap, t->tb_n + n, 1, t->err)) ||
        (s = grow((void **)&t->toff, &t->cap_toff, (size_t)t->n_tok + 2, sizeof *t->toff, t->err)))
        return s;
    memcpy(t->tb + t->tb_n, p, n);
    size_t where;
    int id = token_find(t, t->tb + t->tb_n, n, &where);
    KNOB_ASSERT(id < 0);
    t->tslot[where] = t->n_tok + 1;
    t->tb_n += n;
    t->toff[t->n_tok + 1] = t->tb_n;
    t->n_tok++;
    return KNOB_OK;
}

static void trainer_state_free(trainer_state *t)
{
    for (size_t i = 0; i < t->n_pi; i++)
        knob_free(t->pi[i].where);
    knob_free(t->pi);
    knob_free(t->pkey);
    knob_free(t->pval);
    knob_free(t->heap);
    knob_free(t->sym);
    knob_free(t->start);
    knob_free(t->len);
    knob_free(t->freq);
    knob_free(t->stamp);
    knob_free(t->tb);
    knob_free(t->toff);
    knob_free(t->tslot);
    knob_free(t->merges);
}

/* Rewrites word w: A B -> C, left to right; its pairs' counts move from the old to the new ones. */
static knob_status rewrite_word(trainer_state *t, int32_t w, int32_t A, int32_t B, int32_t C)
{
    int32_t *s = t->sym + t->start[w];
    uint32_t n = t->len[w];
    int64_t f = (int64_t)t->freq[w];
    knob_status st;
    for (uint32_t i = 0; i + 1 < n; i++)
        if ((st = pair_add(t, s[i], s[i + 1], -f, -1)))
            return st;
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i + 1 < n && s[i] == A && s[i + 1] == B) {
            s[k++] = C;
            i++;
        } else {
            s[k++] = s[i];
        }
    }
    t->len[w] = n = k;
    for (uint32_t i = 0; i + 1 < n; i++) {
        int with_c = s[i] == C || s[i + 1] == C;
        if ((st = pair_add(t, s[i], s[i + 1], f, with_c ? w : -1)))
            return st;
    }
    return KNOB_OK;
}

static knob_status learn(trainer_state *t, const knob_bpe_trainer *tr, int vocab_size)
{
    knob_status s;
    /* bytes in the order of their printable code points */
    int order[256];
    for (int b = 0; b < 256; b++)
        order[b] = b;
    for (int i = 1; i < 256; i++)   /* insertion sort by code point */
        for (int j = i; j > 0 && knob_bpe_byte_to_cp(order[j - 1]) > knob_bpe_byte_to_cp(order[j]); j--) {
            int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    int id_of_byte[256];
    if ((s = grow((void **)&t->toff, &t->cap_toff, 258, sizeof *t->toff, t->err)))
        return s;
    t->toff[0] = 0;
    for (int i = 0; i < 256; i++) {
        unsigned char u = (unsigned char)order[i];
        id_of_byte[order[i]] = i;
        if ((s = token_add(t, &u, 1)))
            return s;
    }
    /* words as byte tokens */
    t->n_w = tr->n_unique;
    t->sym = knob_malloc((tr->blob_n ? tr->blob_n : 1) * sizeof *t->sym);
    t->start = knob_malloc((t->n_w + 1) * sizeof *t->start);
    t->len = knob_malloc((t->n_w + 1) * sizeof *t->len);
    t->freq = knob_malloc((t->n_w + 1) * sizeof *t->freq);
    t->stamp = knob_malloc((t->n_w + 1) * sizeof *t->stamp);
    if (!t->sym || !t->start || !t->len || !t->freq || !t->stamp)
        return knob_fail(t->err, KNOB_ERR_NOMEM, "bpe train: out of memory for %zu words", t->n_w);
    /* words in hash-table order: the merges do not depend on it (counts are sums, ties go by id) */
    size_t w = 0;
    for (size_t i = 0; i < tr->cap; i++)
        if (tr->slot[i].len) {
            t->start[w] = tr->slot[i].off;
            t->len[w] = tr->slot[i].len;
            t->freq[w] = tr->slot[i].count;
            t->stamp[w] = -1;
            w++;
        }
    for (size_t i = 0; i < tr->blob_n; i++)
        t->sym[i] = id_of_byte[tr->blob[i]];
    for (size_t i = 0; i < t->n_w; i++) {
        const int32_t *p = t->sym + t->start[i];
        for (uint32_t j = 0; j + 1 < t->len[i]; j++)
            if ((s = pair_add(t, p[j], p[j + 1], (int64_t)t->freq[i], (int32_t)i)))
                return s;
    }
    for (size_t i = 0; i < t->n_pi; i++)
        if ((s = heap_push(t, t->pi[i].count, t->pi[i].a, t->pi[i].b)))
            return s;
    /* merge until the vocabulary (plus <|endoftext|>) is full */
    int32_t *touched = NULL;
    size_t n_touched = 0, cap_touched = 0;
    while (t->n_tok < vocab_size - 1 && t->n_heap) {
        heap_item top = heap_pop(t);
        pair_info *p = pair_get(t, top.a, top.b, 0);
        if (!p || p->count != top.count) {   /* stale: the count fell since this entry was pushed */
            if (p && p->count >= MIN_PAIR_COUNT && (s = heap_push(t, p->count, p->a, p->b)))
                break;
            continue;
        }
        if (top.count < MIN_PAIR_COUNT)
            break;
        int32_t A = top.a, B = top.b;
        size_t la = t->toff[A + 1] - t->toff[A], lb = t->toff[B + 1] - t->toff[B];
        unsigned char *ab = knob_malloc(la + lb);
        if (!ab) {
            s = knob_fail(t->err, KNOB_ERR_NOMEM, "bpe train: out of memory");
            break;
        }
        memcpy(ab, t->tb + t->toff[A], la);
        memcpy(ab + la, t->tb + t->toff[B], lb);
        size_t where;
        int32_t C = token_find(t, ab, la + lb, &where);
        if (C < 0) {
            C = t->n_tok;
            s = token_add(t, ab, la + lb);
        }
        knob_free(ab);
        if (s || (s = grow((void **)&t->merges, &t->cap_merges, 2 * ((size_t)t->n_merges + 1), sizeof *t->merges, t->err)))
            break;
        t->merges[2 * t->n_merges] = A;
        t->merges[2 * t->n_merges + 1] = B;
        int stamp = t->n_merges++;
        /* the words list moves out of p: rewriting adds pairs, which may move t->pi */
        int32_t *list = p->where;
        size_t n_list = p->n_where;
        p->where = NULL;
        p->n_where = p->cap_where = 0;
        for (size_t i = 0; i < n_list && !s; i++) {
            int32_t wi = list[i];
            if (t->stamp[wi] == stamp)
                continue;
            t->stamp[wi] = stamp;
            s = rewrite_word(t, wi, A, B, C);
            if (!s && !(s = grow((void **)&touched, &cap_touched, n_touched + 1, sizeof *touched, t->err)))
                touched[n_touched++] = wi;
        }
        knob_free(list);
        /* push the pairs holding C (the only ones that can have grown) with their new counts */
        for (size_t i = 0; i < n_touched && !s; i++) {
            const int32_t *q = t->sym + t->start[touched[i]];
            for (uint32_t j = 0; j + 1 < t->len[touched[i]] && !s; j++)
                if (q[j] == C || q[j + 1] == C) {
                    pair_info *np = pair_get(t, q[j], q[j + 1], 0);
                    if (np && np->count >= MIN_PAIR_COUNT)
                        s = heap_push(t, np->count, np->a, np->b);
                }
        }
        n_touched = 0;
        if (s)
            break;
    }
    knob_free(touched);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Writing */

/* Token bytes in GPT-2's alphabet, as JSON string content (ASCII; \u escapes above 0x7e). */
static void put_alphabet(FILE *f, const unsigned char *p, size_t n, int json)
{
    for (size_t i = 0; i < n; i++) {
        int cp = knob_bpe_byte_to_cp(p[i]);
        if (json && (cp == '"' || cp == '\\'))
            fprintf(f, "\\%c", cp);
        else if (json && cp > 0x7e)
            fprintf(f, "\\u%04x", cp);
        else if (cp <= 0x7e)
            fputc(cp, f);
        else {
            unsigned char u[4];
            fwrite(u, 1, (size_t)knob_utf8_encode((uint32_t)cp, u), f);
        }
    }
}

static knob_status write_files(const trainer_state *t, const char *dir, knob_err *err)
{
    knob_status s = knob_mkdirs(dir, err);
    if (s)
        return s;
    char path[4200];
    knob_atomic a;
    snprintf(path, sizeof path, "%s/encoder.json", dir);
    if ((s = knob_atomic_open(&a, path, err)))
        return s;
    fputc('{', a.f);
    for (int id = 0; id < t->n_tok; id++) {
        fputs(id ? ", \"" : "\"", a.f);
        put_alphabet(a.f, t->tb + t->toff[id], t->toff[id + 1] - t->toff[id], 1);
        fprintf(a.f, "\": %d", id);
    }
    fprintf(a.f, ", \"" EOT_TEXT "\": %d}", t->n_tok);
    if ((s = knob_atomic_commit(&a, err)))
        return s;
    snprintf(path, sizeof path, "%s/vocab.bpe", dir);
    if ((s = knob_atomic_open(&a, path, err)))
        return s;
    fputs("#version: 0.2\n", a.f);
    for (int m = 0; m < t->n_merges; m++) {
        int32_t A = t->merges[2 * m], B = t->merges[2 * m + 1];
        put_alphabet(a.f, t->tb + t->toff[A], t->toff[A + 1] - t->toff[A], 0);
        fputc(' ', a.f);
        put_alphabet(a.f, t->tb + t->toff[B], t->toff[B + 1] - t->toff[B], 0);
        fputc('\n', a.f);
    }
    return knob_atomic_commit(&a, err);
}

knob_status knob_bpe_trainer_save(knob_bpe_trainer *tr, int vocab_size, const char *dir,
                                  knob_bpe_stats *st, knob_err *err)
{
    if (vocab_size < 257 || vocab_size > (1 << 20))
        return knob_fail(err, KNOB_ERR_USAGE,
                         "bpe train: vocabulary size %d is outside [257, %d] (256 bytes + end-of-text + merges)",
                         vocab_size, 1 << 20);
    trainer_state t;
    memset(&t, 0, sizeof t);
    t.err = err;
    knob_status s = learn(&t, tr, vocab_size);
    if (!s)
        s = write_files(&t, dir, err);
    if (!s && st) {
        st->n_bytes = tr->n_bytes;
        st->n_words = tr->n_words;
        st->n_unique = tr->n_unique;
        st->n_merges = t.n_merges;
        st->vocab_size = t.n_tok + 1;
    }
    trainer_state_free(&t);
    return s;
}
