/* log.c: see log.h. */
#include "log.h"
#include "array.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void hr__log_init(struct hr__log *l, hr_index_t index, hr_term_t term)
{
    l->ents = NULL;
    l->len = 0;
    l->cap = 0;
    l->first = index + 1;
    l->prev_term = term;
    l->bytes = 0;
}

void hr__log_free(struct hr__log *l)
{
    hr__log_truncate(l, l->first);
    free(l->ents);
    l->ents = NULL;
    l->cap = 0;
}

int hr__log_append(struct hr__log *l, const struct hr_entry *e)
{
    assert(e->index == hr__log_last(l) + 1);
    struct hr_entry *ents = hr_array_grow(l->ents, &l->cap, l->len + 1, sizeof(*ents), 64);
    if (ents == NULL) {
        return HR_ENOMEM;
    }
    l->ents = ents;
    l->ents[l->len] = *e;
    hr_blob_retain(e->data);
    l->bytes += hr_blob_len(e->data);
    l->len++;
    return 0;
}

void hr__log_truncate(struct hr__log *l, hr_index_t from)
{
    if (from < l->first) {
        from = l->first;
    }
    while (l->len > 0 && hr__log_last(l) >= from) {
        l->len--;
        l->bytes -= hr_blob_len(l->ents[l->len].data);
        hr_blob_release(l->ents[l->len].data);
    }
}

void hr__log_compact(struct hr__log *l, hr_index_t keep_from)
{
    assert(keep_from >= l->first && keep_from <= hr__log_last(l) + 1);
    size_t drop = keep_from - l->first;
    if (drop == 0) {
        return;
    }
    l->prev_term = hr__log_term(l, keep_from - 1);
    for (size_t i = 0; i < drop; i++) {
        l->bytes -= hr_blob_len(l->ents[i].data);
        hr_blob_release(l->ents[i].data);
    }
    /* A memmove per snapshot, not per entry: snapshots are thousands of entries apart. */
    memmove(l->ents, l->ents + drop, (l->len - drop) * sizeof(*l->ents));
    l->len -= drop;
    l->first = keep_from;
}

void hr__log_reset(struct hr__log *l, hr_index_t index, hr_term_t term)
{
    hr__log_truncate(l, l->first);
    l->first = index + 1;
    l->prev_term = term;
}

hr_index_t hr__log_trailing_from(const struct hr__log *l, hr_index_t index, uint64_t max_entries,
                                 uint64_t max_bytes)
{
    if (index > hr__log_last(l)) {
        index = hr__log_last(l);
    }
    hr_index_t k = index + 1;
    uint64_t sum = 0;
    while (k > l->first && index + 1 - k < max_entries) {
        size_t n = hr_blob_len(l->ents[k - 1 - l->first].data);
        if (sum + n > max_bytes) {
            break;
        }
        sum += n;
        k--;
    }
    return k;
}
