/* hash.c: the hash functions the hash tables (BPE vocabulary and merges, BPE trainer, n-grams) and
 * the token-cache key share. Not for security: FNV-1a for byte strings, murmur3's 64-bit
 * finaliser for integer keys. */
#include "knob_internal.h"

uint64_t knob_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t knob_hash_bytes(const void *p, size_t n)
{
    uint64_t h = knob_fnv1a(KNOB_FNV_SEED, p, n);
    return h ^ (h >> 29);   /* tables index by the low bits; fold the better-mixed high ones in */
}

uint64_t knob_hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}
