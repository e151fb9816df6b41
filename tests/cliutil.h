/* cliutil — running the `cbrec` command line from a cmocka test: the binary
 * ($CBREC, which may be a wrapper such as "valgrind ... ./cbrec") and a
 * shell command's exit status and output. Header-only. */
#ifndef CB_CLIUTIL_H
#define CB_CLIUTIL_H

#include "testutil.h"
#include <sys/wait.h>

static inline const char *cbrec(void) {
    const char *c = getenv("CBREC");
    return c ? c : "./cbrec";
}

/* Run a shell command; capture stdout+stderr (malloc'd) and return the exit status. */
static inline int run(char **out, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (cap - n < 4096) buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    int st = pclose(p);
    if (out) *out = buf;
    else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#endif
