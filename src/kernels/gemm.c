/* gemm.c: knob's own matrix multiply, C (M, N) = alpha * op(A) @ op(B) + beta * C, row-major, with
 * op(A) (M, K) and op(B) (K, N); A is stored (K, M) when ta, B is stored (N, K) when tb.
 *
 * knob_gemm_naive is the reference: a triple loop with a double accumulator, too slow for
 * training, simple enough to trust. knob_gemm is the fast one, built the GotoBLAS / BLIS way:
 *
 *   1. NC-wide column panels of C, then slices of K at most KC deep. For each, the B slice
 *      (KC x NC) is copied ("packed") once into contiguous, zero-padded micro-panels, shared by
 *      all the threads (by several of them when it is big).
 *   2. The threads of knob's pool (src/core/threads.c) then take chunks of C's rows (at most MC;
 *      with few rows, also groups of B's micro-panels) as they come free; each packs its rows of
 *      A (MC x KC) and sweeps its tiles. Every element of C is written by exactly one thread.
 *      With few rows (a mini-batch through a layer) and a B panel that fits the buffer whole,
 *      all its K slices are packed in one go and each chunk runs them all, reading A in place
 *      (the strided kernel, where the instruction set has one): two waits a panel.
 *   3. A micro-kernel keeps an MR x NR block of C in registers for the whole slice: per step of k
 *      it loads NR floats of B, broadcasts MR floats of A and does MR * NR multiply-adds.
 *
 * Each instruction set brings a micro-kernel, a transposing packer and, optionally, a kernel that
 * reads A with strides (AVX2 + FMA intrinsics, picked at run time when the CPU has them, or
 * portable C with GCC vector extensions, gcc and clang). AVX-512 adds 12 x 16 kernels that take
 * two 6-row panels at once, packed or in place, with the same sums as the 6-row AVX2 kernel (so
 * the same bits), for CPUs with two 512-bit FMA units. Very small products run a plain loop;
 * small ones on one thread read A (and B when not transposed) in place, since packing would cost
 * as much as the arithmetic; matrix-vector products (M == 1 or N == 1) read the matrix in place.
 * knob_gemm_bias adds a bias row in the last store.
 *
 * Determinism: the sum for C[i][j] always runs over the same slices of K in the same order, and
 * over k in order within a slice, whatever the chunk or path it falls in; the slices depend on K
 * alone (and KC, from the L2 size). Same inputs, instruction set and L2 size give the same bits on
 * every run and for every thread count. (AVX2 rounds differently from the portable code: it fuses
 * multiply and add.)
 *
 * Memory: the packing buffers are fixed-size thread-local arrays (2.75 MiB per thread that ever
 * calls knob_gemm, of which the blocking touches a part; the caller's B buffer is the one its
 * threads share), so a call allocates nothing.
 *
 * Speed (bench_gemm, 2-core AMD EPYC Zen 4 VM, docs/SPEED.md "GEMM"): whole products at 85-93% of
 * the FMA peak measured beside them on one thread for 256..2048 squares and the GPT training
 * shapes, AVX2 or AVX-512 alike (Zen 4 runs a 512-bit FMA as two 256-bit halves).
 *
 * knob_gemm_bf16 is the same packed path with the packed blocks made bf16 (mixed precision): pairs
 * for a vdpbf16ps kernel where the CPU has AVX512_BF16, else rounded for the f32 kernel.
 *
 * Not here: leading-dimension (lda/ldb/ldc) arguments, batched calls, a micro-tile shaped for
 * AVX-512 alone (14 x 32 and a KC of its own would load less per flop on Intel). */
#include "knob_internal.h"

#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define GEMM_X86 1
#include <immintrin.h>
#else
#define GEMM_X86 0
#endif

/* ------------------------------------------------------------------------------------------------
 * Block sizes. The micro-tile is fixed by the registers of the instruction set; the cache blocks
 * come from the CPU's own cache sizes (src/kernels/cpu.c), after the BLIS analytical model:
 *   KC: a B micro-panel and a pair of A micro-panels ((NR + 2 MR) x KC floats) fill an eighth of
 *       L2 (1 MiB: 1168, capped at 1024; 512 KiB: 584). The kernel streams them from L2 at about
 *       9 bytes a cycle, far below what L2 delivers, so B need not stay in L1; deep slices mean
 *       fewer passes over C and fewer packing calls. (bench_gemm, Zen 4, 2 threads: 2048^3 202
 *       GFLOP/s with the KC of 256 that half of L1 gave, 217 with 1024; one thread 100 -> 110.)
 *   MC: a packed A block (MC x KC floats) fills a quarter of L2, so it stays there while the
 *       kernel sweeps across the B slice (1 MiB, KC 1024: 60);
 *   NC: a packed B slice (KC x NC floats) fills a quarter of L3 (shared by the cores);
 *   MC and NC also within the thread-local buffers.
 * Each is clamped to [min, max] below and rounded down to a multiple of its unit. */

enum {
    /* Micro-tile: 6 x 16 floats of C = 12 AVX2 registers of accumulators, plus 2 for a row of B
     * and 1 for a broadcast element of A: 15 of the 16 ymm registers. */
    MR = 6,
    NR = 16,
    KC_MIN = 128, KC_MAX = 1024,
    MC_MIN = 8 * MR, MC_MAX = 64 * MR,
    NC_MIN = 16 * NR, NC_MAX = 64 * NR,
    /* Products with M * N * K at most this run the plain loop: packing would cost more than it
     * saves. (bench/gemm.c, one thread: the plain loop wins at 8^3, packing wins from 12^3.) */
    SMALL_MNK = 1024,
    /* Products with at most this many multiply-adds and one K slice, on one thread, read A (and B
     * when not transposed) in place rather than packing them (bench_gemm --threads 1: 32 x 32 x
     * 128 nn 48 -> 77 GFLOP/s, 128^3 72 -> 84). Same bits as packing, so the choice may depend
     * on the thread count. */
    DIRECT_MNK = 128 * 128 * 128,
    /* Below this many multiply-adds one thread does it all: waking the others costs more than
     * the direct path (below) saves. (bench_gemm --threads 2 vs 1: 64^3 equal, 128^3 40% faster
     * on two; attention's 32 x 128 x 32 per head equal.) */
    PARALLEL_MNK = 64 * 64 * 64,
    /* Products with at most this many rows whose whole B panel fits pack_b pack every K slice at
     * once (gemm_packed). 8 MC of the blocking this was measured with (MC 252 on a 1 MiB L2). */
    WHOLE_M_MAX = 2016,
};

/* Packed A block: MC / MR micro-panels, each (KC, MR): a[p * MR + i].
 * Packed B slice: NC / NR micro-panels, each (KC, NR): b[p * NR + j].
 * 0.75 + 2 MiB per thread that ever calls knob_gemm (static TLS, which every thread of the
 * process gets, so it stays small); MC and NC are capped so that MC x KC and KC x NC fit, and
 * only what the blocking uses is ever touched. */
enum {
    PACK_SLACK = 8,                 /* floats past the end that the AVX2 packer of A may overwrite */
    PACK_A_FLOATS = 384 * 512,
    PACK_B_FLOATS = 512 * 1024,
};
static _Thread_local _Alignas(64) float pack_a[PACK_A_FLOATS + PACK_SLACK];
static _Thread_local _Alignas(64) float pack_b[PACK_B_FLOATS];

static long clamp_down(long v, long unit, long lo, long hi)
{
    v = v / unit * unit;
    return v < lo ? lo : v > hi ? hi : v;
}

static knob_gemm_blocking blocking;
static int blocking_ready;

static const knob_gemm_blocking *get_blocking(void)
{
    if (!blocking_ready) {   /* racing first calls compute the same values */
        const knob_cpu_info *c = knob_cpu();
        knob_gemm_blocking b = {MR, NR, 0, 0, 0};
        b.KC = (int)clamp_down(c->l2 / 8 / ((NR + 2 * MR) * 4), 8, KC_MIN, KC_MAX);
        /* (a multiple of 2 MR: the AVX-512 kernel takes row panels in pairs) */
        b.MC = (int)clamp_down(KNOB_MIN(c->l2 / 4 / (b.KC * 4), PACK_A_FLOATS / b.KC), 2 * MR,
                               MC_MIN, MC_MAX);
        b.NC = (int)clamp_down(KNOB_MIN(c->l3 / 4 / (b.KC * 4), PACK_B_FLOATS / b.KC), NR, NC_MIN,
                               NC_MAX);
        blocking = b;
        blocking_ready = 1;
    }
    return &blocking;
}

knob_gemm_blocking knob_gemm_blocking_get(void) { return *get_blocking(); }

/* C (MR, NR) at c with row stride ldc = alpha * a @ b + beta * C (+ bias (NR), added to every
 * row after the rest, when not NULL), where a is one packed A micro-panel (kc, MR) and b one
 * packed B micro-panel (kc, NR). beta == 0 overwrites C. */
typedef void micro_kernel(int kc, const float *restrict a, const float *restrict b,
                          float *restrict c, size_t ldc, float alpha, float beta,
                          const float *bias);

/* ------------------------------------------------------------------------------------------------
 * Reference */

