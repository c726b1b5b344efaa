/*
 * raft.h: the consensus core of Helios Raft.
 *
 * A pure, deterministic state machine in the style of etcd's raft: it does no I/O, reads no
 * clock and includes nothing but libc. It is driven by four kinds of input
 *
 *   hr_raft_step()      a message received from a peer
 *   hr_raft_tick()      the passage of time (the caller's clock, in milliseconds)
 *   hr_raft_propose()   a new command from a client (leader only)
 *   hr_raft_persisted() "storage has made the log durable up to index i"
 *
 * and produces its output one batch at a time (hr_raft_ready / hr_raft_advance): hard state
 * to persist, entries to append, messages to send, committed entries to apply.
 *
 * Threading: a struct hr_raft and everything it hands out belong to one thread at a time;
 * nothing here locks. Same inputs in the same order give the same outputs: randomness (the
 * election timeouts) comes from a PRNG seeded through hr_config.seed.
 */
#ifndef HR_RAFT_H
#define HR_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blob.h"
#include "error.h"

typedef uint64_t hr_term_t;
typedef uint64_t hr_index_t;
typedef uint64_t hr_id_t;   /* 0 means "nobody" */
typedef uint64_t hr_time_t; /* milliseconds on the caller's clock */

/* The largest cluster the core tracks progress for. */
#define HR_MAX_NODES 64
/* The most entries one AppendEntries may carry: the codec refuses more (a bound on what a
 * frame from the network can make a node allocate). */
#define HR_MAX_ENTRIES_PER_APPEND 65536

enum hr_role { HR_FOLLOWER = 0, HR_PRECANDIDATE, HR_CANDIDATE, HR_LEADER };

enum hr_entry_type {
    HR_ENTRY_COMMAND = 1, /* a client command for the FSM */
    HR_ENTRY_NOOP = 2,    /* appended by a new leader to commit its predecessors' entries */
    HR_ENTRY_CONFIG = 3,  /* a cluster configuration: the payload is hr_conf_encode's
                           * (see "Membership" below) */
};

/*
 * A log entry. The payload is a reference-counted blob (blob.h): copying an entry means
 * copying the struct and retaining the blob; whoever holds a copy releases it.
 */
struct hr_entry {
    hr_term_t term;
    hr_index_t index;
    hr_time_t time_ms;    /* the leader's clock when it appended the entry (for TTLs) */
    uint8_t type;         /* enum hr_entry_type */
    struct hr_blob *data; /* may be NULL for an empty payload */
};

enum hr_msg_type {
    HR_MSG_APPEND = 1, /* AppendEntries; a heartbeat is one with no entries */
    HR_MSG_APPEND_RESP,
    HR_MSG_VOTE, /* RequestVote */
    HR_MSG_VOTE_RESP,
    HR_MSG_PREVOTE, /* thesis §9.6: a vote that changes no state */
    HR_MSG_PREVOTE_RESP,
    HR_MSG_SNAPSHOT, /* InstallSnapshot: the leader's snapshot, for a follower that needs
                      * entries the leader has compacted away (fields: struct hr_msg) */
    HR_MSG_SNAPSHOT_RESP,
    HR_MSG_TIMEOUT_NOW, /* leadership transfer (thesis §3.10): the leader tells the target it
                         * is up to date and should start an election at once (read.c's
                         * sibling transfer.c) */
    HR_MSG_READ_INDEX,  /* a follower asks the leader for a read index (thesis §6.4):
                         * seq = the follower's read context */
    HR_MSG_READ_INDEX_RESP, /* index = the read index, seq = the context it answers,
                             * time_ms = the leader's clock when it fixed the index (0:
                             * unknown); reject: the sender is not the leader (or could
                             * not confirm it) */
    HR_MSG_TYPE_COUNT
};

/*
 * One message. A flat struct: each type uses the fields its comment names and leaves the
 * others zero. A message owns its entries array and holds a reference on each entry's blob;
 * hr_msg_release() frees both.
 */
struct hr_msg {
    uint8_t type;
    hr_id_t from, to;
    hr_term_t term;

    /* APPEND: the entry before `entries`, the leader's commit index, the entries. */
    hr_index_t prev_index;
    hr_term_t prev_term;
    hr_index_t commit;
    struct hr_entry *entries;
    uint32_t n_entries;

