/* error.c: see error.h. */
#include "error.h"

const char *hr_err_name(int code)
{
    switch (code) {
#define X(name, c, str, msg)                                                                       \
    case (c):                                                                                      \
        return str;
        HR_ERRNO_MAP(X)
#undef X
    }
    return "unknown";
}

const char *hr_strerror(int code)
{
    switch (code) {
#define X(name, c, str, msg)                                                                       \
    case (c):                                                                                      \
        return msg;
        HR_ERRNO_MAP(X)
#undef X
    }
    return "unknown error";
}
