/* text.c: see text.h. */
#include "text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hr__sbuf_printf(struct hr__sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap == 0 ? 256 : b->cap;
        while (cap < b->len + (size_t)n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            /* A test tool: running out of memory is not a case worth a code path. */
            fprintf(stderr, "hr-step: out of memory\n");
            exit(3);
        }
        b->p = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void hr__sbuf_free(struct hr__sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

void hr__text_entry(struct hr__sbuf *b, const struct hr_entry *e)
{
    hr__sbuf_printf(b, "%llu/%llu", (unsigned long long)e->index, (unsigned long long)e->term);
    if (e->type == HR_ENTRY_NOOP) {
        hr__sbuf_printf(b, ":noop");
    } else if (e->type == HR_ENTRY_CONFIG) {
        hr__sbuf_printf(b, ":config=");
        hr__text_conf(b, e->data);
    } else if (hr_blob_len(e->data) > 0) {
        hr__sbuf_printf(b, ":\"%.*s\"", (int)e->data->len, (const char *)e->data->data);
    }
}

void hr__text_conf(struct hr__sbuf *b, const struct hr_blob *conf)
{
    struct hr_server s[HR_MAX_NODES];
    size_t n;
    if (hr_conf_decode(conf, s, HR_MAX_NODES, &n) != 0) {
        hr__sbuf_printf(b, "(corrupt)");
        return;
    }
    if (n == 0) {
        hr__sbuf_printf(b, "-");
    }
    for (size_t i = 0; i < n; i++) {
        hr__sbuf_printf(b, "%s%c%llu", i == 0 ? "" : ";", s[i].voter ? 'v' : 'l',
                        (unsigned long long)s[i].id);
        if (s[i].addr_len > 0) {
            hr__sbuf_printf(b, "@%.*s", (int)s[i].addr_len, (const char *)s[i].addr);
        }
    }
}

int hr__text_parse_conf(const char *text, struct hr_blob **out)
{
    struct hr_server s[HR_MAX_NODES];
    char buf[2048];
    size_t n = 0;
    *out = NULL;
    if (strlen(text) >= sizeof(buf)) {
        return HR_EINVAL;
    }
    strcpy(buf, text);
    if (strcmp(buf, "-") != 0) {
        for (char *p = buf; p != NULL;) {
            char *semi = strchr(p, ';');
            if (semi != NULL) {
                *semi = '\0';
            }
            char *at = strchr(p, '@');
            if (at != NULL) {
                *at = '\0';
            }
            unsigned long long id;
            if (n == HR_MAX_NODES || (p[0] != 'v' && p[0] != 'l') || !hr__text_number(p + 1, &id)) {
                return HR_EINVAL;
            }
            s[n] = (struct hr_server){.id = id, .voter = p[0] == 'v'};
            if (at != NULL) {
                s[n].addr = (const uint8_t *)(at + 1);
                s[n].addr_len = strlen(at + 1);
            }
            n++;
            p = semi == NULL ? NULL : semi + 1;
        }
    }
    return hr_conf_encode(s, n, out);
}

void hr__text_entries(struct hr__sbuf *b, const struct hr_entry *e, size_t n, const char *sep)
{
    for (size_t i = 0; i < n; i++) {
        hr__sbuf_printf(b, "%s", i == 0 ? "" : sep);
        hr__text_entry(b, &e[i]);
    }
}

static const char *id_name(hr_id_t id, char *buf, size_t len)
{
    snprintf(buf, len, "%llu", (unsigned long long)id);
    return buf;
}

void hr__text_msg(struct hr__sbuf *b, const struct hr_msg *m)
{
    char from[24], to[24];
    hr__sbuf_printf(b, "%s->%s %s term=%llu", id_name(m->from, from, sizeof(from)),
                    id_name(m->to, to, sizeof(to)), hr_msg_type_name(m->type),
                    (unsigned long long)m->term);
    switch (m->type) {
    case HR_MSG_APPEND:
        hr__sbuf_printf(b, " prev=%llu/%llu commit=%llu seq=%llu",
                        (unsigned long long)m->prev_index, (unsigned long long)m->prev_term,
                        (unsigned long long)m->commit, (unsigned long long)m->seq);
        if (m->n_entries > 0) {
            hr__sbuf_printf(b, " entries=");
            hr__text_entries(b, m->entries, m->n_entries, ",");
        }
        break;
    case HR_MSG_APPEND_RESP:
        if (m->reject) {
            hr__sbuf_printf(b, " reject index=%llu hint=%llu/%llu", (unsigned long long)m->index,
                            (unsigned long long)m->hint_index, (unsigned long long)m->hint_term);
        } else {
            hr__sbuf_printf(b, " index=%llu", (unsigned long long)m->index);
        }
        hr__sbuf_printf(b, " last=%llu seq=%llu", (unsigned long long)m->last_index,
                        (unsigned long long)m->seq);
        break;
    case HR_MSG_VOTE:
    case HR_MSG_PREVOTE:
        hr__sbuf_printf(b, " last=%llu/%llu", (unsigned long long)m->cand_last_index,
                        (unsigned long long)m->cand_last_term);
        if (m->transfer) {
            hr__sbuf_printf(b, " transfer");
        }
        break;
    case HR_MSG_READ_INDEX:
        hr__sbuf_printf(b, " seq=%llu", (unsigned long long)m->seq);
        break;
    case HR_MSG_READ_INDEX_RESP:
        if (m->reject) {
            hr__sbuf_printf(b, " reject");
        } else {
            hr__sbuf_printf(b, " index=%llu", (unsigned long long)m->index);
        }
        hr__sbuf_printf(b, " seq=%llu", (unsigned long long)m->seq);
        if (m->time_ms != 0) {
            hr__sbuf_printf(b, " time=%llu", (unsigned long long)m->time_ms);
        }
        break;
    case HR_MSG_VOTE_RESP:
    case HR_MSG_PREVOTE_RESP:
        hr__sbuf_printf(b, m->reject ? " reject" : " granted");
        break;
    case HR_MSG_SNAPSHOT:
        hr__sbuf_printf(b, " snap=%llu/%llu", (unsigned long long)m->snap_index,
                        (unsigned long long)m->snap_term);
        if (m->offset != 0) {
            hr__sbuf_printf(b, " offset=%llu", (unsigned long long)m->offset);
        }
        if (m->done) {
            hr__sbuf_printf(b, " done");
        }
        if (hr_blob_len(m->snap_data) > 0) {
            hr__sbuf_printf(b, " data=\"%.*s\"", (int)m->snap_data->len,
                            (const char *)m->snap_data->data);
        }
        if (m->conf != NULL) {
            hr__sbuf_printf(b, " conf=");
            hr__text_conf(b, m->conf);
            hr__sbuf_printf(b, " confidx=%llu", (unsigned long long)m->conf_index);
        }
        break;
    default:
        break;
    }
}

char *hr__text_token(char **rest)
{
    char *p = *rest;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p == '\0') {
        *rest = p;
        return NULL;
    }
    char *tok = p;
    while (*p != '\0' && *p != ' ' && *p != '\t') {
        p++;
    }
    if (*p != '\0') {
        *p++ = '\0';
    }
    *rest = p;
    return tok;
}

