/*
 * codec.h: struct hr_msg <-> frames (frame.h) whose payload is one msgpack map.
 *
 * The map's keys are small integers (HR_K_*): key 0 is the message type, the others the
 * fields of struct hr_msg. Zero fields are left out, which the decoder reads back as zero.
 * Keys this version does not know are ignored, so a later version can add fields. Entries
 * are arrays [term, index, time_ms, type, data(bin)].
 *
 * The decoder reads bytes from the network: everything is validated (types, ranges, sizes,
 * entry counts and their consecutive indices, the CRC) and an error is returned with a
 * message; nothing asserts on input or reads outside the buffer. Before msgpack-c builds any
 * object, a structural pre-scan (hr__codec_unpack) bounds depth, object count and every
 * container's declared size by the bytes that are actually there, so a 10-byte frame
 * claiming a 4-billion element array is refused instead of allocated.
 *
 * Threading: pure functions, any thread. Ownership: decoded messages own their entries
 * (hr_msg_release); encoders append to the caller's buffer.
 */
#ifndef HR_TRANSPORT_CODEC_H
#define HR_TRANSPORT_CODEC_H

#include <msgpack.h>

#include "../core/raft.h"
#include "frame.h"

/* Field keys of a message map. Handshake messages (handshake.h) use types from 64 up. */
enum {
    HR_K_TYPE = 0,
    HR_K_FROM,
    HR_K_TO,
    HR_K_TERM,
    HR_K_PREV_INDEX,
    HR_K_PREV_TERM,
    HR_K_COMMIT,
    HR_K_ENTRIES,
    HR_K_REJECT,
    HR_K_INDEX,
    HR_K_HINT_INDEX,
    HR_K_HINT_TERM,
    HR_K_LAST_INDEX,
    HR_K_CAND_LAST_INDEX,
    HR_K_CAND_LAST_TERM,
    HR_K_SNAP_INDEX,
    HR_K_SNAP_TERM,
    HR_K_OFFSET,
    HR_K_DONE,      /* boolean */
    HR_K_SNAP_DATA, /* bin: a chunk of a snapshot (SNAPSHOT only) */
    HR_K_SEQ,
    HR_K_TRANSFER, /* boolean: VOTE on a leader's TIMEOUT_NOW */
    HR_K_TIME_MS,  /* READ_INDEX_RESP: the leader's clock at the read index (absent: unknown,
                    * as from a sender before this field) */
    HR_K_COUNT
};

/* The decoder refuses more entries in one message (the leader sends at most
 * max_entries_per_append; this bounds what a peer can make us allocate). */
#define HR_CODEC_MAX_ENTRIES 65536
/* Nesting deeper than this is refused before unpacking (a message needs 3 levels). */
#define HR_CODEC_MAX_DEPTH 8

/* Append m to sb as one frame. 0, HR_ENOMEM, or HR_EINVAL for a message that cannot be
 * valid (an unknown type, more than HR_CODEC_MAX_ENTRIES entries). */
int hr_codec_encode(msgpack_sbuffer *sb, const struct hr_msg *m);
/* Decode a payload (the frame's CRC already checked) into *m, which the caller releases
 * with hr_msg_release. 0, or HR_EPROTO / HR_ENOMEM with a message in err; on error *m is
 * zeroed and owns nothing. */
int hr_codec_decode(const void *payload, size_t len, struct hr_msg *m, char *err, size_t errlen);
/* hr_frame_check + hr_codec_decode over one whole frame. */
int hr_codec_decode_frame(const void *frame, size_t len, size_t max, struct hr_msg *m, char *err,
                          size_t errlen);

/* Internal, shared with handshake.c: unpack exactly one msgpack value filling buf, after
 * the structural pre-scan (depth <= HR_CODEC_MAX_DEPTH, at most max_objects objects). The
 * caller destroys *out (msgpack_unpacked_destroy) whether or not this succeeded; strings
 * and bins in it point into buf. 0 or HR_EPROTO / HR_ENOMEM. */
int hr__codec_unpack(const void *buf, size_t len, size_t max_objects, msgpack_unpacked *out,
                     char *err, size_t errlen);
/* A positive integer object as uint64_t; false for any other type. */
bool hr__codec_uint(const msgpack_object *o, uint64_t *v);

#endif
