/* Tests for util: vocabularies, RNG determinism, strict parsing, UTF-8
 * validation and atomic writes. */
#include "testutil.h"
#include "base/util.h"

#include <dirent.h>

static void vocab_roundtrip(void **state) {
    (void)state;
    cb_error err;
    cb_vocab *v = cb_vocab_create(&err);
    assert_non_null(v);
    char buf[32];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(buf, sizeof buf, "id-%d", i);
        uint32_t idx;
        bool added;
        assert_int_equal(cb_vocab_intern(v, buf, (size_t)n, &idx, &added, &err), CB_OK);
        assert_true(added);
        assert_int_equal(idx, i);
    }
    assert_int_equal(cb_vocab_size(v), 10000);
    uint32_t idx;
    bool added;
    assert_int_equal(cb_vocab_intern(v, "id-77", 5, &idx, &added, &err), CB_OK);
    assert_false(added);
    assert_int_equal(idx, 77);
    assert_int_equal(cb_vocab_find(v, "id-9999", 7), 9999);
    assert_int_equal(cb_vocab_find(v, "nope", 4), -1);
    assert_string_equal(cb_vocab_name(v, 123), "id-123");
    cb_vocab_free(v);
    cb_vocab_free(NULL);
}

static void rng_deterministic(void **state) {
    (void)state;
    cb_rng a, b;
    cb_rng_seed(&a, 42);
    cb_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) assert_true(cb_rng_next(&a) == cb_rng_next(&b));
    cb_rng_seed(&b, 43);
    assert_true(cb_rng_next(&a) != cb_rng_next(&b));
    /* below() stays in range and hits every value */
    int seen[7] = {0};
    for (int i = 0; i < 7000; i++) seen[cb_rng_below(&a, 7)]++;
    for (int i = 0; i < 7; i++) assert_true(seen[i] > 800 && seen[i] < 1200);
}

static void strict_parsing(void **state) {
    (void)state;
    float f;
    int64_t n;
    assert_true(cb_parse_float("4.5", 3, &f));
    assert_true(f == 4.5f);
    assert_true(cb_parse_float(" 3 ", 3, &f));
    assert_false(cb_parse_float("nan", 3, &f));
    assert_false(cb_parse_float("inf", 3, &f));
    assert_false(cb_parse_float("4.5x", 4, &f));
    assert_false(cb_parse_float("", 0, &f));
    assert_false(cb_parse_float("1e999", 5, &f));
    assert_false(cb_parse_float("0x5", 3, &f)); /* a rating is decimal: strtod alone read 5 */
    assert_false(cb_parse_float("0x1p3", 5, &f));
    assert_true(cb_parse_float("1e3", 3, &f) && f == 1000.0f);
    assert_true(cb_parse_i64("-12", 3, &n));
    assert_int_equal(n, -12);
    assert_false(cb_parse_i64("12.0", 4, &n));
}

/* A number as a file holds it: the shortest text that reads back exactly. */
static void number_text(void **state) {
    (void)state;
    char buf[32];
    const double x[6] = {0.1, 7.5, 1992.0, -0.30000000000000004, 1e-300, 123456789.125};
    const char *want[6] = {"0.1", "7.5", "1992", "-0.30000000000000004", "1e-300", "123456789.125"};
    for (int k = 0; k < 6; k++) assert_string_equal(cb_number_text(x[k], buf, sizeof buf), want[k]);
}

/* cb_time_parse against Python's datetime.fromisoformat(...).timestamp()
 * (a lower-case z and a leap second, which Python refuses, as RFC 3339 and
 * POSIX time read them). */
static void time_parsing(void **state) {
    (void)state;
    static const struct {
        const char *s;
        int64_t t;
    } good[] = {
        {"1714557600", 1714557600},
        {" 1714557600 ", 1714557600},
        {"1714557600.75", 1714557600},
        {"-5.5", -6},
        {"-5.0", -5},
        {"2024-05-01T10:00:00Z", 1714557600},
        {"2024-05-02", 1714608000},
        {"2024-05-01 12:00:00+02:00", 1714557600},
        {"2024-05-03T00:00", 1714694400},
        {"2024-05-04T01:02:03.456-05:00", 1714802523},
        {"2024-05-01T10:00+05:30", 1714537800},
        {"2024-05-01T10:00+0530", 1714537800},
        {"2024-05-01T15+05", 1714557600},
        {"2000-02-29T23:59:59", 951868799},
        {"1970-01-01", 0},
        {"1969-12-31T23:59:59Z", -1},
        {"2106-02-07T06:28:15Z", 4294967295},
        {"2024-05-01t10:00:00z", 1714557600},
        {"2016-12-31T23:59:60Z", 1483228800},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        int64_t t = 42;
        assert_true(cb_time_parse(good[i].s, strlen(good[i].s), &t));
        if (t != good[i].t) fail_msg("'%s': %lld, expected %lld", good[i].s, (long long)t, (long long)good[i].t);
    }
    static const char *const bad[] = {"", " ", "2023-02-29", "2100-02-29", "2024-13-01", "2024-04-31", "2024-05-01T24:00",
                                      "2024-05-01T10:60", "2024-05-01T10:00:00X", "2024-5-1", "2024/05/01", "05/01/2024",
                                      "1714557600.", ".5", "1e9", "2024-05-01T", "2024-05-01T10:00+5", "2024-05-01T10:00+05:", "0x10", "--1",
                                      "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t t = 42;
        if (cb_time_parse(bad[i], strlen(bad[i]), &t)) fail_msg("'%s' read as %lld", bad[i], (long long)t);
        assert_int_equal(t, 42);
    }
}

