/*
 * step.c: hr-step, the golden-test driver of the consensus core.
 *
 * It steps ONE struct hr_raft (csrc/core/raft.h) from a text script and prints what the
 * node does at each step: every message it sends, every write it asks for, every change of
 * role, term, vote, commit index or follower progress. The rest of the cluster is played by
 * the script, which hands the node the messages its peers would send. This is how a
 * newcomer can read the core one message at a time (the files in spec/golden are the
 * examples), and how a change to the core's behaviour shows up as a changed line of text.
 * It uses the core's public interface only, and links csrc/core alone.
 *
 *   build/hr-step [FILE]       run the script (stdin without FILE) and print it back with
 *                              each command's actual output under it
 *   build/hr-step -w FILE...   the same, written back into each FILE
 *
 * spec/core_golden_spec.lua runs every script in spec/golden and fails on any difference
 * from the expected output written in the file. After an intended change to the core, rewrite
 * the files (HELIOS_GOLDEN_REWRITE=1 busted spec/core_golden_spec.lua, or hr-step -w) and
 * read the diff before committing it: it is the change in behaviour.
 *
 * The script format is that of etcd raft's datadriven test files: a command (one line, or
 * several for `deliver`), a line "----", then the expected output, which ends at a blank
 * line. Lines starting with "#" and blank lines between commands are comments, copied
 * as they are. A command without a "----" yet gets one with its output when rewritten.
 *
 * Commands:
 *   config KEY=VALUE...   a new node at time 0 (replacing any earlier one). Keys: id,
 *                         voters=1,2,3, election, heartbeat (ms), prevote, check_quorum,
 *                         read_lease (true/false), seed, max_inflight, max_entries, max_bytes,
 *                         unsafe_commit_old_terms, unsafe_count_learner_votes;
 *                         learners=4,5 (then voters and learners are the stored
 *                         configuration, struct hr_raft_state.conf, at confidx=INDEX,
 *                         default 0); its recovered state: term, vote,
 *                         log=1,1,2 (the term of each entry, from index 1 or after the
 *                         snapshot), snapshot=INDEX/TERM, applied (default: the snapshot's
 *                         index). Prints the status.
 *   tick MS | tick deadline
 *                         advance the clock by MS, or to the node's next deadline (its
 *                         randomized election timeout, or a leader's heartbeat or
 *                         CheckQuorum round), and call hr_raft_tick
 *   deliver MSG [MSG lines...]
 *                         hand the node messages (text form: text.h), in order
 *   propose [DATA]        a client command (DATA: printable, no spaces, commas or quotes)
 *   read CTX              a linearizable read with context CTX: hr_raft_read_index (its
 *                         answer shows at a later `ready` as "read: ctx=CTX index=I
 *                         time=T" (T: the leader's clock at the index; left out when 0,
 *                         unknown) or "read: ctx=CTX error=CODE")
 *   transfer [ID]         hand leadership to ID (none: the most up-to-date voter):
 *                         hr_raft_transfer
 *   ready                 take the output batch, print it in the order a node acts on it
 *                         (send what may go at once; write snapshot, hard state and
 *                         entries; tell the core they are durable; send what waited for the
 *                         write; apply), then hr_raft_advance
 *   ready slow            the same, but the write stays in flight ("(in flight)"): the core
 *                         is not told it is durable, and what waits for it is printed as
 *                         "held until durable" and never sent
 *   persisted INDEX/TERM  the write of a `ready slow` is durable up to INDEX/TERM:
 *                         hr_raft_persisted (prints what changed, e.g. the commit index)
 *   compact INDEX [keep=K]
 *                         the node took a snapshot through INDEX and keeps the log from K
 *                         (default INDEX + 1): hr_raft_snapshot_taken
 *   add ID [learner] [addr=ADDR]
 *                         hr_raft_add: ID joins (as a learner; without `learner` the
 *                         leader promotes it once caught up). Prints the config entry's
 *                         index or "error: CODE"
 *   remove ID             hr_raft_remove
 *   conf                  the configuration the node uses (text.h's form), its entry's
 *                         index, and the learner awaiting promotion
 *   status                role, term, vote, leader, commit, log bounds, next deadline and,
 *                         on a leader, each follower's progress
 *   log                   the entries the node holds
 *
 * Inputs (tick, deliver, compact) print what they changed, one line per field ("term: 1 ->
 * 2", "log: 1..3 -> 1..4, new from 4", "progress 2: match 0 -> 4", "conf: v1;v2 -> v1;v2;l3"),
 * or "(no change)"; the
 * messages they caused show at the next `ready`. The driver's storage is perfect and
 * instant: `ready` acknowledges every write it prints ("persisted"), except `ready slow`,
 * whose write waits for a `persisted` command. The core's
 * refusals print as "error: CODE" and are part of the expected output; a script error
 * (unknown command, bad syntax) also goes to stderr and makes hr-step exit with status 2.
 *
 * Single-threaded; owns everything it allocates.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

struct step {
    struct hr_raft *r;
    hr_time_t now;
    const char *file;
    size_t line; /* 1-based line of the command being run */
    int errors;  /* script errors: they fail the run */
};