void knob_gemm_naive(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                     const float *B, float beta, float *C)
{
    KNOB_ASSERT(M >= 0 && N >= 0 && K >= 0);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            if (alpha != 0.0f)      /* alpha == 0: A and B are not read (BLAS convention) */
                for (int p = 0; p < K; p++) {
                    float a = ta ? A[(size_t)p * M + i] : A[(size_t)i * K + p];
                    float b = tb ? B[(size_t)j * K + p] : B[(size_t)p * N + j];
                    s += (double)a * (double)b;
                }
            double r = (double)alpha * s;
            if (beta != 0.0f)       /* beta == 0: C's old contents (even NaN) are ignored */
                r += (double)beta * (double)C[(size_t)i * N + j];
            C[(size_t)i * N + j] = (float)r;
        }
}

/* The bf16 reference: the same loop over the inputs rounded to bf16. */
void knob_gemm_bf16_naive(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                          const float *B, float beta, float *C)
{
    KNOB_ASSERT(M >= 0 && N >= 0 && K >= 0);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            if (alpha != 0.0f)
                for (int p = 0; p < K; p++) {
                    float a = ta ? A[(size_t)p * M + i] : A[(size_t)i * K + p];
                    float b = tb ? B[(size_t)j * K + p] : B[(size_t)p * N + j];
                    s += (double)knob_bf16_round(a) * (double)knob_bf16_round(b);
                }
            double r = (double)alpha * s;
            if (beta != 0.0f)
                r += (double)beta * (double)C[(size_t)i * N + j];
            C[(size_t)i * N + j] = (float)r;
        }
}

/* ------------------------------------------------------------------------------------------------
 * Micro-kernels */

/* Portable: GCC vector extensions (also clang) of 4 floats, the width every SIMD unit has (SSE,
 * NEON), so the compiler keeps them in registers; wider generic vectors it may spill to the stack
 * on every step. The 6 x 16 tile goes in two passes of 6 x 8: 12 accumulators fit in the 16
 * registers of SSE. */
typedef float v4f __attribute__((vector_size(16)));

static void kernel_portable(int kc, const float *restrict a, const float *restrict b,
                            float *restrict c, size_t ldc, float alpha, float beta,
                            const float *bias)
{
    for (int i = 0; i < MR; i++) {      /* C's tile arrives while the loop runs */
        __builtin_prefetch(c + (size_t)i * ldc);
        __builtin_prefetch(c + (size_t)i * ldc + NR - 1);
    }
    for (int h = 0; h < NR; h += 8) {
        v4f acc[MR][2];
        memset(acc, 0, sizeof acc);
        for (int p = 0; p < kc; p++) {
            v4f b0, b1;
            memcpy(&b0, b + p * NR + h, sizeof b0);
            memcpy(&b1, b + p * NR + h + 4, sizeof b1);
            for (int i = 0; i < MR; i++) {
                float ai = a[p * MR + i];
                acc[i][0] += ai * b0;
                acc[i][1] += ai * b1;
            }
        }
        for (int i = 0; i < MR; i++)
            for (int q = 0; q < 2; q++) {
                float *ci = c + (size_t)i * ldc + h + 4 * q;
                v4f r = alpha * acc[i][q];
                if (beta != 0.0f) {
                    v4f old;
                    memcpy(&old, ci, sizeof old);
                    r += beta * old;
                }
                if (bias) {
                    v4f bv;
                    memcpy(&bv, bias + h + 4 * q, sizeof bv);
                    r += bv;
                }
                memcpy(ci, &r, sizeof r);
            }
    }
}

#if GEMM_X86
/* AVX2 + FMA: the same loop with fused multiply-adds, unrolled by hand so the 12 accumulators
 * live in registers under both gcc and clang at -O2. */
/* What the two AVX2 kernels share: the 12 accumulators, one step of k (row i of the tile gets the
 * broadcast A element at pa times B's 16 floats b0 b1), and the store of the tile into C. */
#define AVX2_TILE_ZERO                                                                             \
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();                                   \
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();                                   \
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();                                   \
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();                                   \
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();                                   \
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps()
#define AVX2_TILE_ROW(i, pa)                                                                       \
    ai = _mm256_broadcast_ss(pa);                                                                  \
    c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                                                    \
    c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1)
#define AVX2_TILE_STORE                                                                            \
    do {                                                                                           \
        __m256 acc_[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},                                  \
                              {c30, c31}, {c40, c41}, {c50, c51}};                                 \
        store_tile_avx2(acc_, c, ldc, alpha, beta, bias);                                          \
    } while (0)

/* C (MR, NR) at c = alpha * acc + beta * C (+ bias on every row); beta == 0 ignores C. */
__attribute__((target("avx2,fma")))
static inline void store_tile_avx2(__m256 acc[MR][2], float *restrict c, size_t ldc, float alpha,
                                   float beta, const float *bias)
{
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    for (int i = 0; i < MR; i++)
        for (int h = 0; h < 2; h++) {
            float *ci = c + (size_t)i * ldc + 8 * h;
            __m256 r = _mm256_mul_ps(va, acc[i][h]);
            if (beta != 0.0f)
                r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r);
            if (bias)
                r = _mm256_add_ps(r, _mm256_loadu_ps(bias + 8 * h));
            _mm256_storeu_ps(ci, r);
        }
}

__attribute__((target("avx2,fma")))
static void kernel_avx2(int kc, const float *restrict a, const float *restrict b,
                        float *restrict c, size_t ldc, float alpha, float beta,
                        const float *bias)
{
    AVX2_TILE_ZERO;
    for (int i = 0; i < MR; i++) {      /* C's tile arrives while the loop runs */
        _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (size_t)i * ldc + NR - 1), _MM_HINT_T0);
    }
    for (int p = 0; p < kc; p++, a += MR, b += NR) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), ai;
        AVX2_TILE_ROW(0, a + 0);
        AVX2_TILE_ROW(1, a + 1);
        AVX2_TILE_ROW(2, a + 2);
        AVX2_TILE_ROW(3, a + 3);
        AVX2_TILE_ROW(4, a + 4);
        AVX2_TILE_ROW(5, a + 5);
    }
    AVX2_TILE_STORE;
}

/* The same tile with A read in place: element (i, p) of the micro-panel at a[i * rs + p * cs]
 * (only rows below mr are computed: the rest of the tile comes out zero), and row p of B at
 * b + p * ldb (16 contiguous floats). For small products, where packing costs as much as the
 * arithmetic, and for the edge tiles of the packed path (a packed panel is rs 1, cs MR): a
 * convolution's 8 output channels are one tile of 6 rows and one of 2, which would otherwise cost
 * 12 rows of work. The sums run in the same order as kernel_avx2's, so the bits are the same as the
 * packed path's. */
__attribute__((target("avx2,fma")))
static void kernel_avx2_strided(int kc, const float *a, size_t rs, size_t cs, int mr,
                                const float *b, size_t ldb, float *restrict c, size_t ldc,
                                float alpha, float beta, const float *bias)
{
    const float *a0 = a, *a1 = a + (size_t)KNOB_MIN(1, mr - 1) * rs;
    const float *a2 = a + (size_t)KNOB_MIN(2, mr - 1) * rs, *a3 = a + (size_t)KNOB_MIN(3, mr - 1) * rs;
    const float *a4 = a + (size_t)KNOB_MIN(4, mr - 1) * rs, *a5 = a + (size_t)KNOB_MIN(5, mr - 1) * rs;
    AVX2_TILE_ZERO;
    for (int i = 0; i < mr; i++)
        _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
    /* the loop for R rows (R a constant: the other rows' code is dropped at compile time) */
#define AVX2_STRIDED_LOOP(R)                                                                       \
    for (size_t p = 0, q = 0; p < (size_t)kc; p++, q += cs, b += ldb) {                            \
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), ai;                           \
        AVX2_TILE_ROW(0, a0 + q);                                                                  \
        if ((R) > 1) { AVX2_TILE_ROW(1, a1 + q); }                                                 \
        if ((R) > 2) { AVX2_TILE_ROW(2, a2 + q); }                                                 \
        if ((R) > 3) { AVX2_TILE_ROW(3, a3 + q); }                                                 \
        if ((R) > 4) { AVX2_TILE_ROW(4, a4 + q); }                                                 \
        if ((R) > 5) { AVX2_TILE_ROW(5, a5 + q); }                                                 \
    }
    switch (mr) {
    case 1: AVX2_STRIDED_LOOP(1); break;
    case 2: AVX2_STRIDED_LOOP(2); break;
    case 3: AVX2_STRIDED_LOOP(3); break;
    case 4: AVX2_STRIDED_LOOP(4); break;
    case 5: AVX2_STRIDED_LOOP(5); break;
    default: AVX2_STRIDED_LOOP(6); break;
    }
#undef AVX2_STRIDED_LOOP
    AVX2_TILE_STORE;
}

/* AVX-512F: two packed A micro-panels at once, a 12 x 16 tile of C in 12 zmm accumulators (one row
 * of 16 floats each), panel 2 at a + MR * kc (the next panel of the packed block). Per step of k:
 * one load of B's 16 floats and 12 fused multiply-adds, each with its A element broadcast from
 * memory inside the instruction. Twelve independent sums cover the FMA latency on CPUs with two
 * 512-bit FMA units (Intel Xeons: 4 cycles x 2), and each k step's work per load of B doubles
 * against the 6-row tile. Every element is the same chain of fused multiply-adds over k as in
 * kernel_avx2, and the store below is its store, so the bits are the same as two calls of it:
 * the packed and strided paths, and AVX2 and AVX-512 machines, agree. */
