/*
 * text.h: the text form of the core's messages and log entries, for the golden-test driver
 * (step.c, docs in its header comment).
 *
 * One syntax both ways: what the driver prints for a message the node sends is what a
 * `deliver` line accepts, so a script's answer can be written by copying the request and
 * swapping the ends. Examples:
 *
 *   1->2 append term=2 prev=3/1 commit=3 seq=1 entries=4/2:noop,5/2:"x"
 *   2->1 append_resp term=2 index=5 last=5 seq=1
 *   2->1 append_resp term=2 reject index=10 hint=10/3 last=11 seq=1
 *   1->2 prevote term=3 last=5/2
 *   2->1 prevote_resp term=3 granted
 *   1->3 snapshot term=2 snap=6/2 done
 *   1->2 timeout_now term=2
 *   2->1 vote term=3 last=5/2 transfer
 *   2->1 read_index term=2 seq=7
 *   1->2 read_index_resp term=2 index=5 seq=7 time=1200   (time: left out when 0, unknown)
 *
 * An entry is INDEX/TERM, then ":noop" or ":config=CONF" for those types, or ":"DATA"" for
 * a command with a payload; a bare INDEX/TERM is a command with an empty payload. Payloads
 * are printable ASCII without spaces, commas or quotes (what a script can propose).
 *
 * A configuration (CONF: a config entry's payload, a snapshot's conf=CONF confidx=INDEX)
 * lists its servers separated by ";", each "v" (voter) or "l" (learner) and its id, then
 * "@ADDRESS" if it has one (printable, without ";", "," or spaces): "v1;v2;v3;l4@n4".
 * An empty configuration is "-".
 *
 * Everything here belongs to the driver's single thread.
 */
#ifndef HR_TESTKIT_STEP_TEXT_H
#define HR_TESTKIT_STEP_TEXT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/raft.h"

/* A growable output string (the driver collects each command's output in one). */
struct hr__sbuf {
    char *p; /* NUL-terminated, owned; NULL while empty */
    size_t len, cap;
};

void hr__sbuf_printf(struct hr__sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void hr__sbuf_free(struct hr__sbuf *b);

/* Append the text form of e / of n entries separated by `sep` / of m (no newline). */
void hr__text_entry(struct hr__sbuf *b, const struct hr_entry *e);
void hr__text_entries(struct hr__sbuf *b, const struct hr_entry *e, size_t n, const char *sep);
void hr__text_msg(struct hr__sbuf *b, const struct hr_msg *m);
/* The text form of an encoded configuration ("(corrupt)" if it does not decode). */
void hr__text_conf(struct hr__sbuf *b, const struct hr_blob *conf);
/* Parse CONF: 0 and a new blob in *out (hr_conf_encode's), or HR_EINVAL. */
int hr__text_parse_conf(const char *s, struct hr_blob **out);

/* Whether data can be a payload in the text form (printable, no space, comma or quote). */
bool hr__text_payload_ok(const char *data);

/* Parse one message from its text form into *m (zeroed first). On success m owns its
 * entries and blobs (hr_msg_release frees them) and 0 is returned; on a syntax error,
 * HR_EINVAL with a message in err and nothing to release. */
int hr__text_parse_msg(const char *text, struct hr_msg *m, char *err, size_t errlen);

/* The next blank-separated token of *rest, NUL-terminated in place (*rest moves past it),
 * or NULL at the end. */
char *hr__text_token(char **rest);
/* Parse "I/T" into two numbers: true on success. */
bool hr__text_pair(const char *s, unsigned long long *a, unsigned long long *b);
/* Parse a decimal number (the whole string): true on success. */
bool hr__text_number(const char *s, unsigned long long *v);

#endif