/* A script error: in the output (so a rewritten file shows it) and on stderr. */
static void script_error(struct step *s, struct hr__sbuf *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void script_error(struct step *s, struct hr__sbuf *out, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    hr__sbuf_printf(out, "error: %s\n", msg);
    fprintf(stderr, "hr-step: %s:%zu: %s\n", s->file, s->line, msg);
    s->errors++;
}

static const char *who(hr_id_t id, char *buf, size_t len)
{
    if (id == 0) {
        return "none";
    }
    snprintf(buf, len, "%llu", (unsigned long long)id);
    return buf;
}

/* ---- what the node looks like from outside, for printing changes ---- */

struct view {
    int role;
    bool removed;
    hr_term_t term;
    hr_id_t vote, leader;
    hr_index_t commit, first, last;
    hr_index_t snap_index;
    hr_term_t snap_term;
    hr_term_t *terms; /* of first..last, owned */
    size_t n;
    struct hr_progress_info pr[HR_MAX_NODES + 1];
    struct hr__sbuf conf; /* the configuration in text form */
};

/* The configuration in text form (text.h), e.g. "v1;v2;v3;l4". */
static void print_conf(struct hr__sbuf *out, const struct hr_raft *r)
{
    struct hr_server sv[HR_MAX_NODES];
    size_t n = hr_raft_configuration(r, sv, HR_MAX_NODES, NULL);
    struct hr_blob *b = NULL;
    if (hr_conf_encode(sv, n, &b) != 0) {
        exit(3);
    }
    hr__text_conf(out, b);
    hr_blob_release(b);
}

static void view_take(struct view *v, const struct hr_raft *r)
{
    v->first = hr_raft_first_index(r);
    v->last = hr_raft_last_index(r);
    v->terms = NULL;
    if (v->last >= v->first) {
        v->terms = malloc((v->last - v->first + 1) * sizeof(*v->terms));
        if (v->terms == NULL) {
            exit(3);
        }
        for (hr_index_t i = v->first; i <= v->last; i++) {
            v->terms[i - v->first] = hr_raft_term_at(r, i);
        }
    }
    v->role = hr_raft_role(r);
    v->removed = hr_raft_removed(r);
    v->term = hr_raft_term(r);
    v->vote = hr_raft_vote(r);
    v->leader = hr_raft_leader(r);
    v->commit = hr_raft_commit_index(r);
    v->snap_index = hr_raft_snapshot_index(r);
    v->snap_term = hr_raft_snapshot_term(r);
    v->n = hr_raft_progress(r, v->pr, HR_MAX_NODES + 1);
    memset(&v->conf, 0, sizeof(v->conf));
    print_conf(&v->conf, r);
}

static void view_free(struct view *v)
{
    free(v->terms);
    v->terms = NULL;
    hr__sbuf_free(&v->conf);
}

/* The term of entry i in v, 0 if v does not hold it. */
static hr_term_t view_term(const struct view *v, hr_index_t i)
{
    return i >= v->first && i <= v->last ? v->terms[i - v->first] : 0;
}

static void print_range(struct hr__sbuf *out, hr_index_t first, hr_index_t last)
{
    if (first > last) {
        hr__sbuf_printf(out, "(empty, after %llu)", (unsigned long long)last);
    } else {
        hr__sbuf_printf(out, "%llu..%llu", (unsigned long long)first, (unsigned long long)last);
    }
}

/* "log: 1..3 -> 1..5, new from 4": the bounds, and the first entry that was not there
 * before (appended, or replacing a conflicting one). */
static void diff_log(struct hr__sbuf *out, const struct view *a, const struct view *b, bool *any)
{
    hr_index_t fresh = 0;
    for (hr_index_t i = b->first; i <= b->last && fresh == 0; i++) {
        if (view_term(a, i) != view_term(b, i)) {
            fresh = i;
        }
    }
    if (a->first == b->first && a->last == b->last && fresh == 0) {
        return;
    }
    hr__sbuf_printf(out, "log: ");
    print_range(out, a->first, a->last);
    hr__sbuf_printf(out, " -> ");
    print_range(out, b->first, b->last);
    if (fresh != 0) {
        hr__sbuf_printf(out, ", new from %llu", (unsigned long long)fresh);
    }
    hr__sbuf_printf(out, "\n");
    *any = true;
}

static const char *progress_state(const struct hr_progress_info *p)
{
    return p->snapshotting ? "snapshot" : p->replicating ? "replicate" : "probe";
}

static void diff_number(struct hr__sbuf *out, const char *name, unsigned long long a,
                        unsigned long long b, bool *any)
{
    if (a != b) {
        hr__sbuf_printf(out, "%s: %llu -> %llu\n", name, a, b);
        *any = true;
    }
}

static void diff_id(struct hr__sbuf *out, const char *name, hr_id_t a, hr_id_t b, bool *any)
{
    char x[24], y[24];
    if (a != b) {
        hr__sbuf_printf(out, "%s: %s -> %s\n", name, who(a, x, sizeof(x)), who(b, y, sizeof(y)));
        *any = true;
    }
}

/* One line per follower whose progress changed, fields that changed only. Only while the
 * node leads before and after: a new leader starts every follower afresh. A slot that
 * starts or stops leaving (csrc/core/membership.c, "Leaving slots") or goes away says so. */
static void diff_progress(struct hr__sbuf *out, const struct view *a, const struct view *b,
                          hr_id_t self, bool *any)
{
    if (a->role != HR_LEADER || b->role != HR_LEADER) {
        return;
    }
    for (size_t j = 0; j < a->n; j++) {
        bool kept = false;
        for (size_t i = 0; i < b->n; i++) {
            kept = kept || b->pr[i].id == a->pr[j].id;
        }
        if (!kept && a->pr[j].id != self) {
            hr__sbuf_printf(out, "progress %llu: dropped\n", (unsigned long long)a->pr[j].id);
            *any = true;
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        const struct hr_progress_info *p = NULL, *q = &b->pr[i];
        for (size_t j = 0; j < a->n; j++) {
            p = a->pr[j].id == q->id ? &a->pr[j] : p;
        }
        if (q->id == self) {
            continue;
        }
        if (p == NULL) {
            if (q->leaving) {
                /* a removed server that asked for a vote (other new slots show in status) */
                hr__sbuf_printf(out, "progress %llu: leaving again\n", (unsigned long long)q->id);
                *any = true;
            }
            continue;
        }
        struct hr__sbuf line = {0};
        const char *sep = "";
        if (p->leaving != q->leaving) {
            hr__sbuf_printf(&line, "%s%s", sep, q->leaving ? "leaving" : "member again");
            sep = ", ";
        }
        if (p->match != q->match) {
            hr__sbuf_printf(&line, "%smatch %llu -> %llu", sep, (unsigned long long)p->match,
                            (unsigned long long)q->match);
            sep = ", ";
        }
        if (p->next != q->next) {
            hr__sbuf_printf(&line, "%snext %llu -> %llu", sep, (unsigned long long)p->next,
                            (unsigned long long)q->next);
            sep = ", ";
        }
        if (strcmp(progress_state(p), progress_state(q)) != 0) {
            hr__sbuf_printf(&line, "%s%s -> %s", sep, progress_state(p), progress_state(q));
            sep = ", ";
        }
        if (p->inflight != q->inflight) {
            hr__sbuf_printf(&line, "%sinflight %u -> %u", sep, p->inflight, q->inflight);
        }
        if (line.len > 0) {
            hr__sbuf_printf(out, "progress %llu: %s\n", (unsigned long long)q->id, line.p);
            *any = true;
        }
        hr__sbuf_free(&line);
    }
}

static void print_changes(struct hr__sbuf *out, const struct view *a, const struct hr_raft *r)
{
    struct view b;
    view_take(&b, r);
    bool any = false;
    if (a->role != b.role) {
        hr__sbuf_printf(out, "role: %s -> %s\n", hr_role_name(a->role), hr_role_name(b.role));
        any = true;
    }
    if (a->removed != b.removed) {
        hr__sbuf_printf(out, "removed: %s -> %s\n", a->removed ? "true" : "false",
                        b.removed ? "true" : "false");
        any = true;
    }
    diff_number(out, "term", a->term, b.term, &any);
    diff_id(out, "vote", a->vote, b.vote, &any);
    diff_id(out, "leader", a->leader, b.leader, &any);
    diff_number(out, "commit", a->commit, b.commit, &any);
    diff_log(out, a, &b, &any);
    if (a->snap_index != b.snap_index || a->snap_term != b.snap_term) {
        hr__sbuf_printf(out, "snapshot: %llu/%llu -> %llu/%llu\n",
                        (unsigned long long)a->snap_index, (unsigned long long)a->snap_term,
                        (unsigned long long)b.snap_index, (unsigned long long)b.snap_term);
        any = true;
    }
    if (strcmp(a->conf.p, b.conf.p) != 0) {
        hr__sbuf_printf(out, "conf: %s -> %s\n", a->conf.p, b.conf.p);
        any = true;
    }
    diff_progress(out, a, &b, hr_raft_id(r), &any);
    if (!any) {
        hr__sbuf_printf(out, "(no change)\n");
    }
    view_free(&b);
}

/* ---- commands ---- */

static bool parse_bool(const char *v, bool *out)
{
    if (strcmp(v, "true") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(v, "false") == 0) {
        *out = false;
        return true;
    }
    return false;
}

/* A comma-separated list of numbers into v (at most max): the count, or -1. */
static int parse_list(const char *s, unsigned long long *v, int max)
{
    int n = 0;
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", s);
    char *p = buf;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma != NULL) {
            *comma = '\0';
        }
        if (n == max || !hr__text_number(p, &v[n])) {
            return -1;
        }
        n++;
        if (comma == NULL) {
            return n;
        }
        p = comma + 1;
    }
}

