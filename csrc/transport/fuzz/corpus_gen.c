/*
 * corpus_gen.c: writes the seed corpus of the fuzz targets (`make fuzz-corpus`):
 * valid frames of every message type and of every handshake message, plus a few broken
 * ones (a flipped bit, truncated, an oversized length, trailing garbage).
 *
 *   corpus_gen DIR    writes DIR/frame/NAME and DIR/handshake/NAME
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../codec.h"
#include "../handshake.h"
#include "fuzz_common.h"

static const char *dir;

static void put(const char *sub, const char *name, const void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void put_msg(const char *name, const struct hr_msg *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (hr_codec_encode(&sb, m) != 0) {
        exit(1);
    }
    put("frame", name, sb.data, sb.size);
    char bad[64];
    if (strcmp(name, "append_entries") == 0) {
        /* Broken variants of one rich frame. */
        sb.data[sb.size / 2] ^= 0x10;
        put("frame", "broken_bitflip", sb.data, sb.size);
        sb.data[sb.size / 2] ^= 0x10;
        put("frame", "broken_truncated", sb.data, sb.size - 3);
        snprintf(bad, sizeof(bad), "%s", "\x7f\xff\xff\xff\x00\x00\x00\x00garbage");
        put("frame", "broken_oversized", bad, 15);
        msgpack_sbuffer_write(&sb, "\x01\x02\x03", 3);
        put("frame", "broken_trailing", sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* hr_tcp_node_id (tcp.c), without linking libuv into the generator. */
static hr_id_t node_id(const char *name)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h = (h ^ *p) * UINT64_C(1099511628211);
    }
    return h == 0 ? 1 : h;
}

static void frames(void)
{
    hr_id_t a = node_id(FUZZ_SERVER), b = node_id(FUZZ_CLIENT);
    struct hr_entry e[3] = {
        {.term = 2, .index = 11, .time_ms = 1000, .type = HR_ENTRY_COMMAND},
        {.term = 3, .index = 12, .time_ms = 1001, .type = HR_ENTRY_NOOP},
        {.term = 3, .index = 13, .time_ms = 1002, .type = HR_ENTRY_CONFIG},
    };
    e[0].data = hr_blob_new("set k v", 7);
    e[2].data = hr_blob_new("\x01\x02\x03\x04", 4);
    struct hr_msg m = {.type = HR_MSG_APPEND,
                       .from = a,
                       .to = b,
                       .term = 3,
                       .prev_index = 10,
                       .prev_term = 2,
                       .commit = 9,
                       .entries = e,
                       .n_entries = 3};
    put_msg("append_entries", &m);
    m.entries = NULL;
    m.n_entries = 0;
    put_msg("append_heartbeat", &m);
    struct hr_msg r = {
        .type = HR_MSG_APPEND_RESP, .from = b, .to = a, .term = 3, .index = 13, .last_index = 13};
    put_msg("append_resp", &r);
    r.reject = true;
    r.hint_index = 7;
    r.hint_term = 1;
    put_msg("append_resp_reject", &r);
    struct hr_msg v = {.type = HR_MSG_VOTE,
                       .from = a,
                       .to = b,
                       .term = 4,
                       .cand_last_index = 13,
                       .cand_last_term = 3};
    put_msg("vote", &v);
    v.type = HR_MSG_PREVOTE;
    put_msg("prevote", &v);
    struct hr_msg vr = {.type = HR_MSG_VOTE_RESP, .from = b, .to = a, .term = 4};
    put_msg("vote_resp", &vr);
    vr.type = HR_MSG_PREVOTE_RESP;
    vr.reject = true;
    put_msg("prevote_resp", &vr);
    struct hr_msg s = {.type = HR_MSG_SNAPSHOT, .from = a, .to = b, .term = 4, .index = 100};
    put_msg("snapshot", &s);
    s.type = HR_MSG_SNAPSHOT_RESP;
    put_msg("snapshot_resp", &s);
    s.type = HR_MSG_TIMEOUT_NOW;
    put_msg("timeout_now", &s);
    v.type = HR_MSG_VOTE;
    v.transfer = true;
    put_msg("vote_transfer", &v);
    struct hr_msg ri = {.type = HR_MSG_READ_INDEX, .from = b, .to = a, .term = 4, .seq = 9};
    put_msg("read_index", &ri);
    ri.type = HR_MSG_READ_INDEX_RESP;
    ri.from = a;
    ri.to = b;
    ri.index = 13;
    ri.time_ms = 1700000000123;
    put_msg("read_index_resp", &ri);
    hr_blob_release(e[0].data);
    hr_blob_release(e[2].data);
}

static void put_hs(const char *name, const struct hr_hs_msg *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (hr_hs_encode(&sb, m) != 0) {
        exit(1);
    }
    put("handshake", name, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void handshakes(void)
{
    struct hr_hs_msg hello = {.type = HR_HS_HELLO, .version = HR_HS_VERSION, .has_nonce = true};
    snprintf(hello.cluster, sizeof(hello.cluster), FUZZ_CLUSTER);
    snprintf(hello.name, sizeof(hello.name), FUZZ_CLIENT);
    snprintf(hello.peer, sizeof(hello.peer), FUZZ_SERVER);
    memset(hello.nonce, 0xab, sizeof(hello.nonce));
    put_hs("hello", &hello);
    struct hr_hs_msg auth = {.type = HR_HS_AUTH, .version = HR_HS_VERSION, .has_mac = true};
    memset(auth.mac, 0x5a, sizeof(auth.mac));
    put_hs("auth", &auth);
    struct hr_hs_msg ch = hello;
    ch.type = HR_HS_CHALLENGE;
    snprintf(ch.name, sizeof(ch.name), FUZZ_SERVER);
    ch.peer[0] = 0;
    put_hs("challenge", &ch);
    struct hr_hs_msg w = auth;
    w.type = HR_HS_WELCOME;
    put_hs("welcome", &w);
    struct hr_hs_msg refuse = {.type = HR_HS_REFUSE, .version = HR_HS_VERSION};
    snprintf(refuse.reason, sizeof(refuse.reason), "authentication failed");
    put_hs("refuse", &refuse);
    struct hr_hs_msg wrong = hello;
    wrong.version = 99;
    put_hs("hello_version", &wrong);
    wrong = hello;
    snprintf(wrong.cluster, sizeof(wrong.cluster), "other");
    put_hs("hello_cluster", &wrong);
    /* Whole conversations, as one stream each. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    hr_hs_encode(&sb, &hello);
    hr_hs_encode(&sb, &auth);
    put("handshake", "stream_server", sb.data, sb.size);
    sb.size = 0;
    hr_hs_encode(&sb, &ch);
    hr_hs_encode(&sb, &w);
    put("handshake", "stream_client", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: corpus_gen DIR\n");
        return 2;
    }
    dir = argv[1];
    frames();
    handshakes();
    return 0;
}