/* One decoder for the library's UTF-8 (cb_utf8_decode): the server's JSON
 * escapes and title folding read the same code points as validation. */
static void utf8_decoding(void **state) {
    (void)state;
    uint32_t cp = 0;
    assert_int_equal(cb_utf8_decode("A", 1, &cp), 1);
    assert_int_equal(cp, 'A');
    assert_int_equal(cb_utf8_decode("\xc3\xa9x", 3, &cp), 2);
    assert_int_equal(cp, 0xE9);
    assert_int_equal(cb_utf8_decode("\xe2\x82\xac", 3, &cp), 3);
    assert_int_equal(cp, 0x20AC);
    assert_int_equal(cb_utf8_decode("\xf0\x9f\x8e\xac", 4, &cp), 4);
    assert_int_equal(cp, 0x1F3AC);
    assert_int_equal(cb_utf8_decode("\xe2\x82\xac", 2, &cp), 0); /* truncated */
    assert_int_equal(cb_utf8_decode("\xe0\x81\x81", 3, &cp), 0); /* overlong 'A' */
    assert_int_equal(cb_utf8_decode("\xed\xa0\x80", 3, &cp), 0); /* surrogate */
    assert_int_equal(cb_utf8_decode("\xf4\x90\x80\x80", 4, &cp), 0); /* beyond U+10FFFF */
    assert_int_equal(cb_utf8_decode("\x80", 1, &cp), 0);
    /* folding keeps what is not valid as it is: an overlong 'A' is not 'a' */
    char overlong[] = "\xe0\x81\x81\xc3\x89";
    assert_int_equal(cb_utf8_fold(overlong), 5);
    assert_memory_equal(overlong, "\xe0\x81\x81\xc3\xa9", 5);
}

static void utf8_validation(void **state) {
    (void)state;
    assert_true(cb_utf8_valid("abc", 3));
    assert_true(cb_utf8_valid("caf\xc3\xa9", 5));
    assert_false(cb_utf8_valid("caf\xc3", 4));        /* truncated */
    assert_false(cb_utf8_valid("\xc0\xaf", 2));       /* overlong */
    assert_false(cb_utf8_valid("\xed\xa0\x80", 3));   /* surrogate */
    assert_false(cb_utf8_valid("\xff", 1));
    assert_true(cb_utf8_valid("\xf0\x9f\x8e\xac", 4)); /* emoji */
    char cut[] = "id 'caf\xc3' of \xe9t\xc3\xa9 \xf0\x9f\x8e"; /* "café" cut, a Latin-1 byte, "été", a cut emoji */
    cb_utf8_repair(cut);
    assert_string_equal(cut, "id 'caf?' of ?t\xc3\xa9 ???");
    cb_error err;
    cb_fail(&err, CB_EPARSE, "unknown user '%.4s'", "caf\xc3\xa9"); /* a precision cutting inside "é" */
    assert_string_equal(err.msg, "unknown user 'caf?'");
    assert_true(cb_utf8_valid(err.msg, strlen(err.msg)));
}

/* cb_hash64 is XXH64: the reference values of xxHash, at every tail length
 * path (32-byte lanes, 8-, 4- and 1-byte tails); seeds chain. */
static void xxh64_reference(void **state) {
    (void)state;
    const char *s = "Nobody inspects the spammish repetition";
    assert_true(cb_hash64("", 0, 0) == 0xef46db3751d8e999ULL);
    assert_true(cb_hash64("a", 1, 0) == 0xd24ec4f1a98c6e5bULL);
    assert_true(cb_hash64(s, strlen(s), 0) == 0xfbcea83c8a378bf1ULL);
    assert_true(cb_hash64(s, strlen(s), 1) != cb_hash64(s, strlen(s), 0));
    char buf[64] = {0};
    assert_true(cb_hash64(buf, 64, 0) != cb_hash64(buf, 63, 0));
}