static void print_status(struct hr__sbuf *out, const struct hr_raft *r)
{
    char a[24], b[24];
    hr__sbuf_printf(out, "node %llu: %s term=%llu vote=%s leader=%s commit=%llu\n",
                    (unsigned long long)hr_raft_id(r), hr_role_name(hr_raft_role(r)),
                    (unsigned long long)hr_raft_term(r), who(hr_raft_vote(r), a, sizeof(a)),
                    who(hr_raft_leader(r), b, sizeof(b)),
                    (unsigned long long)hr_raft_commit_index(r));
    hr__sbuf_printf(out, "log: ");
    print_range(out, hr_raft_first_index(r), hr_raft_last_index(r));
    hr__sbuf_printf(out, " snapshot=%llu/%llu\n", (unsigned long long)hr_raft_snapshot_index(r),
                    (unsigned long long)hr_raft_snapshot_term(r));
    hr__sbuf_printf(out, "next deadline: %llu\n", (unsigned long long)hr_raft_next_deadline(r));
    if (hr_raft_role(r) != HR_LEADER) {
        return;
    }
    struct hr_progress_info pr[HR_MAX_NODES + 1];
    size_t n = hr_raft_progress(r, pr, HR_MAX_NODES + 1);
    for (size_t i = 0; i < n; i++) {
        if (pr[i].id == hr_raft_id(r)) {
            continue;
        }
        hr__sbuf_printf(out, "progress %llu: match=%llu next=%llu %s inflight=%u%s\n",
                        (unsigned long long)pr[i].id, (unsigned long long)pr[i].match,
                        (unsigned long long)pr[i].next, progress_state(&pr[i]), pr[i].inflight,
                        pr[i].leaving ? " leaving" : pr[i].voter ? "" : " learner");
    }
}

