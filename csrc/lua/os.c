/* os.c: signal names, the monotonic clock and closing a child's fds (see os.h). */
#define _GNU_SOURCE /* clock_gettime, syscall and the signal numbers under -std=c11 */
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "os.h"

static const struct {
    const char *name;
    int sig;
} SIGNALS[] = {
    {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT},   {"STOP", SIGSTOP}, {"CONT", SIGCONT},
    {"HUP", SIGHUP},   {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"ABRT", SIGABRT},
    {"SEGV", SIGSEGV}, {"BUS", SIGBUS},   {"PIPE", SIGPIPE},
};

int hr__lua_signal_number(const char *name)
{
    if (strncmp(name, "SIG", 3) == 0) {
        name += 3;
    }
    for (size_t i = 0; i < sizeof SIGNALS / sizeof SIGNALS[0]; i++) {
        if (strcmp(SIGNALS[i].name, name) == 0) {
            return SIGNALS[i].sig;
        }
    }
    return 0;
}

const char *hr__lua_signal_name(int sig)
{
    for (size_t i = 0; i < sizeof SIGNALS / sizeof SIGNALS[0]; i++) {
        if (SIGNALS[i].sig == sig) {
            return SIGNALS[i].name;
        }
    }
    return NULL;
}

double hr__lua_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void hr__lua_close_fds(int first, int last)
{
    if (first < 3) {
        first = 3;
    }
    if (first > last) {
        return;
    }
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)first, (unsigned)last, 0u) == 0) {
        return;
    }
#endif
    struct rlimit rl;
    int cap = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)cap) {
        cap = (int)rl.rlim_cur;
    }
    for (int fd = first; fd <= last && fd < cap; fd++) {
        (void)close(fd);
    }
}
