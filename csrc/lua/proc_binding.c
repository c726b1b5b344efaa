/*
 * proc_binding.c: child processes and loopback ports for `helios cluster` and
 * helios.testing (part of `helios.core`, registered from module.c; proc_binding.h).
 *
 *   local pid, stdin, stdout = core.proc_spawn({ "luajit", "-e", "..." },
 *       { stdout = "node.log", stderr = "stdout", stdin = "pipe" | nil,
 *         stdout_pipe = true, die_with_parent = true, env = { NAME = value }, cwd = dir,
 *         new_group = true })                -- its own process group: a terminal's Ctrl-C
 *                                          -- (SIGINT to the foreground group) skips it
 *                                          -- stdin/stdout: sockets of client_binding.c
 *   core.proc_kill(pid, "TERM")            -- "KILL", "STOP", "CONT", "INT", or a number
 *   core.proc_wait(pid, 1000)              -- "exited", status | "signaled", name |
 *                                          -- nil, "timeout" | nil, "no_child"
 *   core.free_port()                       -- a loopback TCP port nobody listens on now
 *   core.sleep_ms(ms)  core.clock_ms()
 *   core.mkdir_p(path, mode)               -- true | nil, "mkdir /a/b: Permission denied"
 *   core.raise_nofile(want)                -- soft, hard: the open-file limit raised toward
 *                                          -- want (never above hard, never lowered)
 *
 * fork + exec rather than posix_spawn: PR_SET_PDEATHSIG has to be set in the child, so
 * that nodes a test started die with the test process even when it is SIGKILLed. The
 * environment is built before fork; between fork and exec the child only makes
 * async-signal-safe calls, and closes every fd but its stdio first.
 */
#define _GNU_SOURCE /* pipe2, execvpe, prctl, nanosleep under -std=c11 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "binding.h"
#include "client_binding.h"
#include "os.h"
#include "proc_binding.h"

extern char **environ;

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) {
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
}

static int check_signal(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        return (int)lua_tointeger(L, idx);
    }
    const char *name = luaL_optstring(L, idx, "TERM");
    int sig = hr__lua_signal_number(name);
    if (sig == 0) {
        return luaL_error(L, "Usage: unknown signal '%s'", name);
    }
    return sig;
}

static int opt_field(lua_State *L, int idx, const char *name)
{
    if (lua_isnoneornil(L, idx)) {
        lua_pushnil(L);
    } else {
        lua_getfield(L, idx, name);
    }
    return lua_gettop(L);
}

/* In the child after fork: only async-signal-safe calls until exec. */
static void child_exec(char **argv, char **envp, int in_fd, int out_fd, int err_fd, int err_to_out,
                       int die_with_parent, const char *cwd, int new_group)
{
    if (die_with_parent) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    }
    if (new_group) {
        (void)setpgid(0, 0);
    }
    /* The parent may have signals ignored or blocked; the child starts clean. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < 32; s++) {
        if (s != SIGKILL && s != SIGSTOP) {
            signal(s, SIG_DFL);
        }
    }
    if (in_fd >= 0 && dup2(in_fd, 0) < 0) _exit(127);
    if (out_fd >= 0 && dup2(out_fd, 1) < 0) _exit(127);
    if (err_to_out && dup2(1, 2) < 0) _exit(127);
    if (!err_to_out && err_fd >= 0 && dup2(err_fd, 2) < 0) _exit(127);
    /* Until exec closes the CLOEXEC ones, the child holds a copy of every parent fd: a
     * node's data-dir flock among them, which a restarted node would find busy. The
     * others (Lua's io.open files) it would keep for good. */
    hr__lua_close_fds(3, 0x7fffffff);
    if (cwd && chdir(cwd) < 0) _exit(127);
    execvpe(argv[0], argv, envp);
    _exit(127);
}

