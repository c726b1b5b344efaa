/*
 * raft_impl.h: the core's private state, shared by the files of csrc/core (raft.c: inputs,
 * roles and output; election.c: votes; replication.c: log replication and commit).
 */
#ifndef HR_CORE_RAFT_IMPL_H
#define HR_CORE_RAFT_IMPL_H

#include "log.h"
#include "prng.h"
#include "raft.h"

/* What a leader knows of one follower (thesis §3.5, and etcd's Progress). */
struct hr__progress {
    hr_id_t id;
    hr_index_t match;          /* highest index known to match the leader's log */
    hr_index_t next;           /* next index to send */
    bool replicating;          /* true: pipeline up to max_inflight; false: probe one at a time */
    bool probe_sent;           /* probing: a probe is out; wait for its answer or a heartbeat */
    bool want_send;            /* something to send at the next output batch */
    bool heartbeat;            /* the next batch must carry a message even if empty */
    bool recent_active;        /* heard from since the last CheckQuorum round */
    hr_time_t last_contact;    /* leader: when it last answered (status: last contact) */
    uint32_t inflight;         /* AppendEntries with entries not yet acknowledged */
    hr_index_t *inflight_last; /* ring of their last indexes, max_inflight long */
    uint32_t inflight_head;
    hr_time_t progress_time; /* when match last advanced (stall detection) */
    uint64_t sent_seq;       /* seq of the last AppendEntries sent to it (hr_msg.seq) */
    uint64_t match_seq;      /* sent_seq when match last changed: answers to messages up
                              * to it may have been written before that change */
    hr_index_t snapshot;  /* the snapshot offered and not yet installed (0: none) */
    hr_time_t snapshot_sent; /* when it was last offered */
    int vote;                /* this election: 0 unknown, 1 granted, -1 rejected */
    bool member;             /* in the configuration (only self's and leaving slots may
                              * not be) */
    bool voter;              /* a voter of the configuration */
    /* Leader only: a server the configuration no longer holds, kept so that it learns it
     * is out (membership.c, "Leaving slots"): never counted, dropped once it has
     * acknowledged a message that carried a commit index covering leave_index (the entry
     * of the configuration that left it out), or at leave_until. */
    bool leaving;
    hr_index_t leave_index;
    uint64_t leave_seq;      /* the first APPEND that carried that commit to it (0: none) */
    hr_time_t leave_until;
    /* The read round out (read.c): sent_seq when it started, and whether an APPEND_RESP
     * echoing a later seq confirmed the leadership since. Kept in the slot so that a
     * configuration change during a round (rebuild_peers) carries them along. */
    uint64_t round_seq;
    bool round_ack;
};

/* A configuration: its encoded bytes (a blob the core holds a reference on), the index of
 * the entry that made it (0: bootstrap or storage's), and its servers decoded (addresses
 * point into the blob). */
struct hr__conf {
    struct hr_blob *blob;
    hr_index_t index;
    size_t n;
    struct hr_server s[HR_MAX_NODES];
};

struct hr__msgvec {
    struct hr_msg *v;
    size_t len, cap;
};

struct hr_raft {
    struct hr_config cfg;
    struct hr_prng prng;

    /* Persistent state (Figure 2). */
    hr_term_t term;
    hr_id_t vote;
    struct hr__log log;

    /* Volatile state. */
    int role;
    hr_id_t leader;
    hr_index_t commit;
    hr_index_t persisted; /* our own log is durable up to here */
    hr_index_t snap_index; /* the latest snapshot's last entry (0: none) */
    hr_term_t snap_term;

    /* The servers of the configuration in use, and our own slot (which is there even when
     * we are not in the configuration: member and voter false). */
    struct hr__progress peers[HR_MAX_NODES + 1];
    size_t n_peers;
    size_t self; /* our slot in peers */
    size_t n_voters;

    /* Membership (membership.c). conf: the configuration in use (the newest in the log, or
     * base). base: the one in effect at the snapshot (or bootstrap): the log's config
     * entries after base.index override it. */
    struct hr__conf conf, base;
    hr_index_t term_start; /* leader: the index of its term's first entry (the no-op) */
    hr_id_t promote;       /* leader: the learner to promote once caught up (0: none) */
    bool was_member;       /* a configuration this core used held us (hr_raft_removed) */
    uint64_t seq_floor;    /* the highest sent_seq of a slot dropped: a slot made later for
                            * the same server counts on from it, so that a late answer to
                            * the old slot's messages never passes for a newer one */

