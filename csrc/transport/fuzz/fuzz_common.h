/*
 * fuzz_common.h: what the libFuzzer targets and the corpus generator share: the identities
 * the fuzzed handshakes run with (corpus_gen.c writes frames that are valid for them, so
 * that the fuzzer starts from inputs that reach deep into the state machine).
 */
#ifndef HR_FUZZ_COMMON_H
#define HR_FUZZ_COMMON_H

#define FUZZ_CLUSTER "fuzz-cluster"
#define FUZZ_SERVER "node-1"
#define FUZZ_CLIENT "node-2"
#define FUZZ_SECRET "fuzz-secret"
/* The fuzzed frame reader's limit: small, so that oversized frames are easy to reach. */
#define FUZZ_MAX_FRAME 65536

#include <stddef.h>
#include <stdint.h>

/* The next frame of data[*off..size) with its CRC ignored: random mutations almost always
 * break the CRC, so without this the fuzzer would rarely get past the frame check to the
 * decoders behind it. 1 and the payload, or 0 at the end of the input. */
static inline int fuzz_next_payload(const uint8_t *data, size_t size, size_t *off,
                                    const uint8_t **payload, size_t *len)
{
    if (size - *off < 8) {
        return 0;
    }
    const uint8_t *h = data + *off;
    size_t n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    if (n > size - *off - 8) {
        n = size - *off - 8; /* a truncated last frame: take what is there */
    }
    *payload = h + 8;
    *len = n;
    *off += 8 + n;
    return 1;
}

#endif