static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)lua_objlen(L, 1);
    if (n < 1) {
        return luaL_error(L, "Usage: proc_spawn(argv, opts): argv needs a program");
    }
    char **argv = lua_newuserdata(L, sizeof(char *) * (size_t)(n + 1));
    /* A number in argv becomes a new string that only the stack slot referenced: once
     * popped, the GC could free it (the env building below allocates) and exec would get
     * freed memory. Every converted string is anchored in this table for the call. */
    lua_createtable(L, n, 0);
    int strs = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        if (!lua_isstring(L, -1)) {
            return luaL_error(L, "Usage: proc_spawn: argv[%d] must be a string", i);
        }
        argv[i - 1] = (char *)lua_tostring(L, -1);
        lua_rawseti(L, strs, i);
    }
    argv[n] = NULL;

    /* The environment is built before fork: the child may only exec. */
    char **envp = environ;
    int env_idx = opt_field(L, 2, "env");
    if (lua_istable(L, env_idx)) {
        int base = 0, extra = 0;
        while (environ[base]) base++;
        lua_pushnil(L);
        while (lua_next(L, env_idx)) { extra++; lua_pop(L, 1); }
        envp = lua_newuserdata(L, sizeof(char *) * (size_t)(base + extra + 1));
        int k = 0;
        lua_pushnil(L);
        while (lua_next(L, env_idx)) {
            lua_pushvalue(L, -2);
            lua_pushliteral(L, "=");
            lua_pushvalue(L, -3);
            lua_concat(L, 3);
            envp[k++] = (char *)lua_tostring(L, -1);
            lua_insert(L, env_idx + 1); /* keep the string alive below the iteration */
            lua_pop(L, 1);
        }
        for (int i = 0; i < base; i++) {
            const char *eq = strchr(environ[i], '=');
            int overridden = 0;
            for (int j = 0; j < extra && eq; j++) {
                size_t nl = (size_t)(eq - environ[i]) + 1;
                if (strncmp(envp[j], environ[i], nl) == 0) overridden = 1;
            }
            if (!overridden) envp[k++] = environ[i];
        }
        envp[k] = NULL;
    }
    const char *out_path = lua_tostring(L, opt_field(L, 2, "stdout"));
    const char *err_path = lua_tostring(L, opt_field(L, 2, "stderr"));
    const char *stdin_mode = lua_tostring(L, opt_field(L, 2, "stdin"));
    int stdout_pipe = lua_toboolean(L, opt_field(L, 2, "stdout_pipe"));
    int die = lua_toboolean(L, opt_field(L, 2, "die_with_parent"));
    const char *cwd = lua_tostring(L, opt_field(L, 2, "cwd"));
    int new_group = lua_toboolean(L, opt_field(L, 2, "new_group"));

    int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 };
    int out_fd = -1, err_fd = -1, null_fd = -1;
    int e = 0;
    const char *what = "";
    if (stdin_mode && strcmp(stdin_mode, "pipe") == 0) {
        if (pipe2(in_pipe, O_CLOEXEC) < 0) { e = errno; what = "pipe"; goto fail; }
    } else if ((null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        e = errno; what = "/dev/null"; goto fail;
    }
    if (stdout_pipe) {
        if (pipe2(out_pipe, O_CLOEXEC) < 0) { e = errno; what = "pipe"; goto fail; }
    } else if (out_path) {
        out_fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (out_fd < 0) { e = errno; what = out_path; goto fail; }
    }
    if (err_path && strcmp(err_path, "stdout") != 0) {
        err_fd = open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (err_fd < 0) { e = errno; what = err_path; goto fail; }
    }

    pid_t pid = fork();
    if (pid < 0) {
        e = errno;
        what = "fork";
        goto fail;
    }
    if (pid == 0) {
        int err_to_out = err_path && strcmp(err_path, "stdout") == 0;
        child_exec(argv, envp, in_pipe[0] >= 0 ? in_pipe[0] : null_fd,
                   stdout_pipe ? out_pipe[1] : out_fd, err_fd, err_to_out, die, cwd,
                   new_group);
    }
    if (in_pipe[0] >= 0) close(in_pipe[0]);
    if (out_pipe[1] >= 0) close(out_pipe[1]);
    if (out_fd >= 0) close(out_fd);
    if (err_fd >= 0) close(err_fd);
    if (null_fd >= 0) close(null_fd);
    lua_pushinteger(L, pid);
    if (in_pipe[1] >= 0) {
        set_nonblock(in_pipe[1]);
        hr__lua_push_sock(L, in_pipe[1]);
    } else {
        lua_pushnil(L);
    }
    if (out_pipe[0] >= 0) {
        set_nonblock(out_pipe[0]);
        hr__lua_push_sock(L, out_pipe[0]);
    } else {
        lua_pushnil(L);
    }
    return 3;

fail:
    for (int i = 0; i < 2; i++) {
        if (in_pipe[i] >= 0) close(in_pipe[i]);
        if (out_pipe[i] >= 0) close(out_pipe[i]);
    }
    if (out_fd >= 0) close(out_fd);
    if (err_fd >= 0) close(err_fd);
    if (null_fd >= 0) close(null_fd);
    return hr__lua_push_errno(L, what, e);
}

static int l_kill(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    int sig = check_signal(L, 2);
    if (pid <= 0) {
        return luaL_error(L, "Usage: proc_kill(pid, signal): pid must be positive");
    }
    if (kill(pid, sig) < 0) {
        return hr__lua_push_fail(L, errno == ESRCH ? "no_such_process" : "io", strerror(errno));
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_wait(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    double deadline = hr__lua_clock_ms() + luaL_optnumber(L, 2, 0);
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(status)) {
                lua_pushliteral(L, "exited");
                lua_pushinteger(L, WEXITSTATUS(status));
            } else {
                const char *name = hr__lua_signal_name(WTERMSIG(status));
                lua_pushliteral(L, "signaled");
                if (name) {
                    lua_pushstring(L, name);
                } else {
                    lua_pushinteger(L, WTERMSIG(status));
                }
            }
            return 2;
        }
        if (r < 0 && errno != EINTR) {
            return hr__lua_push_fail(L, "no_child", strerror(errno));
        }
        if (hr__lua_clock_ms() >= deadline) {
            return hr__lua_push_fail(L, "timeout", "still running");
        }
        struct timespec ts = { 0, 5 * 1000000 };
        nanosleep(&ts, NULL);
    }
}

