/* dist.c: data parallelism across processes with MPI, the only file that includes <mpi.h>.
 *
 * One job is N processes (ranks) started by mpirun; each computes the gradient of its share of
 * every global batch, and the ranks sum those gradients here. MPI is initialised only when the
 * environment says mpirun started this process (OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK), so a
 * plain `knob` run never touches it; a build without MPI (no mpicc found, or make MPI=0) compiles
 * the same functions as a single process and refuses to run as one of several ranks.
 *
 * Determinism: MPI_Allreduce does not promise an order of summation, so the sums here are built
 * from point-to-point messages: the parameter block is cut into N slices, rank s receives every
 * rank's copy of slice s and adds them in rank order (((g0 + g1) + g2) + ...) element by element
 * (a reduce-scatter), then every rank receives every other slice from its owner (an all-gather).
 * The same N gives the same bits, whatever the thread counts or the message timing. Each rank
 * sends and receives 2 (N-1)/N of the block per step, as a ring all-reduce does. The receive
 * buffer is allocated once (knob_dist_comm_new), in chunks of at most CHUNK floats per peer.
 *
 * Faults: every wait polls its requests (sleeping between polls, so a waiting rank leaves the CPU
 * to the ones still computing) with a deadline, KNOB_DIST_TIMEOUT seconds (default 600): a rank
 * that stops answering ends the job with "step N: no answer from rank R in T s". A rank that
 * dies is seen by mpirun, which names it and stops the others with SIGTERM; the handler here then
 * says which step this rank was at and which rank it was waiting for. Errors all ranks reached
 * together (settings that differ, a non-finite loss) are "agreed": rank 0 alone reports them and
 * every rank finalises; any other error aborts the job (MPI_Abort) after its rank printed it.
 *
 * Not here: which rows each rank takes (the trainers), when to reduce (step.c). */
#include "knob_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef KNOB_MPI
#include <mpi.h>
#endif

#define CHUNK (1u << 18)   /* floats per peer per round of the reduce-scatter: 1 MiB */
#define MAX_SMALL 16       /* doubles per rank in knob_dist_sum_f64 and knob_dist_check_same */

static int g_active;        /* MPI_Init was called here */
static int g_rank, g_size = 1;
static int g_agreed;        /* the current error was reached by every rank together */
static double g_timeout = 600;
static double g_comm_s;     /* seconds spent in the reductions */
static volatile sig_atomic_t g_step = -1, g_waiting = -1;

int knob_dist_rank(void) { return g_rank; }
int knob_dist_size(void) { return g_size; }
int knob_dist_active(void) { return g_active && g_size > 1; }
double knob_dist_comm_seconds(void) { return g_comm_s; }
void knob_dist_agree(void) { g_agreed = 1; }
int knob_dist_reports(void) { return !g_active || g_rank == 0 || !g_agreed; }

int knob_dist_built(void)
{
#ifdef KNOB_MPI
    return 1;
#else
    return 0;
#endif
}

