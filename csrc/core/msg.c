/* msg.c: message ownership helpers and names. */
#include "raft.h"

#include <stdlib.h>
#include <string.h>

int hr_msg_copy(struct hr_msg *out, const struct hr_msg *m)
{
    *out = *m;
    out->entries = NULL;
    if (m->n_entries > 0) {
        out->entries = malloc(m->n_entries * sizeof(*out->entries));
        if (out->entries == NULL) {
            out->n_entries = 0;
            out->snap_data = NULL;
            out->conf = NULL;
            return HR_ENOMEM;
        }
        memcpy(out->entries, m->entries, m->n_entries * sizeof(*out->entries));
        for (uint32_t i = 0; i < m->n_entries; i++) {
            hr_blob_retain(out->entries[i].data);
        }
    }
    hr_blob_retain(out->snap_data);
    hr_blob_retain(out->conf);
    return 0;
}

void hr_msg_release(struct hr_msg *m)
{
    hr_blob_release(m->snap_data);
    hr_blob_release(m->conf);
    for (uint32_t i = 0; i < m->n_entries; i++) {
        hr_blob_release(m->entries[i].data);
    }
    free(m->entries);
    memset(m, 0, sizeof(*m));
}

/* The core cannot call the codec (csrc/transport sits above it), so the simulator's byte
 * counts use this estimate of its layout: a map of small integers (about 48 bytes for the
 * fixed fields) and, per entry, term, index, time and type (about 24 bytes) plus the
 * payload. The networked node counts real bytes in its transport statistics. */
size_t hr_msg_wire_size(const struct hr_msg *m)
{
    size_t size = 48 + hr_blob_len(m->snap_data) + hr_blob_len(m->conf);
    for (uint32_t i = 0; i < m->n_entries; i++) {
        size += 24 + hr_blob_len(m->entries[i].data);
    }
    return size;
}

const char *hr_msg_type_name(int type)
{
    static const char *const names[HR_MSG_TYPE_COUNT] = {
        [HR_MSG_APPEND] = "append",
        [HR_MSG_APPEND_RESP] = "append_resp",
        [HR_MSG_VOTE] = "vote",
        [HR_MSG_VOTE_RESP] = "vote_resp",
        [HR_MSG_PREVOTE] = "prevote",
        [HR_MSG_PREVOTE_RESP] = "prevote_resp",
        [HR_MSG_SNAPSHOT] = "snapshot",
        [HR_MSG_SNAPSHOT_RESP] = "snapshot_resp",
        [HR_MSG_TIMEOUT_NOW] = "timeout_now",
        [HR_MSG_READ_INDEX] = "read_index",
        [HR_MSG_READ_INDEX_RESP] = "read_index_resp",
    };
    if (type <= 0 || type >= HR_MSG_TYPE_COUNT) {
        return "unknown";
    }
    return names[type];
}

const char *hr_role_name(int role)
{
    switch (role) {
    case HR_FOLLOWER:
        return "follower";
    case HR_PRECANDIDATE:
        return "precandidate";
    case HR_CANDIDATE:
        return "candidate";
    case HR_LEADER:
        return "leader";
    }
    return "unknown";
}