static void cmd_config(struct step *s, char *args, struct hr__sbuf *out)
{
    struct hr_config c;
    hr_config_defaults(&c);
    unsigned long long voters[HR_MAX_NODES], learners[HR_MAX_NODES], terms[1024];
    int n_voters = 0, n_learners = 0, n_terms = 0;
    unsigned long long conf_index = 0;
    struct hr_raft_state st = {0};
    bool applied_set = false;
    for (char *tok; (tok = hr__text_token(&args)) != NULL;) {
        char *eq = strchr(tok, '=');
        if (eq == NULL) {
            script_error(s, out, "config: want KEY=VALUE, got %s", tok);
            return;
        }
        *eq = '\0';
        const char *k = tok, *v = eq + 1;
        unsigned long long x = 0, y = 0;
        bool flag = false, ok;
        if (strcmp(k, "voters") == 0) {
            ok = (n_voters = parse_list(v, voters, HR_MAX_NODES)) > 0;
        } else if (strcmp(k, "learners") == 0) {
            ok = (n_learners = parse_list(v, learners, HR_MAX_NODES)) > 0;
        } else if (strcmp(k, "log") == 0) {
            ok = (n_terms = parse_list(v, terms, 1024)) > 0;
        } else if (strcmp(k, "snapshot") == 0) {
            ok = hr__text_pair(v, &x, &y);
            st.snapshot_index = x;
            st.snapshot_term = y;
        } else if (strcmp(k, "prevote") == 0 || strcmp(k, "check_quorum") == 0 ||
                   strcmp(k, "unsafe_commit_old_terms") == 0 ||
                   strcmp(k, "unsafe_count_learner_votes") == 0 ||
                   strcmp(k, "read_lease") == 0) {
            ok = parse_bool(v, &flag);
            if (strcmp(k, "prevote") == 0) {
                c.prevote = flag;
            } else if (strcmp(k, "read_lease") == 0) {
                c.read_lease = flag;
            } else if (strcmp(k, "check_quorum") == 0) {
                c.check_quorum = flag;
            } else if (strcmp(k, "unsafe_commit_old_terms") == 0) {
                c.unsafe_commit_old_terms = flag;
            } else {
                c.unsafe_count_learner_votes = flag;
            }
        } else {
            ok = hr__text_number(v, &x);
            if (strcmp(k, "id") == 0) {
                c.id = x;
            } else if (strcmp(k, "election") == 0) {
                c.election_timeout_ms = (uint32_t)x;
            } else if (strcmp(k, "heartbeat") == 0) {
                c.heartbeat_timeout_ms = (uint32_t)x;
            } else if (strcmp(k, "seed") == 0) {
                c.seed = x;
            } else if (strcmp(k, "max_inflight") == 0) {
                c.max_inflight = (uint32_t)x;
            } else if (strcmp(k, "max_entries") == 0) {
                c.max_entries_per_append = (uint32_t)x;
            } else if (strcmp(k, "max_bytes") == 0) {
                c.max_append_bytes = (uint32_t)x;
            } else if (strcmp(k, "term") == 0) {
                st.hs.term = x;
            } else if (strcmp(k, "vote") == 0) {
                st.hs.vote = x;
            } else if (strcmp(k, "applied") == 0) {
                st.applied = x;
                applied_set = true;
            } else if (strcmp(k, "confidx") == 0) {
                conf_index = x;
            } else {
                script_error(s, out, "config: unknown key %s", k);
                return;
            }
        }
        if (!ok) {
            script_error(s, out, "config: bad value for %s", k);
            return;
        }
    }
    hr_id_t ids[HR_MAX_NODES];
    for (int i = 0; i < n_voters; i++) {
        ids[i] = voters[i];
    }
    c.voters = ids;
    c.n_voters = (size_t)n_voters;
    struct hr_blob *stored = NULL;
    if (n_learners > 0) {
        /* A stored configuration with learners (the bootstrap one has voters only). */
        struct hr_server sv[HR_MAX_NODES];
        size_t n = 0;
        for (int i = 0; i < n_voters && n < HR_MAX_NODES; i++) {
            sv[n++] = (struct hr_server){.id = voters[i], .voter = true};
        }
        for (int i = 0; i < n_learners && n < HR_MAX_NODES; i++) {
            sv[n++] = (struct hr_server){.id = learners[i], .voter = false};
        }
        if (hr_conf_encode(sv, n, &stored) != 0) {
            script_error(s, out, "config: bad voters/learners");
            return;
        }
        st.conf = stored;
        st.conf_index = conf_index;
    }
    struct hr_entry ents[1024];
    for (int i = 0; i < n_terms; i++) {
        ents[i] = (struct hr_entry){.index = st.snapshot_index + 1 + (hr_index_t)i,
                                    .term = terms[i],
                                    .type = HR_ENTRY_COMMAND};
    }
    st.entries = ents;
    st.n_entries = (size_t)n_terms;
    if (!applied_set) {
        st.applied = st.snapshot_index;
    }
    hr_raft_free(s->r);
    s->now = 0;
    char err[256];
    s->r = hr_raft_new(&c, &st, s->now, err, sizeof(err));
    hr_blob_release(stored);
    if (s->r == NULL) {
        script_error(s, out, "%s", err);
        return;
    }
    print_status(out, s->r);
}