#define AVX512_ROW(i, pa) c##i = _mm512_fmadd_ps(_mm512_set1_ps(*(pa)), bv, c##i)
/* store_tile_avx2's steps, 16 lanes at a time, for rows c0..c11 */
#define AVX512_TILE_STORE                                                                          \
    do {                                                                                           \
        __m512 acc_[2 * MR] = {c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11};                  \
        const __m512 va_ = _mm512_set1_ps(alpha), vb_ = _mm512_set1_ps(beta);                      \
        const __m512 vbias_ = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();                  \
        for (int i_ = 0; i_ < 2 * MR; i_++) {                                                      \
            float *ci_ = c + (size_t)i_ * ldc;                                                     \
            __m512 r_ = _mm512_mul_ps(va_, acc_[i_]);                                              \
            if (beta != 0.0f)                                                                      \
                r_ = _mm512_fmadd_ps(vb_, _mm512_loadu_ps(ci_), r_);                               \
            if (bias)                                                                              \
                r_ = _mm512_add_ps(r_, vbias_);                                                    \
            _mm512_storeu_ps(ci_, r_);                                                             \
        }                                                                                          \
    } while (0)
__attribute__((target("avx512f")))
static void kernel_avx512_12x16(int kc, const float *restrict a, const float *restrict b,
                                float *restrict c, size_t ldc, float alpha, float beta,
                                const float *bias)
{
    const float *restrict a2 = a + (size_t)MR * kc;
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    __m512 c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
    for (int i = 0; i < 2 * MR; i++) {      /* C's tile arrives while the loop runs */
        _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (size_t)i * ldc + NR - 1), _MM_HINT_T0);
    }
    for (int p = 0; p < kc; p++, a += MR, a2 += MR, b += NR) {
        __m512 bv = _mm512_loadu_ps(b);
        AVX512_ROW(0, a + 0);
        AVX512_ROW(1, a + 1);
        AVX512_ROW(2, a + 2);
        AVX512_ROW(3, a + 3);
        AVX512_ROW(4, a + 4);
        AVX512_ROW(5, a + 5);
        AVX512_ROW(6, a2 + 0);
        AVX512_ROW(7, a2 + 1);
        AVX512_ROW(8, a2 + 2);
        AVX512_ROW(9, a2 + 3);
        AVX512_ROW(10, a2 + 4);
        AVX512_ROW(11, a2 + 5);
    }
    AVX512_TILE_STORE;
}

/* The 12-row tile with A read in place, as kernel_avx2_strided reads it: element (i, p) at
 * a[i * rs + p * cs], all 12 rows present (mr is 12; edges go to the AVX2 kernel), row p of B at
 * b + p * ldb. The same chains, so the same bits as the packed path. */
__attribute__((target("avx512f")))
static void kernel_avx512_12x16_strided(int kc, const float *a, size_t rs, size_t cs, int mr,
                                        const float *b, size_t ldb, float *restrict c, size_t ldc,
                                        float alpha, float beta, const float *bias)
{
    KNOB_ASSERT(mr == 2 * MR);
    const float *a0 = a, *a1 = a + rs, *a2 = a + 2 * rs, *a3 = a + 3 * rs, *a4 = a + 4 * rs;
    const float *a5 = a + 5 * rs, *a6 = a + 6 * rs, *a7 = a + 7 * rs, *a8 = a + 8 * rs;
    const float *a9 = a + 9 * rs, *a10 = a + 10 * rs, *a11 = a + 11 * rs;
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    __m512 c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
    for (int i = 0; i < 2 * MR; i++)
        _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
    size_t q = 0;
    for (int p = 0; p < kc; p++, q += cs, b += ldb) {
        __m512 bv = _mm512_loadu_ps(b);
        AVX512_ROW(0, a0 + q);
        AVX512_ROW(1, a1 + q);
        AVX512_ROW(2, a2 + q);
        AVX512_ROW(3, a3 + q);
        AVX512_ROW(4, a4 + q);
        AVX512_ROW(5, a5 + q);
        AVX512_ROW(6, a6 + q);
        AVX512_ROW(7, a7 + q);
        AVX512_ROW(8, a8 + q);
        AVX512_ROW(9, a9 + q);
        AVX512_ROW(10, a10 + q);
        AVX512_ROW(11, a11 + q);
    }
    AVX512_TILE_STORE;
}
#undef AVX512_ROW

/* 8 rows x nr (17..32) columns with A read in place (element (i, p) at a[i * rs + p * cs]) and B
 * as two 16-column halves, row p of them at b0 + p * ldb and b1 + p * ldb: 16 accumulators, and
 * per step of k two loads of B and 8 broadcasts for 16 fused multiply-adds (the 6 x 16 tile: 2 and
 * 6 for 12).
 * For small products of 8 rows, a convolution's 8 output channels, which the 6-row tiles cut into
 * 6 + 2 (bench_gemm --threads 1: 8 x 576 x 25 nn 60 -> 80 GFLOP/s, 8 x 25 x 576 nt 38 -> 50). Each
 * element is the chain of kernel_avx2_strided's (the same fused multiply-adds over k in order);
 * rows 0-5 get the store of a whole 6-row tile, and rows 6-7 and a partial second half, which
 * are edge tiles there, get edge_store's steps (beta C multiplied and added apart): so the bits
 * are the same as the 6-row tiles'. */
#define WIDE_ROW(i)                                                                                \
    do {                                                                                           \
        __m512 ai_ = _mm512_set1_ps(a##i[q]);                                                      \
        c##i##0 = _mm512_fmadd_ps(ai_, bv0, c##i##0);                                              \
        c##i##1 = _mm512_fmadd_ps(ai_, bv1, c##i##1);                                              \
    } while (0)
__attribute__((target("avx512f")))
static void kernel_avx512_8x32_strided(int kc, const float *a, size_t rs, size_t cs, int nr,
                                       const float *b0, const float *b1, size_t ldb,
                                       float *restrict c, size_t ldc, float alpha, float beta,
                                       const float *bias)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    __m512 c60 = c00, c61 = c00, c70 = c00, c71 = c00;
    for (int i = 0; i < 8; i++) {
        _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (size_t)i * ldc + 2 * NR - 1), _MM_HINT_T0);
    }
    /* (columns past nr are neither read nor stored) */
    const __mmask16 m1 = (__mmask16)(nr >= 2 * NR ? 0xffff : (1u << (nr - NR)) - 1);
    const float *a0 = a, *a1 = a + rs, *a2 = a + 2 * rs, *a3 = a + 3 * rs, *a4 = a + 4 * rs;
    const float *a5 = a + 5 * rs, *a6 = a + 6 * rs, *a7 = a + 7 * rs;
    /* the loop, with B's second half loaded LOAD (a masked load only for a partial one) */
#define WIDE_LOOP(LOAD)                                                                            \
    for (size_t p = 0, q = 0, pb = 0; p < (size_t)kc; p++, q += cs, pb += ldb) {                   \
        __m512 bv0 = _mm512_loadu_ps(b0 + pb), bv1 = LOAD;                                         \
        WIDE_ROW(0);                                                                               \
        WIDE_ROW(1);                                                                               \
        WIDE_ROW(2);                                                                               \
        WIDE_ROW(3);                                                                               \
        WIDE_ROW(4);                                                                               \
        WIDE_ROW(5);                                                                               \
        WIDE_ROW(6);                                                                               \
        WIDE_ROW(7);                                                                               \
    }
    if (nr >= 2 * NR)
        WIDE_LOOP(_mm512_loadu_ps(b1 + pb))
    else
        WIDE_LOOP(_mm512_maskz_loadu_ps(m1, b1 + pb))
#undef WIDE_LOOP
    __m512 acc[8][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31},
                        {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71}};
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int i = 0; i < 8; i++)
        for (int h = 0; h < 2; h++) {
            float *ci = c + (size_t)i * ldc + NR * h;
            __m512 r = _mm512_mul_ps(va, acc[i][h]);
            if (h == 1 && nr < 2 * NR) {     /* a partial tile of columns: all edge */
                if (beta != 0.0f)
                    r = _mm512_add_ps(r, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m1, ci)));
                if (bias)
                    r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m1, bias + NR));
                _mm512_mask_storeu_ps(ci, m1, r);
                continue;
            }
            if (beta != 0.0f && i < MR)
                r = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), r);
            else if (beta != 0.0f)
                r = _mm512_add_ps(r, _mm512_mul_ps(vb, _mm512_loadu_ps(ci)));
            if (bias)
                r = _mm512_add_ps(r, _mm512_loadu_ps(bias + NR * h));
            _mm512_storeu_ps(ci, r);
        }
}
#undef WIDE_ROW
#undef AVX512_TILE_STORE
#endif

/* ------------------------------------------------------------------------------------------------
 * Packing */

/* Both operands pack through two helpers that fill one micro-panel dst (kc, w) with w = MR or NR,
 * zero-padding the lanes n..w-1 that fall past the matrix edge. */
typedef void panel_packer(int n, int w, const float *src, size_t ld, int kc, float *restrict dst);

/* Lane r of dst takes row r of src: n rows, row stride ld, each contiguous along k. Reads one
 * row at a time, front to back; the writes stride through the panel, which sits in L1. */
static void pack_transposed(int n, int w, const float *src, size_t ld, int kc,
                            float *restrict dst)
{
    for (int r = 0; r < n; r++) {
        const float *s = src + (size_t)r * ld;
        for (int p = 0; p < kc; p++)
            dst[p * w + r] = s[p];
    }
    for (int r = n; r < w; r++)
        for (int p = 0; p < kc; p++)
            dst[p * w + r] = 0.0f;
}