    /* APPEND_RESP: reject = false: the follower's log matches the leader's up to `index`.
     * reject = true: `index` is the prev_index that did not match, and the hint says where
     * the logs may still match: hint_index = the last entry of the follower's log at or
     * before prev_index (its last entry if the log is shorter) whose term is not above the
     * leader's prev_term, hint_term = that entry's term. Every entry after it conflicts, so
     * the leader skips back by terms, not one entry at a time (spec/golden/
     * fast_backoff.txt). `last_index` is the follower's last log index.
     * VOTE_RESP, PREVOTE_RESP: reject = the vote was not granted. */
    bool reject;
    hr_index_t index;
    hr_index_t hint_index;
    hr_term_t hint_term;
    hr_index_t last_index;

    /* APPEND: the leader's sequence number of this message, counted per follower (from 1,
     * never reset while the leader runs). APPEND_RESP: the seq of the APPEND it answers, so
     * that the leader can tell an answer to a message sent after it learned something
     * from one sent before (the network duplicates and reorders); 0 answers no APPEND
     * (a snapshot install) or comes from a peer that does not echo it. */
    uint64_t seq;

    /* VOTE, PREVOTE: the candidate's last log entry (the §5.4.1 up-to-date check). */
    hr_index_t cand_last_index;
    hr_term_t cand_last_term;
    /* VOTE: the candidate campaigns because its leader sent it TIMEOUT_NOW (a leadership
     * transfer): voters skip the leader-lease check for it (transfer.c says why that is
     * safe). */
    bool transfer;

    /* SNAPSHOT (InstallSnapshot, Figure 13): the last entry the snapshot covers, and the
     * bytes from `offset` on (a chunk; `done` on the last one). The core itself emits an
     * offer with no bytes: the node layer streams the snapshot it stored, and feeds the
     * receiving core each chunk (for term and leader checks) and, once the whole snapshot
     * is durable on its side, the final message with done set. The answer to a done
     * message is an APPEND_RESP accepting up to snap_index. */
    hr_index_t snap_index;
    hr_term_t snap_term;
    uint64_t offset;
    bool done;
    struct hr_blob *snap_data; /* owned like entry payloads (hr_msg_copy/release) */
    /* SNAPSHOT: the configuration in effect at snap_index (hr_conf_encode's bytes) and the
     * index of the entry that made it (0: the bootstrap one). The core's offer carries it;
     * the node layer must hand it back in the final (done) message, with the bytes: a
     * follower that takes the snapshot drops its whole log, configurations included. NULL
     * in a done message: the follower keeps the configuration it has (an embedding whose
     * membership never changes). Owned like snap_data. Not in the wire format yet. */
    struct hr_blob *conf;
    hr_index_t conf_index;

    /* READ_INDEX_RESP: the leader's clock (the one it stamps entries with, hr_entry.time_ms)
     * when it fixed the read index; 0: unknown (a sender that does not fill it in). */
    hr_time_t time_ms;
};

/* Deep-copy m into *out (the entries array is copied, blobs retained). */
int hr_msg_copy(struct hr_msg *out, const struct hr_msg *m);
/* Free what m owns and zero it. */
void hr_msg_release(struct hr_msg *m);
/* An estimate of the size m takes on the wire (the core cannot call the codec, which sits
 * above it): fixed header plus entry headers plus payloads. The simulator counts with it. */
size_t hr_msg_wire_size(const struct hr_msg *m);
/* Lower-case names, also the Lua API's (stats keys, transport filters): keep them stable. */
const char *hr_msg_type_name(int type);

/* What must survive a crash besides the log. */
struct hr_hard_state {
    hr_term_t term;
    hr_id_t vote;
};

