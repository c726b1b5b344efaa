/*
 * runtime_snapshot.c: snapshots of the production node (runtime.h, "Snapshots").
 *
 * Taking one. The embedding writes the FSM's state into a temporary file (a forked child
 * does it for the Lua FSM, so the loop never waits for the serialization) and hands it
 * over with hr_runtime_snapshot_taken: it is renamed into place and the directory synced
 * (a rename is atomic: a crash leaves either the old name or the new one), then the core
 * is told (it forgets entries before index + 1 - trailing_logs, or more: it keeps at most
 * trailing_logs_bytes of them), then the log's segments
 * below that are dropped on the storage thread, and the previous snapshot file is
 * removed. The new snapshot is durable before the core or the log hear of it, so a crash
 * anywhere leaves a durable snapshot plus a log that covers everything after it (the old
 * file is not needed once the new one is durable, so its removal waits for nothing). The snapshot's index is
 * the applied one, which on a follower can be past its durable log (it applies entries the
 * others committed before its own write of them is done): the snapshot is not held back
 * for that; a restart reconciles the log with it instead (csrc/storage/reconcile.c).
 *
 * InstallSnapshot. The core offers the snapshot to a follower that needs compacted
 * entries (a SNAPSHOT message with no bytes, which hr__rt_send intercepts). The leader
 * then streams the file in chunks of chunk_bytes, at most WINDOW unacknowledged; each is a
 * SNAPSHOT message with offset, bytes and done on the last. The follower passes every
 * chunk through its core (term and leader checks, which also keep its election timer
 * quiet during a long transfer), writes it to data_dir/snapshots/<name>.recv, and answers
 * SNAPSHOT_RESP with offset = the bytes it holds. A chunk that does not start there is
 * refused (reject) with that offset, and the sender goes back to it once: a lost chunk
 * costs one resume, not a restart. A sender that hears nothing resumes from the last
 * acknowledged offset when the core re-offers (once per election timeout). After the last
 * chunk the receiver checks the file's checksum, fsyncs and renames it (on the
 * threadpool), and only then feeds its core the final message (done, no bytes): the
 * core's install (storage: empty the log; FSM: restore from the file) follows. The file is
 * durable before the log is emptied, in a later storage batch: a crash in between leaves
 * the new snapshot beside the old log, which the restart's reconciliation discards unless it
 * continues the snapshot, so the pair acts as one step.
 * Chunks go to the transport's bulk queue, so heartbeats never wait behind them.
 *
 * Threading: the loop's thread, except finish_work (the threadpool), which touches only
 * the receiver and the result fields it owns while recv_finishing is set.
 */
#define _GNU_SOURCE /* pread, O_CLOEXEC; uv.h needs the POSIX types under -std=c11 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime_impl.h"

#include "../storage/fs.h"

#define WINDOW 4

/* ---- taking a snapshot ---- */

int hr_runtime_snapshot_point(struct hr_runtime *rt, hr_index_t applied, hr_index_t *index,
                              hr_term_t *term)
{
    if (rt->node == NULL || rt->closing) {
        return HR_ESHUTDOWN;
    }
    struct hr_raft *r = hr_node_raft(rt->node);
    hr_index_t at = applied != 0 ? applied : rt->applied;
    hr_term_t t = hr_raft_term_at(r, at);
    if (at <= rt->snap.index || at > rt->applied || t == 0) {
        return HR_EINVAL;
    }
    *index = at;
    *term = t;
    rt->snap_point_ns = uv_hrtime();
    return 0;
}

void hr_runtime_snapshot_tmp_path(struct hr_runtime *rt, hr_index_t index, hr_term_t term,
                                  char *buf, size_t len)
{
    char dir[4096];
    hr_snap_dir(rt->data_dir, dir, sizeof dir);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        (void)0; /* the writer's create reports it */
    }
    hr_snap_path(rt->data_dir, index, term, buf, len);
    size_t n = strlen(buf);
    snprintf(buf + n, len > n ? len - n : 0, ".tmp");
    unlink(buf); /* a leftover of an interrupted snapshot of the same point */
}

const struct hr_blob *hr_runtime_snapshot_conf(struct hr_runtime *rt, hr_index_t index,
                                               hr_index_t *conf_index)
{
    *conf_index = 0;
    if (rt->node == NULL || rt->closing) {
        return NULL;
    }
    return hr_raft_snapshot_conf(hr_node_raft(rt->node), index, conf_index);
}