/* A whole block the straight way: n_total columns (rows of op(A) or columns of op(B)) starting at
 * src, contiguous along them, row p at src + p * ld, into ceil(n_total / w) micro-panels of
 * (kc, w) one after the other at dst, zero-padded past n_total. Eight rows of the source at a
 * time, panel by panel: eight contiguous read streams the hardware prefetcher follows, and one
 * contiguous write of 8 w floats per panel. (One micro-panel at a time reads w floats from each
 * of kc rows ld apart, a new page per row when ld is 1024 floats or more, and waits on memory;
 * one whole row at a time writes to every panel, w kc floats apart, and with kc w * 4 bytes a
 * multiple of 4 KiB all those lines fall in one set of L1.) */
static void pack_straight_block(int n_total, int w, const float *src, size_t ld, int kc,
                                float *restrict dst)
{
    enum { ROWS = 8 };
    const size_t panel = (size_t)w * kc;
    const int n_full = n_total / w, rest = n_total - n_full * w;
    for (int p0 = 0; p0 < kc; p0 += ROWS) {
        const int p1 = KNOB_MIN(kc, p0 + ROWS);
        float *d = dst + (size_t)p0 * w;
        const float *s = src + (size_t)p0 * ld;
        for (int q = 0; q < n_full; q++, s += w, d += panel) {
            /* the same columns of the next eight rows, one sweep ahead (about w * 64 bytes of
             * row per line: one prefetch per row per 16 floats) */
            if (p1 < kc && (q * w) % 16 < w)
                for (int p = 0; p < KNOB_MIN(ROWS, kc - p1); p++)
                    __builtin_prefetch(s + (size_t)(p + ROWS) * ld);
            if (w == NR)    /* constant sizes: a memcpy of variable size is a slow `rep movs` */
                for (int p = 0; p < p1 - p0; p++)
                    memcpy(d + p * NR, s + p * ld, NR * sizeof(float));
            else if (w == MR)
                for (int p = 0; p < p1 - p0; p++)
                    memcpy(d + p * MR, s + p * ld, MR * sizeof(float));
            else
                for (int p = 0; p < p1 - p0; p++)
                    memcpy(d + p * w, s + p * ld, (size_t)w * sizeof(float));
        }
        if (rest)
            for (int p = 0; p < p1 - p0; p++)
                for (int r = 0; r < w; r++)
                    d[p * w + r] = r < rest ? s[p * ld + r] : 0.0f;
    }
}

#if GEMM_X86
/* pack_transposed eight lanes and eight steps of k at a time: load 8 x 8 floats (lanes past n
 * read as zero), transpose them in registers, store 8 rows of the panel. w is MR (6: stores of
 * 4 + 2 floats, nothing past the row) or NR (16: two groups of 8 lanes). Written out without
 * arrays so that gcc, like clang, keeps everything in registers. */
__attribute__((target("avx2,fma")))
static void pack_transposed_avx2(int n, int w, const float *src, size_t ld, int kc,
                                 float *restrict dst)
{
    int p = 0;
    for (; p + 8 <= kc; p += 8) {
        /* the next micro-panel's rows (the next w rows of the source), a line of each per 16 k:
         * packing reads as fast as the source arrives, and six or sixteen short streams are
         * more than the hardware prefetcher starts early enough. Past the matrix's end a
         * prefetch is only a hint: it cannot fault. */
        if (p % 16 == 0)
            for (int i = 0; i < w; i++)
                _mm_prefetch((const char *)(src + (size_t)(w + i) * ld + p), _MM_HINT_T0);
        for (int g = 0; g < w; g += 8) {
#define ROW(i) (g + (i) < n ? _mm256_loadu_ps(src + (size_t)(g + (i)) * ld + p) \
                            : _mm256_setzero_ps())
            __m256 r0 = ROW(0), r1 = ROW(1), r2 = ROW(2), r3 = ROW(3);
            __m256 r4 = ROW(4), r5 = ROW(5), r6 = ROW(6), r7 = ROW(7);
#undef ROW
            /* pairs of lanes: t0 = r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5], ... */
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            /* quads of lanes: uk = lanes 0-3 (or 4-7) at k = k | k + 4 */
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
            /* all eight lanes at k = 0..7 */
            __m256 k0 = _mm256_permute2f128_ps(u0, u4, 0x20);
            __m256 k1 = _mm256_permute2f128_ps(u1, u5, 0x20);
            __m256 k2 = _mm256_permute2f128_ps(u2, u6, 0x20);
            __m256 k3 = _mm256_permute2f128_ps(u3, u7, 0x20);
            __m256 k4 = _mm256_permute2f128_ps(u0, u4, 0x31);
            __m256 k5 = _mm256_permute2f128_ps(u1, u5, 0x31);
            __m256 k6 = _mm256_permute2f128_ps(u2, u6, 0x31);
            __m256 k7 = _mm256_permute2f128_ps(u3, u7, 0x31);
            float *d = dst + (size_t)p * w + g;
            /* Eight-float stores whatever w is. For w == 6 (lanes 0-5 wanted) each store
             * overlaps the next row's first two lanes, which the next store then writes: 8
             * stores instead of 16. The last one writes two floats past the block: into the
             * next block or the tail loop's row (written after), the next micro-panel (packed
             * after), or the PACK_SLACK floats past the end of pack_a. */
            _mm256_storeu_ps(d + 0 * w, k0);
            _mm256_storeu_ps(d + 1 * w, k1);
            _mm256_storeu_ps(d + 2 * w, k2);
            _mm256_storeu_ps(d + 3 * w, k3);
            _mm256_storeu_ps(d + 4 * w, k4);
            _mm256_storeu_ps(d + 5 * w, k5);
            _mm256_storeu_ps(d + 6 * w, k6);
            _mm256_storeu_ps(d + 7 * w, k7);
        }
    }
    for (; p < kc; p++)
        for (int i = 0; i < w; i++)
            dst[(size_t)p * w + i] = i < n ? src[(size_t)i * ld + p] : 0.0f;
}
#endif

/* Packs rows [i0, i0 + mc) and k in [p0, p0 + kc) of op(A) into MR-row micro-panels at dst. */
static void pack_a_block(panel_packer *pack_t, int ta, int M, int K, const float *A, int i0,
                         int mc, int p0, int kc, float *restrict dst)
{
    if (ta) {   /* A stored (K, M): column p of op(A) is contiguous */
        pack_straight_block(mc, MR, A + (size_t)p0 * M + i0, (size_t)M, kc, dst);
        return;
    }
    for (int ir = 0; ir < mc; ir += MR, dst += (size_t)MR * kc) {
        int mr = KNOB_MIN(MR, mc - ir);     /* A (M, K): row i of op(A) is contiguous along k */
        pack_t(mr, MR, A + (size_t)(i0 + ir) * K + p0, (size_t)K, kc, dst);
    }
}

/* Packs k in [p0, p0 + kc) and columns [j0, j0 + nc) of op(B) into NR-column micro-panels at
 * dst. */
