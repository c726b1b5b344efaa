/*
 * error.h: the project's error codes. Functions return 0 or a negative HR_E* code; one table
 * maps each to a name and a message, as libuv's uv_err_name / uv_strerror do. Human context
 * travels separately, in a message each layer prefixes as the error goes up.
 */
#ifndef HR_ERROR_H
#define HR_ERROR_H

#define HR_ERRNO_MAP(X)                                                                            \
    X(NOMEM, -1, "out of memory")                                                                  \
    X(INVAL, -2, "invalid argument")                                                               \
    X(NOTLEADER, -3, "not the leader")                                                             \
    X(TOOLARGE, -4, "too large")                                                                   \
    X(SHUTDOWN, -5, "shut down")                                                                   \
    X(TIMEOUT, -6, "timed out")                                                                    \
    X(NOSPACE, -7, "no space left on the device")                                                  \
    X(IO, -8, "input/output error")                                                                \
    X(CORRUPT, -9, "corrupt data")                                                                 \
    X(BUSY, -10, "resource busy")                                                                  \
    X(PROTO, -11, "protocol error")

enum {
#define X(name, code, msg) HR_E##name = (code),
    HR_ERRNO_MAP(X)
#undef X
};

/* "ENOTLEADER", ... ; "EUNKNOWN" for a code not in the table. Static strings. */
const char *hr_err_name(int code);
/* "not the leader", ... Static strings. */
const char *hr_strerror(int code);

#endif
