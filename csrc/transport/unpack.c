/*
 * unpack.c: the guarded msgpack unpack every decoder of network bytes goes through
 * (codec.h, hr__codec_unpack).
 *
 * msgpack-c allocates a container's object array from its declared size as soon as it
 * reads the header, and would follow nesting as deep as its own stack allows. A pre-scan
 * walks the encoding first without allocating: each declared element needs at least one
 * byte, so a count larger than the bytes left is a lie and is refused, and depth and the
 * total number of objects are capped. Only then does msgpack_unpack_next run, with its
 * allocation bounded by max_objects.
 */
#include <stdio.h>

#include "../core/error.h"
#include "codec.h"

static uint64_t be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* What follows a lead byte: fixed-size argument bytes (a length or a child count) and
 * whether it counts payload bytes (str, bin, ext) or children (array, map), plus bytes to
 * skip besides (an integer's or float's value, an ext's type byte). */
enum arg_kind { ARG_NONE, ARG_SKIP, ARG_ARRAY, ARG_MAP };

struct lead {
    unsigned char argn, kind, extra;
};

/* The lead bytes 0xc0..0xdf; 0xc1 is never used (argn 0xff marks it invalid). */
static const struct lead leads[32] = {
    [0x00] = {0, ARG_NONE, 0},  [0x01] = {0xff, 0, 0},      /* nil, never used */
    [0x02] = {0, ARG_NONE, 0},  [0x03] = {0, ARG_NONE, 0},  /* false, true */
    [0x04] = {1, ARG_SKIP, 0},  [0x05] = {2, ARG_SKIP, 0},  /* bin 8, 16 */
    [0x06] = {4, ARG_SKIP, 0},  [0x07] = {1, ARG_SKIP, 1},  /* bin 32, ext 8 */
    [0x08] = {2, ARG_SKIP, 1},  [0x09] = {4, ARG_SKIP, 1},  /* ext 16, 32 */
    [0x0a] = {0, ARG_NONE, 4},  [0x0b] = {0, ARG_NONE, 8},  /* float 32, 64 */
    [0x0c] = {0, ARG_NONE, 1},  [0x0d] = {0, ARG_NONE, 2},  /* uint 8, 16 */
    [0x0e] = {0, ARG_NONE, 4},  [0x0f] = {0, ARG_NONE, 8},  /* uint 32, 64 */
    [0x10] = {0, ARG_NONE, 1},  [0x11] = {0, ARG_NONE, 2},  /* int 8, 16 */
    [0x12] = {0, ARG_NONE, 4},  [0x13] = {0, ARG_NONE, 8},  /* int 32, 64 */
    [0x14] = {0, ARG_NONE, 2},  [0x15] = {0, ARG_NONE, 3},  /* fixext 1, 2 (+ type) */
    [0x16] = {0, ARG_NONE, 5},  [0x17] = {0, ARG_NONE, 9},  /* fixext 4, 8 */
    [0x18] = {0, ARG_NONE, 17}, [0x19] = {1, ARG_SKIP, 0},  /* fixext 16, str 8 */
    [0x1a] = {2, ARG_SKIP, 0},  [0x1b] = {4, ARG_SKIP, 0},  /* str 16, 32 */
    [0x1c] = {2, ARG_ARRAY, 0}, [0x1d] = {4, ARG_ARRAY, 0}, /* array 16, 32 */
    [0x1e] = {2, ARG_MAP, 0},   [0x1f] = {4, ARG_MAP, 0},   /* map 16, 32 */
};

static int classify(unsigned b, size_t *argn, enum arg_kind *kind, uint64_t *inline_n,
                    size_t *extra)
{
    *argn = 0;
    *kind = ARG_NONE;
    *inline_n = 0;
    *extra = 0;
    if (b <= 0x7f || b >= 0xe0) {
        return 0; /* positive and negative fixint */
    }
    if (b <= 0xbf) { /* fixmap, fixarray, fixstr */
        *kind = b <= 0x8f ? ARG_MAP : b <= 0x9f ? ARG_ARRAY : ARG_SKIP;
        *inline_n = b <= 0x9f ? (b & 0x0f) : (b & 0x1f);
        return 0;
    }
    const struct lead *l = &leads[b - 0xc0];
    if (l->argn == 0xff) {
        return HR_EPROTO;
    }
    *argn = l->argn;
    *kind = (enum arg_kind)l->kind;
    *extra = l->extra;
    return 0;
}

static int prescan(const unsigned char *p, size_t len, size_t max_objects, char *err, size_t errlen)
{
    uint64_t left[HR_CODEC_MAX_DEPTH + 1];
    int depth = 0;
    size_t off = 0, objects = 0;
    left[0] = 1;
    while (depth >= 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        left[depth]--;
        if (off >= len) {
            goto truncated;
        }
        if (++objects > max_objects) {
            snprintf(err, errlen, "msgpack: more than %zu objects", max_objects);
            return HR_EPROTO;
        }
        unsigned b = p[off++];
        size_t argn, extra;
        enum arg_kind kind;
        uint64_t n;
        if (classify(b, &argn, &kind, &n, &extra) != 0) {
            snprintf(err, errlen, "msgpack: invalid byte 0x%02x at offset %zu", b, off - 1);
            return HR_EPROTO;
        }
        if (len - off < argn) {
            goto truncated;
        }
        if (argn > 0) {
            n = be(p + off, argn);
            off += argn;
        }
        if (kind == ARG_SKIP) {
            extra += n;
        }
        if (len - off < extra) {
            goto truncated;
        }
        off += extra;
        if (kind == ARG_ARRAY || kind == ARG_MAP) {
            uint64_t children = kind == ARG_MAP ? 2 * n : n;
            if (children > len - off) {
                snprintf(err, errlen, "msgpack: container of %llu elements in %zu bytes",
                         (unsigned long long)n, len - off);
                return HR_EPROTO;
            }
            if (children > 0) {
                if (depth + 1 > HR_CODEC_MAX_DEPTH) {
                    snprintf(err, errlen, "msgpack: nested deeper than %d", HR_CODEC_MAX_DEPTH);
                    return HR_EPROTO;
                }
                left[++depth] = children;
            }
        }
    }
    if (off != len) {
        snprintf(err, errlen, "msgpack: %zu trailing bytes after the value", len - off);
        return HR_EPROTO;
    }
    return 0;
truncated:
    snprintf(err, errlen, "msgpack: truncated value (%zu bytes)", len);
    return HR_EPROTO;
}

int hr__codec_unpack(const void *buf, size_t len, size_t max_objects, msgpack_unpacked *out,
                     char *err, size_t errlen)
{
    msgpack_unpacked_init(out);
    int rc = prescan(buf, len, max_objects, err, errlen);
    if (rc != 0) {
        return rc;
    }
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(out, buf, len, &off);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
        snprintf(err, errlen, "msgpack: out of memory");
        return HR_ENOMEM;
    }
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
        /* The pre-scan accepted it, so this is a disagreement with msgpack-c: refuse. */
        snprintf(err, errlen, "msgpack: unpack failed (%d at offset %zu of %zu)", (int)ur, off,
                 len);
        return HR_EPROTO;
    }
    return 0;
}

bool hr__codec_uint(const msgpack_object *o, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return false;
    }
    *v = o->via.u64;
    return true;
}
