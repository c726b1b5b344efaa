/*
 * fork_snapshot.c: core.snapshot_fork and core.snapshot_sync (see fork_snapshot.h and
 * docs/fork-snapshot.md for the why and the measurements).
 *
 * The child: a copy of the process in which only the calling thread exists. It runs fn on
 * the copy-on-write image of the Lua state, writes the bytes, fdatasyncs and reports on a
 * pipe ("ok <bytes> <serialize_ms>" or "error <message>"), then _exit()s: no atexit
 * handlers, no stdio flush, no LeakSanitizer pass, no return into the parent's Lua frames.
 * Everything that can raise a Lua error in the child runs inside one lua_pcall; what the
 * child needs on its Lua stack (traceback handler, body, fn, writer) is pushed before the
 * fork, where an error is an ordinary error of the parent.
 *
 * The parent learns that the child is gone from the pipe: the child holds the only write
 * end (O_CLOEXEC, and the child closes every other inherited fd), so EOF on the loop means
 * the child has exited or is exiting. Then wait4(pid, WNOHANG) reaps this pid only; in the
 * short window between the kernel closing the child's files and the child becoming a
 * zombie, a 1 ms timer retries. No SIGCHLD handler: that is process-wide state (libuv
 * resets the disposition to SIG_DFL when its last watcher stops, whatever the embedder
 * had), and a handler makes nanosleep, poll and friends fail with EINTR in code that never
 * asked for signals. Children of helios.testing, the CLI or io.popen are never waited for.
 */
#define _GNU_SOURCE /* fdatasync, pipe2, prctl, wait4, __fpurge under -std=c11 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "binding.h"
#include "fork_snapshot.h"
#include "loop.h"
#include "os.h"
#include "snapshot_writer.h"

#define HANDLE_MT "helios.core.snapshot_fork"
/* The longest message the child reports (an error with its traceback). */
#define MSG_MAX 8192

#define USAGE_FORK "Usage: core.snapshot_fork(path, fn, done[, opts])"
#define USAGE_SYNC "Usage: core.snapshot_sync(path, fn)"

enum { CHILD_OK = 0, CHILD_FAILED = 1, CHILD_ORPHANED = 2 };

/* Protected: (fn, w). fn(w), then the returned string (if any), flush, fdatasync. */
static int serialize_body(lua_State *L)
{
    struct hr__snap_writer *w = luaL_checkudata(L, 2, HR__SNAP_WRITER_MT);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 1, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *p = lua_tolstring(L, -1, &n);
        hr__snap_writer_put(L, w, p, n);
    } else if (!lua_isnil(L, -1)) {
        return luaL_error(L, "snapshot fn must return a string or nil (having used the "
                             "writer), not a %s", luaL_typename(L, -1));
    }
    hr__snap_writer_flush(L, w);
    if (fdatasync(w->fd) < 0) {
        return luaL_error(L, "snapshot fdatasync: %s", strerror(errno));
    }
    return 0;
}

/* Push (traceback, writer anchor, body, fn, writer): after lua_pcall(L, 2, 0, tb) the
 * anchor keeps the writer reachable. fn is at fn_idx. Returns the writer. */
static struct hr__snap_writer *push_call(lua_State *L, int fn_idx, int *tb_idx)
{
    lua_pushcfunction(L, hr__lsim_traceback);
    *tb_idx = lua_gettop(L);
    struct hr__snap_writer *w = hr__snap_writer_push(L);
    lua_pushcfunction(L, serialize_body);
    lua_pushvalue(L, fn_idx);
    lua_pushvalue(L, -3);
    return w;
}

static const char *error_text(lua_State *L)
{
    const char *m = lua_tostring(L, -1);
    return m != NULL ? m : "(error object is not a string)";
}

/* ---- the synchronous path --------------------------------------------------------------- */

/* core.snapshot_sync(path, fn) -> true, nil, bytes | false, err, bytes */
static int l_snapshot_sync(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (lua_type(L, 2) != LUA_TFUNCTION) {
        return luaL_error(L, USAGE_SYNC ": fn must be a function");
    }
    lua_settop(L, 2);
    int tb;
    struct hr__snap_writer *w = push_call(L, 2, &tb);
    int fd = hr__snap_open_tmp(path);
    if (fd < 0) {
        int e = errno;
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "open %s: %s", path, strerror(e));
        lua_pushnumber(L, 0);
        return 3;
    }
    w->fd = fd;
    int rc = lua_pcall(L, 2, 0, tb);
    uint64_t bytes = w->bytes;
    hr__snap_writer_close(w);
    int close_rc = close(fd);
    int close_errno = errno;
    if (rc != 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
    } else if (close_rc != 0 && close_errno != EINTR) {
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "close %s: %s", path, strerror(close_errno));
    } else {
        lua_pushboolean(L, 1);
        lua_pushnil(L);
    }
    lua_pushnumber(L, (lua_Number)bytes);
    return 3;
}

