/*
 * handshake_fuzz.c: libFuzzer target for the handshake message parser and state machine.
 *
 * The input is read as a stream of frames (as a peer would send them during the
 * handshake). Each payload goes to a listener's handshake and to a dialer's (which has sent
 * its HELLO), until each finishes or fails; the parser is also run on the raw input as one
 * payload. A forged peer must never complete a handshake: neither side may reach
 * HR_HS_DONE, since the input cannot know the proofs for this run's random nonces.
 */
#include <assert.h>
#include <string.h>

#include "../frame.h"
#include "../handshake.h"
#include "fuzz_common.h"

static const struct hr_hs_config server_cfg = {FUZZ_SERVER, FUZZ_CLUSTER, FUZZ_SECRET,
                                               sizeof(FUZZ_SECRET) - 1};
static const struct hr_hs_config client_cfg = {FUZZ_CLIENT, FUZZ_CLUSTER, FUZZ_SECRET,
                                               sizeof(FUZZ_SECRET) - 1};

static void feed(struct hr_hs *server, struct hr_hs *client, int *srv, int *cli,
                 const void *payload, size_t plen, msgpack_sbuffer *out)
{
    char err[256];
    out->size = 0;
    if (*srv == HR_HS_MORE) {
        *srv = hr_hs_step(server, payload, plen, out, err, sizeof(err));
    }
    if (*cli == HR_HS_MORE) {
        *cli = hr_hs_step(client, payload, plen, out, err, sizeof(err));
    }
    assert(*srv != HR_HS_DONE && *cli != HR_HS_DONE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct hr_hs_msg msg;
    hr_hs_decode(data, size, &msg, err, sizeof(err));

    struct hr_hs server, client;
    hr_hs_server_init(&server, &server_cfg);
    hr_hs_client_init(&client, &client_cfg, FUZZ_SERVER);
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    int rc = hr_hs_start(&client, &out, err, sizeof(err));
    assert(rc == 0);
    int srv = HR_HS_MORE, cli = HR_HS_MORE;

    /* Frames as they would arrive, CRCs checked, then the same frames with their CRCs
     * ignored (fresh handshakes), so that mutated payloads reach the state machine. */
    struct hr_frame_reader r;
    hr_frame_reader_init(&r, HR_HS_MAX_FRAME);
    if (hr_frame_reader_feed(&r, data, size) == 0) {
        const void *payload;
        size_t plen;
        while (hr_frame_reader_next(&r, &payload, &plen, err, sizeof(err)) == 1) {
            feed(&server, &client, &srv, &cli, payload, plen, &out);
        }
    }
    hr_frame_reader_free(&r);
    hr_hs_server_init(&server, &server_cfg);
    hr_hs_client_init(&client, &client_cfg, FUZZ_SERVER);
    out.size = 0;
    rc = hr_hs_start(&client, &out, err, sizeof(err));
    assert(rc == 0);
    srv = cli = HR_HS_MORE;
    const uint8_t *payload;
    size_t plen, off = 0;
    while (fuzz_next_payload(data, size, &off, &payload, &plen)) {
        feed(&server, &client, &srv, &cli, payload, plen, &out);
    }
    msgpack_sbuffer_destroy(&out);
    return 0;
}
