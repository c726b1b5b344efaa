/*
 * handshake.h: the versioned, mutually authenticated handshake that opens every peer
 * connection. No I/O here: a struct hr_hs consumes frame payloads and produces frames, so
 * the TCP transport, the blocking Lua test client and the fuzzer share one implementation.
 *
 * The dialer (client) C and the listener (server) S, each knowing the cluster secret K:
 *
 *   C -> S  HELLO     {version, cluster, name = C, peer = S as C expects it, nonce_c}
 *   S -> C  CHALLENGE {version, cluster, name = S, nonce_s}       (or REFUSE {reason})
 *   C -> S  AUTH      {mac = HMAC-SHA256(K, transcript("C"))}
 *   S -> C  WELCOME   {mac = HMAC-SHA256(K, transcript("S"))}     (or REFUSE {reason})
 *
 * transcript(role) = "helios-raft-hs" | version | role | cluster | name C | name S |
 * nonce_c | nonce_s, strings prefixed by their length. HMAC is RFC 2104 over SHA-256
 * (FIPS 180-4); nonces are 32 bytes from the OpenSSL CSPRNG, fresh per connection, so a
 * recorded proof is useless on another connection (both nonces are in it), and the role
 * byte keeps a server's proof from being replayed as a client's. The dialer proves first,
 * so a stranger learns nothing from the listener before it has proved the secret itself,
 * and the listener is the side that counts and logs refused clients. MACs are compared in
 * constant time (CRYPTO_memcmp). The secret itself never travels. The frames that follow
 * are not encrypted or MACed: this authenticates peers, it does not protect the channel
 * (run the cluster on a trusted network or inside a tunnel).
 *
 * Handshake frames use the codec's framing and payload layout (a map of small integer
 * keys, key 0 the type), with types from 64 up so that they never parse as Raft messages.
 *
 * Threading: one thread per struct hr_hs. Ownership: the config is borrowed and must
 * outlive the handshake; frames are appended to the caller's buffer.
 */
#ifndef HR_TRANSPORT_HANDSHAKE_H
#define HR_TRANSPORT_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define HR_HS_VERSION 1
#define HR_HS_NONCE 32
#define HR_HS_MAC 32
#define HR_HS_MAX_NAME 255
/* Handshake frames are small; a larger one is refused before it is buffered. */
#define HR_HS_MAX_FRAME 4096

enum hr_hs_type {
    HR_HS_HELLO = 64,
    HR_HS_CHALLENGE,
    HR_HS_AUTH,
    HR_HS_WELCOME,
    HR_HS_REFUSE,
};

/* One handshake message, decoded (strings NUL-terminated; absent fields empty). */
struct hr_hs_msg {
    int type;
    uint64_t version;
    char cluster[HR_HS_MAX_NAME + 1];
    char name[HR_HS_MAX_NAME + 1];
    char peer[HR_HS_MAX_NAME + 1];
    char reason[HR_HS_MAX_NAME + 1];
    bool has_nonce, has_mac;
    unsigned char nonce[HR_HS_NONCE];
    unsigned char mac[HR_HS_MAC];
};

/* Append msg as a frame. 0 or HR_ENOMEM. */
int hr_hs_encode(msgpack_sbuffer *sb, const struct hr_hs_msg *msg);
/* Decode and validate a payload. 0 or HR_EPROTO with a message in err. */
int hr_hs_decode(const void *payload, size_t len, struct hr_hs_msg *msg, char *err, size_t errlen);

struct hr_hs_config {
    const char *name;    /* this node's configured id */
    const char *cluster; /* cluster id */
    const void *secret;
    size_t secret_len;
    /* Listener only; NULL accepts any name. Whether a dialer is a node of this cluster's
     * configuration: one that is not is refused ("unknown node id"). Asked only once the
     * dialer has proved the secret, so a stranger learns nothing about the membership. */
    bool (*known)(void *ctx, const char *name);
    void *known_ctx;
};

enum { HR_HS_MORE = 0, HR_HS_DONE = 1 };

struct hr_hs {
    const struct hr_hs_config *cfg;
    bool server;
    int state;
    /* Client: the listener's name it expects. Server: the dialer's, once HELLO arrived.
     * Either way, after HR_HS_DONE, the authenticated peer's name. */
    char peer[HR_HS_MAX_NAME + 1];
    unsigned char nonce_c[HR_HS_NONCE], nonce_s[HR_HS_NONCE];
    /* Set with an error when the peer was refused (or refused us) for the wrong secret,
     * cluster, version or name, as opposed to a malformed frame. */
    bool auth_failure;
};

void hr_hs_client_init(struct hr_hs *hs, const struct hr_hs_config *cfg, const char *peer);
void hr_hs_server_init(struct hr_hs *hs, const struct hr_hs_config *cfg);
/* Client: append the HELLO frame to out. 0, HR_ENOMEM, HR_EINVAL (a name too long) or
 * HR_EIO (no randomness). */
int hr_hs_start(struct hr_hs *hs, msgpack_sbuffer *out, char *err, size_t errlen);
/* Feed one received frame's payload. Returns HR_HS_MORE or HR_HS_DONE, possibly having
 * appended a frame to out to send; or a negative HR_E* with a message in err, possibly with
 * a REFUSE frame appended to out, to send before closing the connection. A refusal's
 * message is "handshake refused: <reason>" on the side that refused and "handshake refused
 * by the peer: <reason>" on the other, the reason naming what differs (the secret, the
 * cluster ids, the node ids). */
int hr_hs_step(struct hr_hs *hs, const void *payload, size_t len, msgpack_sbuffer *out, char *err,
               size_t errlen);

#endif
