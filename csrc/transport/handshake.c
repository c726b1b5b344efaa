/* handshake.c: the handshake state machine and its proofs (handshake.h). */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "../core/error.h"
#include "handshake.h"

enum { WAIT_HELLO, WAIT_CHALLENGE, WAIT_AUTH, WAIT_WELCOME, DONE, FAILED };

#define LABEL "helios-raft-hs"

void hr_hs_client_init(struct hr_hs *hs, const struct hr_hs_config *cfg, const char *peer)
{
    memset(hs, 0, sizeof(*hs));
    hs->cfg = cfg;
    hs->state = WAIT_CHALLENGE;
    snprintf(hs->peer, sizeof(hs->peer), "%s", peer);
}

void hr_hs_server_init(struct hr_hs *hs, const struct hr_hs_config *cfg)
{
    memset(hs, 0, sizeof(*hs));
    hs->cfg = cfg;
    hs->server = true;
    hs->state = WAIT_HELLO;
}

static void put_str(unsigned char *buf, size_t *n, const char *s)
{
    size_t len = strlen(s);
    buf[(*n)++] = (unsigned char)len;
    memcpy(buf + *n, s, len);
    *n += len;
}

/* HMAC-SHA256 (RFC 2104) keyed by the cluster secret over the transcript of this
 * connection, as seen from `role` ('C' the dialer, 'S' the listener). */
static int prove(const struct hr_hs *hs, char role, unsigned char mac[HR_HS_MAC])
{
    unsigned char t[sizeof(LABEL) + 5 + 3 * (HR_HS_MAX_NAME + 1) + 2 * HR_HS_NONCE];
    size_t n = 0;
    memcpy(t, LABEL, sizeof(LABEL) - 1);
    n += sizeof(LABEL) - 1;
    t[n++] = HR_HS_VERSION;
    t[n++] = (unsigned char)role;
    put_str(t, &n, hs->cfg->cluster);
    put_str(t, &n, hs->server ? hs->peer : hs->cfg->name);
    put_str(t, &n, hs->server ? hs->cfg->name : hs->peer);
    memcpy(t + n, hs->nonce_c, HR_HS_NONCE);
    n += HR_HS_NONCE;
    memcpy(t + n, hs->nonce_s, HR_HS_NONCE);
    n += HR_HS_NONCE;
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), hs->cfg->secret, (int)hs->cfg->secret_len, t, n, mac, &len) == NULL ||
        len != HR_HS_MAC) {
        return HR_EIO;
    }
    return 0;
}

static void msg_init(struct hr_hs_msg *m, int type)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->version = HR_HS_VERSION;
}

/* A HELLO or CHALLENGE: our cluster and name, and a fresh nonce of ours into nonce (kept
 * in hs to check the peer's proof) and the message. */
static int msg_init_nonce(struct hr_hs *hs, struct hr_hs_msg *m, int type, unsigned char *nonce,
                          char *err, size_t errlen)
{
    if (RAND_bytes(nonce, HR_HS_NONCE) != 1) {
        snprintf(err, errlen, "handshake: no randomness for the nonce");
        return HR_EIO;
    }
    msg_init(m, type);
    snprintf(m->cluster, sizeof(m->cluster), "%s", hs->cfg->cluster);
    snprintf(m->name, sizeof(m->name), "%s", hs->cfg->name);
    memcpy(m->nonce, nonce, HR_HS_NONCE);
    m->has_nonce = true;
    return 0;
}

static int send_msg(msgpack_sbuffer *out, const struct hr_hs_msg *m, char *err, size_t errlen)
{
    if (hr_hs_encode(out, m) != 0) {
        snprintf(err, errlen, "handshake: out of memory");
        return HR_ENOMEM;
    }
    return 0;
}

/* Refuse the peer: a REFUSE frame (the server tells the dialer why; a dialer just hangs
 * up) and an error. */
