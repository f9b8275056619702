/* vmath.h: exp for float32, one algorithm in two forms, shared by the kernels in src/kernels/
 * (private to that folder): vmath_exp1 (portable C, one value) and vmath_exp8_avx2 (AVX2 + FMA,
 * eight values), inline so the loops that use them keep everything in registers.
 *
 *   n = rint(x log2 e),  r = x - n ln2 (ln2 in two parts, so r is exact to a few ulp),
 *   e^r = 1 + r + r^2/2! + ... + r^7/7!  for |r| <= ln2 / 2  (truncation under 6e-9 relative),
 *   e^x = e^r 2^n1 2^n2,  n1 = floor(n / 2), n2 = n - n1,
 * the scale in two halves so that n from -151 to 128 needs no special case: results below
 * FLT_MIN come out as denormals (rounded twice), x above ln FLT_MAX gives inf, x far below gives 0,
 * NaN gives NaN. x is clamped to [-104, 89] first, where the answer is already 0 or inf.
 * Accuracy against double exp for normal results ([-87.3, 88.7], 2e7 points): at most 1.21 ulp
 * portable, 0.93 ulp AVX2 (glibc's expf: 0.50); tests/test_vmath.c holds both under 1.5. */
#ifndef KNOB_VMATH_H
#define KNOB_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define VMATH_LOG2E 1.44269504088896341f
#define VMATH_LN2_HI 0.693145751953125f          /* 11 significant bits: n ln2_hi is exact */
#define VMATH_LN2_LO 1.428606765330187045e-06f
#define VMATH_X_MIN -104.0f
#define VMATH_X_MAX 89.0f

static inline float vmath_pow2i(int n)   /* 2^n for n in [-126, 127] */
{
    uint32_t u = (uint32_t)(n + 127) << 23;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline float vmath_exp1(float x)
{
    if (x != x)
        return x;
    x = x < VMATH_X_MIN ? VMATH_X_MIN : x > VMATH_X_MAX ? VMATH_X_MAX : x;
    /* round to nearest by adding and taking away 1.5 * 2^23 (exact for |v| < 2^22; no libm call) */
    float n = (x * VMATH_LOG2E + 12582912.0f) - 12582912.0f;
    float r = (x - n * VMATH_LN2_HI) - n * VMATH_LN2_LO;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int ni = (int)n, n1 = ni >> 1, n2 = ni - n1;   /* >> of a negative int: arithmetic on gcc/clang */
    return p * vmath_pow2i(n1) * vmath_pow2i(n2);
}

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define VMATH_X86 1

__attribute__((target("avx2,fma"))) static inline __m256 vmath_exp8_avx2(__m256 x)
{
    __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(VMATH_X_MIN)), _mm256_set1_ps(VMATH_X_MAX));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(VMATH_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VMATH_LN2_HI), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VMATH_LN2_LO), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    return _mm256_blendv_ps(y, x, nan);
}
#else
#define VMATH_X86 0
#endif

#endif
