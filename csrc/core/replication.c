/*
 * replication.c: log replication (Raft §5.3), the commit rule (§5.4.2) and the leader's
 * per-follower flow control: a follower is probed one AppendEntries at a time until its log
 * matches, then fed a pipeline of up to max_inflight messages (thesis §10.2.1).
 */
#include "raft_impl.h"

#include <assert.h>
#include <stdlib.h>

void hr__progress_reset(struct hr_raft *r, struct hr__progress *pr)
{
    pr->match = 0;
    pr->next = hr__log_last(&r->log) + 1;
    pr->replicating = false;
    pr->probe_sent = false;
    pr->want_send = true;
    pr->heartbeat = false;
    pr->inflight = 0;
    pr->inflight_head = 0;
    pr->progress_time = r->now;
    pr->snapshot = 0;
    pr->match_seq = pr->sent_seq; /* sent_seq itself runs on across terms */
}

static void to_probe(struct hr_raft *r, struct hr__progress *pr, hr_index_t next)
{
    pr->replicating = false;
    pr->probe_sent = false;
    pr->inflight = 0;
    pr->inflight_head = 0;
    pr->next = next;
    pr->want_send = true;
    pr->progress_time = r->now;
    pr->snapshot = 0;
}

static void to_replicate(struct hr_raft *r, struct hr__progress *pr)
{
    pr->replicating = true;
    pr->probe_sent = false;
    pr->inflight = 0;
    pr->inflight_head = 0;
    pr->next = pr->match + 1;
    pr->want_send = true;
    pr->progress_time = r->now;
    pr->snapshot = 0;
}

int hr__append_local(struct hr_raft *r, uint8_t type, struct hr_blob *data)
{
    struct hr_entry e = {.term = r->term,
                         .index = hr__log_last(&r->log) + 1,
                         .time_ms = r->now,
                         .type = type,
                         .data = data};
    int rv = hr__log_append(&r->log, &e);
    if (rv == 0) {
        rv = hr__conf_appended(r, &e);
    }
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < r->n_peers; i++) {
        r->peers[i].want_send = true;
    }
    /* A single voter is its own quorum; it commits once the entry is durable. */
    return 0;
}

/* Build and queue one AppendEntries for pr starting at pr->next, with at most
 * max_entries_per_append entries (none for a bare heartbeat). */
static int send_append(struct hr_raft *r, struct hr__progress *pr, bool with_entries)
{
    hr_index_t last = hr__log_last(&r->log);
    hr_index_t prev = with_entries ? pr->next - 1 : pr->match;
    if (!with_entries && hr__log_term(&r->log, prev) == 0) {
        /* The match is compacted away here (the follower waits for a snapshot): the empty
         * log prefix always matches, and commit = min(commit, 0) tells it nothing. */
        prev = 0;
    }
    struct hr_msg m = {.type = HR_MSG_APPEND,
                       .to = pr->id,
                       .term = r->term,
                       .prev_index = prev,
                       .prev_term = hr__log_term(&r->log, prev),
                       .commit = r->commit,
                       .seq = ++pr->sent_seq};
    if (with_entries && pr->next <= last) {
        /* Bounded by count and by bytes, so a lagging follower never makes us build a huge
         * message (and a heartbeat queued behind it waits for one bounded frame at most). */
        hr_index_t end = pr->next;
        size_t bytes = hr_blob_len(hr__log_get(&r->log, end)->data);
        while (end < last && end - pr->next + 1 < r->cfg.max_entries_per_append) {
            size_t more = hr_blob_len(hr__log_get(&r->log, end + 1)->data);
            if (bytes + more > r->cfg.max_append_bytes) {
                break;
            }
            bytes += more;
            end++;
        }
        uint32_t n = (uint32_t)(end - pr->next + 1);
        m.entries = malloc(n * sizeof(*m.entries));
        if (m.entries == NULL) {
            return HR_ENOMEM;
        }
        for (uint32_t i = 0; i < n; i++) {
            m.entries[i] = *hr__log_get(&r->log, pr->next + i);
            hr_blob_retain(m.entries[i].data);
        }
        m.n_entries = n;
    }
    int rv = hr__send(r, &m, false);
    if (rv != 0) {
        return rv;
    }
    hr__conf_leave_sent(r, pr, &m); /* reads m's numbers only: the queue owns it now */
    if (with_entries && m.n_entries > 0) {
        hr_index_t end = pr->next + m.n_entries - 1;
        if (pr->replicating) {
            if (pr->inflight == 0) {
                pr->progress_time = r->now; /* the stall clock starts with the pipeline */
            }
            uint32_t slot = (pr->inflight_head + pr->inflight) % r->cfg.max_inflight;
            pr->inflight_last[slot] = end;
            pr->inflight++;
            pr->next = end + 1;
        }
    }
    return 0;
}