static int refuse(struct hr_hs *hs, msgpack_sbuffer *out, char *err, size_t errlen,
                  const char *reason)
{
    hs->state = FAILED;
    hs->auth_failure = true;
    if (hs->server) {
        struct hr_hs_msg m;
        msg_init(&m, HR_HS_REFUSE);
        snprintf(m.reason, sizeof(m.reason), "%s", reason);
        hr_hs_encode(out, &m); /* best effort: the connection closes anyway */
    }
    snprintf(err, errlen, "handshake refused: %s", reason);
    return HR_EPROTO;
}

int hr_hs_start(struct hr_hs *hs, msgpack_sbuffer *out, char *err, size_t errlen)
{
    if (strlen(hs->cfg->name) > HR_HS_MAX_NAME || strlen(hs->cfg->cluster) > HR_HS_MAX_NAME ||
        strlen(hs->peer) == 0) {
        snprintf(err, errlen, "handshake: node or cluster name empty or too long");
        return HR_EINVAL;
    }
    struct hr_hs_msg m;
    int rc = msg_init_nonce(hs, &m, HR_HS_HELLO, hs->nonce_c, err, errlen);
    if (rc != 0) {
        return rc;
    }
    snprintf(m.peer, sizeof(m.peer), "%s", hs->peer);
    return send_msg(out, &m, err, errlen);
}

/* What both sides check of the other's opening message; buf holds a reason that names
 * both sides' values. */
static const char *check_opening(const struct hr_hs *hs, const struct hr_hs_msg *m, char *buf,
                                 size_t buflen)
{
    if (m->version != HR_HS_VERSION) {
        snprintf(buf, buflen, "unsupported protocol version %llu (this node speaks %d)",
                 (unsigned long long)m->version, HR_HS_VERSION);
        return buf;
    }
    if (strcmp(m->cluster, hs->cfg->cluster) != 0) {
        snprintf(buf, buflen, "cluster id mismatch: dialer in '%s', listener in '%s'",
                 hs->server ? m->cluster : hs->cfg->cluster,
                 hs->server ? hs->cfg->cluster : m->cluster);
        return buf;
    }
    if (!m->has_nonce || m->name[0] == 0) {
        return NULL; /* malformed, reported by the caller */
    }
    return "";
}

static int on_hello(struct hr_hs *hs, const struct hr_hs_msg *m, msgpack_sbuffer *out, char *err,
                    size_t errlen)
{
    char buf[HR_HS_MAX_NAME * 2 + 64];
    const char *why = check_opening(hs, m, buf, sizeof(buf));
    if (why != NULL && *why == 0 && strcmp(m->peer, hs->cfg->name) != 0) {
        snprintf(buf, sizeof(buf), "dialed node '%s' but this is '%s'", m->peer, hs->cfg->name);
        why = buf;
    }
    if (why != NULL && *why == 0 && strcmp(m->name, hs->cfg->name) == 0) {
        why = "a peer claims this node's own name";
    }
    if (why == NULL) {
        snprintf(err, errlen, "handshake: HELLO without a name or nonce");
        return HR_EPROTO;
    }
    snprintf(hs->peer, sizeof(hs->peer), "%s", m->name);
    if (*why != 0) {
        return refuse(hs, out, err, errlen, why);
    }
    memcpy(hs->nonce_c, m->nonce, HR_HS_NONCE);
    struct hr_hs_msg r;
    int rc = msg_init_nonce(hs, &r, HR_HS_CHALLENGE, hs->nonce_s, err, errlen);
    if (rc != 0) {
        return rc;
    }
    hs->state = WAIT_AUTH;
    return send_msg(out, &r, err, errlen);
}

static int on_challenge(struct hr_hs *hs, const struct hr_hs_msg *m, msgpack_sbuffer *out,
                        char *err, size_t errlen)
{
    char buf[HR_HS_MAX_NAME * 2 + 64];
    const char *why = check_opening(hs, m, buf, sizeof(buf));
    if (why == NULL) {
        snprintf(err, errlen, "handshake: CHALLENGE without a name or nonce");
        return HR_EPROTO;
    }
    if (*why == 0 && strcmp(m->name, hs->peer) != 0) {
        snprintf(buf, sizeof(buf), "dialed node '%s' but reached '%s'", hs->peer, m->name);
        why = buf;
    }
    if (*why != 0) {
        return refuse(hs, out, err, errlen, why);
    }
    memcpy(hs->nonce_s, m->nonce, HR_HS_NONCE);
    struct hr_hs_msg r;
    msg_init(&r, HR_HS_AUTH);
    r.has_mac = true;
    if (prove(hs, 'C', r.mac) != 0) {
        snprintf(err, errlen, "handshake: HMAC failed");
        return HR_EIO;
    }
    hs->state = WAIT_WELCOME;
    return send_msg(out, &r, err, errlen);
}