/* ---- the child ---------------------------------------------------------------------------- */

/* Sockets, the loop's epoll and eventfds, other pipes: the child must not keep them open.
 * A socket the parent closes would not send its FIN until the child exits, and a pipe's
 * reader (another snapshot's parent) would wait for this child's exit to see EOF. Closing
 * a copy of the epoll fd changes nothing for the parent: registrations belong to the open
 * file descriptions, which the parent still holds. */
static void close_other_fds(int a, int b, int c)
{
    int keep[3] = {a, b, c};
    for (int i = 1; i < 3; i++) { /* sort the three */
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    }
    int next = 3;
    for (int i = 0; i < 3; i++) {
        hr__lua_close_fds(next, keep[i] - 1);
        next = keep[i] + 1;
    }
    hr__lua_close_fds(next, 0x7fffffff);
}

static void reset_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int s = 1; s < NSIG; s++) {
        if (s != SIGKILL && s != SIGSTOP) {
            (void)sigaction(s, &sa, NULL); /* glibc's reserved signals fail: fine */
        }
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void report(int pw, const char *kind, const char *text)
{
    size_t kn = strlen(kind), tn = strlen(text);
    if (tn > MSG_MAX - kn - 1) {
        tn = MSG_MAX - kn - 1;
    }
    (void)hr__snap_write_all(pw, kind, kn);
    (void)hr__snap_write_all(pw, " ", 1);
    (void)hr__snap_write_all(pw, text, tn);
}

static _Noreturn void child_main(lua_State *L, struct hr__snap_writer *w, int pw, int gate,
                                 pid_t parent, int tb, bool gc)
{
    /* The parent's death must not leave a writer nobody waits for. */
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        _exit(CHILD_ORPHANED);
    }
    reset_signals();
    /* Output the parent had buffered is the parent's to write: if fn prints, only its own
     * text may reach the stream. */
    __fpurge(stdout);
    __fpurge(stderr);
    close_other_fds(w->fd, pw, gate);
    /* The last inherited fd: its close lets the parent go on (see wait_gate). */
    close(gate);
    /* A collector cycle in the child would write the mark bits of every object, copying
     * every page of the heap; the child's garbage dies with it instead. */
    if (!gc) {
        lua_gc(L, LUA_GCSTOP, 0);
    }
    double t0 = hr__lua_clock_ms();
    int rc = lua_pcall(L, 2, 0, tb);
    double ms = hr__lua_clock_ms() - t0;
    if (rc != 0) {
        report(pw, "error", error_text(L));
        _exit(CHILD_FAILED);
    }
    char msg[96];
    snprintf(msg, sizeof msg, "%" PRIu64 " %.3f", w->bytes, ms);
    report(pw, "ok", msg);
    _exit(CHILD_OK);
}

/* ---- the parent's handle --------------------------------------------------------------- */

struct snap {
    struct hr__lloop *lp;
    uv_pipe_t pipe;
    uv_timer_t timer;
    int refs; /* the userdata + each uv handle not yet closed */
    pid_t pid;
    int done_ref, self_ref;
    bool handles, reaped, finished, killed, polling, status_known;
    int status;
    struct rusage child_ru;
    long parent_minflt0;
    double t_fork, fork_ms, elapsed_ms;
    size_t msg_len;
    char msg[MSG_MAX + 1];
    char rbuf[4096];
    char err[MSG_MAX + 128];
    /* The result handed to done. */
    bool ok;
    uint64_t bytes;
    double serialize_ms;
    long parent_minflt;
};

struct snap_box {
    struct snap *s;
};

static void snap_unref(struct snap *s)
{
    if (--s->refs == 0) {
        struct hr__lloop *lp = s->lp;
        free(s);
        hr__loop_release(lp);
    }
}

static void on_closed(uv_handle_t *h)
{
    snap_unref(h->data);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, on_closed);
    }
}

static long minflt_self(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_minflt : 0;
}

