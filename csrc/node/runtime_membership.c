/*
 * runtime_membership.c: the production node's side of membership, reads and transfers
 * (runtime.h "Membership").
 *
 * Names and addresses. A configuration carries, for each server, the bytes `<name> NUL
 * <host:port>`: the node learns every other server's name (its core id is
 * hr_tcp_node_id(name)) and address from its log and snapshots, never from a file. The
 * runtime keeps a table of the servers it knows (the peers option's, then every
 * configuration's), which names ids for status and logs and makes each a transport peer.
 *
 * Reads. The runtime remembers the reads in flight so that it can fail them when the node
 * that holds them goes (node.c and the core keep them, and are freed on shutdown and on a
 * storage failure): a caller never waits for an answer that cannot come.
 *
 * Threading: the loop's thread (runtime.h).
 */
#define _GNU_SOURCE /* uv.h needs the POSIX types under -std=c11 */
#include "runtime_impl.h"

#include <stdlib.h>
#include <string.h>

#include "../core/array.h"

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
}

/* ---- reads in flight ---- */

/* Forget ctx among the reads in flight (answers come mostly in the order asked). */
static void forget_read(struct hr_runtime *rt, uint64_t ctx)
{
    for (size_t i = 0; i < rt->n_reads; i++) {
        if (rt->reads[i] == ctx) {
            memmove(&rt->reads[i], &rt->reads[i + 1], (rt->n_reads - i - 1) * sizeof *rt->reads);
            rt->n_reads--;
            return;
        }
    }
}

void hr__rt_read(void *ctx, uint64_t read_ctx, hr_index_t index, hr_time_t time_ms, int status)
{
    struct hr_runtime *rt = ctx;
    forget_read(rt, read_ctx);
    if (rt->cb.read != NULL) {
        rt->cb.read(rt->cb.ctx, read_ctx, index, time_ms, status);
    }
}

/* The node that held the reads in flight is gone (the core and node.c kept them): fail
 * them, so that no caller waits for an answer that cannot come. */
void hr__rt_fail_reads(struct hr_runtime *rt)
{
    while (rt->n_reads > 0) {
        uint64_t ctx = rt->reads[0];
        forget_read(rt, ctx);
        if (rt->cb.read != NULL) {
            rt->cb.read(rt->cb.ctx, ctx, 0, 0, HR_ESHUTDOWN);
        }
    }
}

/* ---- known servers ---- */

/* A configuration's address bytes for a server: name, one 0 byte, network address
 * (runtime.h "Membership"). */
static int server_addr(const char *name, const char *addr, uint8_t *buf, size_t len, size_t *out)
{
    size_t nl = strlen(name), al = strlen(addr);
    if (nl + 1 + al > len || nl + 1 + al > HR_MAX_ADDR) {
        return HR_EINVAL;
    }
    memcpy(buf, name, nl);
    buf[nl] = 0;
    memcpy(buf + nl + 1, addr, al);
    *out = nl + 1 + al;
    return 0;
}

/* Split a configuration's address bytes into name and address (false if they are not in
 * that form, e.g. a configuration made of bare voter ids by an older version). */
static bool parse_server(const struct hr_server *s, char *name, size_t nl, char *addr, size_t al)
{
    const uint8_t *z = s->addr_len > 0 ? memchr(s->addr, 0, s->addr_len) : NULL;
    if (z == NULL) {
        return false;
    }
    size_t n1 = (size_t)(z - s->addr), n2 = s->addr_len - n1 - 1;
    if (n1 == 0 || n1 >= nl || n2 >= al || memchr(z + 1, 0, n2) != NULL) {
        return false;
    }
    memcpy(name, s->addr, n1);
    name[n1] = 0;
    memcpy(addr, z + 1, n2);
    addr[n2] = 0;
    return hr_tcp_node_id(name) == s->id;
}