static void pack_b_slice(panel_packer *pack_t, int tb, int N, int K, const float *B, int p0,
                         int kc, int j0, int nc, float *restrict dst)
{
    if (!tb) {  /* B (K, N): row p of op(B) is contiguous */
        pack_straight_block(nc, NR, B + (size_t)p0 * N + j0, (size_t)N, kc, dst);
        return;
    }
    for (int jr = 0; jr < nc; jr += NR, dst += (size_t)NR * kc) {
        int nr = KNOB_MIN(NR, nc - jr);     /* B stored (N, K): column j of op(B) is contiguous */
        pack_t(nr, NR, B + (size_t)(j0 + jr) * K + p0, (size_t)K, kc, dst);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Choosing the instruction set, once per call */

/* C (MR, NR) at c = alpha * A @ B + beta * C with A read in place with strides and B's rows ldb
 * apart (kernel_avx2_strided). */
typedef void strided_kernel(int kc, const float *a, size_t rs, size_t cs, int mr, const float *b,
                            size_t ldb, float *restrict c, size_t ldc, float alpha, float beta,
                            const float *bias);
/* 8 rows x nr (NR + 1 .. 2 NR) columns, A in place, B as two NR-column halves
 * (kernel_avx512_8x32_strided) */
typedef void wide_kernel(int kc, const float *a, size_t rs, size_t cs, int nr, const float *b0,
                         const float *b1, size_t ldb, float *restrict c, size_t ldc, float alpha,
                         float beta, const float *bias);

#if GEMM_X86
/* knob_gemm_bf16 where the CPU has AVX512_BF16: C (MR, NR) = alpha a @ b + beta C (+ bias) over
 * panels of bf16 pairs (bf16_pairs below): per pair of k, one 64-byte load of B (16 columns x 2)
 * and, per row, a broadcast pair of A and one vdpbf16ps, c[j] += a0 b0j + a1 b1j with the products
 * exact and each addition rounded to f32 (as two fused multiply-adds would be; denormal inputs and
 * results count as zero, below 1e-38). Even and odd pairs go to two sets of 6 accumulators (the
 * instruction's latency needs 12 in flight), added at the end: a summation order like any other.
 * Same tile and panels' places as the f32 kernels, so the driver is theirs. */
__attribute__((target("avx512f,avx512bw,avx512bf16")))
static void kernel_bf16_avx512(int kc, const float *restrict a, const float *restrict b,
                               float *restrict c, size_t ldc, float alpha, float beta,
                               const float *bias)
{
    __m512 e0 = _mm512_setzero_ps(), e1 = e0, e2 = e0, e3 = e0, e4 = e0, e5 = e0;
    __m512 o0 = e0, o1 = e0, o2 = e0, o3 = e0, o4 = e0, o5 = e0;
    const int np = (kc + 1) / 2;
    int p = 0;
    /* acc += the pair of A at row i of pair q (broadcast) times b, the broadcast folded into the
     * instruction's memory operand ({1to16}): a separate vbroadcastss to a zmm register takes a
     * slot of the FP pipes on Zen 4, which halved the speed (gcc does not fold it itself). */
#define DP(acc, q, i, bv) \
    __asm__("vdpbf16ps %1%{1to16%}, %2, %0" : "+v"(acc) : "m"(a[(size_t)(q) * MR + (i)]), "v"(bv))
    for (; p + 2 <= np; p += 2) {
        __m512 b0 = _mm512_loadu_ps(b + (size_t)p * NR), b1 = _mm512_loadu_ps(b + (size_t)(p + 1) * NR);
        DP(e0, p, 0, b0);
        DP(e1, p, 1, b0);
        DP(e2, p, 2, b0);
        DP(e3, p, 3, b0);
        DP(e4, p, 4, b0);
        DP(e5, p, 5, b0);
        DP(o0, p + 1, 0, b1);
        DP(o1, p + 1, 1, b1);
        DP(o2, p + 1, 2, b1);
        DP(o3, p + 1, 3, b1);
        DP(o4, p + 1, 4, b1);
        DP(o5, p + 1, 5, b1);
    }
    if (p < np) {
        __m512 b0 = _mm512_loadu_ps(b + (size_t)p * NR);
        DP(e0, p, 0, b0);
        DP(e1, p, 1, b0);
        DP(e2, p, 2, b0);
        DP(e3, p, 3, b0);
        DP(e4, p, 4, b0);
        DP(e5, p, 5, b0);
    }
#undef DP
    __m512 acc[MR] = {_mm512_add_ps(e0, o0), _mm512_add_ps(e1, o1), _mm512_add_ps(e2, o2),
                      _mm512_add_ps(e3, o3), _mm512_add_ps(e4, o4), _mm512_add_ps(e5, o5)};
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const __m512 vbias = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
    for (int i = 0; i < MR; i++) {
        float *ci = c + (size_t)i * ldc;
        __m512 r = _mm512_mul_ps(va, acc[i]);
        if (beta != 0.0f)
            r = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), r);
        if (bias)
            r = _mm512_add_ps(r, vbias);
        _mm512_storeu_ps(ci, r);
    }
}
#endif

/* What differs between instruction sets: the micro-kernel, the transposing packer, the kernel for
 * small products that reads A in place (NULL: small products pack, as large ones), and a kernel of
 * two row panels at once (2 MR x NR; NULL: none), same bits as two calls of the first. */
typedef struct {
    const char *name;
    micro_kernel *kernel;
    panel_packer *pack_transposed;
    strided_kernel *kernel_strided;
    micro_kernel *kernel_two;
    strided_kernel *kernel_strided_two;     /* 2 MR full rows read in place, or NULL */
    wide_kernel *kernel_wide;               /* 8 rows x 2 NR in place (small products), or NULL */
} gemm_isa;

/* One row per instruction-set level (KNOB_ISA_*), the best the CPU has chosen at run time
 * (src/kernels/cpu.c). AVX-512 runs the 12-row kernel wherever two row panels are full, and the
 * AVX2 kernels for the rest (edges, small products: the same bits). */
static const gemm_isa isa_table[] = {
    [KNOB_ISA_PORTABLE] = {"portable", kernel_portable, pack_transposed, NULL, NULL, NULL, NULL},
#if GEMM_X86
    [KNOB_ISA_AVX2] = {"avx2+fma", kernel_avx2, pack_transposed_avx2, kernel_avx2_strided, NULL,
                       NULL, NULL},
    [KNOB_ISA_AVX512] = {"avx512f 12x16 (avx2+fma at the edges)", kernel_avx2, pack_transposed_avx2,
                         kernel_avx2_strided, kernel_avx512_12x16, kernel_avx512_12x16_strided,
                         kernel_avx512_8x32_strided},
#endif
};

/* Tests and benchmarks only (not thread-safe to flip while a gemm runs): on != 0 makes every
 * kernel family use its portable code even where AVX2 is available. */
void knob_gemm_force_portable(int on) { knob_kernel_force(on ? KNOB_ISA_PORTABLE : -1); }

static const gemm_isa *pick_isa(void)
{
    int isa = knob_kernel_isa();
    int n = (int)(sizeof isa_table / sizeof isa_table[0]);
    while (isa >= n || !isa_table[isa].kernel)
        isa--;
    return &isa_table[isa];
}

/* The 12-row kernel reading A in place runs where 512-bit fused multiply-adds do twice the work of
 * 256-bit ones. Not on AMD's Zen 4 (family 25), which splits each into two 256-bit halves: there
 * the packed 12-row kernel only matches the AVX2 one, and the strided one measured 5% slower on
 * small products (bench_gemm --threads 1, 128^3 nn: 107 vs 101 GFLOP/s, interleaved; 96^3 109 vs
 * 104). The bits are the same either way. -1: decide from the CPU; 0 or 1: tests. */
static int strided_two_setting = -1;

void knob_gemm_set_strided_two(int on) { strided_two_setting = on; }

static int strided_two_on(void)
{
    if (strided_two_setting >= 0)
        return strided_two_setting;
    const knob_cpu_info *c = knob_cpu();
    return !(!strcmp(c->vendor, "AuthenticAMD") && c->family == 25);
}

/* The micro-kernel knob_gemm uses now ("avx512f 12x16 ...", "avx2+fma" or "portable"). */
const char *knob_gemm_kernel_name(void)
{
    const gemm_isa *isa = pick_isa();
    if (isa->kernel_strided_two && !strided_two_on())
        return "avx512f 12x16 packed; avx2+fma at the edges and in place (zmm FMA in two halves)";
    return isa->name;
}

/* knob_gemm_bf16 runs vdpbf16ps: the CPU has AVX512_BF16 (and BW) and the level is not capped
 * below AVX-512 (KNOB_KERNEL, knob_kernel_force). */
static int bf16_native(void)
{
    const unsigned need = KNOB_CPU_AVX512F | KNOB_CPU_AVX512BW | KNOB_CPU_AVX512BF16;
    return GEMM_X86 && knob_kernel_isa() >= KNOB_ISA_AVX512 && (knob_cpu()->features & need) == need;
}

const char *knob_gemm_bf16_kernel_name(void)
{
    return bf16_native() ? "avx512bf16 (vdpbf16ps)" : "bf16-rounded panels, f32 kernel";
}

/* ------------------------------------------------------------------------------------------------
 * Driver */

typedef struct {
    int ta, tb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    const gemm_isa *isa;
    micro_kernel *kernel;       /* isa->kernel, or kernel_bf16_avx512 */
    micro_kernel *kernel_two;   /* isa->kernel_two for f32 (2 MR rows at once), or NULL */
    strided_kernel *strided_two;    /* isa->kernel_strided_two where it pays (strided_two_on) */
    wide_kernel *wide;              /* isa->kernel_wide (f32 small products), or NULL */
    const float *bias;          /* (N) added to every row of C at the end, or NULL */
    int bf16;                   /* knob_gemm_bf16: 1 packed panels rounded to bf16 (f32 kernels),
                                 * 2 packed as bf16 pairs (kernel_bf16_avx512) */
} gemm_call;

/* knob_gemm_bf16's rounding: the n floats of a packed block, each to the nearest bf16, in place
 * (the block is in L1 or L2, just written; zero padding stays zero). */
static void round_bf16(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = knob_bf16_round(p[i]);
}

#if GEMM_X86
/* For kernel_bf16_avx512: n_panels packed micro-panels (kc, w) of f32 at p (w = MR or NR), each
 * rewritten in place as (ceil(kc / 2), w) 32-bit pairs of bf16 {k even, k odd}, rounded to nearest
 * even by vcvtne2ps2bf16 (which also reads denormals as zero; an odd kc's last pair has a zero), in
 * the first half of its own space, so each panel keeps its place. Pair q reads the 2w floats at
 * 2qw, then writes w slots at qw: nothing still to be read lies below what it writes. */
__attribute__((target("avx512f,avx512bw,avx512bf16")))
static void bf16_pairs(float *p, int n_panels, int w, int kc)
{
    /* word i of the result: lo[i / 2] for even i, hi[i / 2] for odd (lo words 0-15, hi 16-31) */
    const __m512i mix = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __mmask16 lanes = (__mmask16)((1u << w) - 1);
    for (int t = 0; t < n_panels; t++, p += (size_t)w * kc)
        for (int q = 0; q < (kc + 1) / 2; q++) {
            const float *src = p + (size_t)2 * q * w;
            __m512 lo = _mm512_maskz_loadu_ps(lanes, src);
            __m512 hi = _mm512_maskz_loadu_ps(2 * q + 1 < kc ? lanes : 0, src + w);
            __m512i h = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
            _mm512_mask_storeu_epi32(p + (size_t)q * w, lanes, _mm512_permutexvar_epi16(mix, h));
        }
}
#endif

/* A packed block of n lanes (rows of A: w = MR; columns of B: w = NR) and kc steps, made ready
 * for knob_gemm_bf16's kernel: pairs of bf16 (native) or f32 rounded to bf16. */