/* Check the peer's proof; the expected MAC is computed here and compared in constant time,
 * so the comparison leaks nothing about how many bytes matched. */
static int verify(struct hr_hs *hs, const struct hr_hs_msg *m, char role, msgpack_sbuffer *out,
                  char *err, size_t errlen)
{
    unsigned char want[HR_HS_MAC];
    if (!m->has_mac) {
        snprintf(err, errlen, "handshake: proof missing");
        return HR_EPROTO;
    }
    if (prove(hs, role, want) != 0) {
        snprintf(err, errlen, "handshake: HMAC failed");
        return HR_EIO;
    }
    if (CRYPTO_memcmp(want, m->mac, HR_HS_MAC) != 0) {
        return refuse(hs, out, err, errlen, "authentication failed (wrong cluster secret?)");
    }
    return 0;
}

int hr_hs_step(struct hr_hs *hs, const void *payload, size_t len, msgpack_sbuffer *out, char *err,
               size_t errlen)
{
    struct hr_hs_msg m;
    int rc = hr_hs_decode(payload, len, &m, err, errlen);
    if (rc != 0) {
        hs->state = FAILED;
        return rc;
    }
    if (m.type == HR_HS_REFUSE && !hs->server && hs->state != FAILED && hs->state != DONE) {
        hs->state = FAILED;
        hs->auth_failure = true;
        snprintf(err, errlen, "handshake refused by the peer: %s", m.reason);
        return HR_EPROTO;
    }
    static const int expected[] = {
        [WAIT_HELLO] = HR_HS_HELLO,
        [WAIT_CHALLENGE] = HR_HS_CHALLENGE,
        [WAIT_AUTH] = HR_HS_AUTH,
        [WAIT_WELCOME] = HR_HS_WELCOME,
        [DONE] = 0,
        [FAILED] = 0,
    };
    if (m.type != expected[hs->state]) {
        int state = hs->state;
        hs->state = FAILED;
        snprintf(err, errlen, "handshake: unexpected message %d in state %d", m.type, state);
        return HR_EPROTO;
    }
    switch (hs->state) {
    case WAIT_HELLO:
        rc = on_hello(hs, &m, out, err, errlen);
        break;
    case WAIT_CHALLENGE:
        rc = on_challenge(hs, &m, out, err, errlen);
        break;
    case WAIT_AUTH:
        rc = verify(hs, &m, 'C', out, err, errlen);
        if (rc == 0 && hs->cfg->known != NULL && !hs->cfg->known(hs->cfg->known_ctx, hs->peer)) {
            char why[HR_HS_MAX_NAME + 64];
            snprintf(why, sizeof(why), "unknown node id '%s' (not in this node's cluster)",
                     hs->peer);
            rc = refuse(hs, out, err, errlen, why);
        }
        if (rc == 0) {
            struct hr_hs_msg r;
            msg_init(&r, HR_HS_WELCOME);
            r.has_mac = true;
            rc = prove(hs, 'S', r.mac) != 0 ? HR_EIO : send_msg(out, &r, err, errlen);
        }
        break;
    default: /* WAIT_WELCOME */
        rc = verify(hs, &m, 'S', out, err, errlen);
        break;
    }
    if (rc != 0) {
        hs->state = FAILED;
        return rc;
    }
    if (hs->state == WAIT_AUTH && m.type == HR_HS_AUTH) {
        hs->state = DONE;
    } else if (hs->state == WAIT_WELCOME && m.type == HR_HS_WELCOME) {
        hs->state = DONE;
    }
    return hs->state == DONE ? HR_HS_DONE : HR_HS_MORE;
}
