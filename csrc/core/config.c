/* config.c: configuration defaults and validation. */
#include "raft.h"

#include <stdio.h>
#include <string.h>

void hr_config_defaults(struct hr_config *c)
{
    memset(c, 0, sizeof(*c));
    c->election_timeout_ms = 150;
    c->heartbeat_timeout_ms = 50;
    c->max_entries_per_append = 100;
    c->max_append_bytes = 1024 * 1024;
    c->max_inflight = 8;
    c->prevote = true;
    c->check_quorum = true;
}

int hr_config_validate(const struct hr_config *c, char *err, size_t errlen)
{
    const char *what = NULL;
    if (c->id == 0) {
        what = "id must be non-zero";
    } else if (c->n_voters > HR_MAX_NODES) {
        /* none: a new server that waits to be added (raft.h, struct hr_config) */
        what = "voters must name at most 64 nodes";
    } else if (c->election_timeout_ms == 0) {
        what = "election_timeout_ms must be positive";
    } else if (c->heartbeat_timeout_ms == 0) {
        what = "heartbeat_timeout_ms must be positive";
    } else if (c->heartbeat_timeout_ms >= c->election_timeout_ms) {
        /* A follower must hear several heartbeats per election timeout, or it calls
         * elections against a healthy leader. */
        what = "heartbeat_timeout_ms must be less than election_timeout_ms";
    } else if (c->max_entries_per_append == 0 ||
               c->max_entries_per_append > HR_MAX_ENTRIES_PER_APPEND) {
        what = "max_entries_per_append must be between 1 and 65536";
    } else if (c->max_append_bytes == 0) {
        what = "max_append_bytes must be positive";
    } else if (c->max_inflight == 0) {
        what = "max_inflight must be positive";
    } else if (c->read_lease && !c->check_quorum) {
        /* The lease rests on followers refusing votes while they hear from their leader,
         * which only CheckQuorum makes them do (csrc/core/read.c). */
        what = "read_lease needs check_quorum";
    } else {
        for (size_t i = 0; i < c->n_voters && what == NULL; i++) {
            if (c->voters[i] == 0) {
                what = "voter ids must be non-zero";
            }
            for (size_t j = 0; j < i; j++) {
                if (c->voters[j] == c->voters[i]) {
                    what = "voter ids must be distinct";
                }
            }
        }
    }
    if (what != NULL) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "config: %s", what);
        }
        return HR_EINVAL;
    }
    return 0;
}
