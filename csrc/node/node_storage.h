/*
 * node_storage.h: the adapter that makes a group-committed log (group.h) the struct
 * hr_storage of a node (node.h). It lives with the node: csrc/storage knows nothing of it.
 *
 *   struct hr_node_storage ns = { .on_error = my_error, .error_arg = me,
 *                                 .now = my_clock, .now_arg = me };
 *   ns.group = hr_group_new(loop, log, hr_node_storage_durable, &ns);
 *   struct hr_storage st;
 *   hr_node_storage_init(&ns, &st);
 *   ns.node = hr_node_new(..., &st, ...);
 *
 * A durable batch is reported with hr_node_persisted(node, seq, now(now_arg)): the
 * node's clock (the same one its ticks use, e.g. uv_now of its loop). install (a snapshot
 * from the leader) takes only chunked transfers (data NULL: the file is already durable
 * in data_dir/snapshots) and empties the log in order with the writes. A failed one is not (the node
 * must not count it durable): on_error(arg, seq, status, message) is called instead, and
 * the node layer stops accepting writes (a leader steps down) until the operator frees
 * space and calls hr_group_retry(). Threading: the loop thread.
 */
#ifndef HR_STORAGE_NODE_STORAGE_H
#define HR_STORAGE_NODE_STORAGE_H

#include "node.h"
#include "../storage/group.h"

struct hr_node_storage {
    struct hr_group *group;
    struct hr_node *node; /* set once the node exists; completions before that are lost */
    void (*on_error)(void *arg, uint64_t seq, int status, const char *msg);
    void *error_arg;
    hr_time_t (*now)(void *now_arg); /* required */
    void *now_arg;
};

/* Fill *out so that the node writes through ns (ns is borrowed: it must outlive the
 * node). */
void hr_node_storage_init(struct hr_node_storage *ns, struct hr_storage *out);
/* After a durable snapshot: drop the log's whole segments below `below` off the loop
 * thread (the node's first kept entry; segments are dropped whole, so more may stay). */
void hr_node_storage_compact(struct hr_node_storage *ns, hr_index_t below);
/* The hr_group_durable_cb to create ns->group with (arg = ns). */
void hr_node_storage_durable(void *arg, uint64_t seq, int status);

/* A restart from a snapshot through snap_index hands the core no more of the entries up to
 * that index than a compaction keeps (trailing_logs_bytes, max_bytes): of the n entries le
 * read from the log, in index order, how many to leave out from the front. The production
 * runtime (runtime.c, recover) and the simulator's real storage (csrc/sim/disk_real.c)
 * both choose with this. */
size_t hr_node_storage_trailing_skip(const struct hr_log_entry *le, size_t n,
                                     hr_index_t snap_index, uint64_t max_bytes);

#endif