static void bf16_block(const gemm_call *g, float *p, int n, int w, int kc)
{
    int panels = (n + w - 1) / w;
#if GEMM_X86
    if (g->bf16 == 2) {
        bf16_pairs(p, panels, w, kc);
        return;
    }
#endif
    round_bf16(p, (size_t)panels * w * kc);
}

/* The part (mr, nr) of an edge tile that exists, from its full tile t (MR, NR) = a @ b: alpha t,
 * + beta C, then + bias. (The AVX2 kernel fuses the beta step, so an edge element may differ from
 * an interior one in the last bit; which elements are edges depends on the shape alone.) */
static void edge_store(float *c, size_t ldc, const float *t, int mr, int nr, float alpha,
                       float beta, const float *bias)
{
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float *cij = c + (size_t)i * ldc + j;
            float r = alpha * t[i * NR + j];
            if (beta != 0.0f) {
                float bc = beta * *cij;     /* (its own statement: never contracted to an FMA,
                                             * so kernel_avx512_8x32_strided can match it) */
                r += bc;
            }
            if (bias)
                r += bias[j];
            *cij = r;
        }
}

/* The micro-tiles of rows [m0, m0 + mc) of C and columns [jc + j0, jc + j1) (micro-panels of
 * the B slice packed at bp; j0 a multiple of NR), for the K slice [pc, pc + kc). A's rows come
 * from their block packed at ap, or, with ap NULL, are read in place by the instruction set's
 * strided kernel (the same sums in the same order, so the same bits). beta == 0 overwrites C. */
static void run_tiles(const gemm_call *g, const float *ap, const float *bp, int pc, int kc, int m0,
                      int mc, int jc, int j0, int j1, float beta, const float *bias)
{
    const int N = g->N;
    const size_t rs = g->ta ? 1 : (size_t)g->K, cs = g->ta ? (size_t)g->M : 1;
    for (int jr = j0; jr < j1; jr += NR) {
        int nr = KNOB_MIN(NR, j1 - jr);
        const float *b = bp + (size_t)jr * kc, *bj = bias ? bias + jc + jr : NULL;
        for (int ir = 0; ir < mc; ir += MR) {
            int mr = KNOB_MIN(MR, mc - ir), full = mr == MR && nr == NR;
            float *c = g->C + (size_t)(m0 + ir) * N + jc + jr;
            int two = ap ? g->kernel_two != NULL : g->strided_two != NULL;
            if (two && nr == NR && ir + 2 * MR <= mc) {     /* two row panels at once */
                if (ap)
                    g->kernel_two(kc, ap + (size_t)ir * kc, b, c, (size_t)N, g->alpha, beta, bj);
                else
                    g->strided_two(kc, g->A + (size_t)(m0 + ir) * rs + (size_t)pc * cs,
                                               rs, cs, 2 * MR, b, NR, c, (size_t)N, g->alpha, beta,
                                               bj);
                ir += MR;
                continue;
            }
            /* an edge tile: the full tile into scratch, then the part that exists */
            _Alignas(32) float t[MR * NR];
            float *dst = full ? c : t;
            size_t ld = full ? (size_t)N : NR;
            if (ap && mr < MR && g->isa->kernel_strided && g->bf16 != 2)   /* mr rows' work */
                g->isa->kernel_strided(kc, ap + (size_t)ir * kc, 1, MR, mr, b, NR, t, NR, 1.0f,
                                       0.0f, NULL);
            else if (ap)
                g->kernel(kc, ap + (size_t)ir * kc, b, dst, ld, full ? g->alpha : 1.0f,
                               full ? beta : 0.0f, full ? bj : NULL);
            else
                g->isa->kernel_strided(kc, g->A + (size_t)(m0 + ir) * rs + (size_t)pc * cs, rs, cs,
                                       mr, b, NR, dst, ld, full ? g->alpha : 1.0f,
                                       full ? beta : 0.0f, full ? bj : NULL);
            if (!full)
                edge_store(c, (size_t)N, t, mr, nr, g->alpha, beta, bj);
        }
    }
}

/* One step of the driver: the B slice of columns [jc, jc + nc) and k in [pc, pc + kc), packed
 * once at bp and shared by every thread, times all of op(A)'s rows. The step is cut into chunks
 * of rows (at most MC, as equal as whole units of row_unit rows allow) by col_step columns (a
 * multiple of NR); a chunk packs its rows of A into the pack_a of the thread that runs it and
 * sweeps its tiles. */
typedef struct {
    const gemm_call *g;
    float *bp;
    int jc, nc, pc, kc;
    int k_step;                 /* the depth of every K slice but maybe the last */
    int whole;                  /* the step is the whole of K: every slice packed at once, slice
                                 * pc at bp + pc * npad ([slice][panel][kc][NR]) */
    int npad;                   /* nc rounded up to micro-panels */
    int pack_groups;            /* when whole: packing units per slice */
    int row_unit;               /* rows per unit: MR, or 2 MR where the kernel takes pairs */
    int row_units, row_chunks;  /* units in M (the last maybe partial), chunks they fall in */
    int col_step, n_col_groups;
} gemm_step;

/* Chunks [lo, hi): each runs the step's K slices in order (one, or all when whole) for its rows
 * and columns, packing its rows of A for each. beta: g->beta for the first K slice, 1 after.
 * Chunk b is row chunk b % row_chunks of column group b / row_chunks: numbered column group by
 * column group, like the packing of B, so that the pool's shares (src/core/threads.c) give a
 * thread the columns of B it packed itself, still in its cache (bench_gemm --threads 2,
 * 64x128x784 nt: 156 GFLOP/s row by row, N column by column). */
static void step_chunks(void *ctx, long lo, long hi)
{
    const gemm_step *s = ctx;
    const gemm_call *g = s->g;
    const int p_end = s->whole ? g->K : s->pc + s->kc;
    for (long b = lo; b < hi; b++) {
        /* row chunk r: units [U r / R, U (r + 1) / R), so chunks differ by one unit at most
         * (fixed-size ones left a short last chunk: 9.5 of them on 2 threads at 1024^3) */
        long r = b % s->row_chunks;
        int m0 = (int)((long)s->row_units * r / s->row_chunks) * s->row_unit;
        int mc = KNOB_MIN((int)((long)s->row_units * (r + 1) / s->row_chunks) * s->row_unit,
                          g->M) - m0;
        KNOB_ASSERT(mc > 0 && mc <= KNOB_MAX(get_blocking()->MC, 2 * MR));
        int j0 = (int)(b / s->row_chunks) * s->col_step, j1 = KNOB_MIN(s->nc, j0 + s->col_step);
        for (int pc = s->whole ? 0 : s->pc; pc < p_end; pc += s->k_step) {
            int kc = KNOB_MIN(s->k_step, g->K - pc);
            const float *bp = s->whole ? s->bp + (size_t)pc * s->npad : s->bp;
            float beta = pc == 0 ? g->beta : 1.0f;
            const float *bias = pc + kc == g->K ? g->bias : NULL;
            /* few rows (whole): A read in place, unless it is transposed and wide. op(A)'s rows
             * are then columns of the stored A (a weight gradient dY^T X: columns of dY), and in
             * place each step of k reads its floats M floats after the last: at M 256 and more
             * that defeated the prefetchers (bench_gemm --threads 2, interleaved, tn, K 4096:
             * M 384 x N 128 158 GFLOP/s in place, 197 packed; 256 x 128 167 -> 194; 1024^3 148 ->
             * 216), at M 128 packing cost more than it saved (128 x 512 195 against 178). */
            const float *ap = NULL;
            if (!s->whole || (g->ta && g->M > 128) || !g->isa->kernel_strided || g->bf16) {
                pack_a_block(g->isa->pack_transposed, g->ta, g->M, g->K, g->A, m0, mc, pc, kc,
                             pack_a);
                if (g->bf16)
                    bf16_block(g, pack_a, mc, MR, kc);
                ap = pack_a;
            }
            run_tiles(g, ap, bp, pc, kc, m0, mc, s->jc, j0, j1, beta, bias);
        }
    }
}

/* Micro-panels [lo, hi) of the step's B slice. */
static void step_pack_b(void *ctx, long lo, long hi)
{
    const gemm_step *s = ctx;
    const gemm_call *g = s->g;
    int j0 = (int)lo * NR, n = KNOB_MIN(s->nc, (int)hi * NR) - j0;
    pack_b_slice(g->isa->pack_transposed, g->tb, g->N, g->K, g->B, s->pc, s->kc, s->jc + j0, n,
                 s->bp + (size_t)j0 * s->kc);
    if (g->bf16)
        bf16_block(g, s->bp + (size_t)j0 * s->kc, n, NR, s->kc);
}

/* Units [lo, hi) of packing a whole-K step: unit u is group u / n_slices of the micro-panels of
 * K slice u % n_slices (a group's slices together: the columns that the same chunks read). */
