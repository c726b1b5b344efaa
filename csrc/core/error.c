/* error.c: see error.h. */
#include "error.h"

#include <stddef.h>

static const struct {
    int code;
    const char *name, *msg;
} ERRORS[] = {
#define X(name, c, str, msg) {(c), str, msg},
    HR_ERRNO_MAP(X)
#undef X
};

/* The code's row, or -1. */
static int find(int code)
{
    for (size_t i = 0; i < sizeof ERRORS / sizeof ERRORS[0]; i++) {
        if (ERRORS[i].code == code) {
            return (int)i;
        }
    }
    return -1;
}

const char *hr_err_name(int code)
{
    int i = find(code);
    return i < 0 ? "unknown" : ERRORS[i].name;
}

const char *hr_strerror(int code)
{
    int i = find(code);
    return i < 0 ? "unknown error" : ERRORS[i].msg;
}