/* A version 1 file's voters as a configuration, with the names and addresses the runtime
 * knows for them (the peers option): a voter it cannot name keeps bare id bytes, which the
 * transport cannot dial but the core counts all the same. */
static int conf_of_voters(struct hr_runtime *rt, const struct hr_snap_info *info,
                          struct hr_blob **out)
{
    struct hr_server sv[HR_SNAP_MAX_VOTERS];
    char *bufs[HR_SNAP_MAX_VOTERS] = {0};
    int rc = 0;
    for (uint32_t i = 0; i < info->n_voters && rc == 0; i++) {
        sv[i] = (struct hr_server){.id = info->voters[i], .voter = true};
        const char *name = hr_runtime_name_of(rt, info->voters[i]);
        const char *addr = hr_runtime_addr_of(rt, info->voters[i]);
        if (name != NULL && addr != NULL) {
            size_t nl = strlen(name), al = strlen(addr);
            bufs[i] = malloc(nl + 1 + al);
            if (bufs[i] == NULL) {
                rc = HR_ENOMEM;
                break;
            }
            memcpy(bufs[i], name, nl + 1);
            memcpy(bufs[i] + nl + 1, addr, al);
            sv[i].addr = (const uint8_t *)bufs[i];
            sv[i].addr_len = nl + 1 + al;
        }
    }
    if (rc == 0) {
        rc = hr_conf_encode(sv, info->n_voters, out);
    }
    for (uint32_t i = 0; i < info->n_voters; i++) {
        free(bufs[i]);
    }
    return rc;
}

int hr__rt_load_snap_conf(struct hr_runtime *rt, hr_index_t index, hr_term_t term,
                          char *err, size_t errlen)
{
    char path[4200];
    hr_snap_path(rt->data_dir, index, term, path, sizeof path);
    struct hr_fs *fs = hr_fs_or_posix(rt->fs);
    int fd = hr_fs_open(fs, path, HR_FS_READ);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-fd));
        return HR_EIO;
    }
    uint64_t size = 0;
    struct hr_snap_info info;
    int rc = hr_fs_size(fs, fd, &size) < 0 ? HR_EIO : 0;
    if (rc == 0) {
        rc = hr_snap_read_header(fs, fd, size, &info, err, errlen);
    }
    hr_fs_close(fs, fd);
    if (rc != 0) {
        return rc;
    }
    struct hr_blob *conf = NULL;
    if (info.version < 2) {
        rc = conf_of_voters(rt, &info, &conf);
    } else {
        uint8_t *bytes;
        rc = hr_snap_read_conf(fs, path, &info, &bytes, err, errlen);
        if (rc == 0 && bytes != NULL) {
            conf = hr_blob_new(bytes, info.conf_len);
            rc = conf == NULL ? HR_ENOMEM : 0;
        }
        free(bytes);
    }
    if (rc != 0) {
        if (rc == HR_ENOMEM || rc == HR_EINVAL) {
            snprintf(err, errlen, "%s: configuration: %s", path, hr_strerror(rc));
        }
        return rc;
    }
    hr_blob_release(rt->snap_conf);
    rt->snap_conf = conf;
    rt->snap_conf_index = info.version < 2 ? 0 : info.conf_index;
    return 0;
}

void hr_runtime_snapshot(const struct hr_runtime *rt, hr_index_t *index, hr_term_t *term,
                         uint64_t *size)
{
    *index = rt->snap.index;
    *term = rt->snap.term;
    *size = rt->snap.size;
}

void hr_runtime_snapshot_path(const struct hr_runtime *rt, char *buf, size_t len)
{
    hr_snap_path(rt->data_dir, rt->snap.index, rt->snap.term, buf, len);
}