bool hr__text_payload_ok(const char *data)
{
    for (const char *p = data; *p != '\0'; p++) {
        if (*p <= ' ' || *p > '~' || *p == ',' || *p == '"') {
            return false;
        }
    }
    return true;
}

bool hr__text_number(const char *s, unsigned long long *v)
{
    if (*s < '0' || *s > '9') {
        return false;
    }
    char *end;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return errno == 0 && *end == '\0';
}

bool hr__text_pair(const char *s, unsigned long long *a, unsigned long long *b)
{
    const char *slash = strchr(s, '/');
    if (slash == NULL || (size_t)(slash - s) >= 24) {
        return false;
    }
    char first[24];
    memcpy(first, s, (size_t)(slash - s));
    first[slash - s] = '\0';
    return hr__text_number(first, a) && hr__text_number(slash + 1, b);
}

/* A quoted payload "..." at s (s points at the opening quote): a new blob, or NULL with
 * *ok false on a syntax error. *end is set past the closing quote. */
static struct hr_blob *parse_payload(const char *s, const char **end, bool *ok)
{
    *ok = false;
    if (*s != '"') {
        return NULL;
    }
    const char *close = strchr(s + 1, '"');
    if (close == NULL) {
        return NULL;
    }
    *end = close + 1;
    *ok = true;
    size_t len = (size_t)(close - s - 1);
    return len == 0 ? NULL : hr_blob_new(s + 1, len);
}

/* One entry "I/T[:noop|:config|:"data"]" of length len at s. */
static bool parse_entry(const char *s, size_t len, struct hr_entry *e)
{
    char tok[256];
    if (len == 0 || len >= sizeof(tok)) {
        return false;
    }
    memcpy(tok, s, len);
    tok[len] = '\0';
    memset(e, 0, sizeof(*e));
    e->type = HR_ENTRY_COMMAND;
    char *colon = strchr(tok, ':');
    if (colon != NULL) {
        *colon = '\0';
        const char *kind = colon + 1;
        if (strcmp(kind, "noop") == 0) {
            e->type = HR_ENTRY_NOOP;
        } else if (strncmp(kind, "config=", 7) == 0) {
            e->type = HR_ENTRY_CONFIG;
            if (hr__text_parse_conf(kind + 7, &e->data) != 0) {
                return false;
            }
        } else {
            const char *end = NULL;
            bool ok;
            e->data = parse_payload(kind, &end, &ok);
            if (!ok || *end != '\0') {
                hr_blob_release(e->data);
                e->data = NULL;
                return false;
            }
        }
    }
    unsigned long long index, term;
    if (!hr__text_pair(tok, &index, &term)) {
        hr_blob_release(e->data);
        e->data = NULL;
        return false;
    }
    e->index = index;
    e->term = term;
    return true;
}

