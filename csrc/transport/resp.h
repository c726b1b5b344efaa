/*
 * resp.h: the Redis protocol (RESP2) as a server reads requests and writes replies, and as
 * a client writes commands and reads replies, with no I/O and no Lua: the client port's TCP
 * server (csrc/lua/resp_server.c) feeds it the bytes a connection receives and sends what
 * the encoder builds; the sockets of csrc/lua/client_binding.c (sock:try_recv_reply) read
 * replies with the reply reader at the end of this file.
 *
 * Requests are what redis-server accepts: an array of bulk strings ("*2\r\n$3\r\nGET\r\n
 * $1\r\nk\r\n"), or an inline command (a line of words, split as redis-cli would quote
 * them: "SET k \"a b\"\n"). An empty array or an empty line is no command. Limits (count
 * of arguments, length of one bulk string, length of an inline line or of a header line)
 * are checked before anything is buffered beyond them, and a request that breaks the
 * protocol or a limit gets the message Redis gives ("Protocol error: invalid bulk length"),
 * which the server sends as "-ERR <message>" before it closes the connection.
 *
 * Parsing is incremental: the parser remembers how far into the current request it got,
 * so a request arriving a byte at a time is scanned once, not once per read.
 *
 * Threading: a parser or buffer belongs to one thread. Ownership: the parser owns its
 * argument array; the arguments themselves point into the caller's buffer.
 */
#ifndef HR_TRANSPORT_RESP_H
#define HR_TRANSPORT_RESP_H

#include <stdbool.h>
#include <stddef.h>

/* redis-server's defaults: proto-max-bulk-len, its cap on a multibulk count, and
 * PROTO_INLINE_MAX_SIZE (which also bounds a "*N" or "$N" header line). */
#define HR_RESP_MAX_ARGS_DEFAULT ((size_t)1024 * 1024)
#define HR_RESP_MAX_BULK_DEFAULT ((size_t)512 << 20)
#define HR_RESP_MAX_INLINE_DEFAULT ((size_t)64 << 10)

struct hr_resp_limits {
    size_t max_args;   /* arguments of one request */
    size_t max_bulk;   /* bytes of one bulk string */
    size_t max_inline; /* bytes of an inline request line, or of a header line */
};

struct hr_resp_arg {
    size_t off, len; /* into the request, from its first byte */
};

enum { HR_RESP_ERROR = -1, HR_RESP_MORE = 0, HR_RESP_REQUEST = 1 };

struct hr_resp_parser {
    struct hr_resp_limits lim;
    /* Progress in the current request: */
    size_t pos;      /* bytes of it consumed so far */
    long long nargs; /* multibulk count; -1 before its header was read */
    long long bulk;  /* length of the bulk string being read; -1 before its header */
    bool multibulk;  /* the request is an array (not inline) */
    struct hr_resp_arg *args;
    size_t argc, cap;
    char err[96]; /* after HR_RESP_ERROR: "Protocol error: ..." */
};

void hr_resp_parser_init(struct hr_resp_parser *p, const struct hr_resp_limits *lim);
void hr_resp_parser_free(struct hr_resp_parser *p);

/*
 * Parse the request that starts at buf[0]; buf holds the len bytes received since (the
 * same bytes on every call, plus any that arrived meanwhile). Returns
 *   HR_RESP_MORE     incomplete: call again with more bytes
 *   HR_RESP_REQUEST  complete, *used bytes long: p->args[0..argc) point into buf (argc may
 *                    be 0: an empty array or line, answered by nothing). The caller drops
 *                    those bytes; the next call starts the next request.
 *   HR_RESP_ERROR    a protocol error, its message in p->err; the stream is unusable.
 * buf is not const: an inline request's quoted words are unescaped in place.
 */
int hr_resp_parse(struct hr_resp_parser *p, char *buf, size_t len, size_t *used);

/* A growable output buffer of encoded replies. Each put returns 0, or -1 when memory runs
 * out (the buffer is then as before the call). */
struct hr_resp_buf {
    char *data;
    size_t len, cap;
};

void hr_resp_buf_free(struct hr_resp_buf *b);
/* "+s\r\n" and "-s\r\n": a CR or LF in s (which would end the line) is sent as a space. */
int hr_resp_put_simple(struct hr_resp_buf *b, const char *s, size_t n);
int hr_resp_put_error(struct hr_resp_buf *b, const char *s, size_t n);
int hr_resp_put_int(struct hr_resp_buf *b, long long v);
int hr_resp_put_bulk(struct hr_resp_buf *b, const char *s, size_t n);
int hr_resp_put_null_bulk(struct hr_resp_buf *b);   /* "$-1\r\n" */
int hr_resp_put_array(struct hr_resp_buf *b, size_t n); /* the header; n values follow */
int hr_resp_put_null_array(struct hr_resp_buf *b);  /* "*-1\r\n" */
/* A command as a client sends it: an array of argc bulk strings, argv[i] of lens[i] bytes. */
int hr_resp_put_command(struct hr_resp_buf *b, size_t argc, const char *const *argv,
                        const size_t *lens);

