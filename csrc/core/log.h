/*
 * log.h: the core's in-memory view of the replicated log (private to csrc/core).
 *
 * A growable array of entries [first, last]. It holds every entry since the last
 * snapshot (taking snapshots is what bounds it), a copy of what the storage below keeps on
 * disk; the rest of the core reaches it only through these functions, so a bounded cache
 * could replace the full copy without changing them. Entries own a reference on their
 * blob.
 */
#ifndef HR_CORE_LOG_H
#define HR_CORE_LOG_H

#include "raft.h"

struct hr__log {
    struct hr_entry *ents;
    size_t len, cap;
    hr_index_t first;    /* index of ents[0] */
    hr_term_t prev_term; /* term of first - 1 (the snapshot's last entry; 0 for none) */
    uint64_t bytes;      /* payload bytes of the entries held: what bounds memory is bytes,
                          * not entries (docs/architecture.md, "Snapshots") */
};

/* An empty log that follows the entry (index, term) of a snapshot ((0, 0): none). */
void hr__log_init(struct hr__log *l, hr_index_t index, hr_term_t term);
void hr__log_free(struct hr__log *l);
/* Append a copy of e (blob retained); e->index must be last + 1. 0 or HR_ENOMEM. */
int hr__log_append(struct hr__log *l, const struct hr_entry *e);
/* Drop every entry at index >= from. */
void hr__log_truncate(struct hr__log *l, hr_index_t from);
/* Drop every entry below keep_from (first <= keep_from <= last + 1), remembering the term of
 * the entry before it. */
void hr__log_compact(struct hr__log *l, hr_index_t keep_from);
/* Drop everything: the log continues after (index, term), a snapshot's last entry. */
void hr__log_reset(struct hr__log *l, hr_index_t index, hr_term_t term);
/* The lowest keep_from (not below first) such that [keep_from, index] is at most
 * max_entries entries and max_bytes payload bytes: what a compaction at a snapshot of index
 * keeps for followers a little behind. index + 1 when nothing fits. Walks at most
 * max_entries entries (once per snapshot). */
hr_index_t hr__log_trailing_from(const struct hr__log *l, hr_index_t index, uint64_t max_entries,
                                 uint64_t max_bytes);

static inline hr_index_t hr__log_last(const struct hr__log *l)
{
    return l->first + l->len - 1;
}

static inline const struct hr_entry *hr__log_get(const struct hr__log *l, hr_index_t i)
{
    if (i < l->first || i > hr__log_last(l)) {
        return NULL;
    }
    return &l->ents[i - l->first];
}

/* The term of entry i; 0 when not known (i is 0, or compacted away, or past the end). */
static inline hr_term_t hr__log_term(const struct hr__log *l, hr_index_t i)
{
    if (i + 1 == l->first) {
        return l->prev_term;
    }
    const struct hr_entry *e = hr__log_get(l, i);
    return e == NULL ? 0 : e->term;
}

#endif
