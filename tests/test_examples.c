/* test_examples — the programs in examples/ build against include/ alone
 * (the Makefile compiles them without -Isrc; this test also compiles one
 * with only -Iinclude to prove it) and run from the build tree. */
#include "testutil.h"

static const char *build_dir(void) {
    const char *b = getenv("BUILD");
    return b ? b : "build";
}

/* Run a shell command; stdout+stderr into *out (malloc'd); the exit status. */
static int run(char **out, const char *cmd) {
    char full[8192];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0)
        if ((n += got) + 4096 > cap) buf = realloc(buf, cap *= 2);
    buf[n] = 0;
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void compiles_with_public_header_only(void **state) {
    (void)state;
    char cmd[1024], *out;
    const char *cc = getenv("CC") ? getenv("CC") : "cc";
    snprintf(cmd, sizeof cmd, "%s -std=c11 -Wall -Wextra -Werror -Iinclude -fsyntax-only examples/train_and_recommend.c",
             cc);
    int rc = run(&out, cmd);
    if (rc) fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 0);
    free(out);
}

static void train_save_load_recommend(void **state) {
    (void)state;
    char *dir = tu_tmpdir(), cmd[4096], *out;
    /* a WORKDIR that does not exist yet: the example makes it */
    snprintf(cmd, sizeof cmd, "%s/examples/train_and_recommend %s/work", build_dir(), dir);
    int rc = run(&out, cmd);
    if (rc) fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "200 users, 300 items, 8000 ratings"));
    assert_non_null(strstr(out, "epoch 3/3"));
    assert_null(strstr(out, "nan")); /* no validation carve: no valid_loss printed, not "nan" */
    assert_non_null(strstr(out, "  5. "));
    free(out);
    /* the model it saved serves the other example too */
    snprintf(cmd, sizeof cmd, "%s/examples/embed %s/work/model.cbrec 1 1", build_dir(), dir);
    rc = run(&out, cmd);
    if (rc) fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "recommended for the user"));
    free(out);
    tu_rmrf(dir);
    free(dir);
}

/* make install into a scratch DESTDIR: cbrec.pc's Version is the header's
 * version string alone (it once carried the header line's comment), and a
 * program built with pkg-config's flags links libcbrec.so.1 and runs. */
static void install_and_pkg_config(void **state) {
    (void)state;
    if (getenv("SANITIZE") && !strcmp(getenv("SANITIZE"), "1"))
        TU_SKIP("make test SANITIZE=1: make install installs the plain build");
    char *dir = tu_tmpdir(), cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "make -s install DESTDIR=%s PREFIX=/usr/local >/dev/null && "
             "grep '^Version:' %s/usr/local/lib/pkgconfig/cbrec.pc", dir, dir);
    int rc = run(&out, cmd);
    if (rc) fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 0);
    char expect[64];
    snprintf(expect, sizeof expect, "Version: %s\n", CB_VERSION_STRING);
    assert_string_equal(out, expect);
    free(out);
    /* the man page names the same version (it said 0.1.0 in 0.3) */
    snprintf(cmd, sizeof cmd, "head -n 1 %s/usr/local/share/man/man1/cbrec.1", dir);
    assert_int_equal(run(&out, cmd), 0);
    snprintf(expect, sizeof expect, "\"cbrec %s\"", CB_VERSION_STRING);
    assert_non_null(strstr(out, expect));
    free(out);
    const char *cc = getenv("CC") ? getenv("CC") : "cc";
    snprintf(cmd, sizeof cmd, "P=%s/usr/local; PKG_CONFIG_PATH=$P/lib/pkgconfig %s -o %s/embed examples/embed.c "
             "$(PKG_CONFIG_PATH=$P/lib/pkgconfig pkg-config --define-variable=prefix=$P --cflags --libs cbrec) && "
             "LD_LIBRARY_PATH=$P/lib ldd %s/embed | grep -c 'libcbrec.so.1 => '\"$P\"",
             dir, cc, dir, dir);
    rc = run(&out, cmd);
    if (rc) fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "1\n");
    free(out);
    tu_rmrf(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(compiles_with_public_header_only),
        cmocka_unit_test(train_save_load_recommend),
        cmocka_unit_test(install_and_pkg_config),
    };
    return cmocka_run_group_tests_name("examples", tests, NULL, NULL);
}