/* Send what pr is owed: in replicate state, fill the pipeline; in probe state, one probe
 * (empty if the follower is up to date, which makes it a heartbeat). */
static int send_to(struct hr_raft *r, struct hr__progress *pr)
{
    hr_index_t last = hr__log_last(&r->log);
    bool sent = false;
    int rv = 0;
    if (hr__maybe_offer_snapshot(r, pr)) {
        /* Entries it needs are gone: it gets (or is getting) the snapshot. Heartbeats still
         * go below: a transfer can take longer than an election timeout. */
    } else if (pr->replicating) {
        while (rv == 0 && pr->next <= last && pr->inflight < r->cfg.max_inflight) {
            rv = send_append(r, pr, true);
            sent = true;
        }
    } else if (!pr->probe_sent) {
        rv = send_append(r, pr, true);
        pr->probe_sent = true;
        sent = true;
    }
    if (rv == 0 && pr->heartbeat && !sent) {
        /* Nothing new can go (the pipeline is full, a probe or a snapshot is out): a bare
         * heartbeat at the known match keeps the follower's election timer quiet. */
        rv = send_append(r, pr, false);
    }
    pr->heartbeat = false;
    pr->want_send = false;
    return rv;
}

int hr__flush_appends(struct hr_raft *r)
{
    int rv = 0;
    for (size_t i = 0; i < r->n_peers; i++) {
        struct hr__progress *pr = &r->peers[i];
        if (i == r->self) {
            pr->want_send = false;
            continue;
        }
        if (pr->want_send) {
            int e = send_to(r, pr);
            rv = rv != 0 ? rv : e;
        }
    }
    return rv;
}

void hr__heartbeat(struct hr_raft *r)
{
    for (size_t i = 0; i < r->n_peers; i++) {
        struct hr__progress *pr = &r->peers[i];
        if (i == r->self) {
            continue;
        }
        if (pr->replicating && pr->inflight > 0 &&
            r->now >= pr->progress_time + r->cfg.election_timeout_ms) {
            /* Nothing acknowledged for an election timeout with messages out: one was
             * lost, and nothing later will be rejected to tell us. Probe from the match. */
            to_probe(r, pr, pr->match + 1);
        }
        /* A probe lost on the way is retried once per heartbeat. */
        pr->probe_sent = false;
        pr->heartbeat = true;
        pr->want_send = true;
    }
}

/* §5.3 with the thesis' faster back-off: the largest index <= index whose term is <= term.
 * The follower uses it to say where its log may match; the leader to pick the next probe.
 * Both logs' terms are non-decreasing, so everything after it is known to conflict. */
static hr_index_t find_by_term(const struct hr__log *l, hr_index_t index, hr_term_t term,
                               hr_index_t floor)
{
    hr_index_t last = hr__log_last(l);
    if (index > last) {
        index = last;
    }
    while (index > floor && hr__log_term(l, index) > term) {
        index--;
    }
    return index;
}