static void compute_result(struct snap *s)
{
    s->msg[s->msg_len] = '\0';
    uint64_t bytes = 0;
    double ms = -1;
    bool said_ok = strncmp(s->msg, "ok ", 3) == 0 &&
                   sscanf(s->msg + 3, "%" SCNu64 " %lf", &bytes, &ms) == 2;
    bool exited0 = s->status_known && WIFEXITED(s->status) && WEXITSTATUS(s->status) == 0;
    /* Without a status (someone else reaped the child) the child's own report decides: it
     * says ok only after the fdatasync. */
    if (said_ok && (exited0 || !s->status_known)) {
        s->ok = true;
        s->bytes = bytes;
        s->serialize_ms = ms;
        return;
    }
    s->ok = false;
    if (s->status_known && WIFSIGNALED(s->status)) {
        int sig = WTERMSIG(s->status);
        const char *name = hr__lua_signal_name(sig);
        snprintf(s->err, sizeof s->err, "snapshot child killed by signal %d (%s)%s", sig,
                 name != NULL ? name : "?", s->killed ? " by handle:kill()" : "");
    } else if (strncmp(s->msg, "error ", 6) == 0) {
        snprintf(s->err, sizeof s->err, "%s", s->msg + 6);
    } else if (s->status_known && WIFEXITED(s->status)) {
        snprintf(s->err, sizeof s->err, "snapshot child exited with status %d%s",
                 WEXITSTATUS(s->status),
                 WEXITSTATUS(s->status) == CHILD_ORPHANED ? " (its parent went away)" : "");
    } else {
        snprintf(s->err, sizeof s->err,
                 "snapshot child was reaped by someone else (SIGCHLD ignored?) before "
                 "reporting success");
    }
}

static int push_done(lua_State *L, void *arg)
{
    struct snap *s = arg;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->done_ref);
    lua_pushboolean(L, s->ok);
    if (s->ok) {
        lua_pushnil(L);
    } else {
        lua_pushstring(L, s->err);
    }
    lua_pushnumber(L, (lua_Number)s->bytes);
    lua_createtable(L, 0, 8);
    hr__lua_set_number(L, "pid", s->pid);
    hr__lua_set_number(L, "fork_ms", s->fork_ms);
    hr__lua_set_number(L, "elapsed_ms", s->elapsed_ms);
    if (s->serialize_ms >= 0) {
        hr__lua_set_number(L, "serialize_ms", s->serialize_ms);
    }
    if (s->status_known) {
        hr__lua_set_number(L, "child_minflt", (double)s->child_ru.ru_minflt);
        hr__lua_set_number(L, "child_maxrss_kb", (double)s->child_ru.ru_maxrss);
    }
    hr__lua_set_number(L, "parent_minflt", (double)s->parent_minflt);
    return 4;
}

static void finish(struct snap *s)
{
    s->elapsed_ms = hr__lua_clock_ms() - s->t_fork;
    s->parent_minflt = minflt_self() - s->parent_minflt0;
    compute_result(s);
    close_handle((uv_handle_t *)&s->timer);
    s->finished = true;
    /* The userdata stays referenced (self_ref) through the call. */
    hr__loop_call(s->lp, push_done, s, "snapshot_fork done");
    hr__loop_unref(s->lp, s->done_ref);
    hr__loop_unref(s->lp, s->self_ref);
    s->done_ref = s->self_ref = LUA_NOREF;
}

static void on_poll(uv_timer_t *t);

static void try_reap(struct snap *s)
{
    if (s->reaped) {
        return;
    }
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    pid_t r;
    do {
        r = wait4(s->pid, &status, WNOHANG, &ru);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        /* EOF came before the child became a zombie (exit closes files first). */
        if (!s->polling) {
            s->polling = true;
            uv_timer_start(&s->timer, on_poll, 1, 1);
        }
        return;
    }
    s->reaped = true;
    uv_timer_stop(&s->timer);
    if (r == s->pid) {
        s->status = status;
        s->status_known = true;
        s->child_ru = ru;
    }
    finish(s);
}

