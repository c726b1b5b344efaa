/* hs_codec.c: handshake messages <-> frames (handshake.h). */
#include <stdio.h>
#include <string.h>

#include "../core/error.h"
#include "codec.h"
#include "handshake.h"

enum { K_TYPE = 0, K_VERSION, K_CLUSTER, K_NAME, K_PEER, K_NONCE, K_MAC, K_REASON, K_COUNT };

/* A handshake map: at most a few dozen keys (later versions may add some) of scalars. */
#define MAX_KEYS 32

static int pack_str(msgpack_packer *pk, int key, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_int(pk, key) || msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int pack_bin(msgpack_packer *pk, int key, const unsigned char *b, size_t n)
{
    return msgpack_pack_int(pk, key) || msgpack_pack_bin(pk, n) || msgpack_pack_bin_body(pk, b, n);
}

int hr_hs_encode(msgpack_sbuffer *sb, const struct hr_hs_msg *msg)
{
    size_t n = 2 + (msg->cluster[0] != 0) + (msg->name[0] != 0) + (msg->peer[0] != 0) +
               (msg->reason[0] != 0) + msg->has_nonce + msg->has_mac;
    size_t start;
    if (hr_frame_begin(sb, &start) != 0) {
        return HR_ENOMEM;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int bad = msgpack_pack_map(&pk, n) || msgpack_pack_int(&pk, K_TYPE) ||
              msgpack_pack_int(&pk, msg->type) || msgpack_pack_int(&pk, K_VERSION) ||
              msgpack_pack_uint64(&pk, msg->version);
    bad = bad || (msg->cluster[0] && pack_str(&pk, K_CLUSTER, msg->cluster));
    bad = bad || (msg->name[0] && pack_str(&pk, K_NAME, msg->name));
    bad = bad || (msg->peer[0] && pack_str(&pk, K_PEER, msg->peer));
    bad = bad || (msg->reason[0] && pack_str(&pk, K_REASON, msg->reason));
    bad = bad || (msg->has_nonce && pack_bin(&pk, K_NONCE, msg->nonce, HR_HS_NONCE));
    bad = bad || (msg->has_mac && pack_bin(&pk, K_MAC, msg->mac, HR_HS_MAC));
    if (bad) {
        sb->size = start;
        return HR_ENOMEM;
    }
    hr_frame_finish(sb, start);
    return 0;
}

static int bad(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "handshake: %s", what);
    return HR_EPROTO;
}

/* Strings travel without a terminator; an embedded NUL would let "a\0b" pass for "a". */
static int get_str(const msgpack_object *v, char *out, char *err, size_t errlen)
{
    if (v->type != MSGPACK_OBJECT_STR || v->via.str.size > HR_HS_MAX_NAME) {
        return bad(err, errlen, "string field malformed or too long");
    }
    /* msgpack-c gives an empty string a NULL pointer: no memchr/memcpy on it (found by
     * handshake_fuzz; the input is in the corpus). */
    if (v->via.str.size == 0) {
        out[0] = 0;
        return 0;
    }
    if (memchr(v->via.str.ptr, 0, v->via.str.size) != NULL) {
        return bad(err, errlen, "string field malformed or too long");
    }
    memcpy(out, v->via.str.ptr, v->via.str.size);
    out[v->via.str.size] = 0;
    return 0;
}

static int get_bin(const msgpack_object *v, unsigned char *out, size_t n, bool *has, char *err,
                   size_t errlen)
{
    if (v->type != MSGPACK_OBJECT_BIN || v->via.bin.size != n) {
        return bad(err, errlen, "binary field of the wrong size");
    }
    memcpy(out, v->via.bin.ptr, n);
    *has = true;
    return 0;
}

static int field(struct hr_hs_msg *msg, uint64_t key, const msgpack_object *v, char *err,
                 size_t errlen)
{
    uint64_t u;
    switch (key) {
    case K_TYPE:
        if (!hr__codec_uint(v, &u) || u < HR_HS_HELLO || u > HR_HS_REFUSE) {
            return bad(err, errlen, "unexpected message type");
        }
        msg->type = (int)u;
        return 0;
    case K_VERSION:
        if (!hr__codec_uint(v, &msg->version)) {
            return bad(err, errlen, "version must be an unsigned integer");
        }
        return 0;
    case K_CLUSTER:
        return get_str(v, msg->cluster, err, errlen);
    case K_NAME:
        return get_str(v, msg->name, err, errlen);
    case K_PEER:
        return get_str(v, msg->peer, err, errlen);
    case K_REASON:
        return get_str(v, msg->reason, err, errlen);
    case K_NONCE:
        return get_bin(v, msg->nonce, HR_HS_NONCE, &msg->has_nonce, err, errlen);
    case K_MAC:
        return get_bin(v, msg->mac, HR_HS_MAC, &msg->has_mac, err, errlen);
    }
    return 0; /* a later version's field */
}

int hr_hs_decode(const void *payload, size_t len, struct hr_hs_msg *msg, char *err, size_t errlen)
{
    memset(msg, 0, sizeof(*msg));
    msgpack_unpacked up;
    int rc = hr__codec_unpack(payload, len, 1 + 2 * MAX_KEYS, &up, err, errlen);
    const msgpack_object *root = &up.data;
    if (rc == 0 && (root->type != MSGPACK_OBJECT_MAP || root->via.map.size > MAX_KEYS)) {
        rc = bad(err, errlen, "payload is not a small map");
    }
    uint32_t seen = 0;
    for (uint32_t i = 0; rc == 0 && i < root->via.map.size; i++) {
        const msgpack_object_kv *kv = &root->via.map.ptr[i];
        uint64_t key;
        if (!hr__codec_uint(&kv->key, &key)) {
            rc = bad(err, errlen, "keys must be unsigned integers");
        } else if (key < 32 && (seen & (UINT32_C(1) << key))) {
            rc = bad(err, errlen, "duplicate key");
        } else {
            seen |= key < 32 ? UINT32_C(1) << key : 0;
            rc = field(msg, key, &kv->val, err, errlen);
        }
    }
    msgpack_unpacked_destroy(&up);
    if (rc == 0 && msg->type == 0) {
        rc = bad(err, errlen, "message type missing");
    }
    return rc;
}
