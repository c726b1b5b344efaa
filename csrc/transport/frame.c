/* frame.c: length + CRC32C framing and the incremental stream reader (frame.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/crc32c.h"
#include "../core/error.h"
#include "frame.h"

/* The reader's buffer grows by at least this much, so a stream of small frames does not
 * reallocate per read. */
#define READ_CHUNK 65536

int hr_frame_begin(msgpack_sbuffer *sb, size_t *start)
{
    static const char zero[HR_FRAME_HEADER];
    *start = sb->size;
    return msgpack_sbuffer_write(sb, zero, sizeof(zero)) == 0 ? 0 : HR_ENOMEM;
}

void hr_frame_finish(msgpack_sbuffer *sb, size_t start)
{
    char *h = sb->data + start;
    size_t plen = sb->size - start - HR_FRAME_HEADER;
    hr__put_be32(h, (uint32_t)plen);
    hr__put_be32(h + 4, hr_crc32c(0, h + HR_FRAME_HEADER, plen));
}

/* Validate a header against max and, if the payload is all there, its CRC. */
static int check_header(const unsigned char *h, size_t avail, size_t max, size_t *plen, char *err,
                        size_t errlen)
{
    uint32_t len = hr__be32(h);
    if (len == 0) {
        snprintf(err, errlen, "frame: empty payload");
        return HR_EPROTO;
    }
    if (len > max) {
        snprintf(err, errlen, "frame: payload of %u bytes exceeds the maximum of %zu", len, max);
        return HR_ETOOLARGE;
    }
    *plen = len;
    if (avail - HR_FRAME_HEADER < len) {
        return 0;
    }
    uint32_t crc = hr_crc32c(0, h + HR_FRAME_HEADER, len);
    if (crc != hr__be32(h + 4)) {
        snprintf(err, errlen, "frame: payload CRC32C mismatch (0x%08x, header says 0x%08x)", crc,
                 hr__be32(h + 4));
        return HR_ECORRUPT;
    }
    return 1;
}

int hr_frame_check(const void *frame, size_t len, size_t max, const void **payload, size_t *plen,
                   char *err, size_t errlen)
{
    if (len < HR_FRAME_HEADER) {
        snprintf(err, errlen, "frame: truncated header (%zu bytes)", len);
        return HR_EPROTO;
    }
    int rc = check_header(frame, len, max, plen, err, errlen);
    if (rc < 0) {
        return rc;
    }
    if (rc == 0) {
        snprintf(err, errlen, "frame: truncated (%zu of %zu payload bytes)", len - HR_FRAME_HEADER,
                 *plen);
        return HR_EPROTO;
    }
    if (len != HR_FRAME_HEADER + *plen) {
        snprintf(err, errlen, "frame: %zu trailing bytes", len - HR_FRAME_HEADER - *plen);
        return HR_EPROTO;
    }
    *payload = (const char *)frame + HR_FRAME_HEADER;
    return 0;
}

void hr_frame_reader_init(struct hr_frame_reader *r, size_t max)
{
    memset(r, 0, sizeof(*r));
    r->max = max == 0 ? HR_FRAME_MAX_DEFAULT : max;
}

void hr_frame_reader_free(struct hr_frame_reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

int hr_frame_reader_space(struct hr_frame_reader *r, char **p, size_t *n)
{
    /* Consumed frames are dropped lazily, here, so payloads handed out by _next stay valid
     * until the next read. */
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
    }
    /* Size the buffer for the frame in progress when its header is known (never beyond
     * max: a larger one fails in _next before anything more is read). */
    size_t need = r->len + READ_CHUNK;
    if (r->len >= HR_FRAME_HEADER) {
        size_t plen = hr__be32(r->buf);
        if (plen <= r->max && HR_FRAME_HEADER + plen > need) {
            need = HR_FRAME_HEADER + plen;
        }
    }
    if (r->cap < need) {
        char *b = realloc(r->buf, need);
        if (b == NULL) {
            return HR_ENOMEM;
        }
        r->buf = b;
        r->cap = need;
    }
    *p = r->buf + r->len;
    *n = r->cap - r->len;
    return 0;
}

void hr_frame_reader_commit(struct hr_frame_reader *r, size_t n)
{
    r->len += n;
}

int hr_frame_reader_feed(struct hr_frame_reader *r, const void *data, size_t n)
{
    while (n > 0) {
        char *p;
        size_t room;
        int rc = hr_frame_reader_space(r, &p, &room);
        if (rc != 0) {
            return rc;
        }
        size_t k = room < n ? room : n;
        memcpy(p, data, k);
        hr_frame_reader_commit(r, k);
        data = (const char *)data + k;
        n -= k;
    }
    return 0;
}

int hr_frame_reader_next(struct hr_frame_reader *r, const void **payload, size_t *plen, char *err,
                         size_t errlen)
{
    size_t avail = r->len - r->pos;
    if (avail < HR_FRAME_HEADER) {
        return 0;
    }
    const unsigned char *h = (const unsigned char *)r->buf + r->pos;
    int rc = check_header(h, avail, r->max, plen, err, errlen);
    if (rc <= 0) {
        return rc;
    }
    *payload = h + HR_FRAME_HEADER;
    r->pos += HR_FRAME_HEADER + *plen;
    return 1;
}