static void cmd_tick(struct step *s, char *args, struct hr__sbuf *out)
{
    char *arg = hr__text_token(&args);
    unsigned long long ms = 0;
    if (arg != NULL && strcmp(arg, "deadline") == 0) {
        hr_time_t d = hr_raft_next_deadline(s->r);
        if (d > s->now) {
            s->now = d;
        }
    } else if (arg != NULL && hr__text_number(arg, &ms) && hr__text_token(&args) == NULL) {
        s->now += ms;
    } else {
        script_error(s, out, "usage: tick MS | tick deadline");
        return;
    }
    struct view before;
    view_take(&before, s->r);
    hr_raft_tick(s->r, s->now);
    hr__sbuf_printf(out, "now=%llu\n", (unsigned long long)s->now);
    print_changes(out, &before, s->r);
    view_free(&before);
}

static void cmd_deliver(struct step *s, char **lines, size_t n, struct hr__sbuf *out)
{
    struct view before;
    view_take(&before, s->r);
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        char *text = lines[i];
        while (*text == ' ' || *text == '\t') {
            text++;
        }
        if (*text == '\0') {
            continue;
        }
        any = true;
        struct hr_msg m;
        char err[256];
        if (hr__text_parse_msg(text, &m, err, sizeof(err)) != 0) {
            script_error(s, out, "deliver: %s", err);
            view_free(&before);
            return;
        }
        int rv = hr_raft_step(s->r, &m);
        hr_msg_release(&m);
        if (rv != 0) {
            hr__sbuf_printf(out, "error: %s\n", hr_err_name(rv));
        }
    }
    if (!any) {
        script_error(s, out, "usage: deliver MSG (more messages on the next lines)");
    } else {
        print_changes(out, &before, s->r);
    }
    view_free(&before);
}

static void cmd_propose(struct step *s, char *args, struct hr__sbuf *out)
{
    char *data = hr__text_token(&args);
    if (data == NULL) {
        data = "";
    }
    if (!hr__text_payload_ok(data) || hr__text_token(&args) != NULL) {
        script_error(s, out, "usage: propose [DATA] (printable; no spaces, commas, quotes)");
        return;
    }
    hr_index_t index;
    int rv = hr_raft_propose(s->r, HR_ENTRY_COMMAND, data, strlen(data), &index, NULL);
    if (rv != 0) {
        hr__sbuf_printf(out, "error: %s\n", hr_err_name(rv));
        return;
    }
    hr__sbuf_printf(out, "proposed: ");
    hr__text_entry(out, hr_raft_entry(s->r, index));
    hr__sbuf_printf(out, "\n");
}

static void cmd_read(struct step *s, char *args, struct hr__sbuf *out)
{
    char *arg = hr__text_token(&args);
    unsigned long long ctx;
    if (arg == NULL || !hr__text_number(arg, &ctx) || hr__text_token(&args) != NULL) {
        script_error(s, out, "usage: read CTX");
        return;
    }
    struct view before;
    view_take(&before, s->r);
    int rv = hr_raft_read_index(s->r, ctx);
    if (rv != 0) {
        hr__sbuf_printf(out, "error: %s\n", hr_err_name(rv));
    } else {
        print_changes(out, &before, s->r);
    }
    view_free(&before);
}

static void cmd_transfer(struct step *s, char *args, struct hr__sbuf *out)
{
    char *arg = hr__text_token(&args);
    unsigned long long id = 0;
    if ((arg != NULL && !hr__text_number(arg, &id)) || hr__text_token(&args) != NULL) {
        script_error(s, out, "usage: transfer [ID]");
        return;
    }
    struct view before;
    view_take(&before, s->r);
    int rv = hr_raft_transfer(s->r, id);
    if (rv != 0) {
        hr__sbuf_printf(out, "error: %s\n", hr_err_name(rv));
    } else {
        hr__sbuf_printf(out, "transferring to %llu\n", (unsigned long long)hr_raft_transferee(s->r));
        print_changes(out, &before, s->r);
    }
    view_free(&before);
}

static void print_msgs(struct hr__sbuf *out, const char *what, const struct hr_msg *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        hr__sbuf_printf(out, "%s: ", what);
        hr__text_msg(out, &m[i]);
        hr__sbuf_printf(out, "\n");
    }
}

