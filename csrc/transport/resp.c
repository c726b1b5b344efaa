/*
 * resp.c: the RESP2 request parser and reply encoder (see resp.h). The error messages are
 * redis-server's, word for word, so that clients and people see what Redis would say.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/array.h"
#include "resp.h"

void hr_resp_parser_init(struct hr_resp_parser *p, const struct hr_resp_limits *lim)
{
    memset(p, 0, sizeof *p);
    p->lim = *lim;
    p->nargs = -1;
    p->bulk = -1;
}

void hr_resp_parser_free(struct hr_resp_parser *p)
{
    free(p->args);
    p->args = NULL;
    p->cap = p->argc = 0;
}

static int fail(struct hr_resp_parser *p, const char *msg)
{
    snprintf(p->err, sizeof p->err, "Protocol error: %s", msg);
    return HR_RESP_ERROR;
}

/* The next request starts from scratch; the arguments stay readable until then. */
static int done(struct hr_resp_parser *p, size_t used_bytes, size_t *used)
{
    *used = used_bytes;
    p->pos = 0;
    p->nargs = -1;
    p->bulk = -1;
    p->multibulk = false;
    return HR_RESP_REQUEST;
}

static int add_arg(struct hr_resp_parser *p, size_t off, size_t len)
{
    struct hr_resp_arg *a = hr_array_grow(p->args, &p->cap, p->argc + 1, sizeof *a, 8);
    if (a == NULL) {
        return -1;
    }
    p->args = a;
    p->args[p->argc].off = off;
    p->args[p->argc].len = len;
    p->argc++;
    return 0;
}

/* A whole decimal number as Redis's string2ll reads it: an optional '-', digits, no
 * leading zero, no sign '+', no spaces. */