/* The bootstrap configuration: every peer a voter, with its address. */
int hr__rt_bootstrap_conf(struct hr_runtime *rt, struct hr_blob **out)
{
    struct hr_server sv[HR_MAX_NODES];
    uint8_t *buf = malloc((size_t)HR_MAX_NODES * HR_MAX_ADDR);
    if (buf == NULL) {
        return HR_ENOMEM;
    }
    size_t at = 0;
    for (size_t i = 0; i < rt->n_peers; i++) {
        size_t len;
        int rc = server_addr(rt->peers[i].name, rt->peers[i].addr, buf + at, HR_MAX_ADDR, &len);
        if (rc != 0) {
            free(buf);
            return rc;
        }
        sv[i] =
            (struct hr_server){.id = rt->ids[i], .voter = true, .addr = buf + at, .addr_len = len};
        at += len;
    }
    int rc = hr_conf_encode(sv, rt->n_peers, out);
    free(buf);
    return rc;
}

static struct hr__rt_server *find_known(const struct hr_runtime *rt, hr_id_t id)
{
    for (size_t i = 0; i < rt->n_known; i++) {
        if (rt->known[i].id == id) {
            return &rt->known[i];
        }
    }
    return NULL;
}

bool hr__rt_known(const struct hr_runtime *rt, hr_id_t id)
{
    return find_known(rt, id) != NULL;
}

/* Know a server (and make it a transport peer, unless it is this node). */
int hr__rt_add_known(struct hr_runtime *rt, hr_id_t id, const char *name, const char *addr)
{
    struct hr__rt_server *k =
        hr_array_grow(rt->known, &rt->cap_known, rt->n_known + 1, sizeof *k, 8);
    if (k == NULL) {
        return HR_ENOMEM;
    }
    rt->known = k;
    k = &rt->known[rt->n_known];
    k->id = id;
    k->pinned = false;
    k->name = dup_str(name);
    k->addr = dup_str(addr);
    if (k->name == NULL || k->addr == NULL) {
        free(k->name);
        free(k->addr);
        return HR_ENOMEM;
    }
    rt->n_known++;
    if (rt->tcp != NULL && id != rt->id && hr_tcp_add_peer(rt->tcp, id, name, addr) != 0) {
        hr__rt_log(rt, 1, "membership: server '%s' has a bad address '%s'", name, addr);
    }
    return 0;
}

/*
 * The transport follows the configurations the core uses (start, appends, truncations,
 * installs): every server of one becomes known and dialable. Servers that leave stay
 * known for the life of the process: a removed server must still hear the entry that
 * removes it and its commit (the leader keeps replicating to it for a while), a
 * configuration dropped by a truncation may come back, and the core ignores messages from
 * servers outside its configuration anyway; an idle peer costs one reconnect attempt per
 * backoff period. A restart forgets them.
 */
/* Know id as name at addr: a new server, or a known one at another address. Which address
 * wins: the peers option's over any configuration's (an observer may reach a server by its
 * own route: helios.testing puts a proxy between each pair of nodes, so the addresses in a
 * configuration, which are the leader's view, need not be this node's), else the newest
 * configuration's; and an add_peer on this node (explicit) over both, which is how a lost
 * server's id comes back at a new address after a recover (raft.h's hr_raft_add). */
static void learn(struct hr_runtime *rt, hr_id_t id, const char *name, const char *addr,
                  bool explicit)
{
    struct hr__rt_server *k = find_known(rt, id);
    if (k == NULL) {
        hr__rt_add_known(rt, id, name, addr);
        return;
    }
    if (strcmp(k->addr, addr) == 0 || strcmp(k->name, name) != 0 || (k->pinned && !explicit)) {
        return;
    }
    char *a = dup_str(addr);
    if (a == NULL) {
        return;
    }
    hr__rt_log(rt, 0, "membership: server '%s' moves from %s to %s", name, k->addr, addr);
    free(k->addr);
    k->addr = a;
    k->pinned = explicit;
    if (rt->tcp != NULL && id != rt->id) {
        hr_tcp_remove_peer(rt->tcp, id);
        if (hr_tcp_add_peer(rt->tcp, id, name, addr) != 0) {
            hr__rt_log(rt, 1, "membership: server '%s' has a bad address '%s'", name, addr);
        }
    }
}