static void step_pack_whole(void *ctx, long lo, long hi)
{
    const gemm_step *s = ctx;
    const gemm_call *g = s->g;
    const int panels = s->npad / NR, per = (panels + s->pack_groups - 1) / s->pack_groups;
    const int n_slices = (g->K + s->k_step - 1) / s->k_step;
    for (long u = lo; u < hi; u++) {
        int pc = (int)(u % n_slices) * s->k_step, kc = KNOB_MIN(s->k_step, g->K - pc);
        int j0 = (int)(u / n_slices) * per * NR, n = KNOB_MIN(s->nc, j0 + per * NR) - j0;
        if (n > 0) {
            float *dst = s->bp + (size_t)pc * s->npad + (size_t)j0 * kc;
            pack_b_slice(g->isa->pack_transposed, g->tb, g->N, g->K, g->B, pc, kc, s->jc + j0, n,
                         dst);
            if (g->bf16)
                bf16_block(g, dst, n, NR, kc);
        }
    }
}

/* Rows [ir0, M) of the NR columns of C at jr, B's rows at b (stride ldb, nr columns present). */
static void direct_block(const gemm_call *g, int jr, int nr, const float *b, size_t ldb, int ir0)
{
    const int M = g->M, N = g->N, K = g->K;
    const size_t rs = g->ta ? 1 : (size_t)K, cs = g->ta ? (size_t)M : 1;
    const float *bias = g->bias ? g->bias + jr : NULL;
    for (int ir = ir0; ir < M; ir += MR) {
        int mr = KNOB_MIN(MR, M - ir);
        const float *a = g->A + (size_t)ir * rs;
        float *c = g->C + (size_t)ir * N + jr;
        if (g->strided_two && nr == NR && ir + 2 * MR <= M) {    /* two row panels at once */
            g->strided_two(K, a, rs, cs, 2 * MR, b, ldb, c, (size_t)N, g->alpha, g->beta, bias);
            ir += MR;
            continue;
        }
        if (mr == MR && nr == NR) {
            g->isa->kernel_strided(K, a, rs, cs, mr, b, ldb, c, (size_t)N, g->alpha, g->beta, bias);
            continue;
        }
        _Alignas(32) float t[MR * NR];
        g->isa->kernel_strided(K, a, rs, cs, mr, b, ldb, t, NR, 1.0f, 0.0f, NULL);
        edge_store(c, (size_t)N, t, mr, nr, g->alpha, g->beta, bias);
    }
}

/* Small products (one K slice): A read in place by the strided kernel, B too when its rows are
 * contiguous along N (not transposed) except a partial last micro-panel, which is packed so that
 * nothing is read past a row; a transposed B is packed whole. Same sums in the same order as the
 * packed path, so the same bits; single-threaded, like every product this small. */
static void gemm_direct(const gemm_call *g)
{
    const int M = g->M, N = g->N, K = g->K;
    const size_t rs = g->ta ? 1 : (size_t)K, cs = g->ta ? (size_t)M : 1;
    if (g->tb)
        pack_b_slice(g->isa->pack_transposed, 1, N, K, g->B, 0, K, 0, N, pack_b);
    for (int jr = 0; jr < N;) {
        int nr = KNOB_MIN(NR, N - jr);
        const float *b = g->B + jr;
        size_t ldb = (size_t)N;
        if (g->tb) {
            b = pack_b + (size_t)jr * K;
            ldb = NR;
        }
        /* 8 rows (a convolution's 8 channels, which 6-row tiles cut 6 + 2): one tile of 8 rows by
         * 17 to 32 columns. (Measured no faster elsewhere: 16 rows equal, 10 x 100 x 100 60 -> 46
         * GFLOP/s, 200 x 64 x 16 tn 86 -> 75, 128^3 105 -> 98.) */
        if (g->wide && N - jr > NR && M == 8) {
            const float *b1 = g->tb ? b + (size_t)NR * K : b + NR;
            g->wide(K, g->A, rs, cs, KNOB_MIN(2 * NR, N - jr), b, b1, ldb, g->C + jr, (size_t)N,
                    g->alpha, g->beta, g->bias ? g->bias + jr : NULL);
            jr += 2 * NR;
            continue;
        }
        if (!g->tb && nr < NR) {
            pack_straight_block(nr, NR, g->B + jr, (size_t)N, K, pack_a);
            b = pack_a;
            ldb = NR;
        }
        direct_block(g, jr, nr, b, ldb, 0);
        jr += NR;
    }
}

/* Plain loop for tiny products (and the same contract as the rest). */
static void gemm_small(const gemm_call *g)
{
    const int M = g->M, N = g->N, K = g->K;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = 0.0f;
            for (int p = 0; p < K; p++) {
                float a = g->ta ? g->A[(size_t)p * M + i] : g->A[(size_t)i * K + p];
                float b = g->tb ? g->B[(size_t)j * K + p] : g->B[(size_t)p * N + j];
                s += a * b;
            }
            float *cij = g->C + (size_t)i * N + j;
            float r = g->alpha * s;
            *cij = g->beta != 0.0f ? r + g->beta * *cij : r;
        }
}

/* ------------------------------------------------------------------------------------------------
 * Matrix-vector products (M == 1 or N == 1, e.g. one token at a time through a GPT)
 *
 * Packing would copy the whole matrix to use each element once, so these read it in place. The
 * vector x (K) and the result y (L) are contiguous whatever the transposes, which leaves two forms:
 * a dot product per row of the matrix, or a sum of its rows scaled by x ("axpy"). Each element of y
 * is summed by one thread in a fixed order, as in the packed path. */

typedef struct {
    int L, K;
    const float *Mat, *x;
    float *y;
    float alpha, beta;
} gemv_call;

/* y (L) = alpha * Mat (L, K) @ x (K) + beta * y, rows [lo, hi) */
static void gemv_dot_rows(void *ctx, long lo, long hi)
{
    const gemv_call *c = ctx;
    const int K = c->K;
    const float *x = c->x;
    for (long l = lo; l < hi; l++) {
        const float *row = c->Mat + (size_t)l * K;
        v4f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
        int p = 0;
        for (; p + 16 <= K; p += 16) {
            v4f r0, r1, r2, r3, x0, x1, x2, x3;
            memcpy(&r0, row + p, sizeof r0);
            memcpy(&r1, row + p + 4, sizeof r1);
            memcpy(&r2, row + p + 8, sizeof r2);
            memcpy(&r3, row + p + 12, sizeof r3);
            memcpy(&x0, x + p, sizeof x0);
            memcpy(&x1, x + p + 4, sizeof x1);
            memcpy(&x2, x + p + 8, sizeof x2);
            memcpy(&x3, x + p + 12, sizeof x3);
            s0 += r0 * x0;
            s1 += r1 * x1;
            s2 += r2 * x2;
            s3 += r3 * x3;
        }
        s0 += s1 + (s2 + s3);
        float s = (s0[0] + s0[1]) + (s0[2] + s0[3]);
        for (; p < K; p++)
            s += row[p] * x[p];
        c->y[l] = c->beta != 0.0f ? c->alpha * s + c->beta * c->y[l] : c->alpha * s;
    }
}

static void gemv_dot(int L, int K, const float *Mat, const float *x, float *y, float alpha,
                     float beta, int n_threads)
{
    gemv_call c = {L, K, Mat, x, y, alpha, beta};
    /* chunks of at least 16K multiply-adds */
    long chunk = n_threads > 1 ? knob_parallel_chunk(L, 16384 / KNOB_MAX(K, 1) + 1, 8L * n_threads) : L;
    knob_parallel_for(L, chunk, gemv_dot_rows, &c);
}

/* y (L) = alpha * x (K) @ Mat (K, L) + beta * y. Each thread takes a contiguous range of y and
 * sweeps it GEMV_COLS columns at a time, so the partial sums stay in L1. */
enum { GEMV_COLS = 256 };

/* columns [lo, hi) of y, a multiple of GEMV_COLS apart */
static void gemv_axpy_cols(void *ctx, long lo, long hi)
{
    const gemv_call *c = ctx;
    const int L = c->L, K = c->K;
    for (long l0 = lo; l0 < hi; l0 += GEMV_COLS) {
        int n = (int)KNOB_MIN((long)GEMV_COLS, hi - l0);
        _Alignas(32) float acc[GEMV_COLS];
        memset(acc, 0, sizeof acc);
        for (int p = 0; p < K; p++) {
            const float *row = c->Mat + (size_t)p * L + l0;
            float xp = c->x[p];
            int j = 0;
            for (; j + 4 <= n; j += 4) {
                v4f r, a;
                memcpy(&r, row + j, sizeof r);
                memcpy(&a, acc + j, sizeof a);
                a += xp * r;
                memcpy(acc + j, &a, sizeof a);
            }
            for (; j < n; j++)
                acc[j] += xp * row[j];
        }
        float *y = c->y + l0;
        for (int j = 0; j < n; j++)
            y[j] = c->beta != 0.0f ? c->alpha * acc[j] + c->beta * y[j] : c->alpha * acc[j];
    }
}

static void gemv_axpy(int L, int K, const float *Mat, const float *x, float *y, float alpha,
                      float beta, int n_threads)
{
    gemv_call c = {L, K, Mat, x, y, alpha, beta};
    /* every element of y sums over p in order in whichever chunk it falls: any chunking gives
     * the same bits */
    long chunk = n_threads > 1 ? GEMV_COLS : L;
    knob_parallel_for(L, chunk, gemv_axpy_cols, &c);
}

/* ------------------------------------------------------------------------------------------------
 * Splitting C between threads */