static bool parse_ll(const char *s, size_t n, long long *out)
{
    size_t i = 0;
    bool neg = false;
    if (n > 0 && s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == n || n - i > 19 || (s[i] == '0' && n - i > 1)) {
        return false;
    }
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (unsigned long long)(s[i] - '0');
    }
    if (neg ? v > (unsigned long long)LLONG_MAX + 1 : v > (unsigned long long)LLONG_MAX) {
        return false;
    }
    *out = neg ? (long long)(0 - v) : (long long)v;
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int hex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Split line[0..n) into words as redis-cli quotes them ("..." with \n \r \t \b \a \xHH
 * escapes, '...' with \'), unescaping in place (a word never grows). -1 on unbalanced
 * quotes (or a closing quote not followed by a space), -2 when memory runs out. */
static int split_inline(struct hr_resp_parser *p, char *line, size_t n)
{
    size_t r = 0;
    for (;;) {
        while (r < n && is_space(line[r])) {
            r++;
        }
        if (r == n) {
            return 0;
        }
        size_t start = r, w = r;
        int quote = 0; /* 0, '"' or '\'' */
        for (;;) {
            if (r == n) {
                if (quote != 0) {
                    return -1;
                }
                break;
            }
            char c = line[r];
            if (quote == '"') {
                if (c == '\\' && r + 3 < n && line[r + 1] == 'x' && hex(line[r + 2]) >= 0 &&
                    hex(line[r + 3]) >= 0) {
                    line[w++] = (char)(hex(line[r + 2]) * 16 + hex(line[r + 3]));
                    r += 4;
                } else if (c == '\\' && r + 1 < n) {
                    char e = line[r + 1];
                    line[w++] = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t'
                              : e == 'b' ? '\b' : e == 'a' ? '\a' : e;
                    r += 2;
                } else if (c == '"') {
                    r++;
                    if (r < n && !is_space(line[r])) {
                        return -1;
                    }
                    quote = 0;
                    break;
                } else {
                    line[w++] = c;
                    r++;
                }
            } else if (quote == '\'') {
                if (c == '\\' && r + 1 < n && line[r + 1] == '\'') {
                    line[w++] = '\'';
                    r += 2;
                } else if (c == '\'') {
                    r++;
                    if (r < n && !is_space(line[r])) {
                        return -1;
                    }
                    quote = 0;
                    break;
                } else {
                    line[w++] = c;
                    r++;
                }
            } else if (is_space(c)) {
                break;
            } else if (c == '"' || c == '\'') {
                quote = c;
                r++;
            } else {
                line[w++] = c;
                r++;
            }
        }
        if (add_arg(p, start, w - start) != 0) {
            return -2;
        }
    }
}

static int parse_inline(struct hr_resp_parser *p, char *buf, size_t len, size_t *used)
{
    char *nl = memchr(buf + p->pos, '\n', len - p->pos);
    if (nl == NULL) {
        if (len > p->lim.max_inline) {
            return fail(p, "too big inline request");
        }
        p->pos = len; /* no newline before here: the next call scans only what is new */
        return HR_RESP_MORE;
    }
    size_t n = (size_t)(nl - buf);
    if (n > p->lim.max_inline) {
        return fail(p, "too big inline request");
    }
    size_t end = n > 0 && buf[n - 1] == '\r' ? n - 1 : n;
    int rc = split_inline(p, buf, end);
    if (rc == -1) {
        p->argc = 0;
        return fail(p, "unbalanced quotes in request");
    }
    if (rc == -2 || p->argc > p->lim.max_args) {
        p->argc = 0;
        return fail(p, rc == -2 ? "out of memory" : "invalid multibulk length");
    }
    return done(p, n + 1, used);
}

/* A header line "<prefix><number>\r" from p->pos; 1 with *v, 0 for more, or an error. */
static int header(struct hr_resp_parser *p, const char *buf, size_t len, const char *too_big,
                  long long *v, size_t *next)
{
    const char *cr = memchr(buf + p->pos, '\r', len - p->pos);
    if (cr == NULL) {
        return len - p->pos > p->lim.max_inline ? fail(p, too_big) : HR_RESP_MORE;
    }
    size_t at = (size_t)(cr - buf);
    if (at - p->pos > p->lim.max_inline) {
        return fail(p, too_big);
    }
    if (at + 1 >= len) {
        return HR_RESP_MORE; /* the byte after the CR (Redis skips it unread) */
    }
    if (!parse_ll(buf + p->pos + 1, at - p->pos - 1, v)) {
        *v = -2; /* not a number: invalid, as a length out of range is */
    }
    *next = at + 2;
    return 1;
}

int hr_resp_parse(struct hr_resp_parser *p, char *buf, size_t len, size_t *used)
{
    if (p->pos == 0 && !p->multibulk) {
        p->argc = 0; /* a new request */
        if (len == 0) {
            return HR_RESP_MORE;
        }
        if (buf[0] != '*') {
            return parse_inline(p, buf, len, used);
        }
        p->multibulk = true;
    }
    if (!p->multibulk) {
        return parse_inline(p, buf, len, used);
    }
    size_t next;
    long long v;
    int rc;
    if (p->nargs < 0) {
        rc = header(p, buf, len, "too big mbulk count string", &v, &next);
        if (rc != 1) {
            return rc;
        }
        if (v == -2 || (v > 0 && (unsigned long long)v > p->lim.max_args) || v > INT_MAX) {
            return fail(p, "invalid multibulk length");
        }
        p->pos = next;
        if (v <= 0) {
            return done(p, next, used); /* "*0" or "*-1": no command */
        }
        p->nargs = v;
    }
    while ((long long)p->argc < p->nargs) {
        if (p->bulk < 0) {
            if (p->pos >= len) {
                return HR_RESP_MORE;
            }
            if (buf[p->pos] != '$') {
                char msg[48];
                snprintf(msg, sizeof msg, "expected '$', got '%c'", buf[p->pos]);
                return fail(p, msg);
            }
            rc = header(p, buf, len, "too big bulk count string", &v, &next);
            if (rc != 1) {
                return rc;
            }
            if (v < 0 || (unsigned long long)v > p->lim.max_bulk) {
                return fail(p, "invalid bulk length");
            }
            p->pos = next;
            p->bulk = v;
        }
        /* The bulk string and the CRLF after it (skipped unread, as Redis does). */
        if (len - p->pos < (size_t)p->bulk + 2) {
            return HR_RESP_MORE;
        }
        if (add_arg(p, p->pos, (size_t)p->bulk) != 0) {
            return fail(p, "out of memory");
        }
        p->pos += (size_t)p->bulk + 2;
        p->bulk = -1;
    }
    return done(p, p->pos, used);
}

/* ---- replies ---- */

void hr_resp_buf_free(struct hr_resp_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static char *reserve(struct hr_resp_buf *b, size_t n)
{
    if (n > SIZE_MAX - b->len) {
        return NULL;
    }
    char *d = hr_array_grow(b->data, &b->cap, b->len + n, 1, 256);
    if (d == NULL) {
        return NULL;
    }
    b->data = d;
    return d + b->len;
}

static int put_line(struct hr_resp_buf *b, char type, const char *s, size_t n)
{
    char *d = reserve(b, n + 3);
    if (d == NULL) {
        return -1;
    }
    d[0] = type;
    for (size_t i = 0; i < n; i++) {
        d[1 + i] = s[i] == '\r' || s[i] == '\n' ? ' ' : s[i];
    }
    memcpy(d + 1 + n, "\r\n", 2);
    b->len += n + 3;
    return 0;
}

static int put_number(struct hr_resp_buf *b, char type, long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%c%lld\r\n", type, v);
    char *d = reserve(b, (size_t)n);
    if (d == NULL) {
        return -1;
    }
    memcpy(d, tmp, (size_t)n);
    b->len += (size_t)n;
    return 0;
}

int hr_resp_put_simple(struct hr_resp_buf *b, const char *s, size_t n)
{
    return put_line(b, '+', s, n);
}

int hr_resp_put_error(struct hr_resp_buf *b, const char *s, size_t n)
{
    return put_line(b, '-', s, n);
}

int hr_resp_put_int(struct hr_resp_buf *b, long long v)
{
    return put_number(b, ':', v);
}

int hr_resp_put_bulk(struct hr_resp_buf *b, const char *s, size_t n)
{
    size_t before = b->len;
    if (n > LLONG_MAX || put_number(b, '$', (long long)n) != 0) {
        return -1;
    }
    char *d = reserve(b, n + 2);
    if (d == NULL) {
        b->len = before;
        return -1;
    }
    if (n > 0) {
        memcpy(d, s, n);
    }
    memcpy(d + n, "\r\n", 2);
    b->len += n + 2;
    return 0;
}

int hr_resp_put_null_bulk(struct hr_resp_buf *b)
{
    return put_number(b, '$', -1);
}

int hr_resp_put_array(struct hr_resp_buf *b, size_t n)
{
    return n > LLONG_MAX ? -1 : put_number(b, '*', (long long)n);
}

int hr_resp_put_null_array(struct hr_resp_buf *b)
{
    return put_number(b, '*', -1);
}

int hr_resp_put_command(struct hr_resp_buf *b, size_t argc, const char *const *argv,
                        const size_t *lens)
{
    size_t before = b->len;
    if (hr_resp_put_array(b, argc) != 0) {
        return -1;
    }
    for (size_t i = 0; i < argc; i++) {
        if (hr_resp_put_bulk(b, argv[i], lens[i]) != 0) {
            b->len = before;
            return -1;
        }
    }
    return 0;
}

/* ---- reading replies ---- */

void hr_resp_reader_init(struct hr_resp_reader *r, const struct hr_resp_reply_limits *lim)
{
    memset(r, 0, sizeof *r);
    r->lim = *lim;
    r->bulk = -1;
}

/* fmt has one %lld, for v. */
static int reply_failv(struct hr_resp_reader *r, bool limit, const char *fmt, long long v)
{
    r->limit = limit;
    snprintf(r->err, sizeof r->err, fmt, v);
    return HR_RESP_ERROR;
}

static int reply_fail(struct hr_resp_reader *r, const char *msg)
{
    r->limit = false;
    snprintf(r->err, sizeof r->err, "%s", msg);
    return HR_RESP_ERROR;
}

/* A reply's number: parse_ll's form without "-0", so that each number has one spelling
 * and an accepted reply encodes back to its own bytes. */
static bool reply_ll(const char *s, size_t n, long long *out)
{
    if (n == 2 && s[0] == '-' && s[1] == '0') {
        return false;
    }
    return parse_ll(s, n, out);
}

/* One value (not an array's header) is complete: close the arrays it completes. True when
 * that was the whole reply. */
static bool value_done(struct hr_resp_reader *r)
{
    while (r->depth > 0) {
        if (--r->left[r->depth - 1] > 0) {
            return false;
        }
        r->depth--; /* the array is complete: a value of the one around it */
    }
    return true;
}

static int reply_done(struct hr_resp_reader *r, size_t *used)
{
    *used = r->pos;
    r->pos = r->scan = r->depth = 0;
    r->bulk = -1;
    return HR_RESP_REPLY;
}

int hr_resp_read_reply(struct hr_resp_reader *r, const char *buf, size_t len, size_t *used)
{
    for (;;) {
        if (r->bulk >= 0) {
            size_t n = (size_t)r->bulk;
            if (len - r->pos < n + 2) {
                return HR_RESP_MORE;
            }
            if (buf[r->pos + n] != '\r' || buf[r->pos + n + 1] != '\n') {
                return reply_failv(r, false, "a bulk string of %lld bytes not followed by CRLF",
                                   r->bulk);
            }
            r->pos += n + 2;
            r->bulk = -1;
            if (value_done(r)) {
                return reply_done(r, used);
            }
            continue;
        }
        if (r->pos >= len) {
            return HR_RESP_MORE;
        }
        char type = buf[r->pos];
        if (type != '+' && type != '-' && type != ':' && type != '$' && type != '*') {
            return reply_failv(r, false, "unknown reply type byte 0x%02llx",
                               (long long)(unsigned char)type);
        }
        /* The line: from the type byte to the first CR, which LF must follow. Only the
         * bytes not scanned before are looked at (a line arriving a byte at a time costs
         * its length, not its length squared), and none past where the longest line's CR
         * would be, so that the first fault in the bytes is the one reported however
         * they arrive. */
        size_t from = r->scan > r->pos + 1 ? r->scan : r->pos + 1;
        bool room = len - (r->pos + 1) > r->lim.max_line; /* all a line may take is here */
        size_t end = room ? r->pos + 2 + r->lim.max_line : len;
        const char *cr = from < end ? memchr(buf + from, '\r', end - from) : NULL;
        size_t at = cr != NULL ? (size_t)(cr - buf) : end;
        if (at > from && memchr(buf + from, '\n', at - from) != NULL) {
            return reply_fail(r, "a reply line with a LF before its CR");
        }
        if (cr == NULL && room) {
            return reply_failv(r, true, "a reply line longer than %lld bytes",
                               (long long)r->lim.max_line);
        }
        if (cr == NULL || at + 1 >= len) {
            r->scan = at; /* nothing before here needs scanning again */
            return HR_RESP_MORE;
        }
        if (buf[at + 1] != '\n') {
            return reply_fail(r, "a reply line with a CR not followed by LF");
        }
        const char *text = buf + r->pos + 1;
        size_t tlen = at - (r->pos + 1);
        long long v = 0;
        if (type != '+' && type != '-' && !reply_ll(text, tlen, &v)) {
            return reply_fail(r, type == ':'   ? "an integer reply that is not a number"
                                 : type == '$' ? "invalid bulk length"
                                               : "invalid array length");
        }
        r->pos = at + 2;
        r->scan = 0;
        if (type == '$' && v >= 0) {
            if ((unsigned long long)v > r->lim.max_bulk) {
                return reply_failv(r, true, "a bulk string of %lld bytes (over the limit)", v);
            }
            r->bulk = v;
            continue;
        }
        if (type == '*' && v > 0) {
            if ((unsigned long long)v > r->lim.max_elems) {
                return reply_failv(r, true, "an array of %lld elements (over the limit)", v);
            }
            if (r->depth >= r->lim.max_depth || r->depth >= HR_RESP_REPLY_DEPTH_MAX) {
                return reply_failv(r, true, "arrays nested more than %lld deep",
                                   (long long)(r->lim.max_depth < HR_RESP_REPLY_DEPTH_MAX
                                                   ? r->lim.max_depth
                                                   : HR_RESP_REPLY_DEPTH_MAX));
            }
            r->left[r->depth++] = v;
            continue;
        }
        if ((type == '$' || type == '*') && v < -1) {
            return reply_failv(r, false, type == '$' ? "invalid bulk length %lld"
                                                     : "invalid array length %lld", v);
        }
        /* A status, error, integer, null, or empty array: one whole value. */
        if (value_done(r)) {
            return reply_done(r, used);
        }
    }
}

int hr_resp_next_item(const char *buf, size_t len, size_t *off, struct hr_resp_item *it)
{
    size_t at = *off;
    if (at >= len) {
        return -1;
    }
    const char *cr = memchr(buf + at, '\r', len - at);
    if (cr == NULL || (size_t)(cr - buf) + 1 >= len) {
        return -1;
    }
    size_t end = (size_t)(cr - buf);
    memset(it, 0, sizeof *it);
    it->type = buf[at];
    it->s = buf + at + 1;
    it->len = end - at - 1;
    *off = end + 2;
    switch (it->type) {
    case '+':
    case '-':
        return 0;
    case ':':
        return reply_ll(it->s, it->len, &it->n) ? 0 : -1;
    case '$':
    case '*':
        if (!reply_ll(it->s, it->len, &it->n) || it->n < -1) {
            return -1;
        }
        it->s = NULL;
        it->len = 0;
        if (it->n == -1) {
            it->null = true;
            it->n = 0;
            return 0;
        }
        if (it->type == '*') {
            return 0;
        }
        if ((unsigned long long)it->n > len - *off || len - *off - (size_t)it->n < 2) {
            return -1;
        }
        it->s = buf + *off;
        it->len = (size_t)it->n;
        it->n = 0;
        *off += it->len + 2;
        return 0;
    default:
        return -1;
    }
}
