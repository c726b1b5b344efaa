/* codec.c: hr_msg <-> msgpack frames (codec.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "codec.h"

/* A message map has at most HR_K_COUNT known keys plus whatever a later version adds; a
 * few dozen objects, plus six per entry. */
#define MAX_MAP_KEYS 64
#define MAX_OBJECTS (1 + 2 * MAX_MAP_KEYS + 1 + 6 * (size_t)HR_CODEC_MAX_ENTRIES)

static int pack_kv(msgpack_packer *pk, int key, uint64_t v)
{
    if (msgpack_pack_int(pk, key) != 0 || msgpack_pack_uint64(pk, v) != 0) {
        return HR_ENOMEM;
    }
    return 0;
}

static int pack_entries(msgpack_packer *pk, const struct hr_msg *m)
{
    if (msgpack_pack_int(pk, HR_K_ENTRIES) != 0 || msgpack_pack_array(pk, m->n_entries) != 0) {
        return HR_ENOMEM;
    }
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct hr_entry *e = &m->entries[i];
        size_t len = hr_blob_len(e->data);
        if (msgpack_pack_array(pk, 5) != 0 || msgpack_pack_uint64(pk, e->term) != 0 ||
            msgpack_pack_uint64(pk, e->index) != 0 || msgpack_pack_uint64(pk, e->time_ms) != 0 ||
            msgpack_pack_uint8(pk, e->type) != 0 || msgpack_pack_bin(pk, len) != 0 ||
            (len > 0 && msgpack_pack_bin_body(pk, e->data->data, len) != 0)) {
            return HR_ENOMEM;
        }
    }
    return 0;
}

int hr_codec_encode(msgpack_sbuffer *sb, const struct hr_msg *m)
{
    if (m->type == 0 || m->type >= HR_MSG_TYPE_COUNT || m->n_entries > HR_CODEC_MAX_ENTRIES) {
        return HR_EINVAL;
    }
    const uint64_t fields[HR_K_COUNT] = {
        [HR_K_TERM] = m->term,
        [HR_K_PREV_INDEX] = m->prev_index,
        [HR_K_PREV_TERM] = m->prev_term,
        [HR_K_COMMIT] = m->commit,
        [HR_K_INDEX] = m->index,
        [HR_K_HINT_INDEX] = m->hint_index,
        [HR_K_HINT_TERM] = m->hint_term,
        [HR_K_LAST_INDEX] = m->last_index,
        [HR_K_CAND_LAST_INDEX] = m->cand_last_index,
        [HR_K_CAND_LAST_TERM] = m->cand_last_term,
        [HR_K_SNAP_INDEX] = m->snap_index,
        [HR_K_SNAP_TERM] = m->snap_term,
        [HR_K_OFFSET] = m->offset,
        [HR_K_SEQ] = m->seq,
        [HR_K_TIME_MS] = m->time_ms,
    };
    size_t snap_len = hr_blob_len(m->snap_data);
    size_t n = 3 + (m->n_entries > 0) + m->reject + m->done + m->transfer + (snap_len > 0);
    for (int k = HR_K_TERM; k < HR_K_COUNT; k++) {
        n += fields[k] != 0;
    }
    size_t start;
    if (hr_frame_begin(sb, &start) != 0) {
        return HR_ENOMEM;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&pk, n) != 0 ? HR_ENOMEM : 0;
    rc = rc ? rc : pack_kv(&pk, HR_K_TYPE, m->type);
    rc = rc ? rc : pack_kv(&pk, HR_K_FROM, m->from);
    rc = rc ? rc : pack_kv(&pk, HR_K_TO, m->to);
    for (int k = HR_K_TERM; k < HR_K_COUNT && rc == 0; k++) {
        if (fields[k] != 0) {
            rc = pack_kv(&pk, k, fields[k]);
        }
    }
    if (rc == 0 && m->reject) {
        rc = msgpack_pack_int(&pk, HR_K_REJECT) != 0 || msgpack_pack_true(&pk) != 0 ? HR_ENOMEM : 0;
    }
    if (rc == 0 && m->done) {
        rc = msgpack_pack_int(&pk, HR_K_DONE) != 0 || msgpack_pack_true(&pk) != 0 ? HR_ENOMEM : 0;
    }
    if (rc == 0 && m->transfer) {
        rc = msgpack_pack_int(&pk, HR_K_TRANSFER) != 0 || msgpack_pack_true(&pk) != 0 ? HR_ENOMEM
                                                                                     : 0;
    }
    if (rc == 0 && snap_len > 0) {
        rc = msgpack_pack_int(&pk, HR_K_SNAP_DATA) != 0 || msgpack_pack_bin(&pk, snap_len) != 0 ||
                     msgpack_pack_bin_body(&pk, m->snap_data->data, snap_len) != 0
                 ? HR_ENOMEM
                 : 0;
    }
    if (rc == 0 && m->n_entries > 0) {
        rc = pack_entries(&pk, m);
    }
    if (rc != 0) {
        sb->size = start; /* drop the partial frame */
        return rc;
    }
    hr_frame_finish(sb, start);
    return 0;
}

