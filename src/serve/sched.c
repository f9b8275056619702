/* sched.c: the scheduler of knob serve. One thread owns the lm (its passes share scratch, so only
 * one thread may run them) and `parallel` slots, each a knob_lm_seq with its own key/value cache
 * over the lm's one copy of the weights. Requests wait in a bounded queue; between steps the loop
 * drops requests whose client went away, takes waiting ones into free slots (prefill: the prompt
 * in one pass), samples one token for every running request, and feeds all those tokens in one
 * batched knob_lm_decode pass: continuous batching, a request joins or leaves between any two steps.
 *
 * Sampling is knob_generate's: knob_sample on the sequence's last logits with the request's own
 * RNG, the token's piece appended to the text; stop strings are cut as knob_lm_generate cuts its
 * one stop string (several here), and text that could still begin a stop string or ends inside
 * a UTF-8 character is held back until it cannot. A full context ends the request ("length").
 * A test hook, KNOB_SERVE_STEP_DELAY_MS, sleeps after every step (a slow model for the tests).
 *
 * Not here: HTTP (http.c), the JSON of requests and responses (openai.c). */
#include "knob_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct slot {
    knob_lm_seq *q;
    knob_serve_req *r;       /* NULL: free */
    knob_rng rng;
    size_t max_stop;         /* longest stop string */
    int fresh;               /* taken this round: prefill first */
} slot;

struct knob_serve_sched {
    knob_lm *lm;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t work;     /* the loop waits here for requests */
    pthread_cond_t out;      /* readers wait here for output */
    int stopping;
    int sync;                /* the mutex and conditions were made */
    int q_room;              /* requests that may wait beyond the free slots */
    slot *slots;
    int n_slots;
    knob_serve_req **queue;  /* a ring of cap */
    int q_head, q_len, q_cap;
    knob_serve_stats st;
    long delay_us;           /* test hook: KNOB_SERVE_STEP_DELAY_MS sleeps after every step */
    /* the loop's scratch (V) */
    float *probs;
    int *idx;
    knob_lm_seq **batch_q;
    int32_t *batch_tok;
};

/* ------------------------------------------------------------------------------------------------
 * Output, written under the lock */

static int text_put(knob_serve_req *r, const char *p, size_t n)
{
    if (r->text_len + n + 1 > r->text_cap) {
        size_t c = r->text_cap ? 2 * r->text_cap : 256;
        while (c < r->text_len + n + 1)
            c *= 2;
        char *b = knob_realloc(r->text, c);
        if (!b)
            return 0;
        r->text = b;
        r->text_cap = c;
    }
    memcpy(r->text + r->text_len, p, n);
    r->text_len += n;
    r->text[r->text_len] = '\0';
    return 1;
}

static knob_serve_tok *tok_push(knob_serve_req *r)
{
    if (r->n_toks == r->cap_toks) {
        int c = r->cap_toks ? 2 * r->cap_toks : 32;
        knob_serve_tok *t = knob_realloc(r->toks, (size_t)c * sizeof *t);
        if (!t)
            return NULL;
        r->toks = t;
        r->cap_toks = c;
    }
    knob_serve_tok *t = &r->toks[r->n_toks++];
    memset(t, 0, sizeof *t);
    return t;
}

static void fail_req(knob_serve_req *r, int status, const char *msg)
{
    r->err_status = status;
    snprintf(r->err_msg, sizeof r->err_msg, "%.500s", msg);
    r->done = 1;
}

/* the last reference frees; lock held */
static void unref(knob_serve_req *r)
{
    if (--r->refs == 0)
        knob_serve_req_free(r);
}

/* final_len / final_toks after new text: hold back what could begin a stop string or ends inside
 * a UTF-8 character */
static void release_final(knob_serve_req *r, size_t max_stop)
{
    size_t safe = r->text_len;
    if (max_stop > 1)
        safe = safe > max_stop - 1 ? safe - (max_stop - 1) : 0;
    if (safe > r->final_len)
        r->final_len += knob_utf8_complete(r->text + r->final_len, safe - r->final_len);
    while (r->final_toks < r->n_toks && r->toks[r->final_toks].offset < r->final_len)
        r->final_toks++;
}

static void finish_req(knob_serve_req *r, const char *why)
{
    r->finish = why;
    r->final_len = r->text_len;
    /* tokens wholly inside a cut stop string are not part of the completion */
    int n = r->n_toks;
    if (strcmp(why, "stop") == 0)
        while (n > 0 && r->toks[n - 1].offset >= r->text_len && r->text_len > 0)
            n--;
    r->n_toks = n;
    r->final_toks = n;
    r->done = 1;
}