struct hr_config {
    hr_id_t id;
    /* The bootstrap configuration (voters without addresses), used only when the starting
     * state carries none (struct hr_raft_state.conf); copied. Empty (n_voters = 0): a new
     * server that waits to be added by a leader (it never campaigns until a configuration
     * in its log makes it a voter). */
    const hr_id_t *voters;
    size_t n_voters;
    uint32_t election_timeout_ms; /* randomized in [E, 2E) */
    uint32_t heartbeat_timeout_ms; /* the leader's heartbeat interval (an idle leader sends
                                    * an empty AppendEntries this often); less than
                                    * election_timeout_ms */
    uint32_t max_entries_per_append; /* at most HR_MAX_ENTRIES_PER_APPEND */
    uint32_t max_append_bytes;       /* payload bytes per AppendEntries (one entry always
                                      * goes, however large) */
    uint32_t max_inflight;           /* AppendEntries with entries in flight per peer */
    bool prevote;
    bool check_quorum;
    uint64_t seed;
    /* Test-only: count entries of earlier terms towards commit (breaks the Figure 8 rule),
     * so specs can show that the invariant checker catches a broken core. */
    bool unsafe_commit_old_terms;
    /* Test-only: grant votes without the log up-to-date check (breaks §5.4.1). */
    bool unsafe_skip_log_check;
    /* Test-only: a candidate asks learners for votes too and counts their grants (breaks
     * "a learner never votes"; csrc/sim/check.c must catch the leader it elects). */
    bool unsafe_count_learner_votes;
    /* Lease reads (thesis §6.4.1): a leader that heard from a quorum recently answers
     * hr_raft_read_index without a heartbeat round. Valid only with check_quorum (the
     * followers' refusal to vote within an election timeout of hearing from the leader is
     * what the lease rests on); read.c states the clock-drift bound it assumes. */
    bool read_lease;
    /* Test-only: answer reads with the commit index at once, with no heartbeat round and
     * no wait for an entry of the leader's term (breaks linearizable reads), so specs can
     * show that the simulator's read check catches it. */
    bool unsafe_read_no_confirm;
};

/* Fill c with the documented defaults (docs/lua-api.md, the options of raft.new; prevote
 * and check_quorum on). */
void hr_config_defaults(struct hr_config *c);
/* 0, or HR_EINVAL with a message naming the field in err (errlen bytes). */
int hr_config_validate(const struct hr_config *c, char *err, size_t errlen);

/* A read (hr_raft_read_index) the core has an answer for. status 0: the read may be
 * served once the FSM has applied up to `index` (and not before); otherwise HR_ENOTLEADER
 * (this node or the leader it asked lost or never had leadership) or HR_ETIMEOUT (no quorum
 * confirmed leadership within an election timeout): fail the read, never serve it from
 * local state. time_ms (status 0): the leader's clock, the one it stamps entries with, when
 * it fixed `index`; a moment between the read's start and its answer, so an FSM may judge
 * time-dependent state (TTLs) against it the same on every replica (docs/atlas.md). 0:
 * unknown (a leader that does not send it). */
struct hr_read_state {
    uint64_t ctx;
    hr_index_t index;
    int status;
    hr_time_t time_ms;
};

/* The output batch. Everything in it is owned by the core and stays valid until
 * hr_raft_advance(); the caller retains what it keeps longer (blobs, hr_msg_copy). */
struct hr_ready {
    bool has_hard_state;
    struct hr_hard_state hs;

    /* Persist: first drop every entry at index >= truncate (0: nothing), then append. */
    hr_index_t truncate;
    struct hr_entry *entries;
    size_t n_entries;

    /* Send now: the leader's AppendEntries (thesis §10.2.1: the leader may send entries
     * before its own write is durable). */
    struct hr_msg *msgs;
    size_t n_msgs;

    /* Send only once this batch and every earlier one are durable: votes, vote requests,
     * append responses (a follower acknowledges only what is on disk). */
    struct hr_msg *msgs_after_persist;
    size_t n_msgs_after_persist;

    /* Install a snapshot received from the leader, before anything else in this batch:
     * persist it and drop the whole log (ordered with the writes, like them acknowledged
     * only once durable), and restore the FSM from it. data is the snapshot's bytes if the
     * final message carried them (the simulator's whole-snapshot transfer), or NULL when
     * the node layer assembled them itself (the chunked transfer). */
    bool has_snapshot;
    struct {
        hr_index_t index;
        hr_term_t term;
        struct hr_blob *data;
        /* The configuration in effect at index (as struct hr_msg.conf; NULL if the leader's
         * message carried none): storage keeps it with the snapshot and gives it back at
         * the next start (struct hr_raft_state.conf). */
        struct hr_blob *conf;
        hr_index_t conf_index;
    } snapshot;

    /* Apply to the FSM, in index order. */
    struct hr_entry *committed;
    size_t n_committed;

    /* Reads answered since the last batch (struct hr_read_state), in the order they were
     * answered. */
    struct hr_read_state *reads;
    size_t n_reads;

    /* Soft state, for observers: set when role, term or leader changed since the last
     * batch. */
    bool soft_changed;
    int role;
    hr_term_t term;
    hr_id_t leader;
};

