/*
 * frame_fuzz.c: libFuzzer target for the frame reader and the message codec.
 *
 * The input is a byte stream as it would arrive on a peer connection. It is fed to the
 * incremental reader in pieces whose sizes come from the input itself (so partial reads
 * are exercised), and every frame that comes out is decoded. A message that decodes must
 * survive re-encoding unchanged: decode(encode(m)) == m. The whole input is also checked
 * as a single frame, and its frames are decoded with their CRCs ignored (so that mutations
 * reach the decoder). Build and run: `make fuzz` (clang -fsanitize=fuzzer,address,undefined).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "../codec.h"
#include "fuzz_common.h"

static void same(const struct hr_msg *a, const struct hr_msg *b)
{
    assert(a->type == b->type && a->from == b->from && a->to == b->to && a->term == b->term);
    assert(a->prev_index == b->prev_index && a->prev_term == b->prev_term);
    assert(a->commit == b->commit && a->reject == b->reject && a->index == b->index);
    assert(a->hint_index == b->hint_index && a->hint_term == b->hint_term);
    assert(a->last_index == b->last_index && a->cand_last_index == b->cand_last_index);
    assert(a->cand_last_term == b->cand_last_term && a->n_entries == b->n_entries);
    assert(a->seq == b->seq && a->time_ms == b->time_ms);
    for (uint32_t i = 0; i < a->n_entries; i++) {
        const struct hr_entry *x = &a->entries[i], *y = &b->entries[i];
        assert(x->term == y->term && x->index == y->index && x->time_ms == y->time_ms);
        assert(x->type == y->type && hr_blob_len(x->data) == hr_blob_len(y->data));
        assert(hr_blob_len(x->data) == 0 ||
               memcmp(x->data->data, y->data->data, x->data->len) == 0);
    }
}

static void roundtrip(const struct hr_msg *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = hr_codec_encode(&sb, m);
    assert(rc == 0);
    struct hr_msg back;
    char err[256];
    rc = hr_codec_decode_frame(sb.data, sb.size, HR_FRAME_MAX_DEFAULT, &back, err, sizeof(err));
    assert(rc == 0);
    same(m, &back);
    hr_msg_release(&back);
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct hr_msg m;
    if (hr_codec_decode_frame(data, size, FUZZ_MAX_FRAME, &m, err, sizeof(err)) == 0) {
        roundtrip(&m);
        hr_msg_release(&m);
    }
    /* The same bytes as a stream, read in pieces of 1..16 bytes chosen by the input. */
    struct hr_frame_reader r;
    hr_frame_reader_init(&r, FUZZ_MAX_FRAME);
    size_t off = 0, k = 0;
    int rc = 0;
    while (off < size && rc >= 0) {
        size_t piece = 1 + (data[k++ % size] & 15);
        if (piece > size - off) {
            piece = size - off;
        }
        if (hr_frame_reader_feed(&r, data + off, piece) != 0) {
            break;
        }
        off += piece;
        const void *payload;
        size_t plen;
        while ((rc = hr_frame_reader_next(&r, &payload, &plen, err, sizeof(err))) == 1) {
            if (hr_codec_decode(payload, plen, &m, err, sizeof(err)) == 0) {
                roundtrip(&m);
                hr_msg_release(&m);
            }
        }
    }
    hr_frame_reader_free(&r);
    const uint8_t *payload;
    size_t plen;
    off = 0;
    while (fuzz_next_payload(data, size, &off, &payload, &plen)) {
        if (hr_codec_decode(payload, plen, &m, err, sizeof(err)) == 0) {
            roundtrip(&m);
            hr_msg_release(&m);
        }
    }
    return 0;
}