static long find(const char *hay, size_t n, const char *needle, size_t m)
{
    for (size_t i = 0; m && i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return (long)i;
    return -1;
}

/* ------------------------------------------------------------------------------------------------
 * One step of one slot: sample, append, decide whether it goes on. Returns the token to feed,
 * or -1 when the request ended. Lock held (the appends are read by the HTTP threads). */

static double log_sum_exp(const float *x, int n)
{
    float m = x[0];
    for (int i = 1; i < n; i++)
        m = x[i] > m ? x[i] : m;
    double s = 0;
    for (int i = 0; i < n; i++)
        s += exp((double)(x[i] - m));
    return (double)m + log(s);
}

static int step_slot(knob_serve_sched *S, slot *sl)
{
    knob_serve_req *r = sl->r;
    const knob_gpt_config *c = knob_lm_config(S->lm);
    int V = c->vocab_size;
    const float *logits = knob_lm_logits(sl->q);
    int tok = knob_sample(logits, V, &r->sampler, &sl->rng, S->probs, S->idx);
    if (r->n_completion == 0)
        r->t_first = knob_now();
    if (tok == knob_lm_eot(S->lm)) {
        finish_req(r, "stop");
        return -1;
    }
    size_t n;
    const char *piece = knob_tok_piece(knob_lm_tokenizer(S->lm), tok, &n);
    if (!piece)
        piece = "", n = 0;   /* an id of the padded vocabulary: nothing to print */
    size_t before = r->text_len;
    knob_serve_tok *t = tok_push(r);
    if (!t || !text_put(r, piece, n)) {
        fail_req(r, 500, "server: out of memory");
        return -1;
    }
    t->id = tok;
    t->offset = before;
    if (r->logprobs) {
        double lse = log_sum_exp(logits, V);
        t->logprob = (float)(logits[tok] - lse);
        t->n_top = knob_top_tokens(logits, V, r->n_top, t->top_id, S->idx);
        for (int k = 0; k < t->n_top; k++)
            t->top_lp[k] = (float)(logits[t->top_id[k]] - lse);
    }
    r->n_completion++;
    S->st.completion_tokens++;
    for (int k = 0; k < r->n_stop; k++) {
        size_t m = strlen(r->stop[k]);
        size_t from = before >= m ? before - m + 1 : 0;
        long at = find(r->text + from, r->text_len - from, r->stop[k], m);
        if (at >= 0) {
            r->text_len = from + (size_t)at;
            r->text[r->text_len] = '\0';
            finish_req(r, "stop");
            return -1;
        }
    }
    if (r->n_completion >= r->max_tokens || knob_lm_seq_len(sl->q) >= c->block_size) {
        finish_req(r, "length");
        return -1;
    }
    release_final(r, sl->max_stop);
    return tok;
}

/* ------------------------------------------------------------------------------------------------
 * The loop */

static void take_waiting(knob_serve_sched *S)
{
    for (int i = 0; i < S->n_slots && S->q_len > 0; i++) {
        if (S->slots[i].r)
            continue;
        knob_serve_req *r = NULL;
        while (S->q_len > 0 && !r) {
            r = S->queue[S->q_head];
            S->q_head = (S->q_head + 1) % S->q_cap;
            S->q_len--;
            if (r->cancelled) {
                unref(r);
                r = NULL;
            }
        }
        if (!r)
            break;
        slot *sl = &S->slots[i];
        sl->r = r;
        sl->fresh = 1;
        knob_rng_seed(&sl->rng, r->seed);
        sl->max_stop = 0;
        for (int k = 0; k < r->n_stop; k++)
            sl->max_stop = KNOB_MAX(sl->max_stop, strlen(r->stop[k]));
    }
}

static void *loop(void *arg)
{
    knob_serve_sched *S = arg;
    knob_err err;
    pthread_mutex_lock(&S->mu);
    for (;;) {
        /* leave: cancelled or finished requests free their slots at once */
        int active = 0;
        for (int i = 0; i < S->n_slots; i++) {
            slot *sl = &S->slots[i];
            if (sl->r && (sl->r->cancelled || sl->r->done || S->stopping)) {
                if (!sl->r->done)
                    finish_req(sl->r, "length");
                unref(sl->r);
                sl->r = NULL;
            }
            active += sl->r != NULL;
        }
        if (S->stopping) {
            while (S->q_len > 0) {
                knob_serve_req *r = S->queue[S->q_head];
                S->q_head = (S->q_head + 1) % S->q_cap;
                S->q_len--;
                fail_req(r, 503, "server: shutting down");
                unref(r);
            }
            pthread_cond_broadcast(&S->out);
            break;
        }
        /* join */
        take_waiting(S);
        active = 0;
        for (int i = 0; i < S->n_slots; i++)
            active += S->slots[i].r != NULL;
        S->st.active = active;
        S->st.queued = S->q_len;
        if (active == 0) {
            pthread_cond_wait(&S->work, &S->mu);
            continue;
        }
        /* prefill the new ones (the lm is ours alone: no lock needed for the pass itself) */
        double t0 = knob_now();
        for (int i = 0; i < S->n_slots; i++) {
            slot *sl = &S->slots[i];
            if (!sl->r || !sl->fresh)
                continue;
            sl->fresh = 0;
            knob_serve_req *r = sl->r;
            pthread_mutex_unlock(&S->mu);
            knob_lm_seq_reset(sl->q);
            knob_status s = knob_lm_feed(sl->q, r->prompt, r->n_prompt, &err);
            pthread_mutex_lock(&S->mu);
            if (s)
                fail_req(r, 400, err.msg);
            S->st.prompt_tokens += r->n_prompt;
        }
        /* sample one token for each, and batch the ones that go on into one pass */
        int n = 0;
        for (int i = 0; i < S->n_slots; i++) {
            slot *sl = &S->slots[i];
            if (!sl->r || sl->r->done || sl->r->cancelled)
                continue;
            int tok = step_slot(S, sl);
            if (tok >= 0) {
                S->batch_q[n] = sl->q;
                S->batch_tok[n] = tok;
                n++;
            }
        }
        pthread_cond_broadcast(&S->out);
        if (n > 0) {
            pthread_mutex_unlock(&S->mu);
            knob_status s = knob_lm_decode(S->batch_q, S->batch_tok, n, &err);
            pthread_mutex_lock(&S->mu);
            S->st.decode_steps++;
            S->st.decode_rows += (uint64_t)n;
            if (s)   /* not expected (the checks above keep within the context): fail those requests */
                for (int i = 0; i < S->n_slots; i++)
                    if (S->slots[i].r && !S->slots[i].r->done)
                        fail_req(S->slots[i].r, 500, err.msg);
        }
        S->st.busy_seconds += knob_now() - t0;
        if (S->delay_us > 0) {   /* the tests' slow model: requests that last long enough to queue or cut */
            pthread_mutex_unlock(&S->mu);
            struct timespec ts = {S->delay_us / 1000000, (S->delay_us % 1000000) * 1000};
            nanosleep(&ts, NULL);
            pthread_mutex_lock(&S->mu);
        }
    }
    pthread_mutex_unlock(&S->mu);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------
 * The public side */

knob_status knob_serve_sched_new(knob_serve_sched **out, knob_lm *lm, int parallel, int queue, knob_err *err)
{
    *out = NULL;
    if (parallel < 1 || parallel > 64)
        return knob_fail(err, KNOB_ERR_USAGE, "serve: --parallel %d is outside [1, 64]", parallel);
    if (queue < 1 || queue > 1 << 20)
        return knob_fail(err, KNOB_ERR_USAGE, "serve: a queue of %d is outside [1, 1048576]", queue);
    knob_serve_sched *S = knob_calloc(1, sizeof *S);
    if (!S)
        return knob_fail(err, KNOB_ERR_NOMEM, "serve: out of memory");
    int V = knob_lm_config(lm)->vocab_size;
    S->lm = lm;
    S->n_slots = parallel;
    S->q_room = queue;
    S->q_cap = queue + parallel;   /* the ring also holds those about to take a free slot */
    S->st.slots = parallel;
    const char *delay = getenv("KNOB_SERVE_STEP_DELAY_MS");
    S->delay_us = delay ? (long)(strtod(delay, NULL) * 1000) : 0;
    if (S->delay_us < 0 || S->delay_us > 10000000)
        S->delay_us = 0;
    S->slots = knob_calloc((size_t)parallel, sizeof *S->slots);
    S->queue = knob_calloc((size_t)S->q_cap, sizeof *S->queue);
    S->probs = knob_malloc((size_t)V * sizeof *S->probs);
    S->idx = knob_malloc((size_t)V * sizeof *S->idx);
    S->batch_q = knob_calloc((size_t)parallel, sizeof *S->batch_q);
    S->batch_tok = knob_calloc((size_t)parallel, sizeof *S->batch_tok);
    knob_status s = KNOB_OK;
    if (!S->slots || !S->queue || !S->probs || !S->idx || !S->batch_q || !S->batch_tok)
        s = knob_fail(err, KNOB_ERR_NOMEM, "serve: out of memory");
    for (int i = 0; !s && i < parallel; i++)
        s = knob_lm_seq_new(lm, &S->slots[i].q, err);
    if (!s) {
        pthread_mutex_init(&S->mu, NULL);
        pthread_cond_init(&S->work, NULL);
        pthread_cond_init(&S->out, NULL);
        S->sync = 1;
        if (pthread_create(&S->thread, NULL, loop, S) != 0)
            s = knob_fail(err, KNOB_ERR_IO, "serve: cannot start the scheduler thread");
        else
            S->started = 1;
    }
    if (s) {
        knob_serve_sched_free(S);
        return s;
    }
    *out = S;
    return KNOB_OK;
}

void knob_serve_sched_stop(knob_serve_sched *S)
{
    if (!S || !S->started)
        return;
    pthread_mutex_lock(&S->mu);
    S->stopping = 1;
    pthread_cond_signal(&S->work);
    pthread_mutex_unlock(&S->mu);
    pthread_join(S->thread, NULL);
    S->started = 0;
}

void knob_serve_sched_free(knob_serve_sched *S)
{
    if (!S)
        return;
    knob_serve_sched_stop(S);
    for (int i = 0; S->slots && i < S->n_slots; i++)
        knob_lm_seq_free(S->slots[i].q);
    if (S->sync) {
        pthread_mutex_destroy(&S->mu);
        pthread_cond_destroy(&S->work);
        pthread_cond_destroy(&S->out);
    }
    knob_free(S->slots);
    knob_free(S->queue);
    knob_free(S->probs);
    knob_free(S->idx);
    knob_free(S->batch_q);
    knob_free(S->batch_tok);
    knob_free(S);
}

int knob_serve_sched_submit(knob_serve_sched *S, knob_serve_req *r, knob_err *err)
{
    pthread_mutex_lock(&S->mu);
    int free_slot = 0;
    for (int i = 0; i < S->n_slots; i++)
        free_slot += S->slots[i].r == NULL;
    /* the queue holds the requests beyond the free slots (the loop takes those at its next turn) */
    int room = S->q_len < S->q_room + free_slot;
    int status = 200;
    if (S->stopping) {
        status = 503;
        knob_fail(err, KNOB_ERR_USAGE, "server: shutting down");
    } else if (!room) {
        status = 503;
        S->st.rejected++;
        knob_fail(err, KNOB_ERR_USAGE, "server: busy: all %d sequences are running and %d requests wait; try "
                  "again later", S->n_slots, S->q_len - free_slot);
    } else {
        S->queue[(S->q_head + S->q_len) % S->q_cap] = r;
        S->q_len++;
        r->refs = 2;
        r->t_submit = knob_now();
        S->st.requests++;
        S->st.queued = S->q_len;
        pthread_cond_signal(&S->work);
    }
    pthread_mutex_unlock(&S->mu);
    return status;
}

void knob_serve_sched_release(knob_serve_sched *S, knob_serve_req *r)
{
    pthread_mutex_lock(&S->mu);
    if (!r->done)
        r->cancelled = 1;
    unref(r);
    pthread_cond_signal(&S->work);   /* a cancelled request leaves its slot before the next step */
    pthread_mutex_unlock(&S->mu);
}

void knob_serve_sched_lock(knob_serve_sched *S) { pthread_mutex_lock(&S->mu); }
void knob_serve_sched_unlock(knob_serve_sched *S) { pthread_mutex_unlock(&S->mu); }

void knob_serve_sched_wait(knob_serve_sched *S, double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double whole = floor(seconds);
    ts.tv_sec += (time_t)whole;
    ts.tv_nsec += (long)((seconds - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&S->out, &S->mu, &ts);   /* a timeout or a spurious wake: the caller looks again */
}

void knob_serve_sched_stats(knob_serve_sched *S, knob_serve_stats *st)
{
    pthread_mutex_lock(&S->mu);
    *st = S->st;
    st->queued = S->q_len;
    pthread_mutex_unlock(&S->mu);
}
