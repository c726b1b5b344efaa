/*
 * sim.c: the simulator's lifecycle, event loop and faults (see sim.h). The network is in
 * net.c, the disks in disk.c, the invariant checks in check.c, taking snapshots in snap.c
 * and InstallSnapshot streams in xfer.c.
 *
 * Every input to a node goes through after_input(): the incremental invariant checks, then
 * the node's next tick is (re)scheduled. A tick event carries a generation so that a tick
 * superseded by an earlier one is ignored when it fires; every event of a node carries its
 * incarnation so that a crash cancels its pending disk and tick events.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STOP_INVARIANT HR__STOP_INVARIANT
#define STOP_HOOK HR__STOP_HOOK

void hr__sim_stop(struct hr_sim *s, int code, const char *fmt, ...)
{
    if (s->stop_code != 0) {
        return;
    }
    s->stop_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
}

void hr__sim_check_failed(struct hr_sim *s)
{
    hr__sim_stop(s, STOP_INVARIANT, "%s", hr__check_error(s->check));
}

static void halt_later(struct hr_sim *s, struct hr__simnode *sn)
{
    if (!sn->halt) {
        sn->halt = true;
        s->halts++;
    }
}

void hr__sim_disk_failed(struct hr_sim *s, struct hr__simnode *sn, int rc, const char *what)
{
    if (rc == HR__DISK_CRASHED) {
        /* Not now: the caller is in the middle of the node's event. */
        halt_later(s, sn);
        return;
    }
    hr__sim_stop(s, STOP_INVARIANT, "storage: node %" PRIu64 ": %s failed (%s): %s", sn->id,
                 what, hr_strerror(rc), hr__disk_errmsg(&sn->disk));
}

struct hr__ev *hr__sim_ev_new(struct hr_sim *s)
{
    struct hr__ev *ev = s->free_evs;
    if (ev != NULL) {
        s->free_evs = ev->next_free;
    } else {
        ev = malloc(sizeof(*ev));
        if (ev == NULL) {
            return NULL;
        }
    }
    memset(ev, 0, sizeof(*ev));
    return ev;
}

void hr__sim_ev_free(struct hr_sim *s, struct hr__ev *ev)
{
    if (ev == NULL) {
        return;
    }
    hr_msg_release(&ev->msg);
    ev->next_free = s->free_evs;
    s->free_evs = ev;
}

static struct hr__simnode *node_of(struct hr_sim *s, hr_id_t id)
{
    return id >= 1 && id <= s->n ? &s->nodes[id - 1] : NULL;
}

void hr__sim_push_node_ev(struct hr_sim *s, struct hr__simnode *sn, int kind, uint64_t aux,
                          hr_time_t at)
{
    struct hr__ev *ev = hr__sim_ev_new(s);
    if (ev == NULL) {
        hr__sim_stop(s, HR_ENOMEM, "out of memory");
        return;
    }
    ev->kind = kind;
    ev->node = sn->id;
    ev->inc = sn->inc;
    ev->aux = aux;
    if (hr__queue_push(&s->q, at, ev) != 0) {
        hr__sim_ev_free(s, ev);
        hr__sim_stop(s, HR_ENOMEM, "out of memory");
    }
}

/* Schedule the node's tick at its next deadline if that is earlier than the one scheduled.
 * `fired`: a tick just ran at now, so the next one is at least a millisecond later (a core
 * that reports a deadline in the past must not spin the clock in place). */
static void schedule_tick(struct hr_sim *s, struct hr__simnode *sn, bool fired)
{
    hr_time_t d = hr_node_next_deadline(sn->node);
    if (d == UINT64_MAX) {
        return;
    }
    hr_time_t min = fired ? s->now + 1 : s->now;
    if (d < min) {
        d = min;
    }
    if (sn->tick_pending && sn->tick_at <= d) {
        return;
    }
    sn->tick_gen++;
    sn->tick_pending = true;
    sn->tick_at = d;
    hr__sim_push_node_ev(s, sn, HR__EV_TICK, sn->tick_gen, d);
}

void hr__sim_after_input(struct hr_sim *s, struct hr__simnode *sn)
{
    if (sn->node == NULL) {
        return;
    }
    if (s->stop_code == 0 && hr__check_node(s->check, sn->id) != 0) {
        hr__sim_check_failed(s);
    }
    schedule_tick(s, sn, false);
}

/* ---- the node's storage and FSM, as the simulator provides them ---- */

