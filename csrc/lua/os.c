/* os.c: signal names and the monotonic clock of the bindings (see os.h). */
#define _GNU_SOURCE /* clock_gettime and the signal numbers under -std=c11 */
#include <signal.h>
#include <string.h>
#include <time.h>

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