/* The kernel's ephemeral range, where outgoing connections take their local ports. */
static void ephemeral_range(int *lo, int *hi)
{
    *lo = 32768;
    *hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f != NULL) {
        if (fscanf(f, "%d %d", lo, hi) != 2) {
            *lo = 32768;
            *hi = 60999;
        }
        fclose(f);
    }
}

static bool port_bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0;
    close(fd);
    return ok;
}

/* A port for a node a test is about to start. Not from the ephemeral range: between this
 * call and the node's bind (and while a killed node is down), any outgoing connection on
 * the machine could take an ephemeral port, and the node would fail with "address already
 * in use". Ports handed out recently are not handed out again. */
static int l_free_port(lua_State *L)
{
    static int recent[512];
    static unsigned n_recent;
    static uint64_t x;
    if (x == 0) {
        x = ((uint64_t)getpid() << 32) ^ (uint64_t)hr__lua_clock_ms();
    }
    int lo, hi;
    ephemeral_range(&lo, &hi);
    int base = 10000, top = lo > base + 1000 ? lo - 1 : 65535;
    if (top == 65535) {
        base = hi + 1; /* an unusual range: take the ports above it */
    }
    for (int attempt = 0; attempt < 1000; attempt++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int port = base + (int)((x >> 33) % (uint64_t)(top - base + 1));
        bool used = false;
        for (unsigned i = 0; i < n_recent && i < 512 && !used; i++) {
            used = recent[i] == port;
        }
        if (!used && port_bindable(port)) {
            recent[n_recent++ % 512] = port;
            lua_pushinteger(L, port);
            return 1;
        }
    }
    return hr__lua_push_fail(L, "address_in_use", "no free loopback port outside the ephemeral range");
}

/* Sleep without a loop, for pollers that have nothing to wait on (at most the given ms). */
static int l_sleep_ms(lua_State *L)
{
    lua_Number ms = luaL_checknumber(L, 1);
    if (ms > 0) {
        struct timespec ts = { (time_t)(ms / 1000), (long)((int64_t)ms % 1000) * 1000000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        }
    }
    return 0;
}

/* Monotonic milliseconds with a fractional part (latency measurements need better than
 * 1 ms). */
static int l_clock_ms(lua_State *L)
{
    lua_pushnumber(L, hr__lua_clock_ms());
    return 1;
}

/* mkdir -p without a shell: `helios node` creates its data dir and must report a failure
 * as one clean line naming the directory that could not be made, not mkdir(1)'s output.
 * Only the directories it creates get mode; existing ones are left as they are. */
static int l_mkdir_p(lua_State *L)
{
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    mode_t mode = (mode_t)luaL_optinteger(L, 2, 0755);
    if (len == 0 || len >= 4096) {
        lua_pushnil(L);
        lua_pushfstring(L, "mkdir '%s': bad path", path);
        return 2;
    }
    char buf[4096];
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1;; p++) {
        bool end = (*p == '\0');
        if (*p == '/' || end) {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, mode) < 0 && errno != EEXIST) {
                lua_pushnil(L);
                lua_pushfstring(L, "mkdir %s: %s", buf, strerror(errno));
                return 2;
            }
            *p = saved;
        }
        if (end) {
            break;
        }
    }
    struct stat st;
    if (stat(buf, &st) < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "mkdir %s: %s", buf, strerror(errno));
        return 2;
    }
    if (!S_ISDIR(st.st_mode)) {
        lua_pushnil(L);
        lua_pushfstring(L, "mkdir %s: exists and is not a directory", buf);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* `helios node` raises its soft open-file limit, as redis-server does: every client
 * connection is a descriptor, and past the limit libuv closes new connections without a
 * word, before max_clients could refuse them with a reason. */
static int l_raise_nofile(lua_State *L)
{
    lua_Number want = luaL_checknumber(L, 1);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(errno));
        return 2;
    }
    rlim_t target = want > 0 ? (rlim_t)want : 0;
    if (rl.rlim_max != RLIM_INFINITY && target > rl.rlim_max) {
        target = rl.rlim_max;
    }
    if (target > rl.rlim_cur) {
        struct rlimit nl = { target, rl.rlim_max };
        if (setrlimit(RLIMIT_NOFILE, &nl) == 0) {
            rl.rlim_cur = target;
        }
    }
    lua_pushnumber(L, rl.rlim_cur == RLIM_INFINITY ? 1e15 : (lua_Number)rl.rlim_cur);
    lua_pushnumber(L, rl.rlim_max == RLIM_INFINITY ? 1e15 : (lua_Number)rl.rlim_max);
    return 2;
}

int hr__lua_open_proc(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "proc_spawn", l_spawn },   { "proc_kill", l_kill },   { "proc_wait", l_wait },
        { "free_port", l_free_port }, { "sleep_ms", l_sleep_ms }, { "clock_ms", l_clock_ms },
        { "mkdir_p", l_mkdir_p },     { "raise_nofile", l_raise_nofile }, { NULL, NULL },
    };
    luaL_register(L, NULL, funcs);
    return 0;
}