static int disk_write(void *ctx, uint64_t seq, const struct hr_hard_state *hs, hr_index_t truncate,
                      const struct hr_entry *entries, size_t n)
{
    struct hr__simnode *sn = ctx;
    struct hr_sim *s = sn->sim;
    if (s->stop_code == 0 && hr__check_append(s->check, sn->id, entries, n) != 0) {
        hr__sim_check_failed(s);
    }
    /* The node must write a log without holes: truncate within it, append at its end. */
    if (truncate != 0) {
        if (truncate > sn->disk_last + 1) {
            hr__sim_stop(s, STOP_INVARIANT,
                         "storage: node %" PRIu64 " truncated at index %" PRIu64
                         " beyond its last index %" PRIu64,
                         sn->id, truncate, sn->disk_last);
        } else {
            sn->disk_last = truncate - 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (entries[i].index != sn->disk_last + 1) {
            hr__sim_stop(s, STOP_INVARIANT,
                         "storage: node %" PRIu64 " appended index %" PRIu64
                         " after index %" PRIu64,
                         sn->id, entries[i].index, sn->disk_last);
            break;
        }
        sn->disk_last = entries[i].index;
    }
    hr_time_t due = s->now + hr_prng_range(&s->disk_prng, s->o.disk_latency_min_ms,
                                           s->o.disk_latency_max_ms);
    int rc = hr__disk_write(&sn->disk, seq, hs, truncate, entries, n, due, &due);
    if (rc != 0) {
        return rc;
    }
    hr__sim_push_node_ev(s, sn, HR__EV_DURABLE, seq, due);
    return 0;
}

static int disk_install(void *ctx, uint64_t seq, hr_index_t index, hr_term_t term,
                        struct hr_blob *data)
{
    struct hr__simnode *sn = ctx;
    struct hr_sim *s = sn->sim;
    if (data == NULL) {
        /* The simulator always hands the core every byte (xfer.c): a snapshot without them
         * would be one the storage does not hold. */
        hr__sim_stop(s, STOP_INVARIANT,
                     "storage: node %" PRIu64 " asked to install snapshot %" PRIu64
                     " without its bytes",
                     sn->id, index);
        return HR_EINVAL;
    }
    sn->disk_last = index;
    hr_time_t due = s->now + hr_prng_range(&s->disk_prng, s->o.disk_latency_min_ms,
                                           s->o.disk_latency_max_ms);
    int rc = hr__disk_install(&sn->disk, seq, index, term, data, due, &due);
    if (rc != 0) {
        return rc;
    }
    hr__sim_push_node_ev(s, sn, HR__EV_DURABLE, seq, due);
    return 0;
}

static void fsm_read(void *ctx, uint64_t read_ctx, hr_index_t index, hr_time_t time_ms, int status)
{
    struct hr__simnode *sn = ctx;
    struct hr_sim *s = sn->sim;
    if (s->stop_code != 0) {
        return;
    }
    if (status == 0 &&
        hr__check_read_served(s->check, sn->id, read_ctx, hr_node_applied(sn->node), time_ms,
                              s->now) != 0) {
        hr__sim_check_failed(s);
        return;
    }
    if (s->hooks.read != NULL) {
        s->hooks.read(s->hooks.ctx, sn->id, read_ctx, index, time_ms, status);
    }
}

static void fsm_apply(void *ctx, const struct hr_entry *e)
{
    struct hr__simnode *sn = ctx;
    struct hr_sim *s = sn->sim;
    if (s->stop_code != 0) {
        return;
    }
    if (hr__check_apply(s->check, sn->id, e) != 0) {
        hr__sim_check_failed(s);
        return;
    }
    int rc = s->hooks.apply != NULL ? s->hooks.apply(s->hooks.ctx, sn->id, e) : 0;
    if (s->o.snap.snapshot_threshold_bytes > 0) {
        hr__snap_applied(s, sn, hr_blob_len(e->data));
    }
    if (rc < 0) {
        hr__sim_stop(s, STOP_HOOK, "apply hook failed on node %" PRIu64 " at index %" PRIu64,
                     sn->id, e->index);
    } else if (rc > 0) {
        /* Not now: the node's own code is on the stack. run_halts crashes it once the
         * event is done. */
        halt_later(s, sn);
    }
}

/* The node hands over a ready batch's committed entries at once (struct hr_fsm). */
static void fsm_apply_run(void *ctx, const struct hr_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fsm_apply(ctx, &e[i]);
    }
}

/* Crash the nodes whose apply hook asked to halt (see struct hr_sim_hooks). */
static void run_halts(struct hr_sim *s)
{
    for (uint32_t i = 0; i < s->n && s->halts > 0; i++) {
        struct hr__simnode *sn = &s->nodes[i];
        if (sn->halt) {
            sn->halt = false;
            s->halts--;
            if (sn->alive) {
                hr_sim_crash(s, sn->id);
            }
        }
    }
}

