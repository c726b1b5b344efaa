/*
 * resp_fuzz.c: libFuzzer target for the RESP2 request parser and reply encoder
 * (csrc/transport/resp.h).
 *
 * The input is what a client might send to the client port, with small limits so that
 * they are easy to reach. It is parsed twice: whole, and fed in pieces whose sizes come
 * from the input (as partial reads arrive, appended to the buffer between calls); both must
 * give the same requests and the same error. Every request is then encoded as an array of
 * bulk strings with the encoder and parsed back: it must come out unchanged.
 * Build and run: `make fuzz` (clang -fsanitize=fuzzer,address,undefined).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../resp.h"

static const struct hr_resp_limits limits = {.max_args = 64, .max_bulk = 4096, .max_inline = 256};

/* A digest of the requests a parse produced, to compare the two ways of feeding. */
struct trace {
    struct hr_resp_buf b;
    int error;
};

static void record(struct trace *t, const struct hr_resp_parser *p, const char *req)
{
    int rc = hr_resp_put_array(&t->b, p->argc);
    assert(rc == 0);
    for (size_t i = 0; i < p->argc; i++) {
        rc = hr_resp_put_bulk(&t->b, req + p->args[i].off, p->args[i].len);
        assert(rc == 0);
    }
}

/* Parse a copy of data[0..size) handed over `steps` of the input's choosing (or whole). */
static void run(const uint8_t *data, size_t size, bool pieces, struct trace *t)
{
    char *buf = malloc(size + 1);
    assert(buf != NULL);
    struct hr_resp_parser p;
    hr_resp_parser_init(&p, &limits);
    size_t start = 0, avail = 0, k = 0;
    for (;;) {
        /* Bytes arrive at the end of buf as a socket read appends them. */
        size_t before = avail;
        if (!pieces) {
            avail = size;
        } else if (avail < size) {
            size_t piece = 1 + (data[k++ % size] & 31);
            avail = avail + piece > size ? size : avail + piece;
        }
        memcpy(buf + before, data + before, avail - before);
        size_t used = 0;
        int rc = hr_resp_parse(&p, buf + start, avail - start, &used);
        if (rc == HR_RESP_ERROR) {
            t->error = 1;
            break;
        }
        if (rc == HR_RESP_REQUEST) {
            assert(used > 0 && used <= avail - start);
            record(t, &p, buf + start);
            start += used;
            continue;
        }
        if (avail == size) {
            break;
        }
    }
    hr_resp_parser_free(&p);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    struct trace whole = {{0}, 0}, split = {{0}, 0};
    run(data, size, false, &whole);
    run(data, size, true, &split);
    assert(whole.error == split.error);
    assert(whole.b.len == split.b.len);
    assert(whole.b.len == 0 || memcmp(whole.b.data, split.b.data, whole.b.len) == 0);

    /* The encoded requests parse back to themselves: each array is what it encodes. */
    if (whole.b.len > 0) {
        struct hr_resp_parser p;
        struct hr_resp_limits big = {.max_args = 64, .max_bulk = 1 << 20, .max_inline = 1 << 20};
        hr_resp_parser_init(&p, &big);
        struct trace again = {{0}, 0};
        char *copy = malloc(whole.b.len);
        assert(copy != NULL);
        memcpy(copy, whole.b.data, whole.b.len);
        size_t off = 0;
        while (off < whole.b.len) {
            size_t used = 0;
            int rc = hr_resp_parse(&p, copy + off, whole.b.len - off, &used);
            assert(rc == HR_RESP_REQUEST);
            record(&again, &p, copy + off);
            off += used;
        }
        assert(again.b.len == whole.b.len && memcmp(again.b.data, whole.b.data, whole.b.len) == 0);
        hr_resp_parser_free(&p);
        free(copy);
        hr_resp_buf_free(&again.b);
    }
    hr_resp_buf_free(&whole.b);
    hr_resp_buf_free(&split.b);
    return 0;
}
