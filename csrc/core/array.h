/*
 * array.h: growing a heap array by doubling, the one way the C code of every layer grows
 * its vectors and byte buffers (a header only: nothing to link).
 *
 * Threading: none; the caller owns the array.
 */
#ifndef HR_CORE_ARRAY_H
#define HR_CORE_ARRAY_H

#include <stdint.h>
#include <stdlib.h>

/*
 * The array p of *cap elements of `size` bytes, made to hold at least `need` (and at least
 * one, so that the result is never NULL on success): p itself if it already does, else p
 * reallocated to the first capacity of first, 2 first, 4 first... (doubling *cap when it
 * is not 0) that is large enough, and *cap set to it. NULL if memory runs out or the size
 * overflows: p and *cap are then unchanged and p still valid.
 */
static inline void *hr_array_grow(void *p, size_t *cap, size_t need, size_t size, size_t first)
{
    if (need == 0) {
        need = 1;
    }
    if (need <= *cap) {
        return p;
    }
    size_t n = *cap == 0 ? first : *cap;
    while (n < need) {
        if (n > SIZE_MAX / 2) {
            return NULL;
        }
        n *= 2;
    }
    if (n > SIZE_MAX / size) {
        return NULL;
    }
    void *v = realloc(p, n * size);
    if (v != NULL) {
        *cap = n;
    }
    return v;
}

#endif