/* The leader's snapshot replaces the FSM (node.c, when the core installs one). */
static void fsm_restore(void *ctx, hr_index_t index, hr_term_t term, struct hr_blob *data)
{
    struct hr__simnode *sn = ctx;
    struct hr_sim *s = sn->sim;
    if (s->stop_code != 0) {
        return;
    }
    struct hr_blob *conf = NULL, *fsm = NULL;
    hr_index_t conf_index;
    if (hr__snap_unframe(data, &conf, &conf_index, &fsm) != 0) {
        hr__sim_stop(s, STOP_INVARIANT, "snapshot: node %" PRIu64 " restores a snapshot "
                     "without its configuration", sn->id);
        return;
    }
    if (hr__check_restore(s->check, sn->id, index, term, fsm, false) != 0) {
        hr_blob_release(conf);
        hr_blob_release(fsm);
        hr__sim_check_failed(s);
        return;
    }
    if (s->hooks.restore == NULL ||
        s->hooks.restore(s->hooks.ctx, sn->id, index, term, fsm) != 0) {
        hr__sim_stop(s, STOP_HOOK,
                     "restore hook failed on node %" PRIu64 " (snapshot through index %" PRIu64
                     ")",
                     sn->id, index);
    }
    hr_blob_release(conf);
    hr_blob_release(fsm);
}

static void fsm_state(void *ctx, int role, hr_term_t term, hr_id_t leader)
{
    struct hr__simnode *sn = ctx;
    struct hr_sim *s = sn->sim;
    if (s->hooks.state != NULL) {
        s->hooks.state(s->hooks.ctx, sn->id, role, term, leader);
    }
}

/* Start (or restart) node sn from its durable image. */
static int start_node(struct hr_sim *s, struct hr__simnode *sn, char *err, size_t errlen)
{
    if (s->hooks.start != NULL) {
        s->hooks.start(s->hooks.ctx, sn->id);
    }
    struct hr_config cfg = s->o.config;
    cfg.id = sn->id;
    /* The first nodes bootstrap as the voters; a spawned one waits to be added. Either
     * takes the newest configuration its snapshot and log hold (hr_raft_state.conf). */
    cfg.voters = sn->spawned ? NULL : s->voters;
    cfg.n_voters = sn->spawned ? 0 : s->n_boot;
    /* A restarted node draws new election timeouts. */
    uint64_t x =
        s->o.seed ^ (sn->id * 0xd1b54a32d192ed03ULL) ^ (sn->restarts * 0x8cb92ba72f3d8dd7ULL);
    cfg.seed = hr__splitmix64(&x);
    struct hr_storage st = {sn, disk_write, disk_install};
    struct hr_network net = {sn, hr__net_send};
    struct hr_fsm fsm_cb = {sn, fsm_apply_run, fsm_state, fsm_restore, fsm_read};
    int rc = hr__disk_recover(&sn->disk, sn->note, sizeof(sn->note));
    if (rc != 0) {
        snprintf(err, errlen, "%s", sn->note);
        return rc;
    }
    const struct hr__disk_snap *snap = &sn->disk.snap;
    struct hr_blob *conf = NULL, *fsm = NULL;
    hr_index_t conf_index = 0;
    if (snap->index > 0 && hr__snap_unframe(snap->data, &conf, &conf_index, &fsm) != 0) {
        hr__sim_stop(s, STOP_INVARIANT, "storage: node %" PRIu64 ": its snapshot holds no "
                     "configuration", sn->id);
        snprintf(err, errlen, "snapshot without a configuration");
        return HR_EINVAL;
    }
    if (snap->index > 0) {
        /* The fresh FSM takes the snapshot's state first; the log after it follows through
         * apply. */
        if (hr__check_restore(s->check, sn->id, snap->index, snap->term, fsm, true) != 0) {
            /* Not HR_ECORRUPT: that one means "the disk refuses to open" and keeps the
             * simulation going. */
            hr__sim_check_failed(s);
            snprintf(err, errlen, "%s", hr__check_error(s->check));
            hr_blob_release(conf);
            hr_blob_release(fsm);
            return HR_EINVAL;
        }
        if (s->hooks.restore == NULL ||
            s->hooks.restore(s->hooks.ctx, sn->id, snap->index, snap->term, fsm) != 0) {
            snprintf(err, errlen, "restore hook failed (snapshot through index %" PRIu64 ")",
                     snap->index);
            hr_blob_release(conf);
            hr_blob_release(fsm);
            return STOP_HOOK;
        }
    }
    hr_blob_release(fsm);
    size_t n_entries;
    const struct hr_entry *entries = hr__disk_entries(&sn->disk, &n_entries);
    struct hr_raft_state rs = {.hs = sn->disk.hs,
                               .snapshot_index = snap->index,
                               .snapshot_term = snap->term,
                               .entries = entries,
                               .n_entries = n_entries,
                               .applied = snap->index,
                               .conf = conf,
                               .conf_index = conf_index};
    sn->node = hr_node_new(&cfg, &rs, s->now, &st, &net, &fsm_cb, err, errlen);
    hr_blob_release(conf);
    if (sn->node == NULL) {
        return HR_EINVAL;
    }
    sn->alive = true;
    sn->tick_pending = false;
    sn->flush_pending = false;
    sn->disk_last = hr__disk_last(&sn->disk);
    hr__xfer_reset(sn);
    hr__check_attach(s->check, sn->id, sn->node);
    hr__snap_start(s, sn);
    hr__sim_after_input(s, sn);
    return 0;
}

