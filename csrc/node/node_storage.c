/*
 * node_storage.c: see node_storage.h. The node hands entries with refcounted blobs;
 * hr_group_write copies their bytes on this (the loop) thread, so the blobs are only
 * borrowed for the call, as struct hr_storage promises. Installing a snapshot and
 * compacting the log after one go through the group too, so the loop never waits on the
 * disk for them.
 */
#include <stdlib.h>

#include "node_storage.h"

static int write_batch(void *ctx, uint64_t seq, const struct hr_hard_state *hs,
                       hr_index_t truncate, const struct hr_entry *entries, size_t n)
{
    struct hr_node_storage *ns = ctx;
    struct hr_log_entry stack[64] = {{0}};
    struct hr_log_entry *e = n <= 64 ? stack : malloc(n * sizeof *e);
    if (e == NULL) {
        return HR_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        e[i].term = entries[i].term;
        e[i].index = entries[i].index;
        e[i].time_ms = entries[i].time_ms;
        e[i].type = entries[i].type;
        e[i].len = (uint32_t)hr_blob_len(entries[i].data);
        e[i].data = entries[i].data != NULL ? entries[i].data->data : NULL;
    }
    struct hr_group_meta meta = {0, 0};
    if (hs != NULL) {
        meta.term = hs->term;
        meta.vote = hs->vote;
    }
    int rc = hr_group_write(ns->group, seq, hs != NULL ? &meta : NULL, truncate, e, n);
    if (e != stack) {
        free(e);
    }
    return rc;
}

/* The snapshot file is already durable under its final name (the receiver synced and
 * renamed it before the core saw the last chunk), so what is left is the log: it is
 * emptied in seq order with the writes, on the group's worker. A crash between the two
 * leaves a log that disagrees with the newer snapshot, which hr_raft_new drops itself. */
static int install_batch(void *ctx, uint64_t seq, hr_index_t index, hr_term_t term,
                         struct hr_blob *data)
{
    struct hr_node_storage *ns = ctx;
    (void)index;
    (void)term;
    if (data != NULL) {
        return HR_EINVAL; /* whole-snapshot messages are the simulator's; we stream files */
    }
    return hr_group_reset(ns->group, seq);
}

void hr_node_storage_init(struct hr_node_storage *ns, struct hr_storage *out)
{
    out->ctx = ns;
    out->write = write_batch;
    out->install = install_batch;
}

void hr_node_storage_compact(struct hr_node_storage *ns, hr_index_t below)
{
    hr_group_compact(ns->group, below);
}

void hr_node_storage_durable(void *arg, uint64_t seq, int status)
{
    struct hr_node_storage *ns = arg;
    if (status == 0) {
        if (ns->node != NULL) {
            hr_node_persisted(ns->node, seq, ns->now(ns->now_arg));
        }
    } else if (ns->on_error != NULL) {
        ns->on_error(ns->error_arg, seq, status, hr_group_errmsg(ns->group));
    }
}

size_t hr_node_storage_trailing_skip(const struct hr_log_entry *le, size_t n,
                                     hr_index_t snap_index, uint64_t max_bytes)
{
    size_t k = 0;
    while (k < n && le[k].index <= snap_index) {
        k++;
    }
    /* The newest of them first, while they fit. */
    uint64_t sum = 0;
    size_t skip = k;
    while (skip > 0 && sum + le[skip - 1].len <= max_bytes) {
        sum += le[skip - 1].len;
        skip--;
    }
    return skip;
}