int hr_runtime_snapshot_taken(struct hr_runtime *rt, hr_index_t index, hr_term_t term,
                              const char *tmp_path, char *err, size_t errlen)
{
    if (rt->node == NULL || rt->closing || index <= rt->snap.index) {
        /* Shut down, failed, or a newer snapshot was installed meanwhile: this one is of
         * no use any more. */
        unlink(tmp_path);
        return 1;
    }
    struct hr_snap_info info;
    int rc = hr_snap_commit(rt->fs, rt->data_dir, tmp_path, index, term, &info, err, errlen);
    if (rc != 0) {
        unlink(tmp_path);
        return rc;
    }
    /* At most trailing_logs entries and trailing_logs_bytes bytes before the snapshot's
     * index stay for followers a little behind; one further behind gets the snapshot. */
    hr_index_t keep = hr_raft_trailing_from(hr_node_raft(rt->node), index, rt->trailing_logs,
                                            rt->trailing_logs_bytes);
    rc = hr_node_snapshot_taken(rt->node, index, keep);
    if (rc != 0) {
        char path[4200];
        hr_snap_path(rt->data_dir, index, term, path, sizeof path);
        unlink(path);
        snprintf(err, errlen, "snapshot: the core refused index %" PRIu64, index);
        return rc;
    }
    rt->snap.index = index;
    rt->snap.term = term;
    rt->snap.size = info.file_size;
    rt->snap_stats.taken++;
    if (rt->snap_point_ns != 0) {
        hr_hist_observe(&rt->metrics.snapshot_us, HR_HIST_LATENCY_US, HR_HIST_LATENCY_N,
                        (uv_hrtime() - rt->snap_point_ns) / 1000);
        rt->snap_point_ns = 0;
    }
    hr_hist_observe(&rt->metrics.snapshot_bytes, HR_HIST_BYTES, HR_HIST_BYTES_N, info.file_size);
    if (rt->node != NULL) {
        /* The core keeps what storage has not written yet: compact no further than it.
         * And keep the entry at the snapshot's index itself, whatever trailing_logs says:
         * a restart reads its term to check that the log continues the snapshot
         * (csrc/storage/reconcile.c). */
        hr_index_t first = hr_raft_first_index(hr_node_raft(rt->node));
        hr_index_t below = first < keep ? first : keep;
        hr_node_storage_compact(&rt->ns, below < index ? below : index);
    }
    hr_snap_prune(rt->fs, rt->data_dir, index, term);
    return 0;
}

/* ---- installing one (the node's storage.install and fsm.restore) ---- */

int hr__rt_install(void *ctx, uint64_t seq, hr_index_t index, hr_term_t term,
                   struct hr_blob *data)
{
    struct hr_runtime *rt = ctx;
    uint64_t g = rt->seq_base + seq;
    int rc = rt->inner.install(rt->inner.ctx, g, index, term, data);
    if (rc != 0) {
        return rc;
    }
    rt->gseq = g;
    struct stat st;
    char path[4200];
    hr_snap_path(rt->data_dir, index, term, path, sizeof path);
    rt->snap.index = index;
    rt->snap.term = term;
    rt->snap.size = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
    char err[512];
    if (hr__rt_load_snap_conf(rt, index, term, err, sizeof err) != 0) {
        /* The core took the configuration from the final message already; only a
         * rebuild after a storage failure would start without it. */
        hr__rt_log(rt, 2, "snapshot: %s", err);
    }
    /* The new file is durable (the receiver synced it): the old one may go. */
    hr_snap_prune(rt->fs, rt->data_dir, index, term);
    return 0;
}

void hr__rt_restore(void *ctx, hr_index_t index, hr_term_t term, struct hr_blob *data)
{
    struct hr_runtime *rt = ctx;
    (void)data; /* NULL: chunked transfers only (node_storage refuses whole ones) */
    rt->applied = index;
    if (rt->cb.restore != NULL) {
        rt->cb.restore(rt->cb.ctx, index, term);
    }
}

/* ---- sending (leader) ---- */

static struct hr__xfer *xfer_find(struct hr_runtime *rt, hr_id_t to, bool alloc)
{
    struct hr__xfer *free_slot = NULL;
    for (size_t i = 0; i < HR_MAX_NODES; i++) {
        if (rt->xfers[i].to == to) {
            return &rt->xfers[i];
        }
        if (rt->xfers[i].to == 0 && free_slot == NULL) {
            free_slot = &rt->xfers[i];
        }
    }
    return alloc ? free_slot : NULL;
}

static void xfer_close(struct hr__xfer *x)
{
    if (x->fd >= 0) {
        close(x->fd);
    }
    memset(x, 0, sizeof *x);
    x->fd = -1;
}

static const char *peer_name(struct hr_runtime *rt, hr_id_t id)
{
    const char *name = hr_runtime_name_of(rt, id);
    return name != NULL ? name : "?";
}

static bool leading(struct hr_runtime *rt)
{
    return rt->node != NULL && !rt->closing &&
           hr_raft_role(hr_node_raft(rt->node)) == HR_LEADER;
}