/* ---- public API ---- */

void hr_sim_options_defaults(struct hr_sim_options *o)
{
    memset(o, 0, sizeof(*o));
    o->n = 3;
    o->seed = 1;
    hr_config_defaults(&o->config);
    o->net.drop = 0;
    o->net.duplicate = 0;
    o->net.delay_min_ms = 1;
    o->net.delay_max_ms = 10;
    o->net.reorder = false;
    o->disk_latency_min_ms = 1;
    o->disk_latency_max_ms = 5;
    o->snap.snapshot_threshold = 0;
    o->snap.snapshot_interval_ms = 100;
    o->snap.trailing_logs = 10240;
    o->snap.snapshot_chunk_bytes = 1024;
    o->snap.window = 4;
    o->snap.snapshot_latency_min_ms = 5;
    o->snap.snapshot_latency_max_ms = 20;
    o->storage = HR_SIM_STORAGE_REAL;
    o->storage_faults = 0;
    o->storage_crash = 0;
    o->segment_size = 16384;
}

/* Set up node id's slot: its disk (empty) and stream tables. 0 or HR_ENOMEM. */
static int init_node(struct hr_sim *s, hr_id_t id)
{
    const struct hr_sim_options *o = &s->o;
    struct hr__simnode *sn = &s->nodes[id - 1];
    sn->sim = s;
    sn->id = id;
    sn->connected = true;
    sn->disk.keep_after_install = o->unsafe_install_keeps_log;
    if (hr__xfer_init(sn, HR_MAX_NODES) != 0) {
        return HR_ENOMEM;
    }
    if (o->storage == HR_SIM_STORAGE_REAL) {
        /* Its own stream, so that the model's draws stay as they were. */
        uint64_t y = o->seed ^ (id * 0x9e3779b97f4a7c15ULL) ^ 0x66737373ULL;
        struct hr__disk_real_options ro = {.seed = hr__splitmix64(&y),
                                           .flags = o->storage_faults,
                                           .crash_point = o->storage_crash,
                                           .segment_size = o->segment_size,
                                           .trailing_logs = o->snap.trailing_logs,
                                           .trailing_logs_bytes = o->snap.trailing_logs_bytes,
                                           .voters = s->voters,
                                           .n_voters = s->n_boot};
        if (hr__disk_real_init(&sn->disk, &ro) != 0) {
            return HR_ENOMEM;
        }
    }
    return 0;
}

static const char *net_invalid(const struct hr_sim_net *net)
{
    if (!(net->drop >= 0 && net->drop <= 1)) {
        return "drop must be within [0, 1]";
    }
    if (!(net->duplicate >= 0 && net->duplicate <= 1)) {
        return "duplicate must be within [0, 1]";
    }
    if (net->delay_min_ms > net->delay_max_ms) {
        return "delay_min_ms must not exceed delay_max_ms";
    }
    return NULL;
}

