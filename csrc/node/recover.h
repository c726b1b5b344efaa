/*
 * recover.h: disaster recovery of a data dir, offline (helios recover, core.recover).
 *
 * When a majority of a cluster is lost for good, no configuration change can commit: the
 * survivors cannot elect a leader. hr_node_recover rewrites the configuration of one
 * stopped node's data dir to that node alone, keeping every entry it has: it appends one
 * CONFIG entry making the node the only voter (a configuration takes effect when appended,
 * raft.h "Membership"), in a term above every term the data dir has seen, and makes it
 * durable. Started again, the node is a one-node cluster: it elects itself and commits
 * everything in its log, including entries the lost majority had not committed (the
 * operator accepts that: the alternative is no cluster at all). Other servers are then
 * added back with add_peer (empty data dirs, join).
 *
 * Threading: blocking file I/O on the caller's thread; takes the data dir's lock for the
 * duration (HR_EBUSY if a running node holds it).
 */
#ifndef HR_NODE_RECOVER_H
#define HR_NODE_RECOVER_H

#include <stddef.h>

#include "../core/raft.h"

struct hr_fs;

struct hr_recover_result {
    hr_index_t index;          /* the CONFIG entry appended */
    hr_term_t term;            /* its term (also the data dir's current term now) */
    uint64_t entries;          /* entries kept in the log before it */
    hr_index_t snapshot_index; /* the snapshot kept (0: none) */
};

/* Recover data_dir to a one-node cluster of `name`, reachable at addr ("host:port"; NULL:
 * the address the newest configuration in the data dir gives for name). fs: NULL is the
 * real file system. 0, or HR_EBUSY (locked), HR_EINVAL (nothing to recover, no address,
 * a bad name or address), HR_ECORRUPT, HR_EIO, HR_ENOSPACE, HR_ENOMEM with a message in
 * err. */
int hr_node_recover(struct hr_fs *fs, const char *data_dir, const char *name, const char *addr,
                    struct hr_recover_result *res, char *err, size_t errlen);

#endif
