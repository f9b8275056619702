/* rng.c: xoshiro256** (Blackman and Vigna), seeded through splitmix64. Our own generator, so a seed
 * gives the same numbers on every machine and C library. */
#include "knob_internal.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void knob_rng_seed(knob_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

uint64_t knob_rng_u64(knob_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

uint32_t knob_rng_below(knob_rng *r, uint32_t n)
{
    /* rejection sampling: draws in the incomplete last block of 2^32 are redrawn */
    uint32_t limit = (uint32_t)(-n) % n;   /* 2^32 mod n */
    for (;;) {
        uint32_t x = (uint32_t)(knob_rng_u64(r) >> 32);
        if (x >= limit)
            return x % n;
    }
}

float knob_rng_uniform(knob_rng *r) { return (float)(knob_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

double knob_rng_uniform_double(knob_rng *r) { return (double)(knob_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

float knob_rng_normal(knob_rng *r)
{
    double u1 = knob_rng_uniform_double(r), u2 = knob_rng_uniform_double(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void knob_rng_shuffle(knob_rng *r, int *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = knob_rng_below(r, (uint32_t)i);
        int tmp = a[i - 1];
        a[i - 1] = a[j];
        a[j] = tmp;
    }
}