/* slow: the write is not acknowledged: it stays in flight until a `persisted` command, as
 * on a node whose fsync is slower than the network (what waits for it is printed, marked,
 * and not sent by anyone). */
static void cmd_ready(struct step *s, bool slow, struct hr__sbuf *out)
{
    if (!hr_raft_has_ready(s->r)) {
        hr__sbuf_printf(out, "(nothing ready)\n");
        return;
    }
    struct hr_ready rd;
    hr_raft_ready(s->r, &rd);
    char a[24];
    if (rd.soft_changed) {
        hr__sbuf_printf(out, "soft state: %s term=%llu leader=%s\n", hr_role_name(rd.role),
                        (unsigned long long)rd.term, who(rd.leader, a, sizeof(a)));
    }
    /* The order a node follows (docs/architecture.md, the ready loop): */
    print_msgs(out, "send", rd.msgs, rd.n_msgs);
    if (rd.has_snapshot) {
        hr__sbuf_printf(out, "install snapshot: %llu/%llu", (unsigned long long)rd.snapshot.index,
                        (unsigned long long)rd.snapshot.term);
        if (hr_blob_len(rd.snapshot.data) > 0) {
            hr__sbuf_printf(out, " data=\"%.*s\"", (int)rd.snapshot.data->len,
                            (const char *)rd.snapshot.data->data);
        }
        if (rd.snapshot.conf_index != 0) {
            hr__sbuf_printf(out, " conf=");
            hr__text_conf(out, rd.snapshot.conf);
            hr__sbuf_printf(out, " confidx=%llu", (unsigned long long)rd.snapshot.conf_index);
        }
        hr__sbuf_printf(out, "\n");
    }
    if (rd.has_hard_state) {
        hr__sbuf_printf(out, "hard state: term=%llu vote=%s\n", (unsigned long long)rd.hs.term,
                        who(rd.hs.vote, a, sizeof(a)));
    }
    if (rd.truncate != 0) {
        hr__sbuf_printf(out, "truncate: from %llu\n", (unsigned long long)rd.truncate);
    }
    if (rd.n_entries > 0) {
        hr__sbuf_printf(out, "persist: ");
        hr__text_entries(out, rd.entries, rd.n_entries, " ");
        hr__sbuf_printf(out, slow ? " (in flight)\n" : "\n");
        /* The driver's storage is perfect and instant: acknowledge the write at once
         * (unless slow: then the script says when, with `persisted`). */
        const struct hr_entry *last = &rd.entries[rd.n_entries - 1];
        if (!slow) {
            hr_raft_persisted(s->r, last->index, last->term);
            hr__sbuf_printf(out, "persisted: up to %llu/%llu\n", (unsigned long long)last->index,
                            (unsigned long long)last->term);
        }
    }
    print_msgs(out, slow ? "held until durable" : "send after persist", rd.msgs_after_persist,
               rd.n_msgs_after_persist);
    if (rd.n_committed > 0) {
        hr__sbuf_printf(out, "apply: ");
        hr__text_entries(out, rd.committed, rd.n_committed, " ");
        hr__sbuf_printf(out, "\n");
    }
    for (size_t i = 0; i < rd.n_reads; i++) {
        if (rd.reads[i].status == 0) {
            hr__sbuf_printf(out, "read: ctx=%llu index=%llu", (unsigned long long)rd.reads[i].ctx,
                            (unsigned long long)rd.reads[i].index);
            if (rd.reads[i].time_ms != 0) {
                hr__sbuf_printf(out, " time=%llu", (unsigned long long)rd.reads[i].time_ms);
            }
            hr__sbuf_printf(out, "\n");
        } else {
            hr__sbuf_printf(out, "read: ctx=%llu error=%s\n", (unsigned long long)rd.reads[i].ctx,
                            hr_err_name(rd.reads[i].status));
        }
    }
    hr_raft_advance(s->r, &rd);
}

/* persisted INDEX/TERM: the write of a `ready slow` became durable (hr_raft_persisted). */
static void cmd_persisted(struct step *s, char *args, struct hr__sbuf *out)
{
    char *arg = hr__text_token(&args);
    unsigned long long index, term;
    if (arg == NULL || !hr__text_pair(arg, &index, &term) || hr__text_token(&args) != NULL) {
        script_error(s, out, "usage: persisted INDEX/TERM");
        return;
    }
    struct view before;
    view_take(&before, s->r);
    hr_raft_persisted(s->r, index, term);
    print_changes(out, &before, s->r);
    view_free(&before);
}

static void cmd_compact(struct step *s, char *args, struct hr__sbuf *out)
{
    char *arg = hr__text_token(&args);
    char *keep = hr__text_token(&args);
    unsigned long long index, keep_from;
    if (arg == NULL || !hr__text_number(arg, &index) ||
        (keep != NULL &&
         (strncmp(keep, "keep=", 5) != 0 || !hr__text_number(keep + 5, &keep_from))) ||
        hr__text_token(&args) != NULL) {
        script_error(s, out, "usage: compact INDEX [keep=FIRST_INDEX_TO_KEEP]");
        return;
    }
    if (keep == NULL) {
        keep_from = index + 1;
    }
    struct view before;
    view_take(&before, s->r);
    int rv = hr_raft_snapshot_taken(s->r, index, keep_from);
    if (rv != 0) {
        hr__sbuf_printf(out, "error: %s\n", hr_err_name(rv));
    } else {
        print_changes(out, &before, s->r);
    }
    view_free(&before);
}

