/* test_cpu.c: src/kernels/cpu.c and what gemm.c derives from it: the features agree with the
 * compiler's own CPU detection, the cache sizes are plausible, the blocking fits the caches it was
 * derived from, KNOB_KERNEL-style capping picks the portable kernels, and knob_gemm at every
 * kernel level this CPU runs matches a double-precision triple loop on shapes just off the derived
 * blocks (all four transposes). */
#include "test.h"

TEST(cpu_features_agree_with_the_compiler)
{
    const knob_cpu_info *c = knob_cpu();
    CHECK(c->vendor[0] != 0 && c->brand[0] != 0);
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    CHECK(!!(c->features & KNOB_CPU_AVX2) == !!__builtin_cpu_supports("avx2"));
    CHECK(!!(c->features & KNOB_CPU_FMA) == !!__builtin_cpu_supports("fma"));
    CHECK(!!(c->features & KNOB_CPU_AVX512F) == !!__builtin_cpu_supports("avx512f"));
#endif
    /* L1d 8 KiB .. 1 MiB, L2 above L1d, L3 at least 0 */
    CHECK(c->l1d >= 8192 && c->l1d <= (1 << 20));
    CHECK(c->l2 > c->l1d && c->l3 >= 0);
}

TEST(cpu_blocking_fits_the_caches)
{
    const knob_cpu_info *c = knob_cpu();
    knob_gemm_blocking b = knob_gemm_blocking_get();
    CHECK(b.MR == 6 && b.NR == 16);
    CHECK(b.KC % 8 == 0 && b.MC % b.MR == 0 && b.NC % b.NR == 0);
    /* a B micro-panel and two A micro-panels in an eighth of L2, an A block in a quarter of it,
     * a B slice in a quarter of L3 (unless at the floor); both blocks within the 0.75 and 2 MiB
     * thread-local buffers */
    CHECK((long)b.KC * (b.NR + 2 * b.MR) * 4 <= c->l2 / 8 || b.KC == 128);
    CHECK((long)b.MC * b.KC * 4 <= c->l2 / 4 || b.MC == 8 * b.MR);
    CHECK((long)b.KC * b.NC * 4 <= c->l3 / 4 || b.NC == 16 * b.NR);
    CHECK((long)b.MC * b.KC <= 384 * 512 && (long)b.KC * b.NC <= 512 * 1024);
    CHECK(b.KC >= 128 && b.KC <= 1024 && b.MC >= 48 && b.MC <= 384 && b.NC >= 256 && b.NC <= 1024);
}

TEST(cpu_force_portable_names_the_portable_kernel)
{
    knob_kernel_force(KNOB_ISA_PORTABLE);
    CHECK(knob_kernel_isa() == KNOB_ISA_PORTABLE);
    CHECK(strcmp(knob_gemm_kernel_name(), "portable") == 0);
    knob_kernel_force(-1);
    CHECK(knob_kernel_isa() >= KNOB_ISA_PORTABLE);
    CHECK(strcmp(knob_isa_name(KNOB_ISA_AVX2), "avx2+fma") == 0);
}

/* C = alpha op(A) op(B) + beta C in double, from the definition */
static void ref_gemm(int ta, int tb, int M, int N, int K, double alpha, const float *A, const float *B,
                     double beta, const float *C0, double *out)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int p = 0; p < K; p++)
                s += (double)(ta ? A[(size_t)p * M + i] : A[(size_t)i * K + p]) *
                     (double)(tb ? B[(size_t)j * K + p] : B[(size_t)p * N + j]);
            out[(size_t)i * N + j] = alpha * s + beta * (double)C0[(size_t)i * N + j];
        }
}

TEST(cpu_gemm_off_the_derived_blocks_every_level)
{
    knob_gemm_blocking b = knob_gemm_blocking_get();
    const int shapes[][3] = {
        {b.MC + 1, 40, b.KC + 1},
        {13, b.NC + 1, b.KC - 1},
        {2 * b.MC + 5, b.NC + 17, 9},
    };
    knob_rng r;
    knob_rng_seed(&r, 5);
    int isa_max = knob_kernel_isa();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
        float *A = knob_malloc(na * 4), *B = knob_malloc(nb * 4), *C0 = knob_malloc(nc * 4), *C = knob_malloc(nc * 4);
        double *want = knob_malloc(nc * 8);
        KNOB_ASSERT(A && B && C0 && C && want);
        for (size_t i = 0; i < na; i++)
            A[i] = knob_rng_uniform(&r) - 0.5f;
        for (size_t i = 0; i < nb; i++)
            B[i] = knob_rng_uniform(&r) - 0.5f;
        for (size_t i = 0; i < nc; i++)
            C0[i] = knob_rng_uniform(&r) - 0.5f;
        for (int t = 0; t < 4; t++) {
            int ta = t >> 1, tb = t & 1;
            ref_gemm(ta, tb, M, N, K, 1.5, A, B, 0.5, C0, want);
            for (int isa = KNOB_ISA_PORTABLE; isa <= isa_max; isa++) {
                knob_kernel_force(isa);
                knob_threads_set(3);
                memcpy(C, C0, nc * 4);
                knob_gemm(ta, tb, M, N, K, 1.5f, A, B, 0.5f, C);
                double worst = 0;
                for (size_t i = 0; i < nc; i++) {
                    double e = fabs((double)C[i] - want[i]);
                    worst = e > worst || e != e ? e : worst;
                }
                /* |terms| <= 0.25: float sums of K terms are good to about K * 6e-8 * 0.25 */
                if (!(worst <= 1e-6 * K + 1e-6))
                    test_fail_at(__FILE__, __LINE__, "%s gemm %c%c %dx%dx%d: off the double reference by %g",
                                 knob_isa_name(isa), ta ? 't' : 'n', tb ? 't' : 'n', M, N, K, worst);
            }
        }
        knob_kernel_force(-1);
        knob_threads_set(0);
        knob_free(A);
        knob_free(B);
        knob_free(C0);
        knob_free(C);
        knob_free(want);
    }
}