struct hr_sim *hr_sim_new(const struct hr_sim_options *o, const struct hr_sim_hooks *hooks,
                          char *err, size_t errlen)
{
    const char *bad = net_invalid(&o->net);
    if (o->n < 1 || o->n > HR_MAX_NODES) {
        bad = "n must be between 1 and 64";
    } else if (o->disk_latency_min_ms > o->disk_latency_max_ms) {
        bad = "disk_latency_ms: min must not exceed max";
    } else if (o->snap.snapshot_interval_ms == 0 || o->snap.snapshot_chunk_bytes == 0 ||
               o->snap.window == 0) {
        bad = "snapshot interval, chunk size and window must be positive";
    } else if (o->snap.snapshot_latency_min_ms > o->snap.snapshot_latency_max_ms) {
        bad = "snapshot_latency_ms: min must not exceed max";
    } else if (o->storage != HR_SIM_STORAGE_MODEL && o->storage != HR_SIM_STORAGE_REAL) {
        bad = "storage must be the model or real";
    } else if (!(o->storage_crash >= 0 && o->storage_crash <= 1)) {
        bad = "storage_crash must be within [0, 1]";
    } else if (o->storage == HR_SIM_STORAGE_REAL && o->segment_size < 256) {
        bad = "segment_size must be at least 256";
    } else if (o->storage == HR_SIM_STORAGE_REAL && o->unsafe_install_keeps_log) {
        bad = "unsafe_install_keeps_log breaks the model: it needs storage = model";
    }
    if (bad != NULL) {
        snprintf(err, errlen, "sim: %s", bad);
        return NULL;
    }
    struct hr_sim *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        goto nomem;
    }
    s->o = *o;
    if (hooks != NULL) {
        s->hooks = *hooks;
    }
    s->n = o->n;
    s->n_boot = o->n;
    s->voters = calloc(s->n, sizeof(*s->voters));
    /* Room for every node hr_sim_spawn may add: ids stay dense, tables indexed by id. */
    s->nodes = calloc(HR_MAX_NODES, sizeof(*s->nodes));
    s->link_last = calloc((size_t)HR_MAX_NODES * HR_MAX_NODES, sizeof(*s->link_last));
    s->check = hr__check_new(HR_MAX_NODES);
    if (s->voters == NULL || s->nodes == NULL || s->link_last == NULL || s->check == NULL) {
        goto nomem;
    }
    uint64_t x = o->seed;
    hr_prng_seed(&s->net_prng, hr__splitmix64(&x) ^ 0x6e6574ULL);
    hr_prng_seed(&s->disk_prng, hr__splitmix64(&x) ^ 0x6469736bULL);
    for (uint32_t i = 0; i < s->n; i++) {
        s->voters[i] = i + 1;
        if (init_node(s, i + 1) != 0) {
            goto nomem;
        }
    }
    for (uint32_t i = 0; i < s->n; i++) {
        char msg[256];
        if (start_node(s, &s->nodes[i], msg, sizeof(msg)) != 0) {
            snprintf(err, errlen, "sim: node %" PRIu32 ": %s", i + 1, msg);
            hr_sim_free(s);
            return NULL;
        }
    }
    return s;

nomem:
    snprintf(err, errlen, "sim: out of memory");
    hr_sim_free(s);
    return NULL;
}

void hr_sim_free(struct hr_sim *s)
{
    if (s == NULL) {
        return;
    }
    if (s->nodes != NULL) {
        for (uint32_t i = 0; i < HR_MAX_NODES; i++) {
            hr_node_free(s->nodes[i].node);
            hr__disk_free(&s->nodes[i].disk);
            hr__xfer_free(&s->nodes[i]);
            hr__snap_reset(&s->nodes[i]);
        }
    }
    struct hr__qitem it;
    while (hr__queue_pop(&s->q, &it)) {
        hr__sim_ev_free(s, it.ev);
    }
    hr__queue_free(&s->q);
    while (s->free_evs != NULL) {
        struct hr__ev *ev = s->free_evs;
        s->free_evs = ev->next_free;
        free(ev);
    }
    hr__check_free(s->check);
    hr_msg_release(&s->capture.msg);
    free(s->link_last);
    free(s->nodes);
    free(s->voters);
    free(s);
}

static void run_event(struct hr_sim *s, struct hr__ev *ev)
{
    struct hr__simnode *sn = &s->nodes[ev->node - 1];
    switch (ev->kind) {
    case HR__EV_DELIVER:
        /* A restarted receiver may get messages sent to its previous incarnation: real
         * networks do that too. */
        if (sn->alive && hr__net_open(s, ev->msg.from, sn->id)) {
            s->events++;
            if (ev->msg.type == HR_MSG_SNAPSHOT || ev->msg.type == HR_MSG_SNAPSHOT_RESP) {
                hr__xfer_deliver(sn, &ev->msg);
                break;
            }
            hr_node_receive(sn->node, &ev->msg, s->now);
            hr__sim_after_input(s, sn);
        }
        break;
    case HR__EV_DURABLE:
        if (sn->alive && ev->inc == sn->inc) {
            s->events++;
            bool installed;
            int rc = hr__disk_complete(&sn->disk, ev->aux, &installed);
            if (rc == HR__DISK_ORDER) {
                hr__sim_stop(s, STOP_INVARIANT,
                             "storage: node %" PRIu64 " batch %" PRIu64
                             " became durable out of order",
                             sn->id, ev->aux);
                break;
            }
            if (rc != 0) {
                hr__sim_disk_failed(s, sn, rc, "a write batch");
                break;
            }
            if (installed) {
                s->snap_stats.installed++;
                sn->applied_bytes = 0; /* the FSM's state is the installed snapshot's */
                if (s->hooks.snapshot_done != NULL) {
                    s->hooks.snapshot_done(s->hooks.ctx, sn->id, sn->disk.snap.index,
                                           sn->disk.snap.term, true);
                }
            }
            hr_node_persisted(sn->node, ev->aux, s->now);
            hr__sim_after_input(s, sn);
        }
        break;
    case HR__EV_SNAP_CHECK:
        if (sn->alive && ev->inc == sn->inc) {
            s->events++;
            hr__snap_check(s, sn, ev->aux != 0);
        }
        break;
    case HR__EV_SNAP_DONE:
        if (sn->alive && ev->inc == sn->inc) {
            s->events++;
            hr__snap_done(s, sn);
        }
        break;
    case HR__EV_SNAP_SLICE:
        if (sn->alive && ev->inc == sn->inc) {
            s->events++;
            hr__snap_slice(s, sn);
        }
        break;
    case HR__EV_TICK:
        if (sn->alive && ev->inc == sn->inc && ev->aux == sn->tick_gen) {
            s->events++;
            sn->tick_pending = false;
            hr_node_tick(sn->node, s->now);
            if (s->stop_code == 0 && hr__check_node(s->check, sn->id) != 0) {
                hr__sim_check_failed(s);
            }
            schedule_tick(s, sn, true);
        }
        break;
    case HR__EV_FLUSH:
        if (sn->alive && ev->inc == sn->inc && sn->flush_pending) {
            s->events++;
            sn->flush_pending = false;
            hr_node_flush(sn->node);
            hr__sim_after_input(s, sn);
        }
        break;
    }
}