static void cmd_add(struct step *s, char *args, struct hr__sbuf *out)
{
    char *arg = hr__text_token(&args);
    unsigned long long id;
    bool voter = true;
    const char *addr = "";
    if (arg == NULL || !hr__text_number(arg, &id)) {
        script_error(s, out, "usage: add ID [learner] [addr=ADDR]");
        return;
    }
    for (char *tok; (tok = hr__text_token(&args)) != NULL;) {
        if (strcmp(tok, "learner") == 0) {
            voter = false;
        } else if (strncmp(tok, "addr=", 5) == 0) {
            addr = tok + 5;
        } else {
            script_error(s, out, "usage: add ID [learner] [addr=ADDR]");
            return;
        }
    }
    struct view before;
    view_take(&before, s->r);
    hr_index_t index;
    int rv = hr_raft_add(s->r, id, addr, strlen(addr), voter, &index);
    if (rv != 0) {
        hr__sbuf_printf(out, "error: %s\n", hr_err_name(rv));
    } else {
        hr__sbuf_printf(out, "index: %llu\n", (unsigned long long)index);
        print_changes(out, &before, s->r);
    }
    view_free(&before);
}

static void cmd_remove(struct step *s, char *args, struct hr__sbuf *out)
{
    char *arg = hr__text_token(&args);
    unsigned long long id;
    if (arg == NULL || !hr__text_number(arg, &id) || hr__text_token(&args) != NULL) {
        script_error(s, out, "usage: remove ID");
        return;
    }
    struct view before;
    view_take(&before, s->r);
    hr_index_t index;
    int rv = hr_raft_remove(s->r, id, &index);
    if (rv != 0) {
        hr__sbuf_printf(out, "error: %s\n", hr_err_name(rv));
    } else {
        hr__sbuf_printf(out, "index: %llu\n", (unsigned long long)index);
        print_changes(out, &before, s->r);
    }
    view_free(&before);
}

static void cmd_conf(struct step *s, struct hr__sbuf *out)
{
    hr_index_t index;
    struct hr_server sv[HR_MAX_NODES];
    hr_raft_configuration(s->r, sv, HR_MAX_NODES, &index);
    hr__sbuf_printf(out, "conf: ");
    print_conf(out, s->r);
    hr__sbuf_printf(out, " (index %llu)%s", (unsigned long long)index,
                    hr_raft_removed(s->r)    ? " removed here"
                    : hr_raft_is_voter(s->r) ? ""
                                             : " not a voter here");
    if (hr_raft_promoting(s->r) != 0) {
        hr__sbuf_printf(out, ", promoting %llu", (unsigned long long)hr_raft_promoting(s->r));
    }
    hr__sbuf_printf(out, "\n");
}

static void cmd_log(struct step *s, struct hr__sbuf *out)
{
    hr_index_t first = hr_raft_first_index(s->r), last = hr_raft_last_index(s->r);
    if (first > last) {
        print_range(out, first, last);
        hr__sbuf_printf(out, "\n");
        return;
    }
    for (hr_index_t i = first; i <= last; i++) {
        hr__sbuf_printf(out, "%s", i == first ? "" : " ");
        hr__text_entry(out, hr_raft_entry(s->r, i));
    }
    hr__sbuf_printf(out, "\n");
}

/* Run one command block (lines[0] is the command, the rest its extra lines). */
static void run_command(struct step *s, char **lines, size_t n, struct hr__sbuf *out)
{
    char first[4096];
    snprintf(first, sizeof(first), "%s", lines[0]);
    char *args = first;
    char *cmd = hr__text_token(&args);
    if (cmd == NULL) {
        script_error(s, out, "empty command");
        return;
    }
    static const char *const known[] = {"config", "tick",   "deliver", "propose", "ready",
                                        "compact", "status", "log",     "add",     "remove",
                                        "conf",    "read",   "transfer", "persisted"};
    bool found = false;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        found = found || strcmp(cmd, known[i]) == 0;
    }
    bool deliver = strcmp(cmd, "deliver") == 0;
    if (!found) {
        script_error(s, out, "unknown command %s", cmd);
    } else if (n > 1 && !deliver) {
        script_error(s, out, "%s: takes one line", cmd);
    } else if (strcmp(cmd, "config") == 0) {
        cmd_config(s, args, out);
    } else if (s->r == NULL) {
        script_error(s, out, "%s: no node yet (start with config)", cmd);
    } else if (strcmp(cmd, "ready") == 0) {
        char *arg = hr__text_token(&args);
        if ((arg != NULL && strcmp(arg, "slow") != 0) || hr__text_token(&args) != NULL) {
            script_error(s, out, "usage: ready [slow]");
        } else {
            cmd_ready(s, arg != NULL, out);
        }
    } else if ((strcmp(cmd, "status") == 0 || strcmp(cmd, "log") == 0 ||
                strcmp(cmd, "conf") == 0) &&
               hr__text_token(&args) != NULL) {
        script_error(s, out, "%s: takes no arguments", cmd);
    } else if (deliver) {
        /* The first message may follow the word on its line; more come on the next ones. */
        char **msgs = malloc(n * sizeof(*msgs));
        if (msgs == NULL) {
            exit(3);
        }
        msgs[0] = args;
        for (size_t i = 1; i < n; i++) {
            msgs[i] = lines[i];
        }
        cmd_deliver(s, msgs, n, out);
        free(msgs);
    } else if (strcmp(cmd, "tick") == 0) {
        cmd_tick(s, args, out);
    } else if (strcmp(cmd, "propose") == 0) {
        cmd_propose(s, args, out);
    } else if (strcmp(cmd, "persisted") == 0) {
        cmd_persisted(s, args, out);
    } else if (strcmp(cmd, "compact") == 0) {
        cmd_compact(s, args, out);
    } else if (strcmp(cmd, "read") == 0) {
        cmd_read(s, args, out);
    } else if (strcmp(cmd, "transfer") == 0) {
        cmd_transfer(s, args, out);
    } else if (strcmp(cmd, "status") == 0) {
        print_status(out, s->r);
    } else if (strcmp(cmd, "add") == 0) {
        cmd_add(s, args, out);
    } else if (strcmp(cmd, "remove") == 0) {
        cmd_remove(s, args, out);
    } else if (strcmp(cmd, "conf") == 0) {
        cmd_conf(s, out);
    } else {
        cmd_log(s, out);
    }
}

