/* threads.c: how many threads knob uses (--threads, KNOB_THREADS, else the cores this process may
 * run on), and knob's own pool that runs the parallel loops of the training step.
 *
 * Why a pool of our own rather than "omp parallel for schedule(static)": a static split gives
 * each thread one fixed share and a barrier at the end. When another process takes a core, the
 * scheduler parks one of the threads for a whole time slice (milliseconds), and the other waits
 * at the barrier, spinning on the core the parked one needs; libgomp's workers also spin between
 * regions (GOMP_SPINCOUNT, read only from the environment when the program starts). On a 2-core
 * machine with one busy process that made two threads 3x slower than one.
 *
 * Here a loop is cut into chunks whose number and bounds depend on the loop alone (never on the
 * thread count). Each thread taking part (the caller too) has a share of them, taken one at a
 * time from an atomic counter, and when its share is done it takes what is left of the others'
 * (run_chunks). A parked thread then holds up only the chunk it holds. Waiting is short spin,
 * then sleep: a worker spins SPIN_NS checking for new work (yielding the core as it does, so that
 * a busy machine's other runnable threads get it), then sleeps on a condition variable; the caller
 * waiting for the last chunks spins and yields likewise. Results: every chunk writes its own
 * outputs, in an order fixed inside the chunk, so the bits do not depend on the thread count.
 *
 * A loop started while the pool is running one (from a chunk, or from another application thread)
 * runs on the calling thread alone. Every parallel loop of knob runs here: the library is built
 * without the OpenMP runtime (only -fopenmp-simd, for "#pragma omp simd"), so a process has one
 * set of worker threads.
 *
 * Not here: thread pinning, NUMA. */
#define _GNU_SOURCE   /* sched_getaffinity, CPU_COUNT */
#include "knob_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

enum {
    MAX_THREADS = 256,
    /* How long an idle worker looks for the next loop before it sleeps: longer than the gap
     * between two loops of a step (a few microseconds), much shorter than a time slice. */
    SPIN_NS = 100000,
};

/* ------------------------------------------------------------------------------------------------
 * Thread count */

static int n_threads_set;      /* 0 until knob_threads_set runs: then the count */

static int cores_available(void)
{
#if defined(__linux__) && defined(CPU_COUNT)
    cpu_set_t s;
    if (sched_getaffinity(0, sizeof s, &s) == 0 && CPU_COUNT(&s) > 0)
        return CPU_COUNT(&s);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);   /* no affinity mask (or more CPUs than cpu_set_t) */
    return n > 0 ? (int)KNOB_MIN(n, (long)MAX_THREADS) : 1;
}

void knob_threads_set(int n)
{
    if (n <= 0) {
        const char *env = getenv("KNOB_THREADS");
        n = env ? atoi(env) : 0;
    }
    if (n <= 0)
        n = cores_available();
    n = KNOB_MIN(n, MAX_THREADS);
    n_threads_set = n;
}

int knob_threads_get(void)
{
    if (!n_threads_set)
        knob_threads_set(0);
    return n_threads_set;
}

/* ------------------------------------------------------------------------------------------------
 * The pool */

/* Chunks [first, end) of a loop: one participant's share, handed out from next. Each on a cache
 * line of its own, so that taking a chunk from one's own share does not contend with the others. */
typedef struct {
    _Alignas(64) _Atomic long next;
    long end;
} share;

typedef struct {
    knob_range_fn *fn;
    void *ctx;
    long n, chunk, n_chunks;
    int n_helpers;                 /* workers 0 .. n_helpers - 1 take part */
    int n_shares;                  /* n_helpers + 1: the caller is participant 0, worker i is i + 1 */
    _Atomic long done;             /* chunks finished */
} job;

static pthread_mutex_t pool_run = PTHREAD_MUTEX_INITIALIZER;     /* one loop at a time */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;    /* sleeping and waking */
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static int n_workers;                /* started so far; they live until the process ends */
static int n_sleeping;               /* under pool_lock */
static job current;
static share shares[MAX_THREADS];
static _Atomic unsigned long generation;   /* odd while a loop runs (current filled before) */
static _Atomic int n_active;               /* workers inside the current job */
static _Thread_local int in_pool;          /* this thread is running a chunk */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Participant p takes the chunks of its own share first, in order, then whatever is left of the
 * others' (p + 1, p + 2, ...). When the threads run alike, participant p gets the same part of
 * every loop (the caller the first images of a batch, the worker the last), so the data one loop
 * writes is in the cache of the core the next loop reads it on: with one shared counter the chunks
 * fell to whichever thread came first, and a step's elementwise and pooling loops read half their
 * input from the other core (bench_step cnn5, 2 threads: relu and max pooling took longer than
 * on one thread). A parked thread still holds up only the chunk it is running: the others take
 * the rest of its share. Which thread runs a chunk never changes what the chunk computes. */