int hr_sim_step(struct hr_sim *s)
{
    if (s->stop_code != 0) {
        return s->stop_code;
    }
    struct hr__qitem it;
    if (!hr__queue_pop(&s->q, &it)) {
        return 0;
    }
    if (it.time > s->now) {
        s->now = it.time;
    }
    struct hr__ev *ev = it.ev;
    struct hr__simnode *held = &s->nodes[ev->node - 1];
    if (held->stalled_until > it.time) {
        /* Its process is held up (hr_sim_stall): the event waits, in its order, and runs
         * as the runtime would run it (runtime.c, tick_cb): a leader's tick first (its
         * heartbeats go out before it takes in anything), then the input, then a
         * follower's or candidate's tick. */
        hr_time_t at = held->stalled_until + 1;
        if (ev->kind == HR__EV_TICK) {
            bool leads = held->node != NULL &&
                         hr_raft_role(hr_node_raft(held->node)) == HR_LEADER;
            at = leads ? held->stalled_until : held->stalled_until + 2;
        }
        if (hr__queue_push(&s->q, at, it.ev) != 0) {
            hr__sim_ev_free(s, it.ev);
            hr__sim_stop(s, HR_ENOMEM, "out of memory");
        }
        return s->stop_code != 0 ? s->stop_code : 1;
    }
    run_event(s, it.ev);
    hr__sim_ev_free(s, it.ev);
    if (s->halts > 0) {
        run_halts(s);
    }
    return s->stop_code != 0 ? s->stop_code : 1;
}

int hr_sim_run_until(struct hr_sim *s, hr_time_t until)
{
    for (;;) {
        if (s->stop_code != 0) {
            return s->stop_code;
        }
        const struct hr__qitem *top = hr__queue_peek(&s->q);
        if (top == NULL || top->time > until) {
            break;
        }
        int rc = hr_sim_step(s);
        if (rc < 0) {
            return rc;
        }
    }
    if (until > s->now) {
        s->now = until;
    }
    return 0;
}

hr_time_t hr_sim_now(const struct hr_sim *s)
{
    return s->now;
}

const char *hr_sim_error(const struct hr_sim *s)
{
    return s->stop_code != 0 ? s->err : NULL;
}

int hr_sim_check(struct hr_sim *s)
{
    if (s->stop_code != 0) {
        return s->stop_code;
    }
    if (hr__check_full(s->check) != 0) {
        hr__sim_check_failed(s);
    }
    return s->stop_code;
}

uint32_t hr_sim_size(const struct hr_sim *s)
{
    return s->n;
}

bool hr_sim_alive(const struct hr_sim *s, hr_id_t id)
{
    return id >= 1 && id <= s->n && s->nodes[id - 1].alive;
}

bool hr_sim_connected(const struct hr_sim *s, hr_id_t id)
{
    return id >= 1 && id <= s->n && s->nodes[id - 1].connected;
}

struct hr_raft *hr_sim_raft(struct hr_sim *s, hr_id_t id)
{
    struct hr__simnode *sn = node_of(s, id);
    return sn != NULL && sn->node != NULL ? hr_node_raft(sn->node) : NULL;
}

struct hr_node *hr_sim_node(struct hr_sim *s, hr_id_t id)
{
    struct hr__simnode *sn = node_of(s, id);
    return sn != NULL ? sn->node : NULL;
}

int hr_sim_crash(struct hr_sim *s, hr_id_t id)
{
    struct hr__simnode *sn = node_of(s, id);
    if (sn == NULL || !sn->alive) {
        return HR_EINVAL;
    }
    hr__check_detach(s->check, id);
    hr__disk_crash(&sn->disk, &s->disk_prng);
    hr__xfer_reset(sn);
    hr__snap_reset(sn);
    hr_node_free(sn->node);
    sn->node = NULL;
    sn->alive = false;
    sn->inc++;
    sn->tick_pending = false;
    return 0;
}