static bool parse_entries(const char *s, struct hr_msg *m)
{
    size_t n = 1;
    for (const char *p = s; *p != '\0'; p++) {
        n += *p == ',';
    }
    m->entries = calloc(n, sizeof(*m->entries));
    if (m->entries == NULL) {
        return false;
    }
    const char *p = s;
    for (size_t i = 0; i < n; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma == NULL ? strlen(p) : (size_t)(comma - p);
        if (!parse_entry(p, len, &m->entries[i])) {
            return false;
        }
        m->n_entries = (uint32_t)(i + 1);
        p += len + 1;
    }
    return true;
}

static int type_of(const char *name)
{
    for (int t = 1; t < HR_MSG_TYPE_COUNT; t++) {
        if (strcmp(name, hr_msg_type_name(t)) == 0) {
            return t;
        }
    }
    return 0;
}

/* One "key=value" or flag token into m. */
static bool parse_field(char *tok, struct hr_msg *m)
{
    if (strcmp(tok, "reject") == 0) {
        m->reject = true;
        return true;
    }
    if (strcmp(tok, "granted") == 0) {
        m->reject = false;
        return true;
    }
    if (strcmp(tok, "done") == 0) {
        m->done = true;
        return true;
    }
    if (strcmp(tok, "transfer") == 0) {
        m->transfer = true;
        return true;
    }
    char *eq = strchr(tok, '=');
    if (eq == NULL) {
        return false;
    }
    *eq = '\0';
    const char *key = tok, *val = eq + 1;
    unsigned long long a, b;
    bool vote = m->type == HR_MSG_VOTE || m->type == HR_MSG_PREVOTE;
    if (strcmp(key, "entries") == 0) {
        return m->entries == NULL && parse_entries(val, m);
    }
    if (strcmp(key, "conf") == 0) {
        hr_blob_release(m->conf);
        m->conf = NULL;
        return hr__text_parse_conf(val, &m->conf) == 0;
    }
    if (strcmp(key, "data") == 0) {
        const char *end = NULL;
        bool ok;
        hr_blob_release(m->snap_data);
        m->snap_data = parse_payload(val, &end, &ok);
        return ok && *end == '\0';
    }
    if (strcmp(key, "prev") == 0 || strcmp(key, "hint") == 0 || strcmp(key, "snap") == 0 ||
        (vote && strcmp(key, "last") == 0)) {
        if (!hr__text_pair(val, &a, &b)) {
            return false;
        }
        if (key[0] == 'p') {
            m->prev_index = a, m->prev_term = b;
        } else if (key[0] == 'h') {
            m->hint_index = a, m->hint_term = b;
        } else if (key[0] == 's') {
            m->snap_index = a, m->snap_term = b;
        } else {
            m->cand_last_index = a, m->cand_last_term = b;
        }
        return true;
    }
    if (!hr__text_number(val, &a)) {
        return false;
    }
    if (strcmp(key, "term") == 0) {
        m->term = a;
    } else if (strcmp(key, "commit") == 0) {
        m->commit = a;
    } else if (strcmp(key, "seq") == 0) {
        m->seq = a;
    } else if (strcmp(key, "index") == 0) {
        m->index = a;
    } else if (strcmp(key, "last") == 0) {
        m->last_index = a;
    } else if (strcmp(key, "offset") == 0) {
        m->offset = a;
    } else if (strcmp(key, "confidx") == 0) {
        m->conf_index = a;
    } else if (strcmp(key, "time") == 0) {
        m->time_ms = a;
    } else {
        return false;
    }
    return true;
}

int hr__text_parse_msg(const char *text, struct hr_msg *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    char buf[4096];
    if (strlen(text) >= sizeof(buf)) {
        snprintf(err, errlen, "message longer than %zu bytes", sizeof(buf) - 1);
        return HR_EINVAL;
    }
    strcpy(buf, text);
    char *rest = buf;
    char *ends = hr__text_token(&rest);
    char *type = hr__text_token(&rest);
    unsigned long long from, to;
    char *arrow = ends == NULL ? NULL : strstr(ends, "->");
    if (arrow == NULL || type == NULL) {
        snprintf(err, errlen, "want FROM->TO TYPE key=value...: %s", text);
        return HR_EINVAL;
    }
    *arrow = '\0';
    if (!hr__text_number(ends, &from) || !hr__text_number(arrow + 2, &to)) {
        snprintf(err, errlen, "bad FROM->TO in: %s", text);
        return HR_EINVAL;
    }
    m->from = from;
    m->to = to;
    m->type = (uint8_t)type_of(type);
    if (m->type == 0) {
        snprintf(err, errlen, "unknown message type %s", type);
        return HR_EINVAL;
    }
    for (char *tok; (tok = hr__text_token(&rest)) != NULL;) {
        char copy[256];
        snprintf(copy, sizeof(copy), "%s", tok);
        if (!parse_field(tok, m)) {
            hr_msg_release(m);
            snprintf(err, errlen, "bad field %s", copy);
            return HR_EINVAL;
        }
    }
    return 0;
}
