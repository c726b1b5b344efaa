/*
 * blob.h: reference-counted immutable byte strings, the payload of log entries.
 *
 * An entry's payload travels from a proposal into the leader's log, into messages to every
 * follower, into storage batches and to the FSM. Counting references instead of copying
 * keeps that one allocation. The count is not atomic: a blob belongs to the loop thread;
 * a storage thread that writes it must be handed the bytes before the loop releases it.
 */
#ifndef HR_BLOB_H
#define HR_BLOB_H

#include <stddef.h>
#include <stdint.h>

struct hr_blob {
    uint32_t refs;
    uint32_t len;
    unsigned char data[];
};

/* A new blob with refs = 1 holding a copy of data (len bytes; data may be NULL if len is
 * 0). NULL on out-of-memory. */
struct hr_blob *hr_blob_new(const void *data, size_t len);

static inline struct hr_blob *hr_blob_retain(struct hr_blob *b)
{
    if (b != NULL) {
        b->refs++;
    }
    return b;
}

void hr_blob_release(struct hr_blob *b);

static inline size_t hr_blob_len(const struct hr_blob *b)
{
    return b == NULL ? 0 : b->len;
}

#endif
