/* Tests for st: the safetensors-layout container — round trip, layout that
 * Python can read, and every kind of damaged file refused with a clear error;
 * a sectioned file opens without reading its large tensors, and a flipped
 * byte in one is refused when that range is read (cb_st_check, or
 * cb_st_tensor for the whole), in the header's hashes at open. */
#include "testutil.h"
#include "base/st.h"

static char *write_sample(const char *dir) {
    static float w[6] = {1, 2, 3, 4, 5, 6};
    static int32_t idx[3] = {7, -8, 9};
    static uint8_t flags[5] = {1, 0, 1, 1, 0};
    cb_error err;
    cb_st_writer *wr = cb_st_writer_create(&err);
    assert_non_null(wr);
    int64_t s1[2] = {2, 3}, s2[1] = {3}, s3[1] = {5};
    assert_int_equal(cb_st_add(wr, "u8flags", CB_ST_U8, s3, 1, flags, &err), CB_OK);
    assert_int_equal(cb_st_add(wr, "weights", CB_ST_F32, s1, 2, w, &err), CB_OK);
    assert_int_equal(cb_st_add(wr, "idx", CB_ST_I32, s2, 1, idx, &err), CB_OK);
    assert_int_not_equal(cb_st_add(wr, "idx", CB_ST_I32, s2, 1, idx, &err), CB_OK);
    assert_int_equal(cb_st_set_meta(wr, "note", "h\xc3\xa9llo \"quoted\"", &err), CB_OK);
    char *path = tu_path(dir, "x.cbrec");
    assert_int_equal(cb_st_write(wr, path, "cbrec-test", 2, &err), CB_OK);
    cb_st_writer_free(wr);
    return path;
}

static void roundtrip(void **state) {
    (void)state;
    char *dir = tu_tmpdir(), *path = write_sample(dir);
    cb_error err;
    cb_st *st;
    assert_int_equal(cb_st_open(&st, path, "cbrec-test", 2, &err), CB_OK);
    int64_t shape[2];
    const float *w = cb_st_tensor(st, "weights", CB_ST_F32, 2, shape, &err);
    assert_non_null(w);
    assert_int_equal(shape[0], 2);
    assert_int_equal(shape[1], 3);
    assert_true(w[5] == 6.0f);
    assert_int_equal(((uintptr_t)w) % 4, 0);
    const int32_t *idx = cb_st_tensor(st, "idx", CB_ST_I32, 1, shape, &err);
    assert_non_null(idx);
    assert_int_equal(idx[1], -8);
    const uint8_t *fl = cb_st_tensor(st, "u8flags", CB_ST_U8, 1, shape, &err);
    assert_non_null(fl);
    assert_int_equal(shape[0], 5);
    assert_int_equal(fl[3], 1);
    assert_string_equal(cb_st_meta(st, "note"), "h\xc3\xa9llo \"quoted\"");
    assert_null(cb_st_meta(st, "absent"));
    assert_null(cb_st_tensor(st, "weights", CB_ST_I32, 2, shape, &err));
    assert_non_null(strstr(err.msg, "weights"));
    assert_null(cb_st_tensor(st, "nope", CB_ST_F32, 1, shape, &err));
    assert_int_equal(cb_st_format_version(st), 2);
    cb_st_close(st);
    cb_st_close(NULL);
    /* Reader for another format or an older version refuses it. */
    assert_int_equal(cb_st_open(&st, path, "cbrec-model", 1, &err), CB_EFORMAT);
    assert_non_null(strstr(err.msg, "cbrec-test"));
    assert_int_equal(cb_st_open(&st, path, "cbrec-test", 1, &err), CB_EFORMAT);
    assert_non_null(strstr(err.msg, "newer"));
    tu_rmrf(dir);
    free(dir);
    free(path);
}

static long file_size(const char *p) {
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    return (long)sb.st_size;
}

static void damaged_files_refused(void **state) {
    (void)state;
    char *dir = tu_tmpdir(), *path = write_sample(dir);
    long n = file_size(path);
    FILE *f = fopen(path, "rb");
    unsigned char *orig = malloc((size_t)n);
    assert_int_equal(fread(orig, 1, (size_t)n, f), n);
    fclose(f);
    char *bad = tu_path(dir, "bad.cbrec");
    cb_error err;
    cb_st *st;
    /* Every single-byte change and every truncation must be refused, never crash. */
    int refused = 0, trials = 0;
    for (long i = 0; i < n; i++) {
        unsigned char *copy = malloc((size_t)n);
        memcpy(copy, orig, (size_t)n);
        copy[i] ^= 0x20;
        f = fopen(bad, "wb");
        fwrite(copy, 1, (size_t)n, f);
        fclose(f);
        free(copy);
        int rc = cb_st_open(&st, bad, "cbrec-test", 2, &err);
        trials++;
        if (rc != CB_OK) {
            refused++;
            assert_true(err.msg[0] != '\0');
        } else {
            cb_st_close(st); /* only whitespace padding may change harmlessly */
        }
    }
    /* The header's padding spaces are the only bytes whose change is benign. */
    assert_true(refused >= trials - 8);
    for (long len = 0; len < n; len += 3) {
        f = fopen(bad, "wb");
        fwrite(orig, 1, (size_t)len, f);
        fclose(f);
        assert_int_not_equal(cb_st_open(&st, bad, "cbrec-test", 2, &err), CB_OK);
        uint64_t hlen = 0; /* cut inside the header: said so, not "not a cbrec file" */
        for (int i = 0; i < 8; i++) hlen |= (uint64_t)orig[i] << (8 * i);
        if (len > 8 && (uint64_t)len < 8 + hlen) assert_non_null(strstr(err.msg, "truncated"));
    }
    assert_int_equal(cb_st_open(&st, "/nonexistent/model", NULL, 1, &err), CB_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/model"));
    tu_rmrf(dir);
    free(dir);
    free(path);
    free(bad);
    free(orig);
}

static void python_can_read_it(void **state) {
    (void)state;
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) TU_SKIP("numpy not installed for /usr/bin/python3");
    char *dir = tu_tmpdir(), *path = write_sample(dir);
    char cmd[8192];
    /* Plain safetensors parsing in a few lines of Python, as README documents. */
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \""
             "import json,struct,numpy as np\n"
             "b=open('%s','rb').read(); n=struct.unpack('<Q',b[:8])[0]; h=json.loads(b[8:8+n]); d=b[8+n:]\n"
             "t=h['weights']; a=np.frombuffer(d[t['data_offsets'][0]:t['data_offsets'][1]],dtype='<f4').reshape(t['shape'])\n"
             "assert a[1,2]==6.0 and h['__metadata__']['format']=='cbrec-test', a\n"
             "\"",
             path);
    assert_int_equal(system(cmd), 0);
    tu_rmrf(dir);
    free(dir);
    free(path);
}

