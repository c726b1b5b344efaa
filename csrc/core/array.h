/*
 * array.h: growing a heap array by doubling, the one way the C code of every layer grows
 * its vectors, byte buffers and FIFO rings (a header only: nothing to link).
 *
 * Threading: none; the caller owns the array.
 */
#ifndef HR_CORE_ARRAY_H
#define HR_CORE_ARRAY_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/*
 * The FIFO ring p of *cap elements of `size` bytes, count of them in use from index *head
 * on (wrapping), made to hold one more: p itself if it has room, else a new array of twice
 * the capacity (first if *cap is 0) holding the count elements in order from index 0, with
 * *head set to 0 and *cap to the new capacity; p is freed. NULL if memory runs out: p,
 * *head and *cap are then unchanged.
 */
static inline void *hr_ring_reserve(void *p, size_t *head, size_t count, size_t *cap, size_t size,
                                    size_t first)
{
    if (count < *cap) {
        return p;
    }
    size_t n = *cap == 0 ? first : *cap * 2;
    if (n < *cap || n > SIZE_MAX / size) {
        return NULL;
    }
    unsigned char *v = malloc(n * size);
    if (v == NULL) {
        return NULL;
    }
    if (count > 0) {
        size_t tail = *cap - *head < count ? *cap - *head : count; /* before the wrap */
        memcpy(v, (unsigned char *)p + *head * size, tail * size);
        memcpy(v + tail * size, p, (count - tail) * size);
    }
    free(p);
    *head = 0;
    *cap = n;
    return v;
}

#endif