void hr__rt_sync_conf(struct hr_runtime *rt)
{
    if (rt->node == NULL) {
        return;
    }
    struct hr_server sv[HR_MAX_NODES];
    size_t n = hr_raft_configuration(hr_node_raft(rt->node), sv, HR_MAX_NODES, NULL);
    if (n > HR_MAX_NODES) {
        n = HR_MAX_NODES;
    }
    for (size_t i = 0; i < n; i++) {
        char name[HR_MAX_ADDR], addr[HR_MAX_ADDR];
        if (parse_server(&sv[i], name, sizeof name, addr, sizeof addr)) {
            learn(rt, sv[i].id, name, addr, false);
        }
    }
    /* An operator reading the node's log should see why it went quiet. */
    bool removed = hr_runtime_removed(rt);
    if (removed && !rt->removed_said) {
        hr__rt_log(rt, 1,
                   "membership: %s is no longer in the cluster's configuration (its "
                   "removal committed): it will not campaign; add it back with add_peer",
                   rt->name);
    }
    rt->removed_said = removed;
}

/* ---- membership, reads, transfers ---- */

const char *hr_runtime_name_of(const struct hr_runtime *rt, hr_id_t id)
{
    const struct hr__rt_server *k = find_known(rt, id);
    return k != NULL ? k->name : NULL;
}

const char *hr_runtime_addr_of(const struct hr_runtime *rt, hr_id_t id)
{
    const struct hr__rt_server *k = find_known(rt, id);
    return k != NULL ? k->addr : NULL;
}

/* ---- membership, reads, transfers ---- */

/* The node, or why there is none. */
static int live_node(struct hr_runtime *rt)
{
    if (rt->closing || !rt->started) {
        return HR_ESHUTDOWN;
    }
    if (rt->failed != 0) {
        return HR_ENOSPACE;
    }
    return rt->node != NULL ? 0 : HR_ESHUTDOWN;
}

int hr_runtime_add(struct hr_runtime *rt, const char *name, const char *addr, bool voter,
                   hr_index_t *index)
{
    int rc = live_node(rt);
    if (rc != 0) {
        return rc;
    }
    struct sockaddr_storage sa;
    if (name == NULL || name[0] == '\0' || addr == NULL || hr_tcp_parse_addr(addr, &sa) != 0) {
        return HR_EINVAL;
    }
    hr_id_t id = hr_tcp_node_id(name);
    const struct hr__rt_server *k = find_known(rt, id);
    if (k != NULL && strcmp(k->name, name) != 0) {
        return HR_EINVAL; /* two names, one id */
    }
    uint8_t buf[HR_MAX_ADDR];
    size_t len;
    if (server_addr(name, addr, buf, sizeof buf, &len) != 0) {
        return HR_EINVAL;
    }
    rc = hr_node_add(rt->node, id, buf, len, voter, hr_runtime_now(rt), index);
    if (rc == 0) {
        /* Before the flush sends it anything. */
        learn(rt, id, name, addr, true);
    }
    return rc;
}

int hr_runtime_remove(struct hr_runtime *rt, const char *name, hr_index_t *index)
{
    int rc = live_node(rt);
    if (rc != 0) {
        return rc;
    }
    if (name == NULL || name[0] == '\0') {
        return HR_EINVAL;
    }
    return hr_node_remove(rt->node, hr_tcp_node_id(name), hr_runtime_now(rt), index);
}

