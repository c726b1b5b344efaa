/* blob.c: see blob.h. */
#include "blob.h"

#include <stdlib.h>
#include <string.h>

struct hr_blob *hr_blob_new(const void *data, size_t len)
{
    if (len > UINT32_MAX) {
        return NULL;
    }
    struct hr_blob *b = malloc(sizeof(*b) + len);
    if (b == NULL) {
        return NULL;
    }
    b->refs = 1;
    b->len = (uint32_t)len;
    if (len > 0) {
        memcpy(b->data, data, len);
    }
    return b;
}

void hr_blob_release(struct hr_blob *b)
{
    if (b != NULL && --b->refs == 0) {
        free(b);
    }
}