/* Flip byte `at` of the file at path. */
static void flip(const char *path, long at) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
}

static void sectioned_files(void **state) {
    (void)state;
    enum { N = 3 * CB_ST_SECTION_BYTES / 4 + 100 }; /* four sections, the last partial */
    int32_t *big = malloc(N * sizeof *big);
    for (int i = 0; i < N; i++) big[i] = i * 3;
    static float small[4] = {1, 2, 3, 4};
    char *dir = tu_tmpdir(), *path = tu_path(dir, "s.st");
    cb_error err;
    cb_st_writer *w = cb_st_writer_create(&err);
    int64_t nb = N, ns = 4;
    assert_int_equal(cb_st_add(w, "big", CB_ST_I32, &nb, 1, big, &err), CB_OK);
    assert_int_equal(cb_st_add(w, "small", CB_ST_F32, &ns, 1, small, &err), CB_OK);
    cb_st_writer_sectioned(w);
    assert_int_equal(cb_st_write(w, path, "cbrec-test", 1, &err), CB_OK);
    cb_st_writer_free(w);
    cb_st *st = NULL;
    int64_t shape[1];
    assert_int_equal(cb_st_open(&st, path, "cbrec-test", 1, &err), CB_OK);
    assert_non_null(strstr(cb_st_meta(st, "checksum"), "xxh64s:"));
    const int32_t *b = cb_st_tensor(st, "big", CB_ST_I32, 1, shape, &err);
    assert_non_null(b);
    assert_memory_equal(b, big, N * sizeof *big);
    cb_st_close(st);
    /* one byte in the third section flipped: opens, the first sections read,
     * the third refused, the whole tensor refused */
    FILE *f = fopen(path, "rb");
    unsigned char len8[8];
    assert_int_equal(fread(len8, 1, 8, f), 8);
    fclose(f);
    long hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (long)len8[i] << (8 * i);
    /* "big" sorts first: its bytes start the data */
    flip(path, 8 + hlen + 2 * (long)CB_ST_SECTION_BYTES + 10);
    assert_int_equal(cb_st_open(&st, path, "cbrec-test", 1, &err), CB_OK);
    const int32_t *lazy = cb_st_tensor_lazy(st, "big", CB_ST_I32, 1, shape, &err);
    assert_non_null(lazy);
    assert_int_equal(cb_st_check(st, lazy, 2 * CB_ST_SECTION_BYTES, &err), CB_OK);
    assert_int_equal(cb_st_check(st, lazy + 100, 4, &err), CB_OK);
    assert_int_equal(cb_st_check(st, lazy + 2 * CB_ST_SECTION_BYTES / 4 + 1, 8, &err), CB_EFORMAT);
    assert_non_null(strstr(err.msg, "checksum mismatch in tensor 'big'"));
    assert_non_null(strstr(err.msg, path));
    assert_null(cb_st_tensor(st, "big", CB_ST_I32, 1, shape, &err));
    assert_non_null(strstr(err.msg, "checksum mismatch"));
    assert_non_null(cb_st_tensor(st, "small", CB_ST_F32, 1, shape, &err));
    assert_int_equal(cb_st_check(st, small, 4, &err), CB_EINVAL); /* not inside the file */
    cb_st_close(st);
    /* a flipped byte in the section hashes (the last bytes): refused at open */
    flip(path, 8 + hlen + 2 * (long)CB_ST_SECTION_BYTES + 10); /* undo */
    flip(path, file_size(path) - 3);
    assert_int_equal(cb_st_open(&st, path, "cbrec-test", 1, &err), CB_EFORMAT);
    assert_non_null(strstr(err.msg, "checksum mismatch"));
    tu_rmrf(dir);
    free(path), free(dir), free(big);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip),
        cmocka_unit_test(damaged_files_refused),
        cmocka_unit_test(python_can_read_it),
        cmocka_unit_test(sectioned_files),
    };
    return cmocka_run_group_tests_name("st", tests, NULL, NULL);
}