    /* Time. */
    hr_time_t now;
    hr_time_t election_deadline;
    hr_time_t heartbeat_deadline;
    hr_time_t quorum_deadline; /* leader: next CheckQuorum round */
    bool election_grace;       /* the election deadline was moved once for lateness */
    bool quorum_grace;         /* the CheckQuorum deadline was moved once for lateness */
    hr_time_t leader_contact;  /* follower: last message from the leader */

    /* Output not yet handed out. */
    struct hr_hard_state emitted_hs; /* the hard state of the last batch */
    hr_index_t unstable;             /* first entry not yet handed to storage */
    hr_index_t truncate;             /* storage must drop entries >= this (0: none) */
    hr_index_t handed;               /* last committed index handed to the FSM */
    struct hr__msgvec msgs, msgs_after;
    bool soft_changed;
    bool install;                     /* a snapshot from the leader waits to be handed out */
    struct hr_blob *install_data;

    /* Reads (read.c). pending: reads waiting for an answer; an entry with round 0 waits for
     * the next heartbeat round. One round is out at a time: each slot's round_seq is its
     * sent_seq when it started, and an APPEND_RESP echoing a later seq confirms the
     * leadership of that round (round_ack). */
    struct hr__read *reads;
    size_t n_reads, cap_reads;
    uint64_t round;       /* the round out (0: none) */
    uint64_t last_round;  /* the last round started */
    hr_time_t round_start;
    hr_time_t lease_until; /* read_lease: no other leader can exist before this */
    hr_time_t started;     /* when this core was created (read_lease: see hr__in_lease) */
    bool lease_off;        /* a transfer was tried this term: no lease reads until the next */
    struct hr_read_state *reads_out, *out_reads;
    size_t n_reads_out, cap_reads_out, n_out_reads, cap_out_reads;

    /* Leadership transfer (transfer.c). */
    hr_id_t transfer_target;
    hr_time_t transfer_deadline;
    bool transfer_sent;     /* TIMEOUT_NOW went out */
    bool campaign_transfer; /* hr__campaign is running for a TIMEOUT_NOW */

    /* The batch in the caller's hands. */
    struct hr__msgvec out_msgs, out_after;
    struct hr_entry *out_entries, *out_committed;
    struct hr_blob *out_install_data;
    struct hr_blob *out_install_conf;
};

/* raft.c */
void hr__become_follower(struct hr_raft *r, hr_term_t term, hr_id_t leader);
void hr__become_candidate(struct hr_raft *r);
void hr__become_precandidate(struct hr_raft *r);
void hr__become_leader(struct hr_raft *r);
void hr__reset_election_timer(struct hr_raft *r);
int hr__send(struct hr_raft *r, struct hr_msg *m, bool after_persist);
struct hr__progress *hr__peer(struct hr_raft *r, hr_id_t id);
size_t hr__quorum(const struct hr_raft *r);

/* membership.c */
/* Set up base and conf from the starting state (bootstrap from cfg.voters without one).
 * 0, HR_ECORRUPT (storage's configuration does not decode), HR_ENOMEM. */
int hr__conf_init(struct hr_raft *r, struct hr_blob *conf, hr_index_t conf_index, char *err,
                  size_t errlen);
void hr__conf_free(struct hr_raft *r);
/* The log grew by e (any type): a config entry takes effect now. */
int hr__conf_appended(struct hr_raft *r, const struct hr_entry *e);
/* The log lost every entry >= from: fall back to the newest configuration left. */
int hr__conf_truncated(struct hr_raft *r, hr_index_t from);
/* A snapshot through index: base becomes the configuration in effect there (call before
 * the log is compacted). conf/conf_index: the leader's (an install; NULL: keep ours). */
int hr__conf_snapshot(struct hr_raft *r, hr_index_t index, struct hr_blob *conf,
                      hr_index_t conf_index, bool install);
/* The leader's commit index or a follower's match moved: promote a caught-up learner; a
 * leader whose removal committed steps down. */