int hr__handle_append(struct hr_raft *r, const struct hr_msg *m)
{
    /* Validate the shape of what came from the network before trusting it. */
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct hr_entry *e = &m->entries[i];
        if (e->index != m->prev_index + 1 + i || e->term == 0 || e->term > m->term ||
            (i == 0 ? e->term < m->prev_term : e->term < m->entries[i - 1].term)) {
            return HR_EPROTO;
        }
    }
    hr_index_t last = hr__log_last(&r->log);
    struct hr_msg resp = {
        .type = HR_MSG_APPEND_RESP, .to = m->from, .term = r->term, .seq = m->seq};

    if (m->prev_index < r->commit) {
        /* Everything up to our commit index matches the leader's log (Leader Completeness),
         * and we may have compacted it away, so its terms cannot be checked here: say how
         * far we are committed and let the leader continue from there. */
        resp.index = r->commit;
        resp.last_index = last;
        return hr__send(r, &resp, true);
    }

    if (m->prev_index > last || hr__log_term(&r->log, m->prev_index) != m->prev_term) {
        /* §5.3 consistency check failed. Say where our log could match so the leader
         * skips a whole term per round trip instead of one entry. */
        resp.reject = true;
        resp.index = m->prev_index;
        resp.hint_index = find_by_term(&r->log, m->prev_index, m->prev_term, r->commit);
        resp.hint_term = hr__log_term(&r->log, resp.hint_index);
        resp.last_index = last;
        return hr__send(r, &resp, true);
    }

    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct hr_entry *e = &m->entries[i];
        hr_term_t have = hr__log_term(&r->log, e->index);
        if (e->index <= hr__log_last(&r->log) && have == e->term) {
            continue; /* already there (a duplicate or a retransmission) */
        }
        if (e->index <= hr__log_last(&r->log)) {
            /* §5.3: an existing entry conflicts with a new one: delete it and all that
             * follow. A committed entry never conflicts; if a sender claims one does it is
             * broken, and we keep our log. */
            if (e->index <= r->commit) {
                return HR_EPROTO;
            }
            hr__log_truncate(&r->log, e->index);
            int rv = hr__conf_truncated(r, e->index);
            if (rv != 0) {
                return rv;
            }
            if (r->persisted >= e->index) {
                r->persisted = e->index - 1;
            }
            if (e->index < r->unstable) {
                /* storage has (or will have) the old entries: it must drop them */
                if (r->truncate == 0 || e->index < r->truncate) {
                    r->truncate = e->index;
                }
                r->unstable = e->index;
            }
        }
        int rv = hr__log_append(&r->log, e);
        if (rv == 0) {
            rv = hr__conf_appended(r, e);
        }
        if (rv != 0) {
            return rv;
        }
    }

    hr_index_t last_new = m->prev_index + m->n_entries;
    if (m->commit > r->commit) {
        /* Figure 2: commitIndex = min(leaderCommit, index of last new entry). Beyond the
         * entries this message vouched for, our log may still diverge from the leader's. */
        hr_index_t c = m->commit < last_new ? m->commit : last_new;
        if (c > r->commit) {
            r->commit = c;
        }
    }
    resp.index = last_new;
    resp.last_index = hr__log_last(&r->log);
    return hr__send(r, &resp, true);
}