/* What the core exposes for status tables and invariant checks. */
struct hr_progress_info {
    hr_id_t id;
    hr_index_t match, next;
    bool replicating; /* false: probing */
    bool snapshotting; /* waiting for a snapshot to be installed */
    uint32_t inflight;
    bool member; /* in the configuration (false for the node itself, when it is not, and
                  * for leaving slots) */
    bool voter;  /* a voter of the configuration (false: a learner, or not a member) */
    bool leaving; /* leader only: a server the configuration no longer holds, replicated to
                   * until it knows it is out (csrc/core/membership.c, "Leaving slots") */
    bool contact_known;    /* leader only, not for itself: contact_age is set */
    hr_time_t contact_age; /* ms since it last answered (or since this term's start), as
                            * of the core's clock (its last input or tick) */
};

struct hr_raft; /* opaque */

/* What a node starts from: what storage recovered, and how far the FSM already is. */
struct hr_raft_state {
    struct hr_hard_state hs;
    /* The last entry the newest snapshot covers (0, 0 without one); entries start after
     * it. */
    hr_index_t snapshot_index;
    hr_term_t snapshot_term;
    /* The log: entries[0].index <= snapshot_index + 1 (entries up to the snapshot's are
     * the trailing ones compaction kept for followers a little behind). */
    const struct hr_entry *entries;
    size_t n_entries;
    /* The FSM already reflects every entry up to here (a restored snapshot, or a node that
     * restarts its core under a live FSM after a storage failure): those are committed and
     * are not handed out again. snapshot_index <= applied <= last index. */
    hr_index_t applied;
    /* The newest configuration storage holds outside the log: the one in effect at
     * snapshot_index, kept with the snapshot (hr_ready.snapshot.conf on an install,
     * hr_raft_snapshot_conf for a snapshot the node took), and conf_index, the index of
     * the entry that made it (0: bootstrap). NULL: the bootstrap configuration of
     * hr_config.voters. The node starts in the newest configuration of this one and the
     * log's config entries (a config entry takes effect when appended, committed or not).
     * The core takes a reference of its own. */
    struct hr_blob *conf;
    hr_index_t conf_index;
};

/*
 * Create a node from its config and its starting state (entries are copied and their blobs
 * retained; nothing else is kept). Returns NULL on out-of-memory or on an invalid config or
 * state, with a message in err.
 */
struct hr_raft *hr_raft_new(const struct hr_config *c, const struct hr_raft_state *st,
                            hr_time_t now, char *err, size_t errlen);
void hr_raft_free(struct hr_raft *r);

/* Inputs. */
int hr_raft_step(struct hr_raft *r, const struct hr_msg *m); /* m is borrowed */
void hr_raft_tick(struct hr_raft *r, hr_time_t now);
/* Move the clock to now (never back) without acting on any timeout: what the caller hands
 * over next (a message, a proposal) happens at now, and the timeouts that fell due are
 * judged by the next hr_raft_tick, after it. A caller that was held up (a busy loop, a
 * descheduled process) first takes in the messages that arrived meanwhile, so that a
 * heartbeat waiting in its socket still counts (docs/architecture.md, "Batching and the
 * clock"). */
void hr_raft_set_clock(struct hr_raft *r, hr_time_t now);
/* Leader only: append a command. Returns 0 and its index and term, or HR_ENOTLEADER; or
 * HR_EBUSY while a leadership transfer is under way (hr_raft_transfer). The payload is
 * copied. */
int hr_raft_propose(struct hr_raft *r, uint8_t type, const void *data, size_t len,
                    hr_index_t *index, hr_term_t *term);
/* A linearizable read (ReadIndex, thesis §6.4), identified by ctx (chosen by the caller,
 * unique among its reads in flight). On the leader: once it has committed an entry of its
 * term, it records its commit index and confirms its leadership with one heartbeat round
 * (reads that arrive while no round is out share the next one); on a follower: it asks the
 * leader (READ_INDEX). The answer comes in a later batch (hr_ready.reads). 0, or
 * HR_ENOTLEADER at once when no leader is known, HR_ENOMEM. (read.c) */