static int launched_by_mpirun(long *size)
{
    const char *s = getenv("OMPI_COMM_WORLD_SIZE");
    if (!s)
        s = getenv("PMI_SIZE");
    *size = s ? strtol(s, NULL, 10) : 0;
    return s || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

/* ------------------------------------------------------------------------------------------------
 * Start and end */

#ifdef KNOB_MPI
/* async-signal-safe: digits of v into p, returning the end */
static char *put_long(char *p, long v)
{
    char tmp[24];
    int n = 0;
    if (v < 0) {
        *p++ = '-';
        v = -v;
    }
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < 23);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_str(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

/* mpirun stops the other ranks with SIGTERM when one dies: say where this one was */
static void on_term(int sig)
{
    char msg[256], *p = msg;
    p = put_str(p, "knob: error: rank ");
    p = put_long(p, g_rank);
    p = put_str(p, " stopped");
    if (g_step >= 0) {
        p = put_str(p, " at step ");
        p = put_long(p, (long)g_step);
    }
    if (g_waiting >= 0) {
        p = put_str(p, " while waiting for rank ");
        p = put_long(p, (long)g_waiting);
    }
    p = put_str(p, ": the job was stopped (a rank failed or was killed; mpirun names it)\n");
    ssize_t w = write(2, msg, (size_t)(p - msg));
    (void)w;
    _exit(128 + sig);
}
#endif

knob_status knob_dist_init(knob_err *err)
{
    long n = 0;
    if (g_active || !launched_by_mpirun(&n))
        return KNOB_OK;
    const char *t = getenv("KNOB_DIST_TIMEOUT");
    if (t && t[0]) {
        char *end;
        errno = 0;
        double v = strtod(t, &end);
        if (errno || *end || !(v > 0 && v <= 1e7))
            return knob_fail(err, KNOB_ERR_USAGE, "KNOB_DIST_TIMEOUT='%.64s' is not a number of seconds in (0, 1e7]", t);
        g_timeout = v;
    }
#ifndef KNOB_MPI
    if (n > 1)
        return knob_fail(err, KNOB_ERR_USAGE, "this knob was built without MPI, so it cannot be one of %ld ranks; "
                         "rebuild with libopenmpi-dev installed (make MPI=1)", n);
    return KNOB_OK;
#else
    int done = 0;
    MPI_Initialized(&done);
    if (!done && MPI_Init(NULL, NULL) != MPI_SUCCESS)
        return knob_fail(err, KNOB_ERR_IO, "MPI_Init failed");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    g_active = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    return KNOB_OK;
#endif
}

#ifdef KNOB_MPI
/* LeakSanitizer's check, when the build has it (make asan): run here, before MPI_Finalize unloads
 * OpenMPI's plugins, so that what they keep is reported under their names, which
 * tests/mpi_lsan.supp suppresses; knob's own memory is all freed by now and still checked */
extern void __lsan_do_leak_check(void) __attribute__((weak));
#endif

int knob_dist_exit(int code)
{
#ifdef KNOB_MPI
    if (!g_active)
        return code;
    if (code == 0 || g_agreed) {
        signal(SIGTERM, SIG_DFL);   /* ending anyway: mpirun's stop after rank 0's exit needs no message */
        if (__lsan_do_leak_check)
            __lsan_do_leak_check();
        MPI_Finalize();
        g_active = 0;
        return code;
    }
    signal(SIGTERM, SIG_DFL);          /* this rank has said what went wrong */
    MPI_Abort(MPI_COMM_WORLD, code);   /* the others may be waiting for this rank: stop them */
#endif
    return code;
}

/* ------------------------------------------------------------------------------------------------
 * Waiting with a deadline */

#ifdef KNOB_MPI
static void nap(int polls)
{
    if (polls < 64)
        return;
    struct timespec ts = {0, polls < 1024 ? 2000 : 50000};
    nanosleep(&ts, NULL);
}

/* waits for req[0..n), whose peers are peer[0..n) */
static knob_status wait_all(MPI_Request *req, const int *peer, int n, long step, knob_err *err)
{
    double t0 = MPI_Wtime();
    for (int polls = 0;; polls++) {
        int flag = 0;
        int rc = MPI_Testall(n, req, &flag, MPI_STATUSES_IGNORE);
        char when[32];   /* for messages: "step 12", or "start" before the first step */
        int late = MPI_Wtime() - t0 > g_timeout;
        if (rc != MPI_SUCCESS || late)
            snprintf(when, sizeof when, step >= 0 ? "step %ld" : "start", step);
        if (rc != MPI_SUCCESS)
            return knob_fail(err, KNOB_ERR_IO, "%s: rank %d: MPI error %d talking to the other ranks", when, g_rank, rc);
        if (flag)
            return KNOB_OK;
        for (int i = 0; i < n; i++) {   /* the first peer not heard from, for a SIGTERM or a timeout */
            int done = 1;
            if (req[i] != MPI_REQUEST_NULL)
                MPI_Request_get_status(req[i], &done, MPI_STATUS_IGNORE);
            if (!done) {
                g_waiting = peer[i];
                break;
            }
        }
        if (late)
            return knob_fail(err, KNOB_ERR_IO, "%s: rank %d had no answer from rank %d in %g s (it hangs or "
                             "died); stopping the job (KNOB_DIST_TIMEOUT sets the limit)", when, g_rank,
                             (int)g_waiting, g_timeout);
        nap(polls);
    }
}
#endif

/* ------------------------------------------------------------------------------------------------
 * Small sums and checks */

knob_status knob_dist_gather_f64(const double *v, int n, double *all, long step, knob_err *err)
{
    KNOB_ASSERT(n >= 0 && n <= MAX_SMALL);
    memcpy(all + (size_t)g_rank * n, v, (size_t)n * sizeof *v);
#ifdef KNOB_MPI
    if (!knob_dist_active() || n == 0)
        return KNOB_OK;
    if (step >= 0)
        g_step = step;
    enum { MAX_PEERS = 1024 };
    static MPI_Request req[2 * MAX_PEERS];
    static int peer[2 * MAX_PEERS];
    if (g_size > MAX_PEERS)
        return knob_fail(err, KNOB_ERR_USAGE, "%d ranks; knob handles at most %d", g_size, MAX_PEERS);
    int k = 0;
    for (int q = 0; q < g_size; q++) {
        if (q == g_rank)
            continue;
        peer[k] = q;
        MPI_Irecv(all + (size_t)q * n, n, MPI_DOUBLE, q, 7, MPI_COMM_WORLD, &req[k++]);
        peer[k] = q;
        MPI_Isend(v, n, MPI_DOUBLE, q, 7, MPI_COMM_WORLD, &req[k++]);
    }
    double t0 = MPI_Wtime();
    knob_status s = wait_all(req, peer, k, step, err);
    g_comm_s += MPI_Wtime() - t0;
    g_waiting = -1;
    return s;
#else
    (void)step;
    (void)err;
    return KNOB_OK;
#endif
}

knob_status knob_dist_sum_f64(double *v, int n, long step, knob_err *err)
{
    if (!knob_dist_active())
        return KNOB_OK;
    static double all[1024 * MAX_SMALL];
    if (g_size > 1024)
        return knob_fail(err, KNOB_ERR_USAGE, "%d ranks; knob handles at most 1024", g_size);
    knob_status s = knob_dist_gather_f64(v, n, all, step, err);
    if (s)
        return s;
    for (int i = 0; i < n; i++) {
        double a = all[i];
        for (int q = 1; q < g_size; q++)
            a += all[(size_t)q * n + i];
        v[i] = a;
    }
    return KNOB_OK;
}

knob_status knob_dist_barrier(knob_err *err)
{
    double v = 0;
    return knob_dist_sum_f64(&v, 1, -1, err);
}

knob_status knob_dist_check_same(const char *what, const void *bytes, size_t len, knob_err *err)
{
    if (!knob_dist_active())
        return KNOB_OK;
    uint64_t h = knob_hash_bytes(bytes, len);
    double v[2] = {(double)(h >> 32), (double)(h & 0xffffffffu)};
    static double all[1024 * 2];
    if (g_size > 1024)
        return knob_fail(err, KNOB_ERR_USAGE, "%d ranks; knob handles at most 1024", g_size);
    knob_status s = knob_dist_gather_f64(v, 2, all, -1, err);
    if (s)
        return s;
    for (int q = 1; q < g_size; q++)
        if (all[2 * q] != all[0] || all[2 * q + 1] != all[1]) {
            g_agreed = 1;   /* every rank sees the same table */
            return knob_fail(err, KNOB_ERR_USAGE, "rank %d and rank 0 differ in their %s; every rank must run the same "
                             "command on the same files", q, what);
        }
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Sums of a parameter block */

struct knob_dist_comm {
    size_t n;               /* floats in the block */
    size_t per;             /* floats per peer in rbuf: the longest slice, at most CHUNK */
    float *rbuf;            /* (N-1) x per: the other ranks' copies of a chunk of this rank's slice */
};

void knob_dist_slice(size_t n, int rank, size_t *lo, size_t *hi)
{
    *lo = (size_t)((unsigned long long)n * (unsigned)rank / (unsigned)g_size);
    *hi = (size_t)((unsigned long long)n * (unsigned)(rank + 1) / (unsigned)g_size);
}

knob_status knob_dist_comm_new(knob_dist_comm **out, size_t n, knob_err *err)
{
    *out = NULL;
    if (!knob_dist_active())
        return KNOB_OK;
    if (n < (size_t)g_size)
        return knob_fail(err, KNOB_ERR_USAGE, "%zu parameters cannot be split over %d ranks", n, g_size);
    knob_dist_comm *c = knob_calloc(1, sizeof *c);
    size_t lo, hi;
    knob_dist_slice(n, 0, &lo, &hi);
    size_t per = KNOB_MIN(hi - lo + 1, (size_t)CHUNK);
    if (c)
        c->rbuf = knob_malloc((size_t)(g_size - 1) * per * sizeof(float));
    if (!c || !c->rbuf) {
        knob_free(c);
        return knob_fail(err, KNOB_ERR_NOMEM, "cannot allocate the reduction buffer (%d x %zu floats)", g_size - 1, per);
    }
    c->n = n;
    c->per = per;
    *out = c;
    return KNOB_OK;
}

void knob_dist_comm_free(knob_dist_comm *c)
{
    if (!c)
        return;
    knob_free(c->rbuf);
    knob_free(c);
}

size_t knob_dist_comm_bytes(const knob_dist_comm *c)
{
    if (!c)
        return 0;
    return (size_t)(g_size - 1) * c->per * sizeof(float);
}

#ifdef KNOB_MPI
enum { MAX_REQ = 2048 };
static MPI_Request g_req[MAX_REQ];
static int g_peer[MAX_REQ];
#endif

knob_status knob_dist_reduce_scatter(knob_dist_comm *c, float *x, long step, knob_err *err)
{
#ifdef KNOB_MPI
    if (!c)
        return KNOB_OK;
    if (2 * g_size > MAX_REQ)
        return knob_fail(err, KNOB_ERR_USAGE, "%d ranks; knob handles at most %d", g_size, MAX_REQ / 2);
    g_step = step;
    double t0 = MPI_Wtime();
    size_t mlo, mhi;
    knob_dist_slice(c->n, g_rank, &mlo, &mhi);
    size_t span = 0;   /* the longest slice, so every rank runs the same number of rounds */
    for (int q = 0; q < g_size; q++) {
        size_t lo, hi;
        knob_dist_slice(c->n, q, &lo, &hi);
        span = KNOB_MAX(span, hi - lo);
    }
    knob_status s = KNOB_OK;
    for (size_t off = 0; off < span && !s; off += CHUNK) {
        int k = 0;
        float *src[1024];
        size_t mine = mhi - mlo > off ? KNOB_MIN((size_t)CHUNK, mhi - mlo - off) : 0;
        for (int q = 0, j = 0; q < g_size; q++) {
            if (q == g_rank) {
                src[q] = x + mlo + off;
                continue;
            }
            src[q] = c->rbuf + (size_t)j++ * c->per;
            if (mine) {
                g_peer[k] = q;
                MPI_Irecv(src[q], (int)mine, MPI_FLOAT, q, 3, MPI_COMM_WORLD, &g_req[k++]);
            }
            size_t lo, hi;
            knob_dist_slice(c->n, q, &lo, &hi);
            if (hi - lo > off) {
                g_peer[k] = q;
                MPI_Isend(x + lo + off, (int)KNOB_MIN((size_t)CHUNK, hi - lo - off), MPI_FLOAT, q, 3, MPI_COMM_WORLD,
                          &g_req[k++]);
            }
        }
        if ((s = wait_all(g_req, g_peer, k, step, err)) != KNOB_OK)
            break;
        float *dst = x + mlo + off;
        int N = g_size;
        for (size_t i = 0; i < mine; i++) {   /* in rank order; dst is src[g_rank], read before written */
            float a = src[0][i];
            for (int q = 1; q < N; q++)
                a += src[q][i];
            dst[i] = a;
        }
    }
    g_comm_s += MPI_Wtime() - t0;
    g_waiting = -1;
    return s;
#else
    (void)c, (void)x, (void)step, (void)err;
    return KNOB_OK;
#endif
}

knob_status knob_dist_allgather(knob_dist_comm *c, float *x, long step, knob_err *err)
{
#ifdef KNOB_MPI
    if (!c)
        return KNOB_OK;
    g_step = step;
    double t0 = MPI_Wtime();
    size_t mlo, mhi;
    knob_dist_slice(c->n, g_rank, &mlo, &mhi);
    knob_status s = KNOB_OK;
    size_t span = 0;
    for (int q = 0; q < g_size; q++) {
        size_t lo, hi;
        knob_dist_slice(c->n, q, &lo, &hi);
        span = KNOB_MAX(span, hi - lo);
    }
    const size_t big = (size_t)1 << 28;   /* MPI counts are ints */
    for (size_t off = 0; off < span && !s; off += big) {
        int k = 0;
        for (int q = 0; q < g_size; q++) {
            if (q == g_rank)
                continue;
            size_t lo, hi;
            knob_dist_slice(c->n, q, &lo, &hi);
            if (hi - lo > off) {
                g_peer[k] = q;
                MPI_Irecv(x + lo + off, (int)KNOB_MIN(big, hi - lo - off), MPI_FLOAT, q, 4, MPI_COMM_WORLD, &g_req[k++]);
            }
            if (mhi - mlo > off) {
                g_peer[k] = q;
                MPI_Isend(x + mlo + off, (int)KNOB_MIN(big, mhi - mlo - off), MPI_FLOAT, q, 4, MPI_COMM_WORLD,
                          &g_req[k++]);
            }
        }
        s = wait_all(g_req, g_peer, k, step, err);
    }
    g_comm_s += MPI_Wtime() - t0;
    g_waiting = -1;
    return s;
#else
    (void)c, (void)x, (void)step, (void)err;
    return KNOB_OK;
#endif
}

knob_status knob_dist_allreduce(knob_dist_comm *c, float *x, long step, knob_err *err)
{
    knob_status s = knob_dist_reduce_scatter(c, x, step, err);
    return s ? s : knob_dist_allgather(c, x, step, err);
}

knob_status knob_dist_gather(knob_dist_comm *c, const float *slice, float *full, long step, knob_err *err)
{
#ifdef KNOB_MPI
    if (!c)
        return KNOB_OK;
    g_step = step;
    size_t mlo, mhi;
    knob_dist_slice(c->n, g_rank, &mlo, &mhi);
    int k = 0;
    if (g_rank == 0) {
        memcpy(full + mlo, slice, (mhi - mlo) * sizeof(float));
        for (int q = 1; q < g_size; q++) {
            size_t lo, hi;
            knob_dist_slice(c->n, q, &lo, &hi);
            g_peer[k] = q;
            MPI_Irecv(full + lo, (int)(hi - lo), MPI_FLOAT, q, 5, MPI_COMM_WORLD, &g_req[k++]);
        }
    } else {
        g_peer[k] = 0;
        MPI_Isend(slice, (int)(mhi - mlo), MPI_FLOAT, 0, 5, MPI_COMM_WORLD, &g_req[k++]);
    }
    knob_status s = wait_all(g_req, g_peer, k, step, err);
    g_waiting = -1;
    return s;
#else
    (void)c, (void)slice, (void)full, (void)step, (void)err;
    return KNOB_OK;
#endif
}

/* ------------------------------------------------------------------------------------------------
 * A slice of a parameter block, for ZeRO-1 */

knob_status knob_params_slice(knob_params *view, const knob_params *P, size_t lo, size_t hi, knob_err *err)
{
    memset(view, 0, sizeof *view);
    int n = 0;
    size_t at = 0;
    for (int i = 0; i < P->n; i++, at += P->t[i - 1]->n_elems)
        if (at < hi && at + P->t[i]->n_elems > lo)
            n++;
    knob_tensor *pieces = knob_calloc((size_t)KNOB_MAX(n, 1), sizeof *pieces);
    view->t = knob_calloc((size_t)KNOB_MAX(n, 1), sizeof *view->t);
    if (!pieces || !view->t) {
        knob_free(pieces);
        knob_free(view->t);
        view->t = NULL;
        return knob_fail(err, KNOB_ERR_NOMEM, "out of memory slicing the parameters");
    }
    at = 0;
    for (int i = 0; i < P->n; i++) {
        const knob_tensor *t = P->t[i];
        size_t a = KNOB_MAX(at, lo), b = KNOB_MIN(at + t->n_elems, hi);
        if (a < b) {
            knob_tensor *p = &pieces[view->n];
            *p = *t;
            p->n_dims = 1;
            p->shape[0] = (int)(b - a);
            p->n_elems = b - a;
            p->data = P->data + a;
            p->grad = P->grad + a;
            view->t[view->n++] = p;
        }
        at += t->n_elems;
    }
    if (!view->n)
        knob_free(pieces);
    view->cap = view->n;
    view->n_elems = hi - lo;
    view->data = P->data + lo;
    view->grad = P->grad + lo;
    return KNOB_OK;
}

void knob_params_slice_free(knob_params *view)
{
    if (view->t && view->n)
        knob_free(view->t[0]);   /* the pieces are one array */
    knob_free(view->t);
    memset(view, 0, sizeof *view);
}