void hr__handle_append_resp(struct hr_raft *r, const struct hr_msg *m)
{
    struct hr__progress *pr = hr__peer(r, m->from);
    if (pr == NULL || pr == &r->peers[r->self]) {
        return;
    }
    pr->recent_active = true;
    pr->last_contact = r->now;

    if (m->reject) {
        if (pr->snapshot != 0) {
            return; /* it is getting a snapshot: nothing else can help it meanwhile */
        }
        if (m->index == pr->match && m->last_index < m->index &&
            (m->seq == 0 || m->seq > pr->match_seq)) {
            /* The follower no longer has an entry it acknowledged: its disk lost it (a
             * corrupt tail cut off on restart). Raft assumes this never happens; what we
             * can still do is stop counting what it lacks and repair it, or every later
             * message would be rejected as "stale" forever.
             * Only an answer to a message sent after match got its value can say so. One
             * sent before (a probe at what is now the match, rejected while the follower
             * was still short, then duplicated or overtaken by the success that raised
             * the match) reads exactly the same: same index, same last_index, same hint,
             * as the follower's log really was that short when it answered. Its content
             * cannot order it against the success; the seq it echoes can: a message with
             * seq > match_seq left after we had the success, so the follower processed
             * it after the one that success answered, and a short log then is a real
             * loss. A stale one is ignored (below, as index <= match); were the loss
             * real, the next heartbeat (a later seq) reports it again. seq 0: a peer that
             * does not echo seq; trust it as before. */
            pr->match = m->last_index;
            pr->match_seq = pr->sent_seq;
            to_probe(r, pr, m->last_index + 1);
            return;
        }
        if (m->index <= pr->match || m->index >= pr->next) {
            return; /* stale: answers a message sent before a later success or probe */
        }
        if (!pr->replicating && m->index != pr->next - 1) {
            return; /* answers an older probe */
        }
        hr_index_t j = find_by_term(&r->log, m->hint_index, m->hint_term, pr->match);
        to_probe(r, pr, j + 1);
        return;
    }

    if (m->index > hr__log_last(&r->log)) {
        return; /* claims entries we never sent: ignore rather than trust it */
    }
    bool progressed = m->index > pr->match;
    if (progressed) {
        pr->match = m->index;
        pr->match_seq = pr->sent_seq;
        pr->progress_time = r->now;
        if (!pr->replicating) {
            to_replicate(r, pr);
        }
        hr__maybe_commit(r);
        hr__transfer_progress(r, pr);
    } else if (!pr->replicating && m->index == pr->match && pr->match + 1 >= pr->next) {
        /* a probe at the follower's match succeeded: the pipeline can start */
        to_replicate(r, pr);
    }
    if (pr->snapshot != 0 && pr->match >= pr->snapshot) {
        /* It holds the snapshot now. A follower offered one while replicating (compaction
         * overtook its pipeline) never passes through to_replicate, so clear the state
         * here: left set, every later rejection would be ignored above (a gap in the
         * pipeline repaired only by the stall detector) and it would show as snapshotting
         * for good. */
        pr->snapshot = 0;
    }
    if (pr->next <= pr->match) {
        pr->next = pr->match + 1;
    }
    while (pr->inflight > 0 && pr->inflight_last[pr->inflight_head] <= m->index) {
        pr->inflight_head = (pr->inflight_head + 1) % r->cfg.max_inflight;
        pr->inflight--;
    }
    pr->want_send = true;
    hr_id_t id = pr->id;
    hr__conf_maybe_promote(r);
    /* Last: it may drop the slot. Found again: a promotion rebuilds the slots. */
    pr = hr__peer(r, id);
    if (pr != NULL) {
        hr__conf_leave_acked(r, pr, m, progressed);
    }
}

static int cmp_desc(const void *a, const void *b)
{
    hr_index_t x = *(const hr_index_t *)a, y = *(const hr_index_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

void hr__maybe_commit(struct hr_raft *r)
{
    assert(r->role == HR_LEADER);
    hr_index_t matches[HR_MAX_NODES + 1];
    size_t n_matches = 0;
    for (size_t i = 0; i < r->n_peers; i++) {
        /* Only voters count (learners, and a leader that removed itself, do not). §10.2.1:
         * the leader counts itself only for what is durable on its own disk. */
        if (r->peers[i].voter) {
            matches[n_matches++] = i == r->self ? r->persisted : r->peers[i].match;
        }
    }
    if (n_matches == 0) {
        return;
    }
    qsort(matches, n_matches, sizeof(matches[0]), cmp_desc);
    hr_index_t n = matches[hr__quorum(r) - 1];
    if (n <= r->commit) {
        return;
    }
    /* §5.4.2 (Figure 8): a leader commits by counting replicas only entries of its own
     * term; earlier entries are committed indirectly by the Log Matching Property. */
    if (hr__log_term(&r->log, n) != r->term && !r->cfg.unsafe_commit_old_terms) {
        return;
    }
    r->commit = n;
    hr__conf_after_commit(r);
    hr__read_commit_moved(r);
}