int hr_raft_read_index(struct hr_raft *r, uint64_t ctx);
/* Leader only: hand leadership to `target` (0: the voter with the longest matching log).
 * Proposals are refused with HR_EBUSY until it ends: the target is brought up to date and
 * sent TIMEOUT_NOW; if it has not taken over within an election timeout the transfer is
 * abandoned and the leader goes on. 0; HR_ENOTLEADER; HR_EBUSY (a transfer is under way);
 * HR_EINVAL (target unknown, itself, or no other voter). (transfer.c) */
int hr_raft_transfer(struct hr_raft *r, hr_id_t target);
/* The target of the transfer under way, or 0. */
hr_id_t hr_raft_transferee(const struct hr_raft *r);

/* Storage made the log durable up to `index`, whose entry has `term`. */
void hr_raft_persisted(struct hr_raft *r, hr_index_t index, hr_term_t term);
/* The node holds a durable snapshot of the FSM through `index` (which it has applied):
 * followers that need entries before `keep_from` get the snapshot instead, and the core
 * forgets those entries (storage drops them on its own). keep_from is clamped to
 * [first index, index + 1]; index + 1 - trailing_logs keeps that many entries for followers
 * a little behind. 0, or HR_EINVAL if index was not applied or is older than the current
 * snapshot. */
int hr_raft_snapshot_taken(struct hr_raft *r, hr_index_t index, hr_index_t keep_from);
/* The keep_from for hr_raft_snapshot_taken that keeps at most max_entries entries and at most
 * max_bytes payload bytes of those up to index (trailing_logs, trailing_logs_bytes): with big
 * entries a count alone would keep gigabytes (docs/architecture.md, "Snapshots"). */
hr_index_t hr_raft_trailing_from(const struct hr_raft *r, hr_index_t index, uint64_t max_entries,
                                 uint64_t max_bytes);
/* Payload bytes of the entries the core holds in memory (its log, first to last index). */
uint64_t hr_raft_log_bytes(const struct hr_raft *r);
/* The latest snapshot's last entry ((0, 0) if none). */
hr_index_t hr_raft_snapshot_index(const struct hr_raft *r);
hr_term_t hr_raft_snapshot_term(const struct hr_raft *r);

/*
 * Membership (Raft thesis chapter 4). A configuration is a set of servers, each a voter or
 * a learner, with an address that is opaque bytes to the core. It travels as the payload
 * of an HR_ENTRY_CONFIG entry holding the whole new configuration (not a delta), and with
 * snapshots. Each server uses the newest configuration in its log, from the moment the
 * entry is appended; dropping that entry (a conflicting leader truncates it) falls back
 * to the one before. Changes are single-server and one at a time (the reasons are in
 * csrc/core/membership.c).
 *
 * Voters elect and count towards commit. Learners receive the log but never campaign, and
 * a candidate never counts their votes. A server outside the configuration (a new one,
 * or one removed) never campaigns either.
 */
#define HR_MAX_ADDR 1024 /* bytes of one server's address */

struct hr_server {
    hr_id_t id;
    bool voter;             /* false: a learner */
    const uint8_t *addr;    /* addr_len bytes, opaque to the core; borrowed (see each call) */
    size_t addr_len;
};

/* The payload of a config entry: version byte 1, u32 count, then per server u64 id, u8
 * flags (bit 0: voter), u16 address length, the address; little-endian. Encode: 0 and a
 * new blob (refs 1) in *out; HR_EINVAL for more than HR_MAX_NODES servers, a zero or
 * repeated id, or an address over HR_MAX_ADDR; HR_ENOMEM. */
int hr_conf_encode(const struct hr_server *servers, size_t n, struct hr_blob **out);
/* Decode b (NULL: the empty configuration) into out (max entries): 0 and the count in *n;
 * HR_ECORRUPT if it is not a valid encoding. out[i].addr points into b. */
int hr_conf_decode(const struct hr_blob *b, struct hr_server *out, size_t max, size_t *n);

