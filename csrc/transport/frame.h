/*
 * frame.h: the framing of every socket Helios owns (peer transport, control socket).
 *
 *   +----------------+----------------+------------------------------+
 *   | length u32 BE  | CRC32C u32 BE  | payload: one msgpack value   |
 *   +----------------+----------------+------------------------------+
 *
 * The length counts the payload only; the CRC32C (csrc/core/crc32c.h) covers the payload,
 * so a bit flipped on the wire is detected before anything is decoded. A reader refuses a
 * length above its maximum before buffering anything, so a peer cannot make it allocate
 * more than that.
 *
 * Threading: a reader belongs to one thread. Ownership: the reader owns its buffer.
 */
#ifndef HR_TRANSPORT_FRAME_H
#define HR_TRANSPORT_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define HR_FRAME_HEADER 8
#define HR_FRAME_MAX_DEFAULT ((size_t)64 << 20)

/* Start a frame in sb: reserve its header. Pack the payload, then hr_frame_finish. */
int hr_frame_begin(msgpack_sbuffer *sb, size_t *start);
/* Fill in the header of the frame begun at start (length and CRC of what follows it). */
void hr_frame_finish(msgpack_sbuffer *sb, size_t start);

/* Check a whole frame held in memory (exactly one frame, len bytes). 0 and the payload, or
 * HR_EPROTO (truncated, trailing bytes, empty), HR_ETOOLARGE (length above max),
 * HR_ECORRUPT (CRC mismatch), with a message in err. */
int hr_frame_check(const void *frame, size_t len, size_t max, const void **payload, size_t *plen,
                   char *err, size_t errlen);

/* An incremental reader over a byte stream (partial reads). */
struct hr_frame_reader {
    char *buf;
    size_t len; /* bytes held */
    size_t pos; /* start of the first unconsumed frame */
    size_t cap;
    size_t max; /* larger payloads are refused */
};

void hr_frame_reader_init(struct hr_frame_reader *r, size_t max);
void hr_frame_reader_free(struct hr_frame_reader *r);
/* Room to read into: at least min(want, what the next frame needs) bytes when want > 0.
 * HR_ENOMEM. */
int hr_frame_reader_space(struct hr_frame_reader *r, char **p, size_t *n);
/* n bytes were written at the space returned. */
void hr_frame_reader_commit(struct hr_frame_reader *r, size_t n);
/* space + copy + commit. */
int hr_frame_reader_feed(struct hr_frame_reader *r, const void *data, size_t n);
/* 1 and the next frame's payload (valid until the next call on r), 0 if it has not fully
 * arrived, or a negative HR_E* as hr_frame_check (the stream is then unusable). */
int hr_frame_reader_next(struct hr_frame_reader *r, const void **payload, size_t *plen, char *err,
                         size_t errlen);

/* Big-endian helpers. */
static inline uint32_t hr__be32(const void *p)
{
    const unsigned char *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static inline void hr__put_be32(void *p, uint32_t v)
{
    unsigned char *b = p;
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

#endif