/* BLIS-style: for each NC-wide column panel and each K slice, the B slice (KC x NC) is packed
 * once, by all the threads together when it is big, into the calling thread's pack_b; then the
 * threads share it, taking chunks of rows of C (and, when there are few rows, groups of B's
 * micro-panels too) from the pool, each packing its own rows of A. Two waits per step (after
 * the packing, after the tiles), instead of every thread packing its own copy of B: for M = 4096
 * tokens by N = 128 that copy was as much work as the chunk it fed. Chunks: enough to keep a
 * thread a busy machine parks from holding the rest up; their bounds do not matter to the bits,
 * since each element's sum runs over the same K slices in the same order whoever computes it.
 * (pack_b is the caller's: two application threads calling knob_gemm at once each use their
 * own, and a call from inside a pool chunk runs on that thread alone.) */
static void gemm_packed(const gemm_call *g, int n_threads)
{
    const int M = g->M, N = g->N, K = g->K;
    const knob_gemm_blocking *bl = get_blocking();
    const int KC = bl->KC, MC = bl->MC, NC = bl->NC;
    /* K in equal slices of at most KC (784 = 4 x 196, not 3 x 256 + 16): a thin last slice would
     * pay for packing and for loading and storing C with little arithmetic to show for it. The
     * slices depend on K alone, so the order of the sum does too. */
    const int n_slices = (K + KC - 1) / KC, k_step = (K + n_slices - 1) / n_slices;
    const int units_m = (M + MR - 1) / MR;
    gemm_step s = {.g = g, .bp = pack_b, .k_step = k_step, .pack_groups = 1};
    for (int jc = 0; jc < N; jc += NC) {
        int nc = KNOB_MIN(NC, N - jc), panels = (nc + NR - 1) / NR;
        s.jc = jc;
        s.nc = nc;
        s.npad = panels * NR;
        /* row chunks of at most MC rows; units of one row panel, or of two where the kernel
         * takes pairs, shared out evenly among them (a chunk gets at most one unit more than
         * another, and at most MC rows: see below) */
        int row_units = MC / MR;   /* (MR units; even, since MC is a multiple of 2 MR) */
        s.row_unit = g->kernel_two ? 2 * MR : MR;
        s.row_units = (M + s.row_unit - 1) / s.row_unit;
        s.row_chunks = (units_m + row_units - 1) / row_units;
        s.col_step = panels * NR;
        s.n_col_groups = 1;
        if (n_threads > 1) {
            /* aim for 4 chunks per thread: rows in halves of MC down to 8 tiles, then columns.
             * (Halving keeps a chunk of pairs within MC: at most row_units + 1 <= MC / MR.) */
            int want = 4 * n_threads;
            while (row_units > 8 && (units_m + row_units - 1) / row_units < want)
                row_units = (row_units + 1) / 2;
            s.row_chunks = (units_m + row_units - 1) / row_units;
            /* a whole number of chunks per thread: 9 chunks on 2 threads leave one thread idle
             * for half a chunk at the end (1024^3 and 2048^3 did) */
            if (s.row_chunks > n_threads && s.row_chunks % n_threads)
                s.row_chunks += n_threads - s.row_chunks % n_threads;
            s.row_chunks = KNOB_MIN(s.row_chunks, s.row_units);
            int groups = KNOB_MIN(panels, (want + s.row_chunks - 1) / s.row_chunks);
            int per_group = (panels + groups - 1) / groups;
            s.col_step = per_group * NR;
            s.n_col_groups = (panels + per_group - 1) / per_group;
        }
        long n_chunks = (long)s.row_chunks * s.n_col_groups;
        /* Few rows (a mini-batch through a layer; at most WHOLE_M_MAX): when the whole panel of
         * B, every K slice of it, fits in pack_b, it is packed at once, by all the threads, and
         * each chunk then runs all the slices of its tiles: two waits per panel instead of two per
         * slice, and no thread idles while one packs a slice too small to share. The same slices
         * in the same order, so the same bits. (Many rows: the per-slice loop keeps its B slice in
         * the caches.) */
        s.whole = n_threads > 1 && M <= WHOLE_M_MAX && (size_t)s.npad * K <= PACK_B_FLOATS;
        if (s.whole) {
            s.pack_groups = KNOB_MAX(1, KNOB_MIN(panels, (4 * n_threads + n_slices - 1) / n_slices));
            knob_parallel_for((long)n_slices * s.pack_groups, 1, step_pack_whole, &s);
            knob_parallel_for(n_chunks, 1, step_chunks, &s);
            continue;
        }
        for (int pc = 0; pc < K; pc += k_step) {
            s.pc = pc;
            s.kc = KNOB_MIN(k_step, K - pc);
            /* packing B is memory-bound work: split it only when there is enough of it */
            if (n_threads > 1 && (long)s.kc * nc >= 65536)
                knob_parallel_for(panels, KNOB_MAX(1, panels / 8), step_pack_b, &s);
            else
                step_pack_b(&s, 0, panels);
            if (n_threads > 1)
                knob_parallel_for(n_chunks, 1, step_chunks, &s);
            else
                step_chunks(&s, 0, n_chunks);
        }
    }
}

/* C (M, N) += bias (N) on every row: the separate add knob_gemm_bias fuses elsewhere */
static void add_bias_rows(float *C, int M, int N, const float *bias)
{
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * N;
        for (int j = 0; j < N; j++)
            c[j] += bias[j];
    }
}

static void gemm_run(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                     const float *B, float beta, float *C, const float *bias, int bf16)
{
    KNOB_ASSERT(M >= 0 && N >= 0 && K >= 0);
    if (M == 0 || N == 0)
        return;
    if (K == 0 || alpha == 0.0f) {  /* C = beta * C; A and B are not read (BLAS convention) */
        size_t n = (size_t)M * N;
        if (beta == 0.0f)
            memset(C, 0, n * sizeof(float));
        else if (beta != 1.0f)
            for (size_t i = 0; i < n; i++)
                C[i] *= beta;
        if (bias)
            add_bias_rows(C, M, N, bias);
        return;
    }
    gemm_call g = {ta, tb, M, N, K, alpha, beta, A, B, C, pick_isa(), NULL, NULL, NULL, NULL, bias,
                   bf16};
    g.kernel = g.isa->kernel;
    g.kernel_two = bf16 ? NULL : g.isa->kernel_two;
    g.strided_two = bf16 || !strided_two_on() ? NULL : g.isa->kernel_strided_two;
    g.wide = bf16 ? NULL : g.isa->kernel_wide;
#if GEMM_X86
    if (bf16 && bf16_native()) {
        g.bf16 = 2;
        g.kernel = kernel_bf16_avx512;
    }
#endif
    double mnk = (double)M * N * K;
    if (bf16) {     /* every size through the packed path, where the rounding is */
        gemm_packed(&g, mnk >= PARALLEL_MNK ? knob_threads_get() : 1);
        return;
    }
    if (mnk <= SMALL_MNK || N == 1 || M == 1) {
        int n_threads = mnk >= PARALLEL_MNK ? knob_threads_get() : 1;
        if (mnk <= SMALL_MNK)
            gemm_small(&g);
        else if (N == 1 && (!ta || M == 1))     /* x = B, y = C (M); A (M, K) rows */
            gemv_dot(M, K, A, B, C, alpha, beta, n_threads);
        else if (N == 1)                        /* A stored (K, M) */
            gemv_axpy(M, K, A, B, C, alpha, beta, n_threads);
        else if (tb)                            /* x = A, y = C (N); B stored (N, K) */
            gemv_dot(N, K, B, A, C, alpha, beta, n_threads);
        else                                    /* B (K, N) rows */
            gemv_axpy(N, K, B, A, C, alpha, beta, n_threads);
        if (bias)   /* these paths make one pass over C: the add after it costs little */
            add_bias_rows(C, M, N, bias);
        return;
    }
    int n_threads = mnk >= PARALLEL_MNK ? knob_threads_get() : 1;
    /* (a transposed B is packed whole into pack_b) */
    if (n_threads == 1 && mnk <= DIRECT_MNK && K <= get_blocking()->KC &&
        (!tb || (size_t)N * K <= PACK_B_FLOATS) &&
        g.isa->kernel_strided) {
        gemm_direct(&g);
        return;
    }
    gemm_packed(&g, n_threads);
}

void knob_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, const float *B,
               float beta, float *C)
{
    gemm_run(ta, tb, M, N, K, alpha, A, B, beta, C, NULL, 0);
}

/* C = alpha op(A) op(B) + beta C + bias on every row, the bias added in the last K slice's store:
 * the same bits as knob_gemm followed by C[i][j] += bias[j], without the second pass over C. */
void knob_gemm_bias(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                    const float *B, float beta, float *C, const float *bias)
{
    gemm_run(ta, tb, M, N, K, alpha, A, B, beta, C, bias, 0);
}

/* Mixed precision: the packed path of knob_gemm with every packed block of A and B made bf16 as it
 * is packed. Where the CPU has AVX512_BF16 the blocks become bf16 pairs for the vdpbf16ps kernel
 * (twice the f32 kernel's flops); elsewhere they are rounded to bf16 in place for the f32
 * micro-kernel, whose products of bf16 values are exact (knob_gemm's speed). The same bits for a
 * given thread count. */
void knob_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                    const float *B, float beta, float *C)
{
    gemm_run(ta, tb, M, N, K, alpha, A, B, beta, C, NULL, 1);
}

/* knob_gemm_bf16 plus bias (N, f32, not rounded) on every row, in the last K slice's store, as
 * knob_gemm_bias does for knob_gemm */
void knob_gemm_bf16_bias(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                         const float *B, float beta, float *C, const float *bias)
{
    gemm_run(ta, tb, M, N, K, alpha, A, B, beta, C, bias, 1);
}