/*
 * Leader only: start a membership change. 0 and the index of the config entry appended
 * (*index may be NULL; 0 when nothing was appended), or:
 *   HR_ENOTLEADER  not the leader;
 *   HR_EBUSY       a change is in progress (a config entry not committed yet, or a learner
 *                  waiting to be promoted), or no entry of this leader's term has
 *                  committed yet;
 *   HR_EINVAL      the change makes no sense (add: id 0, already a voter, or an address
 *                  over HR_MAX_ADDR; remove: not a member, or the last voter).
 * add: a server not in the configuration joins as a learner. With voter set, the leader
 * promotes it (a second config entry) once it has caught up: its match is within one full
 * pipeline (max_inflight * max_entries_per_append entries, what the leader sends without
 * waiting, i.e. in one round trip, well within an election timeout) of the leader's last
 * index, it is replicating (not probing, not receiving a snapshot), its match is not 0 and
 * not below the leader's snapshot (nothing it lacks needs a snapshot), and it acknowledged
 * within the last election timeout (or holds the leader's whole log). add(voter) on a learner arms that promotion (0, no
 * entry yet). The promotion is the leader's volatile state: a new leader does not resume
 * it (the caller asks again). remove: drops a voter or a learner (a pending promotion of
 * it too). A leader that removes itself (or whose removal another leader started) keeps
 * leading without counting itself until the change commits, then steps down. addr is
 * copied.
 */
int hr_raft_add(struct hr_raft *r, hr_id_t id, const void *addr, size_t addr_len, bool voter,
                hr_index_t *index);
int hr_raft_remove(struct hr_raft *r, hr_id_t id, hr_index_t *index);
/* The configuration this node uses now: up to max servers into out (addresses borrowed
 * until the next input), the count as result, and in *index (may be NULL) the index of its
 * entry (0: bootstrap or storage's). */
size_t hr_raft_configuration(const struct hr_raft *r, struct hr_server *out, size_t max,
                             hr_index_t *index);
/* The configuration in effect at `index` (snapshot_index <= index <= last index), encoded,
 * for a snapshot through index the node is writing: borrowed until the next input (retain
 * it to keep it). *conf_index: the index of its entry. */
const struct hr_blob *hr_raft_snapshot_conf(const struct hr_raft *r, hr_index_t index,
                                            hr_index_t *conf_index);
/* Whether this node is a voter of its configuration. */
bool hr_raft_is_voter(const struct hr_raft *r);
/* Whether it may start an election: a voter, or a voter of the previous configuration
 * while the one that removed or demoted it is not known committed (membership.c). */
bool hr_raft_may_campaign(const struct hr_raft *r);
/* Whether this node knows it is out of the cluster: a configuration it used held it, its
 * configuration does not, and that configuration, or the one in effect at its commit
 * index, is known committed without it (a later change it holds cannot add it back without
 * holding it). A removed node restarted from a snapshot taken after its removal may not
 * know it (it then shows as a follower that never campaigns). It never campaigns again (unless a later configuration adds it
 * back); status shows role "removed". A leader replicates to a server it removed until
 * this holds there (membership.c, "Leaving slots"). A new server waiting to be added (an
 * empty configuration) is not removed. */
bool hr_raft_removed(const struct hr_raft *r);
/* The learner whose promotion the leader waits for (0: none). */
hr_id_t hr_raft_promoting(const struct hr_raft *r);

/* Output. */
bool hr_raft_has_ready(const struct hr_raft *r);
void hr_raft_ready(struct hr_raft *r, struct hr_ready *rd);
void hr_raft_advance(struct hr_raft *r, struct hr_ready *rd);
/* The next time hr_raft_tick() has something to do (an election or heartbeat is due). */
hr_time_t hr_raft_next_deadline(const struct hr_raft *r);

/* Read-only views (for status, metrics and the simulator's invariant checks). */
hr_id_t hr_raft_id(const struct hr_raft *r);
int hr_raft_role(const struct hr_raft *r);
hr_term_t hr_raft_term(const struct hr_raft *r);
hr_id_t hr_raft_vote(const struct hr_raft *r);
hr_id_t hr_raft_leader(const struct hr_raft *r);
hr_index_t hr_raft_commit_index(const struct hr_raft *r);
hr_index_t hr_raft_first_index(const struct hr_raft *r);
hr_index_t hr_raft_last_index(const struct hr_raft *r);
/* The entry at index, or NULL outside [first, last]. Borrowed until the next input. */
const struct hr_entry *hr_raft_entry(const struct hr_raft *r, hr_index_t index);
/* 0 where unknown: outside [first - 1, last] other than the snapshot's own index; the term
 * of index 0 is 0. */
hr_term_t hr_raft_term_at(const struct hr_raft *r, hr_index_t index);
size_t hr_raft_progress(const struct hr_raft *r, struct hr_progress_info *out, size_t max);
/* Lower-case names, also the Lua API's (status.role, helios.core roles): keep them stable. */
const char *hr_role_name(int role);

#endif