static int fail(char *err, size_t errlen, const char *fmt, const char *what)
{
    snprintf(err, errlen, fmt, what);
    return HR_EPROTO;
}

static int decode_entry(const msgpack_object *o, struct hr_entry *e, char *err, size_t errlen)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 5) {
        return fail(err, errlen, "message: %s must be an array of 5", "entry");
    }
    const msgpack_object *f = o->via.array.ptr;
    uint64_t type;
    if (!hr__codec_uint(&f[0], &e->term) || !hr__codec_uint(&f[1], &e->index) ||
        !hr__codec_uint(&f[2], &e->time_ms) || !hr__codec_uint(&f[3], &type)) {
        return fail(err, errlen, "message: %s fields must be unsigned integers", "entry");
    }
    if (type < HR_ENTRY_COMMAND || type > HR_ENTRY_CONFIG) {
        return fail(err, errlen, "message: %s type out of range", "entry");
    }
    e->type = (uint8_t)type;
    e->data = NULL;
    if (f[4].type == MSGPACK_OBJECT_NIL) {
        return 0;
    }
    if (f[4].type != MSGPACK_OBJECT_BIN) {
        return fail(err, errlen, "message: %s data must be bin or nil", "entry");
    }
    if (f[4].via.bin.size > 0) {
        e->data = hr_blob_new(f[4].via.bin.ptr, f[4].via.bin.size);
        if (e->data == NULL) {
            snprintf(err, errlen, "message: out of memory");
            return HR_ENOMEM;
        }
    }
    return 0;
}

/* Raft's log invariants for what a leader sends: consecutive indices right after
 * prev_index, terms that never decrease, starting at or after prev_term and never beyond
 * the message's term. The core relies on them; a peer's message that breaks them is
 * refused here. */
static int check_entries(const struct hr_msg *m, char *err, size_t errlen)
{
    hr_term_t last = m->prev_term;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct hr_entry *e = &m->entries[i];
        if (m->prev_index > UINT64_MAX - 1 - i || e->index != m->prev_index + 1 + i) {
            return fail(err, errlen, "message: %s indices are not consecutive", "entry");
        }
        if (e->term < last || e->term > m->term) {
            return fail(err, errlen, "message: %s terms out of order", "entry");
        }
        last = e->term;
    }
    return 0;
}

static int decode_entries(const msgpack_object *o, struct hr_msg *m, char *err, size_t errlen)
{
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        return fail(err, errlen, "message: %s must be an array", "entries");
    }
    if (o->via.array.size > HR_CODEC_MAX_ENTRIES) {
        return fail(err, errlen, "message: too many %s", "entries");
    }
    if (o->via.array.size == 0) {
        return 0;
    }
    m->entries = calloc(o->via.array.size, sizeof(*m->entries));
    if (m->entries == NULL) {
        snprintf(err, errlen, "message: out of memory");
        return HR_ENOMEM;
    }
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        int rc = decode_entry(&o->via.array.ptr[i], &m->entries[i], err, errlen);
        if (rc != 0) {
            return rc;
        }
        m->n_entries = i + 1; /* so that hr_msg_release frees exactly what was made */
    }
    return 0;
}

