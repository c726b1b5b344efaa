/*
 * reply_fuzz.c: libFuzzer target for the RESP2 reply reader (csrc/transport/resp.h), what
 * a client reads from a Redis-protocol server (sock:recv_reply, csrc/lua/client_binding.c).
 *
 * The input is a stream of replies, with small limits so that they are easy to reach. It
 * is read twice: whole, and fed in pieces whose sizes come from the input (as partial
 * reads arrive, appended to the buffer between calls); both must accept the same replies
 * and end the same way. Every accepted reply is then walked with hr_resp_next_item, which
 * must not fail, must use exactly the reply's bytes, and must give values that the reply
 * encoder writes back as the very same bytes (the reader accepts one spelling of each).
 * Build and run: `make fuzz` (clang -fsanitize=fuzzer,address,undefined).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../resp.h"

static const struct hr_resp_reply_limits limits = {
    .max_depth = 8, .max_elems = 16, .max_bulk = 64, .max_line = 32};

/* The replies a read accepted, end to end, and how it ended. */
struct trace {
    char *data;
    size_t len;
    int error, limit;
};

static void append(struct trace *t, const char *s, size_t n)
{
    t->data = realloc(t->data, t->len + n);
    assert(t->data != NULL);
    memcpy(t->data + t->len, s, n);
    t->len += n;
}

/* Walk one accepted reply and encode it again: it must come out as the same bytes. */
static void check_walk(const char *reply, size_t len)
{
    struct hr_resp_buf out = {0};
    size_t off = 0, pending = 1; /* values still to walk */
    while (pending > 0) {
        struct hr_resp_item it;
        int rc = hr_resp_next_item(reply, len, &off, &it);
        assert(rc == 0 && off <= len);
        pending--;
        switch (it.type) {
        case '+': rc = hr_resp_put_simple(&out, it.s, it.len); break;
        case '-': rc = hr_resp_put_error(&out, it.s, it.len); break;
        case ':': rc = hr_resp_put_int(&out, it.n); break;
        case '$':
            rc = it.null ? hr_resp_put_null_bulk(&out) : hr_resp_put_bulk(&out, it.s, it.len);
            break;
        case '*':
            rc = it.null ? hr_resp_put_null_array(&out) : hr_resp_put_array(&out, (size_t)it.n);
            pending += it.null ? 0 : (size_t)it.n;
            break;
        default: assert(0);
        }
        assert(rc == 0);
    }
    assert(off == len);
    assert(out.len == len && memcmp(out.data, reply, len) == 0);
    hr_resp_buf_free(&out);
}

static void run(const uint8_t *data, size_t size, bool pieces, struct trace *t)
{
    char *buf = malloc(size + 1);
    assert(buf != NULL);
    struct hr_resp_reader r;
    hr_resp_reader_init(&r, &limits);
    size_t start = 0, avail = 0, k = 0;
    for (;;) {
        size_t before = avail;
        if (!pieces) {
            avail = size;
        } else if (avail < size) {
            size_t piece = 1 + (data[k++ % size] & 15);
            avail = avail + piece > size ? size : avail + piece;
        }
        memcpy(buf + before, data + before, avail - before);
        size_t used = 0;
        int rc = hr_resp_read_reply(&r, buf + start, avail - start, &used);
        if (rc == HR_RESP_ERROR) {
            t->error = 1;
            t->limit = r.limit;
            assert(r.err[0] != '\0');
            break;
        }
        if (rc == HR_RESP_REPLY) {
            assert(used > 0 && used <= avail - start);
            check_walk(buf + start, used);
            append(t, buf + start, used);
            start += used;
            continue;
        }
        assert(r.pos <= avail - start);
        if (avail == size) {
            break;
        }
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    struct trace whole = {NULL, 0, 0, 0}, split = {NULL, 0, 0, 0};
    run(data, size, false, &whole);
    run(data, size, true, &split);
    assert(whole.error == split.error && whole.limit == split.limit);
    assert(whole.len == split.len);
    /* What was accepted is a prefix of the input. */
    assert(whole.len <= size && (whole.len == 0 || memcmp(whole.data, data, whole.len) == 0));
    free(whole.data);
    free(split.data);
    return 0;
}