static void atomic_write_keeps_old_file(void **state) {
    (void)state;
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "model.bin", "old contents");
    cb_error err;
    cb_atomic_file af;
    assert_int_equal(cb_atomic_open(&af, path, &err), CB_OK);
    fputs("new contents", af.fp);
    cb_atomic_abort(&af); /* simulated failure: old file must survive */
    FILE *f = fopen(path, "rb");
    char buf[64] = {0};
    assert_non_null(f);
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    assert_string_equal(buf, "old contents");
    assert_int_equal(cb_atomic_open(&af, path, &err), CB_OK);
    fputs("new contents", af.fp);
    assert_int_equal(cb_atomic_commit(&af, &err), CB_OK);
    f = fopen(path, "rb");
    memset(buf, 0, sizeof buf);
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    assert_string_equal(buf, "new contents");
    /* the replaced file's permissions stay (a private 0600 file became 0644, the umask's) */
    struct stat sb;
    for (mode_t mode = 0600; mode <= 0640; mode += 040) {
        assert_int_equal(chmod(path, mode), 0);
        assert_int_equal(cb_atomic_open(&af, path, &err), CB_OK);
        assert_int_equal(cb_atomic_commit(&af, &err), CB_OK);
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(sb.st_mode & 07777, mode);
    }
    /* an unwritable destination fails cleanly */
    assert_int_not_equal(cb_atomic_open(&af, "/nonexistent-dir/x", &err), CB_OK);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x"));
    assert_int_equal(cb_atomic_open(&af, "", &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "no file path given"));
    tu_rmrf(dir);
    free(dir);
    free(path);
}

/* The whole of a small file (at most 63 bytes) into buf[64]. */
static const char *file_text(const char *path, char buf[64]) {
    memset(buf, 0, 64);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_true(fread(buf, 1, 63, f) > 0);
    fclose(f);
    return buf;
}

/* Write `text` to path atomically; the status. */
static int atomic_write(const char *path, const char *text, cb_error *err) {
    cb_atomic_file af;
    int rc = cb_atomic_open(&af, path, err);
    if (rc) return rc;
    fputs(text, af.fp);
    return cb_atomic_commit(&af, err);
}

/* A save to a symbolic link writes through it, as editors and a shell's `>`
 * do: the file it leads to is replaced (keeping its permissions), the link
 * stays a link (it was replaced by a regular file, and the file it named
 * kept the old contents). */
static void atomic_write_follows_symlinks(void **state) {
    (void)state;
    char *dir = tu_tmpdir(), *sub = tu_path(dir, "sub"), buf[64];
    char *target = tu_write(dir, "model.bin", "old contents");
    char *link = tu_path(dir, "link"), *chain = tu_path(sub, "chain"), *absolute = tu_path(dir, "absolute");
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(symlink("model.bin", link), 0);
    assert_int_equal(symlink("../link", chain), 0); /* relative to its own folder, through the other link */
    assert_int_equal(symlink(target, absolute), 0);
    assert_int_equal(chmod(target, 0600), 0);
    cb_error err;
    struct stat sb;
    const char *writes[] = {link, chain, absolute};
    for (int i = 0; i < 3; i++) {
        char text[32];
        snprintf(text, sizeof text, "new contents %d", i);
        assert_int_equal(atomic_write(writes[i], text, &err), CB_OK);
        assert_int_equal(lstat(writes[i], &sb), 0);
        assert_true(S_ISLNK(sb.st_mode));
        assert_string_equal(file_text(target, buf), text);
        assert_int_equal(lstat(target, &sb), 0);
        assert_true(S_ISREG(sb.st_mode));
        assert_int_equal(sb.st_mode & 07777, 0600);
    }
    assert_true(cb_atomic_same_target(chain, target)); /* a write to one replaces the other */
    /* a dangling link creates the file it names */
    char *dangling = tu_path(dir, "dangling"), *fresh = tu_path(dir, "fresh.bin");
    assert_int_equal(symlink("fresh.bin", dangling), 0);
    assert_int_equal(atomic_write(dangling, "created", &err), CB_OK);
    assert_int_equal(lstat(dangling, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_string_equal(file_text(fresh, buf), "created");
    /* ... unless its folder is missing: an error naming the link and where it leads */
    char *nowhere = tu_path(dir, "nowhere");
    assert_int_equal(symlink("no-such-folder/m.bin", nowhere), 0);
    assert_int_equal(atomic_write(nowhere, "x", &err), CB_EIO);
    assert_int_equal(strncmp(err.msg, nowhere, strlen(nowhere)), 0);
    assert_non_null(strstr(err.msg, "a symbolic link to"));
    assert_non_null(strstr(err.msg, "no-such-folder/m.bin"));
    /* a loop is an error, not a hang */
    char *loop = tu_path(dir, "loop");
    assert_int_equal(symlink("loop", loop), 0);
    assert_int_equal(atomic_write(loop, "x", &err), CB_EIO);
    assert_non_null(strstr(err.msg, "too many levels of symbolic links"));
    DIR *d = opendir(dir); /* no temporary left behind */
    for (struct dirent *e; (e = readdir(d));) assert_null(strstr(e->d_name, ".tmp."));
    closedir(d);
    tu_rmrf(dir);
    free(dir), free(sub), free(target), free(link), free(chain), free(absolute);
    free(dangling), free(fresh), free(nowhere), free(loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vocab_roundtrip),
        cmocka_unit_test(rng_deterministic),
        cmocka_unit_test(strict_parsing), cmocka_unit_test(time_parsing),
        cmocka_unit_test(utf8_decoding), cmocka_unit_test(utf8_validation), cmocka_unit_test(number_text),
        cmocka_unit_test(atomic_write_keeps_old_file), cmocka_unit_test(atomic_write_follows_symlinks),
        cmocka_unit_test(xxh64_reference),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