static void on_poll(uv_timer_t *t)
{
    try_reap(t->data);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct snap *s = h->data;
    (void)suggested;
    *buf = uv_buf_init(s->rbuf, sizeof s->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct snap *s = st->data;
    if (nread > 0) {
        size_t room = MSG_MAX - s->msg_len;
        size_t n = (size_t)nread < room ? (size_t)nread : room;
        memcpy(s->msg + s->msg_len, buf->base, n);
        s->msg_len += n;
        return;
    }
    if (nread == 0) {
        return;
    }
    /* EOF (the child, the only writer, has exited) or a read error: either way the pipe
     * has nothing more to say, and the child's status decides. */
    uv_read_stop(st);
    close_handle((uv_handle_t *)st);
    try_reap(s);
}

static struct snap *check_handle(lua_State *L)
{
    struct snap_box *b = luaL_checkudata(L, 1, HANDLE_MT);
    if (b->s == NULL) {
        luaL_error(L, "snapshot handle is closed");
    }
    return b->s;
}

static int l_handle_pid(lua_State *L)
{
    lua_pushinteger(L, check_handle(L)->pid);
    return 1;
}

/* h:kill() -> true if the child was signalled (SIGKILL), false once it is reaped. done
 * still runs, with false and "killed". */
static int l_handle_kill(lua_State *L)
{
    struct snap *s = check_handle(L);
    if (s->reaped || s->pid <= 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    s->killed = true;
    lua_pushboolean(L, kill(s->pid, SIGKILL) == 0);
    return 1;
}

/* True until done has been called. */
static int l_handle_running(lua_State *L)
{
    lua_pushboolean(L, !check_handle(L)->finished);
    return 1;
}

/* How long fork() took in the parent, with the wait for the child to close what it
 * inherited (wait_gate): the one pause of the loop. */
static int l_handle_fork_ms(lua_State *L)
{
    lua_pushnumber(L, check_handle(L)->fork_ms);
    return 1;
}

static int l_handle_tostring(lua_State *L)
{
    struct snap_box *b = luaL_checkudata(L, 1, HANDLE_MT);
    if (b->s == NULL) {
        lua_pushliteral(L, "helios.core.snapshot_fork (closed)");
    } else {
        lua_pushfstring(L, "helios.core.snapshot_fork (pid %d, %s)", (int)b->s->pid,
                        b->s->finished ? "done" : "running");
    }
    return 1;
}

/* Only when nothing references the handle: after done, or at lua_close with the child
 * still running. A child nobody will wait for is killed and reaped here. */
static int l_handle_gc(lua_State *L)
{
    struct snap_box *b = luaL_checkudata(L, 1, HANDLE_MT);
    struct snap *s = b->s;
    b->s = NULL;
    if (s == NULL) {
        return 0;
    }
    if (s->pid > 0 && !s->reaped) {
        int status;
        (void)kill(s->pid, SIGKILL);
        while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR) {
        }
        s->reaped = true;
    }
    if (hr__loop_dead(s->lp)) {
        return 0; /* the loop is gone with the state: leave its handles, like timers do */
    }
    if (s->handles) {
        uv_read_stop((uv_stream_t *)&s->pipe);
        close_handle((uv_handle_t *)&s->pipe);
        close_handle((uv_handle_t *)&s->timer);
    }
    snap_unref(s);
    return 0;
}

static int push_io_fail(lua_State *L, const char *what, const char *path, int e)
{
    lua_pushnil(L);
    lua_pushliteral(L, "io");
    if (path != NULL) {
        lua_pushfstring(L, "%s %s: %s", what, path, strerror(e));
    } else {
        lua_pushfstring(L, "%s: %s", what, strerror(e));
    }
    return 3;
}

/* Until the child has closed the fds it inherited, it holds a reference to every open file
 * description of this process, and with them their flock()s: a data dir a node of this
 * process has just closed (its shutdown callback has run) would still be locked, and the
 * node's restart refused with busy, for as long as the child takes to be scheduled. So the
 * parent waits here, before it runs anything else, for EOF on the gate pipe: the child
 * closes its write end after every other inherited fd, and its exit closes it too. The
 * child gets there within a few system calls; the wait is part of the fork pause. */
static void wait_gate(int fd)
{
    char c;
    while (read(fd, &c, 1) != 0) {
        if (errno != EINTR) {
            break; /* never seen: the fd is ours and the child writes nothing */
        }
    }
}

/* core.snapshot_fork(path, fn, done[, opts]) -> handle | nil, "io", detail */
static int l_snapshot_fork(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (lua_type(L, 2) != LUA_TFUNCTION) {
        return luaL_error(L, USAGE_FORK ": fn must be a function");
    }
    if (lua_type(L, 3) != LUA_TFUNCTION) {
        return luaL_error(L, USAGE_FORK ": done must be a function");
    }
    bool child_gc = false;
    if (!lua_isnoneornil(L, 4)) {
        if (!lua_istable(L, 4)) {
            return luaL_error(L, USAGE_FORK ": opts must be a table");
        }
        lua_getfield(L, 4, "child_gc");
        child_gc = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_settop(L, 4);
    struct hr__lloop *lp = hr__loop_get(L);
    if (hr__loop_dead(lp)) {
        return luaL_error(L, "core.snapshot_fork: the loop is closed");
    }

    /* Everything that allocates on the Lua side happens before the fork: after it, the
     * parent must not fail with a child it no longer tracks, and the child must not raise
     * outside its one protected call. */
    struct snap_box *b = lua_newuserdata(L, sizeof *b); /* 5 */
    b->s = NULL;
    luaL_getmetatable(L, HANDLE_MT);
    lua_setmetatable(L, -2);
    struct snap *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return luaL_error(L, "core.snapshot_fork: out of memory");
    }
    s->lp = lp;
    s->refs = 1;
    s->pid = -1;
    s->done_ref = s->self_ref = LUA_NOREF;
    s->serialize_ms = -1;
    hr__loop_retain(lp);
    b->s = s;
    lua_pushvalue(L, 3);
    s->done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 5);
    s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    int tb;
    struct hr__snap_writer *w = push_call(L, 2, &tb);

    int fd = hr__snap_open_tmp(path);
    int e = errno;
    const char *what = "open";
    int pfd[2] = {-1, -1};
    int gate[2] = {-1, -1};
    if (fd >= 0 && (pipe2(pfd, O_CLOEXEC) < 0 || pipe2(gate, O_CLOEXEC) < 0)) {
        e = errno;
        what = "pipe";
    }
    pid_t pid = -1;
    if (fd >= 0 && pfd[0] >= 0 && gate[0] >= 0) {
        w->fd = fd;
        s->parent_minflt0 = minflt_self();
        pid_t self = getpid();
        s->t_fork = hr__lua_clock_ms();
        pid = fork();
        e = errno;
        what = "fork";
        if (pid == 0) {
            close(pfd[0]);
            close(gate[0]);
            child_main(L, w, pfd[1], gate[1], self, tb, child_gc);
        }
        if (pid > 0) {
            close(gate[1]);
            gate[1] = -1;
            wait_gate(gate[0]);
        }
        s->fork_ms = hr__lua_clock_ms() - s->t_fork;
        w->fd = -1;
    }
    if (fd >= 0) {
        close(fd);
    }
    if (pfd[1] >= 0) {
        close(pfd[1]);
    }
    for (int i = 0; i < 2; i++) {
        if (gate[i] >= 0) {
            close(gate[i]);
        }
    }
    if (pid < 0) {
        if (pfd[0] >= 0) {
            close(pfd[0]);
        }
        s->finished = true;
        luaL_unref(L, LUA_REGISTRYINDEX, s->done_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
        s->done_ref = s->self_ref = LUA_NOREF;
        return push_io_fail(L, what, fd < 0 ? path : NULL, e);
    }

    s->pid = pid;
    uv_loop_t *loop = hr__loop_uv(lp);
    uv_pipe_init(loop, &s->pipe, 0);
    uv_timer_init(loop, &s->timer);
    s->pipe.data = s;
    s->timer.data = s;
    s->handles = true;
    s->refs += 2;
    int rc = uv_pipe_open(&s->pipe, pfd[0]);
    if (rc == 0) {
        rc = uv_read_start((uv_stream_t *)&s->pipe, on_alloc, on_read);
    } else {
        close(pfd[0]);
    }
    if (rc != 0) {
        /* Without the pipe (never seen): poll for the exit; the error report is lost. */
        close_handle((uv_handle_t *)&s->pipe);
        s->polling = true;
        uv_timer_start(&s->timer, on_poll, 10, 10);
    }
    lua_settop(L, 5);
    return 1;
}

static const luaL_Reg handle_methods[] = {
    {"pid", l_handle_pid},
    {"kill", l_handle_kill},
    {"running", l_handle_running},
    {"fork_ms", l_handle_fork_ms},
    {NULL, NULL},
};

int hr__lua_open_fork_snapshot(lua_State *L)
{
    hr__lua_open_snapshot_writer(L);
    hr__lua_new_class(L, HANDLE_MT, handle_methods, l_handle_gc, l_handle_tostring);
    static const luaL_Reg funcs[] = {
        {"snapshot_fork", l_snapshot_fork}, {"snapshot_sync", l_snapshot_sync}, {NULL, NULL}};
    luaL_register(L, NULL, funcs);
    return 0;
}