/* Send chunks while the window has room. */
static void xfer_pump(struct hr_runtime *rt, struct hr__xfer *x)
{
    if (!leading(rt)) {
        xfer_close(x);
        return;
    }
    hr_term_t term = hr_raft_term(hr_node_raft(rt->node));
    while (x->next < x->size && x->next - x->acked < (uint64_t)WINDOW * rt->chunk_bytes) {
        uint64_t left = x->size - x->next;
        size_t len = left < rt->chunk_bytes ? (size_t)left : rt->chunk_bytes;
        unsigned char *buf = malloc(len);
        ssize_t got = buf != NULL ? pread(x->fd, buf, len, (off_t)x->next) : -1;
        if (got != (ssize_t)len) {
            hr__rt_log(rt, 2, "snapshot: read %s chunk at %" PRIu64 " for a follower failed",
                       buf == NULL ? "(no memory)" : "", x->next);
            free(buf);
            xfer_close(x);
            return;
        }
        struct hr_msg m = {.type = HR_MSG_SNAPSHOT,
                           .from = rt->id,
                           .to = x->to,
                           .term = term,
                           .snap_index = x->index,
                           .snap_term = x->term,
                           .offset = x->next,
                           .done = x->next + len == x->size};
        m.snap_data = hr_blob_new(buf, len);
        free(buf);
        if (m.snap_data == NULL) {
            xfer_close(x);
            return;
        }
        hr_tcp_send(rt->tcp, &m);
        hr_blob_release(m.snap_data);
        rt->snap_stats.chunks_sent++;
        rt->snap_stats.bytes_sent += len;
        x->next += len;
    }
}