/* ---- replies, as a client reads them ----
 *
 * A reply is one RESP2 value: "+status", "-error", ":integer", "$len" and len bytes (or
 * "$-1", null), "*count" and count values (or "*-1", null), arrays nested in arrays. The
 * reader is strict where redis-server is regular, so that what it accepts encodes back to
 * the same bytes (csrc/transport/fuzz/reply_fuzz.c checks it): every line ends in CRLF, a
 * status or error line holds no CR or LF, numbers have no sign '+', no leading zero and
 * no "-0", a bulk string is followed by CRLF, the type bytes of RESP3 are unknown.
 *
 * Reading is incremental and in two passes. hr_resp_read_reply scans the bytes received
 * so far, remembering how far it got (a reply arriving a byte at a time is scanned once),
 * and says when a whole reply is there and how long it is; then hr_resp_next_item walks
 * that reply's values in order (an array is followed by its elements), for the caller to
 * build its own tree from. The scan checks everything, so the walk cannot fail on what the
 * scan accepted. Limits are checked as soon as a header announces what would break them,
 * before the bytes it announces arrive.
 */

/* Arrays nested in arrays: the deepest any reader may allow (its stack is this deep). */
#define HR_RESP_REPLY_DEPTH_MAX 64
#define HR_RESP_REPLY_DEPTH_DEFAULT 32 /* as deep as the reply encoder goes */
#define HR_RESP_REPLY_ELEMS_DEFAULT ((size_t)1 << 24)

struct hr_resp_reply_limits {
    size_t max_depth; /* arrays open at once: 1..HR_RESP_REPLY_DEPTH_MAX */
    size_t max_elems; /* elements of one array */
    size_t max_bulk;  /* bytes of one bulk string */
    size_t max_line;  /* bytes of a line (status, error, integer, header) after the type byte */
};

enum { HR_RESP_REPLY = 1 }; /* with HR_RESP_MORE and HR_RESP_ERROR */

struct hr_resp_reader {
    struct hr_resp_reply_limits lim; /* the caller may change them between calls */
    /* Progress in the current reply: */
    size_t pos;       /* bytes of it consumed so far (whole values and headers) */
    size_t scan;      /* where the search for the current line's CR goes on */
    size_t depth;     /* arrays open */
    long long bulk;   /* length of the bulk string whose bytes are awaited; -1 otherwise */
    long long left[HR_RESP_REPLY_DEPTH_MAX]; /* elements still to come in each open array */
    bool limit;       /* after HR_RESP_ERROR: a limit was broken (else malformed bytes) */
    char err[96];     /* after HR_RESP_ERROR: what was wrong */
};

void hr_resp_reader_init(struct hr_resp_reader *r, const struct hr_resp_reply_limits *lim);

/*
 * Scan the reply that starts at buf[0]; buf holds the len bytes received since (the same
 * bytes on every call, plus any that arrived meanwhile). Returns
 *   HR_RESP_MORE    incomplete: call again with more bytes. r->pos bytes are complete, and
 *                   r->bulk >= 0 is the length of a bulk string announced at r->pos (the
 *                   reply is at least r->pos + r->bulk + 2 bytes long).
 *   HR_RESP_REPLY   a whole reply, *used bytes long: walk it with hr_resp_next_item, then
 *                   drop it; the next call starts the next reply.
 *   HR_RESP_ERROR   r->err says what; r->limit tells a broken limit from malformed bytes.
 *                   The stream is unusable (hr_resp_reader_init to start over).
 */
int hr_resp_read_reply(struct hr_resp_reader *r, const char *buf, size_t len, size_t *used);

struct hr_resp_item {
    char type;    /* '+' status, '-' error, ':' integer, '$' bulk, '*' array */
    bool null;    /* "$-1" or "*-1" */
    long long n;  /* ':' the integer, '*' the count of elements that follow */
    const char *s; /* '+', '-' (without the type byte), '$': the bytes */
    size_t len;
};

/* The value at buf[*off] of a reply that hr_resp_read_reply accepted (buf[0..len) is that
 * reply), and *off moved past it (past the header only, for an array): 0, or -1 if the
 * bytes are not a reply (never, for an accepted one). */
int hr_resp_next_item(const char *buf, size_t len, size_t *off, struct hr_resp_item *it);

#endif
