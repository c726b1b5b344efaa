/*
 * error.h: the project's error codes. Functions return 0 or a negative HR_E* code; one table
 * maps each to a name and a message, as libuv's uv_err_name / uv_strerror do. Human context
 * travels separately, in a message each layer prefixes as the error goes up.
 *
 * The name is also the code the Lua API returns (`nil, code, detail`): lower-case words
 * joined by "_", one spelling from C to Lua (docs/lua-api.md lists every code).
 */
#ifndef HR_ERROR_H
#define HR_ERROR_H

#define HR_ERRNO_MAP(X)                                                                            \
    X(NOMEM, -1, "no_memory", "out of memory")                                                     \
    X(INVAL, -2, "invalid", "invalid argument")                                                    \
    X(NOTLEADER, -3, "not_leader", "not the leader")                                               \
    X(TOOLARGE, -4, "too_large", "too large")                                                      \
    X(SHUTDOWN, -5, "shutdown", "shut down")                                                       \
    X(TIMEOUT, -6, "timeout", "timed out")                                                         \
    X(NOSPACE, -7, "no_space", "no space left on the device")                                      \
    X(IO, -8, "io", "input/output error")                                                          \
    X(CORRUPT, -9, "corrupt", "corrupt data")                                                      \
    X(BUSY, -10, "busy", "resource busy")                                                          \
    X(PROTO, -11, "protocol", "protocol error")

enum {
#define X(name, code, str, msg) HR_E##name = (code),
    HR_ERRNO_MAP(X)
#undef X
};

/* "not_leader", ... ; "unknown" for a code not in the table. Static strings. */
const char *hr_err_name(int code);
/* "not the leader", ... Static strings. */
const char *hr_strerror(int code);

#endif
