/* Tests of the string tables of model files (base/idtab.h): built from names
 * they find every id and nothing else, keep NULL names as "", refuse
 * duplicate ids; saved and mapped back from an st file they answer the same;
 * a table in a file with non-monotone or unterminated offsets or an index of
 * the wrong size is refused naming the file and tensor, and so is an index
 * that is not the one a writer builds for its ids (entries outside the table,
 * repeated, missing or away from their home slot) and a file that holds the
 * same id twice (naming the id). */
#include "base/idtab.h"
#include "testutil.h"

static void built_from_names(void **state) {
    (void)state;
    const char *names[] = {"u1", "", "longer id with spaces", NULL, "é"};
    cb_idtab *t = NULL;
    cb_error err;
    /* "" and NULL are the same id: refused as duplicates when indexed */
    assert_int_equal(cb_idtab_from_names(&t, names, 5, true, "user", &err), CB_EFORMAT);
    assert_non_null(strstr(err.msg, "duplicate user id"));
    assert_null(t);
    assert_int_equal(cb_idtab_from_names(&t, names, 5, false, "title", &err), CB_OK);
    assert_int_equal(cb_idtab_size(t), 5);
    assert_string_equal(cb_idtab_name(t, 3), "");
    assert_null(cb_idtab_name(t, 5));
    assert_int_equal(cb_idtab_find(t, "u1", 2), -1); /* not indexed */
    cb_idtab_free(t);

    enum { N = 5000 };
    char **ids = malloc(N * sizeof *ids);
    for (int i = 0; i < N; i++) {
        ids[i] = malloc(16);
        snprintf(ids[i], 16, "id-%d", i * 7);
    }
    assert_int_equal(cb_idtab_from_names(&t, (const char *const *)ids, N, true, "item", &err), CB_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(cb_idtab_find(t, ids[i], strlen(ids[i])), i);
        assert_string_equal(cb_idtab_name(t, (uint32_t)i), ids[i]);
    }
    assert_int_equal(cb_idtab_find(t, "id-1", 4), -1); /* a prefix of id-14 */
    assert_int_equal(cb_idtab_find(t, "id-", 3), -1);

    /* saved and mapped back */
    char *dir = tu_tmpdir(), *path = tu_path(dir, "t.st");
    cb_st_writer *w = cb_st_writer_create(&err);
    assert_int_equal(cb_idtab_save(t, w, "items", &err), CB_OK);
    assert_int_equal(cb_st_write(w, path, "test", 1, &err), CB_OK);
    cb_st_writer_free(w);
    cb_st *st = NULL;
    cb_idtab *m = NULL;
    assert_int_equal(cb_st_open(&st, path, "test", 1, &err), CB_OK);
    assert_int_equal(cb_idtab_from_st(&m, st, "items", N, true, &err), CB_OK);
    for (int i = 0; i < N; i++) assert_int_equal(cb_idtab_find(m, ids[i], strlen(ids[i])), i);
    assert_string_equal(cb_idtab_name(m, N - 1), ids[N - 1]);
    cb_idtab_free(m);
    assert_int_equal(cb_idtab_from_st(&m, st, "items", N + 1, true, &err), CB_EFORMAT); /* another count */
    assert_non_null(strstr(err.msg, "items.offsets"));
    assert_null(m);
    cb_st_close(st);
    cb_idtab_free(t);
    for (int i = 0; i < N; i++) free(ids[i]);
    free(ids);
    tu_rmrf(dir);
    free(path), free(dir);
}

/* A file holding the table "ids" with these offsets, bytes and index. */
static cb_st *write_table(const char *path, const int32_t *off, int64_t n_off, const char *bytes, int64_t n_bytes,
                          const int32_t *index, int64_t n_index) {
    cb_error err;
    cb_st_writer *w = cb_st_writer_create(&err);
    assert_int_equal(cb_st_add(w, "ids.offsets", CB_ST_I32, &n_off, 1, off, &err), CB_OK);
    assert_int_equal(cb_st_add(w, "ids.bytes", CB_ST_U8, &n_bytes, 1, bytes, &err), CB_OK);
    assert_int_equal(cb_st_add(w, "ids.index", CB_ST_I32, &n_index, 1, index, &err), CB_OK);
    assert_int_equal(cb_st_write(w, path, "test", 1, &err), CB_OK);
    cb_st_writer_free(w);
    cb_st *st = NULL;
    assert_int_equal(cb_st_open(&st, path, "test", 1, &err), CB_OK);
    return st;
}