void hr__conf_after_commit(struct hr_raft *r);
void hr__conf_maybe_promote(struct hr_raft *r);
bool hr__conf_may_campaign(const struct hr_raft *r);
/* Leaving slots (membership.c). An APPEND to pr goes out: note whether it tells a leaving
 * server that its removal committed. */
void hr__conf_leave_sent(struct hr_raft *r, struct hr__progress *pr, const struct hr_msg *m);
/* Leader: a leaving server answered m (accepted; progressed: its match advanced): drop its
 * slot if it now knows it is out. pr is invalid afterwards if so; call last. */
void hr__conf_leave_acked(struct hr_raft *r, struct hr__progress *pr, const struct hr_msg *m,
                          bool progressed);
/* Drop the leaving slots that expired (or all of them, on a node that no longer leads).
 * Only where no caller holds a slot pointer (tick, becoming leader). */
void hr__conf_leave_tick(struct hr_raft *r);
/* Leader: a server outside the configuration asked for a vote: it has not learnt that it
 * is out (its slot expired first); give it a leaving slot again. */
void hr__conf_outsider(struct hr_raft *r, hr_id_t id);

/* election.c */
void hr__campaign(struct hr_raft *r, bool pre);
int hr__handle_vote(struct hr_raft *r, const struct hr_msg *m);
void hr__handle_vote_resp(struct hr_raft *r, const struct hr_msg *m);
bool hr__in_lease(const struct hr_raft *r);

/* replication.c */
int hr__handle_append(struct hr_raft *r, const struct hr_msg *m);
void hr__handle_append_resp(struct hr_raft *r, const struct hr_msg *m);
int hr__append_local(struct hr_raft *r, uint8_t type, struct hr_blob *data);
void hr__heartbeat(struct hr_raft *r);
int hr__flush_appends(struct hr_raft *r);
void hr__maybe_commit(struct hr_raft *r);
void hr__progress_reset(struct hr_raft *r, struct hr__progress *pr);

/* read.c */
struct hr__read {
    uint64_t ctx;
    hr_id_t from;     /* 0: a local read; else the follower that asked (READ_INDEX) */
    hr_index_t index; /* leader: the commit index recorded for it (0: not yet) */
    uint64_t round;   /* leader: the heartbeat round confirming it (0: not started) */
    hr_time_t deadline;
    hr_time_t time_ms; /* leader: its clock when it recorded index */
};
int hr__handle_read_index(struct hr_raft *r, const struct hr_msg *m);
void hr__handle_read_index_resp(struct hr_raft *r, const struct hr_msg *m);
/* An APPEND_RESP of the current term from a peer: it acknowledges the leader. */
void hr__read_ack(struct hr_raft *r, hr_id_t from, uint64_t seq);
/* Role or leader changed (set_role): fail what can no longer be answered. */
void hr__read_role_changed(struct hr_raft *r, int old_role, hr_id_t old_leader);
void hr__read_tick(struct hr_raft *r);
/* The earliest read deadline, if before t. */
hr_time_t hr__read_next_deadline(const struct hr_raft *r, hr_time_t t);
/* The leader's commit index moved: reads waiting for an entry of its term may start. */
void hr__read_commit_moved(struct hr_raft *r);
bool hr__read_has_ready(const struct hr_raft *r);
void hr__read_ready(struct hr_raft *r, struct hr_ready *rd);
void hr__read_advance(struct hr_raft *r);
void hr__read_free(struct hr_raft *r);

/* transfer.c */
int hr__handle_timeout_now(struct hr_raft *r, const struct hr_msg *m);
/* Leader: pr acknowledged entries; send TIMEOUT_NOW if it is the target and caught up. */
void hr__transfer_progress(struct hr_raft *r, struct hr__progress *pr);
void hr__transfer_tick(struct hr_raft *r);

/* snapshot.c */
int hr__handle_snapshot(struct hr_raft *r, const struct hr_msg *m);
/* Whether pr needs a snapshot (the entry before its next one was compacted away); if so,
 * offer it (at most once per election timeout) and return true. */
bool hr__maybe_offer_snapshot(struct hr_raft *r, struct hr__progress *pr);

#endif
