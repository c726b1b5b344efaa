/*
 * prng.h: the project's deterministic random numbers (splitmix64 to seed, xoshiro256**
 * to draw). Written here rather than taken from libc because rand() is neither seedable
 * per instance nor the same across platforms, and a simulation must replay bit for bit from
 * its seed. Header-only; a struct hr_prng belongs to whoever embeds it.
 */
#ifndef HR_PRNG_H
#define HR_PRNG_H

#include <stdint.h>

struct hr_prng {
    uint64_t s[4];
};

static inline uint64_t hr__splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void hr_prng_seed(struct hr_prng *p, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        p->s[i] = hr__splitmix64(&seed);
    }
}

static inline uint64_t hr__rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t hr_prng_next(struct hr_prng *p)
{
    uint64_t *s = p->s;
    uint64_t result = hr__rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = hr__rotl(s[3], 45);
    return result;
}

/* Uniform in [lo, hi] (inclusive); lo when hi <= lo. */
static inline uint64_t hr_prng_range(struct hr_prng *p, uint64_t lo, uint64_t hi)
{
    if (hi <= lo) {
        return lo;
    }
    return lo + hr_prng_next(p) % (hi - lo + 1);
}

/* Uniform in [0, 1). */
static inline double hr_prng_unit(struct hr_prng *p)
{
    return (double)(hr_prng_next(p) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