/* ---- the script file ---- */

static bool blank(const char *line)
{
    return line[strspn(line, " \t")] == '\0';
}

/* Run the script in text (modified in place: split into lines) and write it back, with
 * each command's actual output, to out. Returns the number of script errors. */
static int run_script(const char *file, char *text, struct hr__sbuf *out)
{
    size_t n = 0, cap = 64;
    char **lines = malloc(cap * sizeof(*lines));
    for (char *p = text; lines != NULL && *p != '\0';) {
        if (n == cap) {
            cap *= 2;
            char **nl = realloc(lines, cap * sizeof(*lines));
            if (nl == NULL) {
                break;
            }
            lines = nl;
        }
        lines[n++] = p;
        char *nl = strchr(p, '\n');
        if (nl == NULL) {
            break;
        }
        *nl = '\0';
        p = nl + 1;
    }
    if (lines == NULL) {
        exit(3);
    }

    struct step s = {.file = file};
    for (size_t i = 0; i < n;) {
        if (blank(lines[i]) || lines[i][0] == '#') {
            hr__sbuf_printf(out, "%s\n", lines[i]);
            i++;
            continue;
        }
        size_t start = i;
        while (i < n && !blank(lines[i]) && strcmp(lines[i], "----") != 0) {
            i++;
        }
        size_t end = i;
        if (i < n && strcmp(lines[i], "----") == 0) {
            /* the expected output: replaced by the actual one */
            for (i++; i < n && !blank(lines[i]); i++) {
            }
        }
        if (end == start) { /* a "----" with no command before it */
            end = start + 1;
            i = i > end ? i : end;
        }
        for (size_t k = start; k < end; k++) {
            hr__sbuf_printf(out, "%s\n", lines[k]);
        }
        hr__sbuf_printf(out, "----\n");
        s.line = start + 1;
        struct hr__sbuf res = {0};
        run_command(&s, &lines[start], end - start, &res);
        hr__sbuf_printf(out, "%s", res.len > 0 ? res.p : "");
        hr__sbuf_free(&res);
    }
    hr_raft_free(s.r);
    free(lines);
    return s.errors;
}

static char *read_all(FILE *f)
{
    struct hr__sbuf b = {0};
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        hr__sbuf_printf(&b, "%.*s", (int)got, chunk);
    }
    if (b.p == NULL) {
        hr__sbuf_printf(&b, "%s", "");
    }
    return b.p;
}

int main(int argc, char **argv)
{
    bool rewrite = argc > 1 && strcmp(argv[1], "-w") == 0;
    int first = rewrite ? 2 : 1;
    if ((rewrite && argc < 3) || (!rewrite && argc > 2) || (argc > 1 && argv[first][0] == '-')) {
        fprintf(stderr, "usage: hr-step [FILE]   (stdin without FILE)\n"
                        "       hr-step -w FILE...  (rewrite each FILE's expected output)\n");
        return 2;
    }
    int errors = 0;
    if (argc == 1) {
        char *text = read_all(stdin);
        struct hr__sbuf out = {0};
        errors += run_script("<stdin>", text, &out);
        fwrite(out.p, 1, out.len, stdout);
        hr__sbuf_free(&out);
        free(text);
        return errors > 0 ? 2 : 0;
    }
    for (int i = first; i < argc; i++) {
        FILE *f = fopen(argv[i], "r");
        if (f == NULL) {
            perror(argv[i]);
            return 2;
        }
        char *text = read_all(f);
        fclose(f);
        struct hr__sbuf out = {0};
        errors += run_script(argv[i], text, &out);
        free(text);
        f = rewrite ? fopen(argv[i], "w") : stdout;
        if (f == NULL || fwrite(out.p, 1, out.len, f) != out.len || (rewrite && fclose(f) != 0)) {
            perror(argv[i]);
            hr__sbuf_free(&out);
            return 2;
        }
        hr__sbuf_free(&out);
    }
    return errors > 0 ? 2 : 0;
}
