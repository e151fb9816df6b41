/* testutil — shared helpers for cmocka tests: temporary directories, fixture
 * files, and locating the shared MovieLens data (tests skip, saying so, when
 * it is absent). Header-only so each test binary stays self-contained. */
#ifndef CB_TESTUTIL_H
#define CB_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Make a fresh temporary directory; returns a static-lifetime malloc'd path. */
static inline char *tu_tmpdir(void) {
    char tmpl[] = "/tmp/cbrec-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

/* Write `text` to dir/name and return the malloc'd full path. */
static inline char *tu_write(const char *dir, const char *name, const char *text) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fwrite(text, 1, strlen(text), f);
    assert_int_equal(fclose(f), 0);
    return p;
}

static inline char *tu_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Remove a directory tree made by tu_tmpdir. */
static inline void tu_rmrf(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

/* Path of a shared dataset folder (e.g. "ml-100k") or NULL when absent.
 * Looks in $CBREC_DATA, then ../shared/data. */
static inline const char *tu_shared_data(const char *name) {
    static char buf[4096];
    const char *roots[2] = {getenv("CBREC_DATA"), "../shared/data"};
    for (int i = 0; i < 2; i++) {
        if (!roots[i]) continue;
        snprintf(buf, sizeof buf, "%s/%s", roots[i], name);
        struct stat st;
        if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode)) return buf;
    }
    return NULL;
}

/* Skip the current test, printing why (cmocka prints [  SKIPPED ]). */
#define TU_SKIP(...) do { fprintf(stdout, "skip reason: " __VA_ARGS__); fputc('\n', stdout); skip(); } while (0)

#endif