static int decode_field(struct hr_msg *m, uint64_t key, const msgpack_object *v, char *err,
                        size_t errlen)
{
    if (key == HR_K_ENTRIES) {
        return decode_entries(v, m, err, errlen);
    }
    if (key == HR_K_REJECT || key == HR_K_DONE || key == HR_K_TRANSFER) {
        if (v->type != MSGPACK_OBJECT_BOOLEAN) {
            return fail(err, errlen, "message: %s must be a boolean",
                        key == HR_K_DONE ? "done" : key == HR_K_TRANSFER ? "transfer" : "reject");
        }
        if (key == HR_K_DONE) {
            m->done = v->via.boolean;
        } else if (key == HR_K_TRANSFER) {
            m->transfer = v->via.boolean;
        } else {
            m->reject = v->via.boolean;
        }
        return 0;
    }
    if (key == HR_K_SNAP_DATA) {
        if (v->type != MSGPACK_OBJECT_BIN) {
            return fail(err, errlen, "message: %s must be bin", "snapshot data");
        }
        if (v->via.bin.size > 0) {
            m->snap_data = hr_blob_new(v->via.bin.ptr, v->via.bin.size);
            if (m->snap_data == NULL) {
                snprintf(err, errlen, "message: out of memory");
                return HR_ENOMEM;
            }
        }
        return 0;
    }
    uint64_t u;
    if (!hr__codec_uint(v, &u)) {
        return fail(err, errlen, "message: field %s must be an unsigned integer",
                    key == HR_K_TYPE ? "type" : "value");
    }
    switch (key) {
    case HR_K_TYPE:
        if (u == 0 || u >= HR_MSG_TYPE_COUNT) {
            return fail(err, errlen, "message: unexpected %s", "message type");
        }
        m->type = (uint8_t)u;
        break;
    case HR_K_FROM:
        m->from = u;
        break;
    case HR_K_TO:
        m->to = u;
        break;
    case HR_K_TERM:
        m->term = u;
        break;
    case HR_K_PREV_INDEX:
        m->prev_index = u;
        break;
    case HR_K_PREV_TERM:
        m->prev_term = u;
        break;
    case HR_K_COMMIT:
        m->commit = u;
        break;
    case HR_K_INDEX:
        m->index = u;
        break;
    case HR_K_HINT_INDEX:
        m->hint_index = u;
        break;
    case HR_K_HINT_TERM:
        m->hint_term = u;
        break;
    case HR_K_LAST_INDEX:
        m->last_index = u;
        break;
    case HR_K_CAND_LAST_INDEX:
        m->cand_last_index = u;
        break;
    case HR_K_CAND_LAST_TERM:
        m->cand_last_term = u;
        break;
    case HR_K_SNAP_INDEX:
        m->snap_index = u;
        break;
    case HR_K_SNAP_TERM:
        m->snap_term = u;
        break;
    case HR_K_OFFSET:
        m->offset = u;
        break;
    case HR_K_SEQ:
        m->seq = u;
        break;
    case HR_K_TIME_MS:
        m->time_ms = u;
        break;
    default:
        break; /* a later version's field */
    }
    return 0;
}

static int decode_map(const msgpack_object *root, struct hr_msg *m, char *err, size_t errlen)
{
    if (root->type != MSGPACK_OBJECT_MAP) {
        return fail(err, errlen, "message: %s is not a map", "payload");
    }
    if (root->via.map.size > MAX_MAP_KEYS) {
        return fail(err, errlen, "message: too many %s", "fields");
    }
    uint64_t seen = 0;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object_kv *kv = &root->via.map.ptr[i];
        uint64_t key;
        if (!hr__codec_uint(&kv->key, &key)) {
            return fail(err, errlen, "message: %s must be unsigned integers", "keys");
        }
        if (key < 64) {
            if (seen & (UINT64_C(1) << key)) {
                return fail(err, errlen, "message: %s", "duplicate key");
            }
            seen |= UINT64_C(1) << key;
        }
        int rc = decode_field(m, key, &kv->val, err, errlen);
        if (rc != 0) {
            return rc;
        }
    }
    if (m->type == 0) {
        return fail(err, errlen, "message: %s missing", "type");
    }
    if (m->from == 0 || m->to == 0) {
        return fail(err, errlen, "message: %s missing", "sender or recipient");
    }
    if (m->snap_data != NULL && m->type != HR_MSG_SNAPSHOT) {
        return fail(err, errlen, "message: snapshot data in a message of type %s",
                    hr_msg_type_name(m->type));
    }
    if (m->n_entries > 0 && m->type != HR_MSG_APPEND) {
        return fail(err, errlen, "message: entries in a message of type %s",
                    hr_msg_type_name(m->type));
    }
    return check_entries(m, err, errlen);
}

int hr_codec_decode(const void *payload, size_t len, struct hr_msg *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    msgpack_unpacked up;
    int rc = hr__codec_unpack(payload, len, MAX_OBJECTS, &up, err, errlen);
    if (rc == 0) {
        rc = decode_map(&up.data, m, err, errlen);
    }
    msgpack_unpacked_destroy(&up);
    if (rc != 0) {
        hr_msg_release(m);
    }
    return rc;
}

int hr_codec_decode_frame(const void *frame, size_t len, size_t max, struct hr_msg *m, char *err,
                          size_t errlen)
{
    const void *payload;
    size_t plen;
    memset(m, 0, sizeof(*m));
    int rc = hr_frame_check(frame, len, max, &payload, &plen, err, errlen);
    return rc != 0 ? rc : hr_codec_decode(payload, plen, m, err, errlen);
}