/* The core offers its snapshot to m->to: start a transfer, or resume a stalled one. */
static void xfer_offer(struct hr_runtime *rt, const struct hr_msg *m)
{
    hr_time_t now = hr_runtime_now(rt);
    struct hr__xfer *x = xfer_find(rt, m->to, true);
    if (x == NULL) {
        return;
    }
    if (x->to == m->to && x->index == m->snap_index && x->term == m->snap_term) {
        /* Re-offered (once per election timeout while pending): if nothing moved since,
         * chunks or answers were lost; go on from what the follower holds. */
        if (now >= x->last_progress + rt->raft.election_timeout_ms) {
            x->next = x->acked;
            x->last_progress = now;
            rt->snap_stats.resumes++;
        }
        xfer_pump(rt, x);
        return;
    }
    xfer_close(x);
    if (m->snap_index != rt->snap.index || m->snap_term != rt->snap.term) {
        return; /* the core knows no other snapshot than ours */
    }
    char path[4200];
    hr_snap_path(rt->data_dir, m->snap_index, m->snap_term, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        hr__rt_log(rt, 2, "snapshot: cannot open %s for a follower: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    x->to = m->to;
    x->fd = fd;
    x->index = m->snap_index;
    x->term = m->snap_term;
    x->size = (uint64_t)st.st_size;
    x->last_progress = now;
    rt->snap_stats.transfers++;
    /* helios.nodelog parses these three lines into events (docs/logging.md): keep their
     * form ("snapshot: <verb> index I (term T, B bytes) to|from NAME"). */
    hr__rt_log(rt, 0,
               "snapshot: sending index %" PRIu64 " (term %" PRIu64 ", %" PRIu64 " bytes) to %s",
               x->index, x->term, x->size, peer_name(rt, x->to));
    xfer_pump(rt, x);
}

void hr__rt_send(void *ctx, const struct hr_msg *m)
{
    struct hr_runtime *rt = ctx;
    if (m->type == HR_MSG_SNAPSHOT && m->snap_data == NULL && !m->done) {
        xfer_offer(rt, m);
        return;
    }
    if (!hr__rt_known(rt, m->to)) {
        /* The first message to a server that a configuration of this very batch added
         * (runtime.c, hr__rt_sync_conf). */
        hr__rt_sync_conf(rt);
    }
    hr_tcp_send(rt->tcp, m);
}

static void on_snapshot_resp(struct hr_runtime *rt, const struct hr_msg *m)
{
    struct hr__xfer *x = xfer_find(rt, m->from, false);
    if (x == NULL || !leading(rt) || m->term != hr_raft_term(hr_node_raft(rt->node)) ||
        x->index != m->snap_index || x->term != m->snap_term) {
        return;
    }
    if (m->done) {
        hr__rt_log(rt, 0,
                   "snapshot: sent index %" PRIu64 " (term %" PRIu64 ", %" PRIu64 " bytes) to %s",
                   x->index, x->term, x->size, peer_name(rt, x->to));
        xfer_close(x); /* installed (its APPEND_RESP tells the core) */
        return;
    }
    if (m->offset > x->acked) {
        x->acked = m->offset;
        x->last_progress = hr_runtime_now(rt);
    }
    if (m->reject && m->offset < x->next && m->offset != x->rewound) {
        /* A chunk was lost: the ones after it were refused. Go back once per loss. */
        x->next = m->offset;
        x->acked = m->offset;
        x->rewound = m->offset;
        rt->snap_stats.resumes++;
    }
    if (x->acked > x->size) {
        x->acked = x->size;
    }
    xfer_pump(rt, x);
}

/* ---- receiving (follower) ---- */

static void reply(struct hr_runtime *rt, const struct hr_msg *m, uint64_t offset, bool reject,
                  bool done)
{
    struct hr_msg r = {.type = HR_MSG_SNAPSHOT_RESP,
                       .from = rt->id,
                       .to = m->from,
                       .term = m->term,
                       .snap_index = m->snap_index,
                       .snap_term = m->snap_term,
                       .offset = offset,
                       .reject = reject,
                       .done = done};
    hr_tcp_send(rt->tcp, &r);
}

static void recv_drop(struct hr_runtime *rt)
{
    hr_snap_recv_free(rt->recv);
    rt->recv = NULL;
}

/* Hand the core the final message of a whole, durable snapshot. */
/* Hand the core the final message of a whole, durable snapshot, with the configuration of
 * its file (the core drops its whole log on an install, configuration entries included:
 * a server that joins through a snapshot learns the cluster from it). */
static void feed_done(struct hr_runtime *rt, hr_id_t from, hr_term_t term, hr_index_t index,
                      hr_term_t snap_term, struct hr_blob *conf, hr_index_t conf_index)
{
    struct hr_msg m = {.type = HR_MSG_SNAPSHOT,
                       .from = from,
                       .to = rt->id,
                       .term = term,
                       .snap_index = index,
                       .snap_term = snap_term,
                       .done = true,
                       .conf = conf,
                       .conf_index = conf_index};
    hr_node_receive(rt->node, &m, hr_runtime_now(rt));
}

static void finish_work(uv_work_t *w)
{
    struct hr_runtime *rt = w->data;
    rt->recv_rc = hr_snap_recv_finish(rt->recv, &rt->recv_info, rt->recv_err,
                                      sizeof rt->recv_err);
}

static void finish_after(uv_work_t *w, int status)
{
    struct hr_runtime *rt = w->data;
    rt->recv_finishing = false;
    hr_index_t index = hr_snap_recv_index(rt->recv);
    hr_term_t snap_term = hr_snap_recv_term(rt->recv);
    uint64_t size = hr_snap_recv_size(rt->recv);
    int rc = status == 0 ? rt->recv_rc : HR_ESHUTDOWN;
    recv_drop(rt);
    if (rt->closing) {
        hr__rt_close_step(rt);
        return;
    }
    if (rc != 0) {
        hr__rt_log(rt, 2, "snapshot: %s", rt->recv_err);
        return; /* the leader re-offers it */
    }
    struct hr_msg m = {.from = rt->recv_from, .term = rt->recv_term, .snap_index = index,
                       .snap_term = snap_term};
    struct hr_raft *r = rt->node != NULL ? hr_node_raft(rt->node) : NULL;
    if (r != NULL && hr_raft_term(r) == rt->recv_term && hr_raft_leader(r) == rt->recv_from) {
        /* The received file's configuration, read before the core installs it (the
         * install reads it again into rt->snap_conf). */
        struct hr_blob *keep = rt->snap_conf;
        hr_index_t keep_index = rt->snap_conf_index;
        rt->snap_conf = NULL;
        char err[512];
        if (hr__rt_load_snap_conf(rt, index, snap_term, err, sizeof err) != 0) {
            hr__rt_log(rt, 2, "snapshot: %s", err);
        }
        struct hr_blob *conf = rt->snap_conf;
        hr_index_t conf_index = rt->snap_conf_index;
        rt->snap_conf = keep;
        rt->snap_conf_index = keep_index;
        hr__rt_log(rt, 0, "snapshot: received index %" PRIu64 " (term %" PRIu64 ", %" PRIu64
                   " bytes) from %s", index, snap_term, size, peer_name(rt, rt->recv_from));
        feed_done(rt, rt->recv_from, rt->recv_term, index, snap_term, conf, conf_index);
        hr_blob_release(conf);
        reply(rt, &m, size, false, true);
    }
    if (rt->snap.index != index || rt->snap.term != snap_term) {
        /* Not installed (the log already had it, or the leader changed): not current. */
        char path[4200];
        hr_snap_path(rt->data_dir, index, snap_term, path, sizeof path);
        unlink(path);
    }
}

static void on_chunk(struct hr_runtime *rt, const struct hr_msg *m)
{
    /* The core sees every chunk without its bytes: the checks, and a quiet timer. */
    struct hr_msg c = *m;
    c.done = false;
    c.snap_data = NULL;
    hr_node_receive(rt->node, &c, hr_runtime_now(rt));
    struct hr_raft *r = rt->node != NULL ? hr_node_raft(rt->node) : NULL;
    if (r == NULL || hr_raft_role(r) != HR_FOLLOWER || hr_raft_term(r) != m->term ||
        hr_raft_leader(r) != m->from) {
        return; /* stale or refused: the core answered what it had to */
    }
    rt->snap_stats.chunks_received++;
    rt->snap_stats.bytes_received += m->snap_data != NULL ? m->snap_data->len : 0;
    if (m->snap_index == rt->snap.index && m->snap_term == rt->snap.term) {
        /* We already hold it (an answer was lost): no need for the bytes again. */
        feed_done(rt, m->from, m->term, m->snap_index, m->snap_term, rt->snap_conf,
                  rt->snap_conf_index);
        reply(rt, m, m->offset, false, true);
        return;
    }
    if (m->snap_index <= hr_raft_commit_index(r)) {
        /* Nothing to install (the core answers from its log): no configuration. */
        feed_done(rt, m->from, m->term, m->snap_index, m->snap_term, NULL, 0);
        reply(rt, m, m->offset, false, true);
        return;
    }
    struct hr_snap_recv *rv = rt->recv;
    /* Another leader's file of the same snapshot may differ byte for byte. */
    bool same = rv != NULL && hr_snap_recv_index(rv) == m->snap_index &&
                hr_snap_recv_term(rv) == m->snap_term && rt->recv_from == m->from;
    if (rt->recv_finishing) {
        reply(rt, m, same ? hr_snap_recv_size(rv) : 0, false, false);
        return;
    }
    char err[256];
    if (!same) {
        if (m->offset != 0) {
            reply(rt, m, 0, true, false);
            return;
        }
        recv_drop(rt);
        if (hr_snap_recv_open(rt->fs, rt->data_dir, m->snap_index, m->snap_term, &rt->recv, err,
                              sizeof err) != 0) {
            hr__rt_log(rt, 2, "snapshot: %s", err);
            return;
        }
        rv = rt->recv;
        rt->recv_from = m->from;
    }
    uint64_t held = hr_snap_recv_size(rv);
    if (m->offset != held) {
        /* Behind us: a duplicate. Ahead: a chunk before it was lost; say where to go on. */
        reply(rt, m, held, m->offset > held, false);
        return;
    }
    if (hr_snap_recv_write(rv, m->offset, m->snap_data != NULL ? m->snap_data->data : NULL,
                           hr_blob_len(m->snap_data), err, sizeof err) != 0) {
        hr__rt_log(rt, 2, "snapshot: %s", err);
        recv_drop(rt);
        reply(rt, m, 0, true, false);
        return;
    }
    if (!m->done) {
        reply(rt, m, hr_snap_recv_size(rv), false, false);
        return;
    }
    rt->recv_finishing = true;
    rt->recv_term = m->term;
    rt->recv_work.data = rt;
    if (uv_queue_work(rt->loop, &rt->recv_work, finish_work, finish_after) != 0) {
        rt->recv_finishing = false;
        recv_drop(rt);
    }
}

bool hr__rt_recv_snapshot(struct hr_runtime *rt, const struct hr_msg *m)
{
    if (m->type == HR_MSG_SNAPSHOT) {
        on_chunk(rt, m);
        return true;
    }
    if (m->type == HR_MSG_SNAPSHOT_RESP) {
        /* The core sees it for its term (a newer one makes a leader step down). */
        hr_node_receive(rt->node, m, hr_runtime_now(rt));
        if (rt->node != NULL) {
            on_snapshot_resp(rt, m);
        }
        return true;
    }
    return false;
}

void hr__rt_snapshot_close(struct hr_runtime *rt)
{
    for (size_t i = 0; i < HR_MAX_NODES; i++) {
        xfer_close(&rt->xfers[i]);
    }
    if (rt->recv_finishing) {
        rt->closes_pending++; /* finish_after completes it */
    } else {
        recv_drop(rt);
    }
}