static void run_chunks(job *j, int p)
{
    for (int k = 0; k < j->n_shares; k++) {
        share *sh = &shares[(p + k) % j->n_shares];
        for (;;) {
            long c = atomic_fetch_add_explicit(&sh->next, 1, memory_order_relaxed);
            if (c >= sh->end)
                break;
            long lo = c * j->chunk, hi = KNOB_MIN(j->n, lo + j->chunk);
            j->fn(j->ctx, lo, hi);
            atomic_fetch_add_explicit(&j->done, 1, memory_order_release);
        }
    }
}

/* generation is odd while a loop is live and even between loops; a worker joins a live one */
static int live(unsigned long g, unsigned long seen) { return (g & 1) && g != seen; }

static void *worker_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    unsigned long seen = 0;
    in_pool = 1;
    for (;;) {
        /* spin a little for the next loop, then sleep */
        unsigned long g = atomic_load(&generation);
        if (!live(g, seen)) {
            double t0 = now_ns();
            for (int i = 0; !live(g, seen); i++) {
                CPU_RELAX();
                if ((i & 63) == 63) {
                    if (now_ns() - t0 > SPIN_NS)
                        break;
                    sched_yield();
                }
                g = atomic_load(&generation);
            }
        }
        if (!live(g, seen)) {
            pthread_mutex_lock(&pool_lock);
            n_sleeping++;
            while (!live(g = atomic_load(&generation), seen))
                pthread_cond_wait(&pool_wake, &pool_lock);
            n_sleeping--;
            pthread_mutex_unlock(&pool_lock);
        }
        seen = g;
        /* Join only while that loop is still live. The caller ends a loop by making generation
         * even and then waiting for n_active to fall to 0 (both sequentially consistent), so a
         * worker that passes this test is waited for, and one that fails it never reads current. */
        atomic_fetch_add(&n_active, 1);
        if (atomic_load(&generation) == g && id < current.n_helpers)
            run_chunks(&current, id + 1);
        atomic_fetch_sub(&n_active, 1);
    }
    return NULL;
}

/* Starts workers up to want (false if none could start: the loop then runs alone). */
static int ensure_workers(int want)
{
    while (n_workers < want) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, worker_main, (void *)(intptr_t)n_workers);
        pthread_attr_destroy(&attr);
        if (rc != 0)
            break;
        n_workers++;
    }
    return n_workers;
}

void knob_parallel_for(long n, long chunk, knob_range_fn *fn, void *ctx)
{
    if (n <= 0)
        return;
    if (chunk < 1)
        chunk = 1;
    long n_chunks = (n + chunk - 1) / chunk;
    int threads = knob_threads_get();
    if (n_chunks == 1 || threads == 1 || in_pool || pthread_mutex_trylock(&pool_run) != 0) {
        for (long lo = 0; lo < n; lo += chunk)
            fn(ctx, lo, KNOB_MIN(n, lo + chunk));
        return;
    }
    int helpers = (int)KNOB_MIN((long)threads - 1, n_chunks - 1);
    helpers = KNOB_MIN(helpers, ensure_workers(helpers));
    current.fn = fn;
    current.ctx = ctx;
    current.n = n;
    current.chunk = chunk;
    current.n_chunks = n_chunks;
    current.n_helpers = helpers;
    current.n_shares = helpers + 1;
    for (int p = 0; p <= helpers; p++) {   /* shares as equal as whole chunks allow */
        shares[p].end = n_chunks * (p + 1) / (helpers + 1);
        atomic_store_explicit(&shares[p].next, n_chunks * p / (helpers + 1), memory_order_relaxed);
    }
    atomic_store_explicit(&current.done, 0, memory_order_relaxed);
    atomic_fetch_add(&generation, 1);          /* odd: live */
    pthread_mutex_lock(&pool_lock);
    if (n_sleeping > 0)
        pthread_cond_broadcast(&pool_wake);
    pthread_mutex_unlock(&pool_lock);

    in_pool = 1;
    run_chunks(&current, 0);
    in_pool = 0;
    /* the last chunks: another thread holds them, parked or not; yield it the core */
    for (int i = 0; atomic_load_explicit(&current.done, memory_order_acquire) < n_chunks; i++) {
        CPU_RELAX();
        if ((i & 15) == 15)
            sched_yield();
    }
    /* even again: then wait until no worker can still be reading current */
    atomic_fetch_add(&generation, 1);
    while (atomic_load(&n_active) > 0)
        CPU_RELAX();
    pthread_mutex_unlock(&pool_run);
}

long knob_parallel_chunk(long n, long min_chunk, long max_chunks)
{
    if (n <= 0)
        return 1;
    long c = (n + max_chunks - 1) / max_chunks;
    return KNOB_MAX(c, KNOB_MAX(min_chunk, 1));
}

void knob_par_items(long n, double work, knob_range_fn *fn, void *ctx)
{
    if (n <= 0)
        return;
    if ((double)n * work < (double)KNOB_PAR_MIN) {
        fn(ctx, 0, n);
        return;
    }
    long chunk = (long)((double)KNOB_PAR_CHUNK / (work > 1.0 ? work : 1.0)) + 1;
    knob_parallel_for(n, knob_parallel_chunk(n, chunk, 256), fn, ctx);
}