static void bad_tables_refused(void **state) {
    (void)state;
    char *dir = tu_tmpdir(), *path = tu_path(dir, "bad.st");
    const char bytes[] = "ab\0cd\0"; /* two ids */
    int32_t index[4] = {0, 0, 0, 0};
    struct {
        int32_t off[3];
        int64_t n_index;
        const char *expect;
    } cases[] = {
        {{0, 0, 6}, 4, "not monotone or string 0 is not terminated"},
        {{0, 2, 6}, 4, "not monotone or string 0 is not terminated"},
        {{0, 3, 7}, 4, "does not hold 2 strings"},
        {{0, 3, 6}, 3, "ids.index' has 3 slots"},
        {{0, 3, 6}, 2, "ids.index' has 2 slots"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        cb_st *st = write_table(path, cases[k].off, 3, bytes, 6, index, cases[k].n_index);
        cb_idtab *t = NULL;
        cb_error err;
        assert_int_equal(cb_idtab_from_st(&t, st, "ids", 2, true, &err), CB_EFORMAT);
        if (!strstr(err.msg, cases[k].expect)) fprintf(stderr, "case %zu: %s\n", k, err.msg);
        assert_non_null(strstr(err.msg, cases[k].expect));
        assert_non_null(strstr(err.msg, path));
        assert_null(t);
        cb_st_close(st);
    }
    /* an index that is not the one a writer builds for these ids (entries
     * beyond the table, repeated, missing, or away from their home slot):
     * refused, naming the file and the table */
    int32_t off[3] = {0, 3, 6}, good[4] = {0};
    for (uint32_t i = 0; i < 2; i++) {
        uint32_t slot = (uint32_t)cb_hash64(bytes + off[i], 2, 0) & 3;
        while (good[slot]) slot = (slot + 1) & 3;
        good[slot] = (int32_t)i + 1;
    }
    int32_t wild[4] = {7, 3, 3, 3}, twice[4], none[4] = {0};
    memcpy(twice, good, sizeof twice);
    for (int s = 0; s < 4; s++)
        if (!twice[s]) twice[s] = 1; /* an extra copy of entry 1 */
    int32_t moved[4]; /* both entries one slot past a hole after their home */
    for (int s = 0; s < 4; s++) moved[s] = good[(s + 2) & 3];
    struct {
        const int32_t *index;
        const char *expect;
    } bad[] = {{wild, "ids.index"}, {twice, "holds 4 entries for 2 ids"}, {none, "does not find id 0 ('ab')"},
               {moved, "does not find id"}};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        cb_st *st = write_table(path, off, 3, bytes, 6, bad[k].index, 4);
        cb_idtab *t = NULL;
        cb_error err;
        assert_int_equal(cb_idtab_from_st(&t, st, "ids", 2, true, &err), CB_EFORMAT);
        if (!strstr(err.msg, bad[k].expect)) fprintf(stderr, "index case %zu: %s\n", k, err.msg);
        assert_non_null(strstr(err.msg, bad[k].expect));
        assert_non_null(strstr(err.msg, path));
        assert_null(t);
        cb_st_close(st);
    }
    cb_st *st = write_table(path, off, 3, bytes, 6, good, 4);
    cb_idtab *t = NULL;
    cb_error err;
    assert_int_equal(cb_idtab_from_st(&t, st, "ids", 2, true, &err), CB_OK);
    assert_int_equal(cb_idtab_find(t, "cd", 2), 1);
    cb_idtab_free(t);
    cb_st_close(st);
    tu_rmrf(dir);
    free(path), free(dir);
}

/* The same id twice in a file (a writer that built the index by linear
 * probing without checking): refused at load, naming the file and the id,
 * wherever the two entries sit and however long the probe chain between them. */
static void duplicate_ids_in_file_refused(void **state) {
    (void)state;
    char *dir = tu_tmpdir(), *path = tu_path(dir, "dup.st");
    enum { N = 3000 };
    static const uint32_t pairs[][2] = {{0, 1}, {5, 2999}, {2998, 17}};
    for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
        char **ids = malloc(N * sizeof *ids);
        for (int i = 0; i < N; i++) {
            ids[i] = malloc(16);
            snprintf(ids[i], 16, "m%d", i);
        }
        snprintf(ids[pairs[p][1]], 16, "%s", ids[pairs[p][0]]);
        cb_error err;
        enum { SLOTS = 8192 };
        int32_t *index = calloc(SLOTS, sizeof *index), off[N + 1];
        for (uint32_t i = 0; i < N; i++) {
            uint32_t slot = (uint32_t)cb_hash64(ids[i], strlen(ids[i]), 0) & (SLOTS - 1);
            while (index[slot]) slot = (slot + 1) & (SLOTS - 1);
            index[slot] = (int32_t)i + 1;
        }
        char *bytes = malloc(N * 16);
        int32_t pos = 0;
        for (uint32_t i = 0; i < N; i++) {
            off[i] = pos;
            memcpy(bytes + pos, ids[i], strlen(ids[i]) + 1);
            pos += (int32_t)strlen(ids[i]) + 1;
        }
        off[N] = pos;
        cb_st *st = write_table(path, off, N + 1, bytes, pos, index, SLOTS);
        cb_idtab *m = NULL;
        assert_int_equal(cb_idtab_from_st(&m, st, "ids", N, true, &err), CB_EFORMAT);
        char expect[96];
        snprintf(expect, sizeof expect, "duplicate id '%s' in table 'ids' (entries %u and %u)", ids[pairs[p][0]],
                 pairs[p][0] < pairs[p][1] ? pairs[p][0] : pairs[p][1], pairs[p][0] < pairs[p][1] ? pairs[p][1] : pairs[p][0]);
        if (!strstr(err.msg, expect)) fprintf(stderr, "pair %zu: %s\n", p, err.msg);
        assert_non_null(strstr(err.msg, expect));
        assert_non_null(strstr(err.msg, path));
        assert_null(m);
        cb_st_close(st);
        for (int i = 0; i < N; i++) free(ids[i]);
        free(ids), free(index), free(bytes);
    }
    tu_rmrf(dir);
    free(path), free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(built_from_names), cmocka_unit_test(bad_tables_refused),
                                       cmocka_unit_test(duplicate_ids_in_file_refused)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