int hr_runtime_read_index(struct hr_runtime *rt, uint64_t ctx)
{
    int rc = live_node(rt);
    if (rc != 0) {
        return rc;
    }
    uint64_t *v = hr_array_grow(rt->reads, &rt->cap_reads, rt->n_reads + 1, sizeof *v, 16);
    if (v == NULL) {
        return HR_ENOMEM;
    }
    rt->reads = v;
    rc = hr_node_read_index(rt->node, ctx, hr_runtime_now(rt));
    if (rc == 0) {
        rt->reads[rt->n_reads++] = ctx;
    }
    return rc;
}

int hr_runtime_transfer(struct hr_runtime *rt, const char *name)
{
    int rc = live_node(rt);
    if (rc != 0) {
        return rc;
    }
    hr_id_t id = 0;
    if (name != NULL) {
        id = hr_tcp_node_id(name);
        const struct hr__rt_server *k = find_known(rt, id);
        if (k == NULL || strcmp(k->name, name) != 0) {
            return HR_EINVAL;
        }
    }
    return hr_node_transfer(rt->node, id, hr_runtime_now(rt));
}

const char *hr_runtime_transferee(const struct hr_runtime *rt)
{
    if (rt->node == NULL || rt->closing) {
        return NULL;
    }
    return hr_runtime_name_of(rt, hr_raft_transferee(hr_node_raft(rt->node)));
}

int hr_runtime_configuration(struct hr_runtime *rt, struct hr_runtime_server *out, size_t max,
                             size_t *n, hr_index_t *index, bool *committed, hr_id_t *promoting)
{
    *n = 0;
    if (rt->node == NULL || rt->closing) {
        return HR_ESHUTDOWN;
    }
    hr__rt_sync_conf(rt);
    struct hr_raft *r = hr_node_raft(rt->node);
    struct hr_server sv[HR_MAX_NODES];
    hr_index_t idx;
    size_t ns = hr_raft_configuration(r, sv, HR_MAX_NODES, &idx);
    if (ns > HR_MAX_NODES) {
        ns = HR_MAX_NODES;
    }
    struct hr_progress_info pr[HR_MAX_NODES];
    size_t np = 0;
    bool leader = hr_raft_role(r) == HR_LEADER;
    if (leader) {
        np = hr_raft_progress(r, pr, HR_MAX_NODES);
        np = np > HR_MAX_NODES ? HR_MAX_NODES : np;
    }
    hr_index_t last = hr_raft_last_index(r);
    /* What the leader sends without waiting for an answer (the promotion rule's "caught
     * up", raft.h hr_raft_add). */
    uint64_t pipeline = (uint64_t)rt->raft.max_inflight * rt->raft.max_entries_per_append;
    for (size_t i = 0; i < ns && *n < max; i++) {
        struct hr_runtime_server *o = &out[(*n)++];
        memset(o, 0, sizeof *o);
        o->id = sv[i].id;
        o->voter = sv[i].voter;
        o->name = hr_runtime_name_of(rt, sv[i].id);
        o->addr = hr_runtime_addr_of(rt, sv[i].id);
        if (!leader) {
            continue;
        }
        if (sv[i].id == rt->id) {
            o->match = last;
            o->caught_up = true;
            continue;
        }
        for (size_t j = 0; j < np; j++) {
            if (pr[j].id == sv[i].id) {
                o->match = pr[j].match;
                o->caught_up = pr[j].replicating && !pr[j].snapshotting && pr[j].match > 0 &&
                               pr[j].match + pipeline >= last &&
                               pr[j].match >= hr_raft_snapshot_index(r);
            }
        }
    }
    if (index != NULL) {
        *index = idx;
    }
    if (committed != NULL) {
        *committed = idx <= hr_raft_commit_index(r);
    }
    if (promoting != NULL) {
        *promoting = hr_raft_promoting(r);
    }
    return 0;
}

bool hr_runtime_removed(const struct hr_runtime *rt)
{
    return rt->node != NULL && !rt->closing && hr_raft_removed(hr_node_raft(rt->node));
}