int hr_sim_restart(struct hr_sim *s, hr_id_t id)
{
    struct hr__simnode *sn = node_of(s, id);
    if (sn == NULL || sn->alive) {
        return HR_EINVAL;
    }
    sn->restarts++;
    char msg[256];
    int rc = start_node(s, sn, msg, sizeof(msg));
    if (rc == HR__DISK_CRASHED) {
        /* A crash point hit the storage's own recovery: still down, restart it again. */
        return HR_EIO;
    }
    if (rc == HR_ECORRUPT && s->o.storage == HR_SIM_STORAGE_REAL && !sn->corrupted) {
        /* Nothing but crashes happened to this disk: the production storage must open
         * what it left. */
        hr__sim_stop(s, rc, "restart of node %" PRIu64 ": storage refused to open after a "
                     "crash: %s", id, msg);
        return rc;
    }
    if (rc == HR_ECORRUPT) {
        /* The real storage refuses to open such a log: the node stays down and its peers
         * go on without it. */
        return rc;
    }
    if (rc != 0) {
        hr__sim_stop(s, rc, "restart of node %" PRIu64 ": %s", id, msg);
    }
    return rc;
}

int hr_sim_corrupt(struct hr_sim *s, hr_id_t id, hr_index_t index, hr_index_t *index_out)
{
    struct hr__simnode *sn = node_of(s, id);
    hr_index_t lo, hi;
    if (sn == NULL || !hr__disk_records(&sn->disk, &lo, &hi)) {
        return HR_EINVAL;
    }
    if (index == 0) {
        index = hr_prng_range(&s->disk_prng, lo, hi);
    }
    int rc = hr__disk_corrupt(&sn->disk, index);
    if (rc == 0) {
        sn->corrupted = true;
    }
    if (rc == 0 && index_out != NULL) {
        *index_out = index;
    }
    return rc;
}

const char *hr_sim_node_note(const struct hr_sim *s, hr_id_t id)
{
    if (id == 0 || id > s->n) {
        return "";
    }
    return s->nodes[id - 1].note;
}

int hr_sim_stall(struct hr_sim *s, hr_id_t id, uint32_t ms)
{
    struct hr__simnode *sn = node_of(s, id);
    if (sn == NULL || !sn->alive) {
        return HR_EINVAL;
    }
    sn->stalled_until = s->now + ms;
    return 0;
}

int hr_sim_disconnect(struct hr_sim *s, hr_id_t id)
{
    struct hr__simnode *sn = node_of(s, id);
    if (sn == NULL) {
        return HR_EINVAL;
    }
    sn->connected = false;
    return 0;
}

int hr_sim_connect(struct hr_sim *s, hr_id_t id)
{
    struct hr__simnode *sn = node_of(s, id);
    if (sn == NULL) {
        return HR_EINVAL;
    }
    sn->connected = true;
    return 0;
}

int hr_sim_partition(struct hr_sim *s, const uint32_t *group, size_t n)
{
    if (n != s->n) {
        return HR_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        s->nodes[i].group = group[i];
    }
    return 0;
}

void hr_sim_heal(struct hr_sim *s)
{
    for (uint32_t i = 0; i < s->n; i++) {
        s->nodes[i].group = 0;
        s->nodes[i].connected = true;
    }
}

void hr_sim_set_network(struct hr_sim *s, const struct hr_sim_net *net)
{
    if (net_invalid(net) == NULL) {
        s->o.net = *net;
    }
}

void hr_sim_set_storage_crash(struct hr_sim *s, double p)
{
    if (!(p >= 0 && p <= 1)) {
        return;
    }
    s->o.storage_crash = p;
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->nodes[i].disk.real != NULL) {
            hr__disk_real_set_crash(&s->nodes[i].disk, p);
        }
    }
}

/* The checks every request on a node makes first: a stopped simulation answers with its
 * stop code, a node that is not up with HR_EINVAL; else *out is the node. */
static int live_request(struct hr_sim *s, hr_id_t id, struct hr__simnode **out)
{
    if (s->stop_code != 0) {
        return s->stop_code;
    }
    *out = node_of(s, id);
    if (*out == NULL || !(*out)->alive) {
        return HR_EINVAL;
    }
    return 0;
}

/* After a core call on sn that may have produced output: send it with the next FLUSH (the
 * group commit hr_sim_propose describes). */
static int after_call(struct hr_sim *s, struct hr__simnode *sn, int rc)
{
    if (rc == 0 && !sn->flush_pending) {
        sn->flush_pending = true;
        hr__sim_push_node_ev(s, sn, HR__EV_FLUSH, 0, s->now);
    }
    hr__sim_after_input(s, sn);
    if (s->halts > 0) {
        run_halts(s);
    }
    return s->stop_code != 0 ? s->stop_code : rc;
}

int hr_sim_propose(struct hr_sim *s, hr_id_t id, uint8_t type, const void *data, size_t len,
                   hr_index_t *index, hr_term_t *term)
{
    struct hr__simnode *sn;
    int rc = live_request(s, id, &sn);
    if (rc != 0) {
        return rc;
    }
    /* Proposals made at one virtual instant go out together, as one storage batch and
     * one AppendEntries per follower, when the FLUSH event runs (after whatever else is
     * due at this instant): the group commit a production loop does per turn. */
    return after_call(s, sn, hr_node_propose(sn->node, type, data, len, s->now, index, term));
}

int hr_sim_spawn(struct hr_sim *s, hr_id_t id)
{
    if (s->stop_code != 0) {
        return s->stop_code;
    }
    if (id != (hr_id_t)s->n + 1 || id > HR_MAX_NODES) {
        return HR_EINVAL;
    }
    struct hr__simnode *sn = &s->nodes[id - 1];
    if (init_node(s, id) != 0) {
        hr__sim_stop(s, HR_ENOMEM, "out of memory");
        return HR_ENOMEM;
    }
    sn->spawned = true;
    s->n++;
    char msg[256];
    int rc = start_node(s, sn, msg, sizeof(msg));
    if (rc != 0) {
        hr__sim_stop(s, rc, "spawn of node %" PRIu64 ": %s", id, msg);
        return rc;
    }
    return 0;
}

int hr_sim_add(struct hr_sim *s, hr_id_t id, hr_id_t peer, const void *addr, size_t addr_len,
               bool voter, hr_index_t *index)
{
    struct hr__simnode *sn;
    int rc = live_request(s, id, &sn);
    if (rc != 0) {
        return rc;
    }
    return after_call(s, sn, hr_node_add(sn->node, peer, addr, addr_len, voter, s->now, index));
}

int hr_sim_remove(struct hr_sim *s, hr_id_t id, hr_id_t peer, hr_index_t *index)
{
    struct hr__simnode *sn;
    int rc = live_request(s, id, &sn);
    if (rc != 0) {
        return rc;
    }
    return after_call(s, sn, hr_node_remove(sn->node, peer, s->now, index));
}

int hr_sim_read(struct hr_sim *s, hr_id_t id, uint64_t *ctx)
{
    struct hr__simnode *sn;
    int rc = live_request(s, id, &sn);
    if (rc != 0) {
        return rc;
    }
    *ctx = ++s->read_ctx;
    if (hr__check_read_begin(s->check, *ctx, s->now) != 0) {
        hr__sim_check_failed(s);
        return s->stop_code;
    }
    return after_call(s, sn, hr_node_read_index(sn->node, *ctx, s->now));
}

int hr_sim_transfer(struct hr_sim *s, hr_id_t id, hr_id_t target)
{
    struct hr__simnode *sn;
    int rc = live_request(s, id, &sn);
    if (rc != 0) {
        return rc;
    }
    return after_call(s, sn, hr_node_transfer(sn->node, target, s->now));
}

int hr_sim_snapshot(struct hr_sim *s, hr_id_t id, hr_index_t *index)
{
    struct hr__simnode *sn;
    int rc = live_request(s, id, &sn);
    if (rc != 0) {
        return rc;
    }
    rc = hr__snap_take(s, sn, index);
    if (s->halts > 0) {
        run_halts(s);
    }
    return s->stop_code != 0 ? s->stop_code : rc;
}

bool hr_sim_snapshot_info(const struct hr_sim *s, hr_id_t id, hr_index_t *index, hr_term_t *term,
                          size_t *size)
{
    if (id < 1 || id > s->n || s->nodes[id - 1].disk.snap.index == 0) {
        return false;
    }
    const struct hr__disk_snap *snap = &s->nodes[id - 1].disk.snap;
    *index = snap->index;
    *term = snap->term;
    *size = hr_blob_len(snap->data);
    return true;
}

void hr_sim_snapshot_stats(const struct hr_sim *s, struct hr_sim_snapshot_stats *out)
{
    *out = s->snap_stats;
}

void hr_sim_storage_stats(const struct hr_sim *s, struct hr_sim_storage_stats *out)
{
    uint64_t v[7] = {0};
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->nodes[i].disk.real != NULL) {
            hr__disk_real_stats(&s->nodes[i].disk, v);
        }
    }
    *out = (struct hr_sim_storage_stats){v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
}

uint64_t hr_sim_rpc_count(const struct hr_sim *s)
{
    return s->rpc_count;
}

uint64_t hr_sim_rpc_bytes(const struct hr_sim *s)
{
    return s->rpc_bytes;
}

uint64_t hr_sim_events(const struct hr_sim *s)
{
    return s->events;
}
