/* st — safetensors-layout container with a cbrec checksum; see st.h. */
#include "base/st.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cbrec files are little-endian; big-endian hosts are not supported yet"
#endif

static const char *const dtype_names[] = {"F32", "I32", "U8"};
static const size_t dtype_sizes[] = {4, 4, 1};
#define N_DTYPES 3
/* A header larger than this is not ours (safetensors itself caps at 100 MB). */
#define MAX_HEADER (100u << 20)

typedef struct st_tensor {
    char *name;
    cb_st_dtype dtype;
    int ndim;
    int64_t shape[CB_ST_MAX_DIMS];
    const void *data;  /* writer: caller's data; reader: into the mapping */
    uint64_t nbytes;
    uint64_t offset;
} st_tensor;

typedef struct st_meta {
    char *key, *value;
} st_meta;

struct cb_st_writer {
    st_tensor *t;
    size_t n, cap;
    st_meta *m;
    size_t n_meta, cap_meta;
    bool sectioned;   /* cb_st_writer_sectioned */
    uint64_t *sums;   /* while writing: the section hashes (the "__sections__" tensor) */
};

struct cb_st {
    char *path;
    void *map;
    size_t map_len;
    st_tensor *t;
    size_t n;
    st_meta *m;
    size_t n_meta;
    int version;
    /* a sectioned file (ST_SECTIONED_PREFIX): tensors of at least
     * section_bytes are checked a section at a time (cb_st_check) */
    uint64_t section_bytes;
    const unsigned char *sums; /* [n_sections] uint64 into the mapping (maybe unaligned) */
    size_t n_sections;
    size_t *first_section;  /* [n] the tensor's first section, SIZE_MAX: not sectioned */
    unsigned char *checked; /* [n_sections] 1 once verified (atomic: readers share st) */
};

#ifdef CB_FUZZ_NO_CHECKSUM /* the fuzz build: let mutated files reach the contents' validators */
#define ST_VERIFY 0
#else
#define ST_VERIFY 1
#endif
#define ST_SECTIONS "__sections__" /* the tensor of section hashes in a sectioned file */

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}
static int cmp_meta(const void *a, const void *b) {
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

/* Checksum over sorted tensors (name, dtype, shape, bytes) and sorted metadata
 * other than "checksum", with `hash` chained through every piece. Both
 * arrays must already be sorted. */
typedef uint64_t (*st_hash_fn)(const void *data, size_t len, uint64_t h);

static bool is_sectioned(const st_tensor *t, uint64_t section_bytes) {
    return section_bytes && t->nbytes >= section_bytes && strcmp(t->name, ST_SECTIONS) != 0;
}

/* section_bytes 0: every tensor's bytes; else the bytes of the tensors below
 * that size and of "__sections__", which holds the others' section hashes. */
static uint64_t checksum(st_hash_fn hash, const st_tensor *t, size_t n, const st_meta *m, size_t n_meta,
                         uint64_t section_bytes) {
    uint64_t h = CB_FNV1A64_INIT;
    for (size_t i = 0; i < n; i++) {
        h = hash(t[i].name, strlen(t[i].name) + 1, h);
        h = hash(dtype_names[t[i].dtype], strlen(dtype_names[t[i].dtype]), h);
        for (int d = 0; d < t[i].ndim; d++) h = hash(&t[i].shape[d], sizeof t[i].shape[d], h);
        if (!is_sectioned(&t[i], section_bytes)) h = hash(t[i].data, (size_t)t[i].nbytes, h);
    }
    for (size_t i = 0; i < n_meta; i++) {
        if (!strcmp(m[i].key, "checksum")) continue;
        h = hash(m[i].key, strlen(m[i].key) + 1, h);
        h = hash(m[i].value, strlen(m[i].value) + 1, h);
    }
    return h;
}

/* The "checksum" value names its hash: "xxh64:<hex>" (written since the
 * model format 3), "xxh64s:<hex>" (sectioned: cb_st_writer_sectioned), or
 * bare hex for FNV-1a (older files, still verified). */
#define ST_SUM_PREFIX "xxh64:"
#define ST_SECTIONED_PREFIX "xxh64s:"

static void checksum_text(char *buf, size_t size, const st_tensor *t, size_t n, const st_meta *m, size_t n_meta,
                          const char *like, uint64_t section_bytes) {
    bool fnv = like && strncmp(like, ST_SUM_PREFIX, strlen(ST_SUM_PREFIX)) != 0 &&
               strncmp(like, ST_SECTIONED_PREFIX, strlen(ST_SECTIONED_PREFIX)) != 0;
    uint64_t h = checksum(fnv ? cb_fnv1a64 : cb_hash64, t, n, m, n_meta, section_bytes);
    snprintf(buf, size, "%s%016" PRIx64, fnv ? "" : section_bytes ? ST_SECTIONED_PREFIX : ST_SUM_PREFIX, h);
}

/* The hash of section k of a tensor: its bytes [k * section_bytes, ...). */
static uint64_t section_sum(const st_tensor *t, size_t k, uint64_t section_bytes) {
    uint64_t lo = (uint64_t)k * section_bytes, len = t->nbytes - lo < section_bytes ? t->nbytes - lo : section_bytes;
    return cb_hash64((const unsigned char *)t->data + lo, (size_t)len, 0);
}

static size_t n_sections_of(const st_tensor *t, uint64_t section_bytes) {
    return (size_t)((t->nbytes + section_bytes - 1) / section_bytes);
}

static bool shape_bytes(const int64_t *shape, int ndim, cb_st_dtype dtype, uint64_t *out) {
    uint64_t n = dtype_sizes[dtype];
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return false;
        if (shape[d] && n > UINT64_MAX / (uint64_t)shape[d]) return false;
        n *= (uint64_t)shape[d];
    }
    *out = n;
    return true;
}

/* ---- Writer */

cb_st_writer *cb_st_writer_create(cb_error *err) { return cb_calloc(1, sizeof(cb_st_writer), err); }

void cb_st_writer_free(cb_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->t[i].name);
    for (size_t i = 0; i < w->n_meta; i++) free(w->m[i].key), free(w->m[i].value);
    free(w->t);
    free(w->m);
    free(w->sums);
    free(w);
}

void cb_st_writer_sectioned(cb_st_writer *w) { w->sectioned = true; }

/* The "__sections__" tensor: the hash of every CB_ST_SECTION_BYTES section of
 * every tensor that large, in name order (w->t sorted). */
static int add_sections(cb_st_writer *w, cb_error *err) {
    char buf[32];
    snprintf(buf, sizeof buf, "%u", (unsigned)CB_ST_SECTION_BYTES);
    int rc = cb_st_set_meta(w, "section_bytes", buf, err);
    size_t n_sums = 0;
    for (size_t i = 0; i < w->n; i++)
        if (is_sectioned(&w->t[i], CB_ST_SECTION_BYTES)) n_sums += n_sections_of(&w->t[i], CB_ST_SECTION_BYTES);
    if (!rc && !(w->sums = cb_calloc(n_sums + 1, sizeof *w->sums, err))) rc = CB_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; !rc && i < w->n; i++)
        for (size_t s = 0; is_sectioned(&w->t[i], CB_ST_SECTION_BYTES) && s < n_sections_of(&w->t[i], CB_ST_SECTION_BYTES); s++)
            w->sums[k++] = section_sum(&w->t[i], s, CB_ST_SECTION_BYTES);
    int64_t shape = (int64_t)(n_sums * sizeof *w->sums);
    if (!rc) rc = cb_st_add(w, ST_SECTIONS, CB_ST_U8, &shape, 1, w->sums, err);
    return rc;
}

int cb_st_add(cb_st_writer *w, const char *name, cb_st_dtype dtype, const int64_t *shape, int ndim,
              const void *data, cb_error *err) {
    if ((unsigned)dtype >= N_DTYPES || ndim < 0 || ndim > CB_ST_MAX_DIMS || !name[0] ||
        !strcmp(name, "__metadata__"))
        return cb_fail(err, CB_EINVAL, "tensor '%s': bad dtype, rank or name", name);
    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name)) return cb_fail(err, CB_EINVAL, "tensor '%s' added twice", name);
    st_tensor t = {0};
    if (!shape_bytes(shape, ndim, dtype, &t.nbytes))
        return cb_fail(err, CB_EINVAL, "tensor '%s': bad shape", name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        st_tensor *p = cb_realloc_array(w->t, cap, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        w->t = p;
        w->cap = cap;
    }
    t.name = cb_strdup(name, err);
    if (!t.name) return CB_ENOMEM;
    t.dtype = dtype;
    t.ndim = ndim;
    for (int d = 0; d < ndim; d++) t.shape[d] = shape[d];
    t.data = data;
    w->t[w->n++] = t;
    return CB_OK;
}

int cb_st_set_meta(cb_st_writer *w, const char *key, const char *value, cb_error *err) {
    for (size_t i = 0; i < w->n_meta; i++)
        if (!strcmp(w->m[i].key, key)) {
            char *v = cb_strdup(value, err);
            if (!v) return CB_ENOMEM;
            free(w->m[i].value);
            w->m[i].value = v;
            return CB_OK;
        }
    if (w->n_meta == w->cap_meta) {
        size_t cap = w->cap_meta ? 2 * w->cap_meta : 16;
        st_meta *p = cb_realloc_array(w->m, cap, sizeof *p, err);
        if (!p) return CB_ENOMEM;
        w->m = p;
        w->cap_meta = cap;
    }
    st_meta m = {cb_strdup(key, err), cb_strdup(value, err)};
    if (!m.key || !m.value) {
        free(m.key);
        free(m.value);
        return CB_ENOMEM;
    }
    w->m[w->n_meta++] = m;
    return CB_OK;
}

int cb_st_write(cb_st_writer *w, const char *path, const char *format, int format_version, cb_error *err) {
    cb_atomic_file af;
    int rc = cb_st_write_staged(w, &af, path, format, format_version, err);
    return rc ? rc : cb_atomic_publish(&af, 1, CB_OK, err);
}

int cb_st_write_staged(cb_st_writer *w, cb_atomic_file *staged, const char *path, const char *format, int format_version,
                       cb_error *err) {
    char buf[32];
    int rc;
    memset(staged, 0, sizeof *staged);
    snprintf(buf, sizeof buf, "%d", format_version);
    if ((rc = cb_st_set_meta(w, "format", format, err)) || (rc = cb_st_set_meta(w, "format_version", buf, err)))
        return rc;
    qsort(w->t, w->n, sizeof *w->t, cmp_tensor);
    if (w->sectioned && !w->sums) {
        if ((rc = add_sections(w, err))) return rc;
        qsort(w->t, w->n, sizeof *w->t, cmp_tensor);
    }
    qsort(w->m, w->n_meta, sizeof *w->m, cmp_meta);
    checksum_text(buf, sizeof buf, w->t, w->n, w->m, w->n_meta, NULL, w->sectioned ? CB_ST_SECTION_BYTES : 0);
    if ((rc = cb_st_set_meta(w, "checksum", buf, err))) return rc;

    json_t *root = json_object(), *meta = json_object();
    if (!root || !meta) goto nomem;
    json_object_set_new(root, "__metadata__", meta);
    for (size_t i = 0; i < w->n_meta; i++)
        if (json_object_set_new(meta, w->m[i].key, json_string(w->m[i].value))) goto nomem;
    /* Lay out 4-byte tensors before 1-byte ones so every tensor is aligned
     * to its element size in the mapped file (the data starts 8-aligned). */
    uint64_t off = 0;
    for (size_t k = 0; k < 2 * w->n; k++) {
        size_t pass = k / w->n, i = k % w->n;
        st_tensor *t = &w->t[i];
        if ((dtype_sizes[t->dtype] == 4) != (pass == 0)) continue;
        json_t *shape = json_array(), *e = json_object();
        if (!shape || !e) {
            json_decref(shape);
            json_decref(e);
            goto nomem;
        }
        for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        json_object_set_new(e, "dtype", json_string(dtype_names[t->dtype]));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", json_pack("[II]", (json_int_t)off, (json_int_t)(off + t->nbytes)));
        if (json_object_set_new(root, t->name, e)) goto nomem;
        t->offset = off;
        off += t->nbytes;
    }
    char *header = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    root = NULL;
    if (!header) goto nomem;
    /* Pad the header with spaces so the data starts 8-byte aligned. */
    size_t hlen = strlen(header), padded = (hlen + 8 + 7) / 8 * 8 - 8;
    cb_atomic_file af;
    if ((rc = cb_atomic_open(&af, path, err))) {
        free(header);
        return rc;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    bool ok = fwrite(len8, 1, 8, af.fp) == 8 && fwrite(header, 1, hlen, af.fp) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', af.fp) != EOF;
    free(header);
    for (uint64_t pos = 0; ok && pos < off;) { /* write in offset order */
        const st_tensor *t = NULL;
        for (size_t i = 0; i < w->n && !t; i++)
            if (w->t[i].offset == pos && w->t[i].nbytes) t = &w->t[i];
        ok = t && fwrite(t->data, 1, (size_t)t->nbytes, af.fp) == t->nbytes;
        if (t) pos += t->nbytes;
    }
    if (!ok) {
        rc = cb_fail(err, CB_EIO, "%s: write failed: %s", path, strerror(errno));
        cb_atomic_abort(&af);
        return rc;
    }
    if ((rc = cb_atomic_stage(&af, err))) return rc;
    *staged = af;
    return CB_OK;
nomem:
    json_decref(root);
    return cb_fail(err, CB_ENOMEM, "%s: out of memory building the header", path);
}

/* ---- Reader */

void cb_st_close(cb_st *st) {
    if (!st) return;
    if (st->map && st->map != MAP_FAILED) munmap(st->map, st->map_len);
    for (size_t i = 0; i < st->n; i++) free(st->t[i].name);
    for (size_t i = 0; i < st->n_meta; i++) free(st->m[i].key), free(st->m[i].value);
    free(st->t);
    free(st->m);
    free(st->path);
    free(st->first_section);
    free(st->checked);
    free(st);
}

static int parse_header(cb_st *st, const char *hdr, size_t hlen, uint64_t data_len, cb_error *err) {
    const char *p = st->path;
    json_error_t jerr;
    json_t *root = json_loadb(hdr, hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return cb_fail(err, CB_EFORMAT, "%s: header is not valid JSON (%s)", p, jerr.text);
    }
    int rc = CB_OK;
    size_t n_obj = json_object_size(root);
    st->t = cb_calloc(n_obj, sizeof *st->t, err);
    json_t *meta = json_object_get(root, "__metadata__");
    st->m = cb_calloc(meta ? json_object_size(meta) : 1, sizeof *st->m, err);
    if (!st->t || !st->m) {
        json_decref(root);
        return CB_ENOMEM;
    }
    if (meta) {
        if (!json_is_object(meta)) {
            rc = cb_fail(err, CB_EFORMAT, "%s: __metadata__ is not an object", p);
            goto out;
        }
        const char *k;
        json_t *v;
        json_object_foreach(meta, k, v) {
            if (!json_is_string(v)) {
                rc = cb_fail(err, CB_EFORMAT, "%s: metadata '%s' is not a string", p, k);
                goto out;
            }
            st_meta *m = &st->m[st->n_meta++];
            m->key = cb_strdup(k, err);
            m->value = cb_strdup(json_string_value(v), err);
            if (!m->key || !m->value) {
                rc = CB_ENOMEM;
                goto out;
            }
        }
    }
    const char *name;
    json_t *e;
    json_object_foreach(root, name, e) {
        if (!strcmp(name, "__metadata__")) continue;
        st_tensor *t = &st->t[st->n];
        json_t *dt = json_object_get(e, "dtype"), *sh = json_object_get(e, "shape"),
               *off = json_object_get(e, "data_offsets");
        if (!json_is_string(dt) || !json_is_array(sh) || !json_is_array(off) || json_array_size(off) != 2 ||
            json_array_size(sh) > CB_ST_MAX_DIMS) {
            rc = cb_fail(err, CB_EFORMAT, "%s: tensor '%s' has a malformed entry", p, name);
            goto out;
        }
        int dtype = -1;
        for (int d = 0; d < N_DTYPES; d++)
            if (!strcmp(json_string_value(dt), dtype_names[d])) dtype = d;
        if (dtype < 0) {
            rc = cb_fail(err, CB_EFORMAT, "%s: tensor '%s' has unsupported dtype %s", p, name, json_string_value(dt));
            goto out;
        }
        t->dtype = (cb_st_dtype)dtype;
        t->ndim = (int)json_array_size(sh);
        for (int d = 0; d < t->ndim; d++) {
            json_t *x = json_array_get(sh, (size_t)d);
            if (!json_is_integer(x) || json_integer_value(x) < 0) {
                rc = cb_fail(err, CB_EFORMAT, "%s: tensor '%s' has a bad shape", p, name);
                goto out;
            }
            t->shape[d] = json_integer_value(x);
        }
        json_t *b = json_array_get(off, 0), *en = json_array_get(off, 1);
        uint64_t nbytes;
        if (!json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 ||
            json_integer_value(en) < json_integer_value(b) || (uint64_t)json_integer_value(en) > data_len ||
            !shape_bytes(t->shape, t->ndim, t->dtype, &nbytes) ||
            nbytes != (uint64_t)(json_integer_value(en) - json_integer_value(b))) {
            rc = cb_fail(err, CB_EFORMAT, "%s: tensor '%s' has offsets that do not fit its shape or the file (truncated?)", p, name);
            goto out;
        }
        t->offset = (uint64_t)json_integer_value(b);
        t->nbytes = nbytes;
        t->name = cb_strdup(name, err);
        if (!t->name) {
            rc = CB_ENOMEM;
            goto out;
        }
        st->n++;
    }
out:
    json_decref(root);
    return rc;
}

/* A sectioned file: its section size, the "__sections__" tensor (one hash per
 * section of each large tensor) and the table of which are verified. */
static int open_sections(cb_st *st, cb_error *err) {
    const char *sb = cb_st_meta(st, "section_bytes");
    int64_t bytes = 0;
    if (!sb || !cb_parse_i64(sb, strlen(sb), &bytes) || bytes < 64 || bytes > (1 << 30))
        return cb_fail(err, CB_EFORMAT, "%s: sectioned checksum without a valid 'section_bytes'", st->path);
    st->section_bytes = (uint64_t)bytes;
    if (!(st->first_section = cb_calloc(st->n + 1, sizeof *st->first_section, err))) return CB_ENOMEM;
    size_t n_sections = 0;
    const st_tensor *sums = NULL;
    for (size_t i = 0; i < st->n; i++) {
        if (!strcmp(st->t[i].name, ST_SECTIONS)) sums = &st->t[i];
        st->first_section[i] = is_sectioned(&st->t[i], st->section_bytes) ? n_sections : SIZE_MAX;
        if (is_sectioned(&st->t[i], st->section_bytes)) n_sections += n_sections_of(&st->t[i], st->section_bytes);
    }
    if (!sums || sums->dtype != CB_ST_U8 || sums->nbytes != n_sections * sizeof(uint64_t))
        return cb_fail(err, CB_EFORMAT, "%s: the section hashes are missing or do not fit the tensors", st->path);
    st->sums = sums->data;
    st->n_sections = n_sections;
    if (!(st->checked = cb_calloc(n_sections + 1, 1, err))) return CB_ENOMEM;
    return CB_OK;
}

/* Map st->path read-only (st->map, st->map_len): a regular file of 8 bytes
 * at least. */
static int st_map(cb_st *st, cb_error *err) {
    const char *path = st->path;
    int fd, rc = cb_open_input(&fd, path, "cbrec file", err);
    struct stat sb;
    if (rc) return rc;
    if (fstat(fd, &sb) != 0) rc = cb_fail(err, CB_EIO, "%s: cannot stat: %s", path, strerror(errno));
    else if (sb.st_size < 8)
        rc = cb_fail(err, CB_EFORMAT, "%s: not a cbrec file (%lld bytes: too short)", path, (long long)sb.st_size);
    if (rc) {
        close(fd);
        return rc;
    }
    st->map_len = (size_t)sb.st_size;
    st->map = mmap(NULL, st->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (st->map == MAP_FAILED) {
        st->map = NULL;
        return cb_fail(err, CB_EIO, "%s: cannot map: %s", path, strerror(errno));
    }
    return CB_OK;
}

/* The header's length, its JSON (tensors sorted by name, metadata by key),
 * and the tensors covering the data exactly. */
static int st_read_header(cb_st *st, cb_error *err) {
    const char *path = st->path;
    const unsigned char *bytes = st->map;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)bytes[i] << (8 * i);
    bool brace = st->map_len > 8 && bytes[8] == '{';
    if (hlen >= 2 && hlen <= MAX_HEADER && brace && hlen > st->map_len - 8) /* a cut copy or download */
        return cb_fail(err, CB_EFORMAT, "%s: truncated: its header is %" PRIu64 " bytes, the file has %zu after its length",
                       path, hlen, st->map_len - 8);
    if (hlen < 2 || hlen > MAX_HEADER || hlen > st->map_len - 8 || !brace)
        return cb_fail(err, CB_EFORMAT, "%s: not a cbrec/safetensors file (bad header length)", path);
    const unsigned char *data = bytes + 8 + hlen;
    uint64_t data_len = st->map_len - 8 - hlen, covered = 0;
    int rc = parse_header(st, (const char *)bytes + 8, (size_t)hlen, data_len, err);
    if (rc) return rc;
    qsort(st->t, st->n, sizeof *st->t, cmp_tensor);
    qsort(st->m, st->n_meta, sizeof *st->m, cmp_meta);
    for (size_t i = 0; i < st->n; i++) {
        st->t[i].data = data + st->t[i].offset;
        covered += st->t[i].nbytes;
    }
    if (covered != data_len)
        return cb_fail(err, CB_EFORMAT, "%s: %" PRIu64 " data bytes but tensors cover %" PRIu64 " (truncated or padded file)",
                       path, data_len, covered);
    return CB_OK;
}

/* The file's format name and version (when format is given) and its checksum. */
static int st_check_format(cb_st *st, const char *format, int max_version, cb_error *err) {
    const char *path = st->path, *fmt = cb_st_meta(st, "format"), *ver = cb_st_meta(st, "format_version"),
               *sum = cb_st_meta(st, "checksum");
    int64_t v = 0;
    if (format && (!fmt || strcmp(fmt, format) != 0))
        return cb_fail(err, CB_EFORMAT, "%s: is a '%s' file, expected '%s'", path, fmt ? fmt : "foreign safetensors",
                       format);
    if (format && (!ver || !cb_parse_i64(ver, strlen(ver), &v) || v < 1))
        return cb_fail(err, CB_EFORMAT, "%s: missing or bad format_version", path);
    if (format && v > max_version)
        return cb_fail(err, CB_EFORMAT, "%s: format version %" PRId64 " is newer than this cbrec understands (%d)", path,
                       v, max_version);
    st->version = (int)v;
    if (!sum) return format ? cb_fail(err, CB_EFORMAT, "%s: no checksum", path) : CB_OK;
    int rc = strncmp(sum, ST_SECTIONED_PREFIX, strlen(ST_SECTIONED_PREFIX)) ? CB_OK : open_sections(st, err);
    if (rc) return rc;
    char buf[32];
    checksum_text(buf, sizeof buf, st->t, st->n, st->m, st->n_meta, sum, st->section_bytes);
#ifndef CB_FUZZ_NO_CHECKSUM /* the fuzz build lets mutated files reach the contents' validators */
    if (strcmp(buf, sum) != 0) return cb_fail(err, CB_EFORMAT, "%s: checksum mismatch (file is corrupted)", path);
#endif
    return CB_OK;
}

int cb_st_open(cb_st **out, const char *path, const char *format, int max_version, cb_error *err) {
    *out = NULL;
    cb_st *st = cb_calloc(1, sizeof *st, err);
    if (!st) return CB_ENOMEM;
    int rc = (st->path = cb_strdup(path, err)) ? CB_OK : CB_ENOMEM;
    if (!rc) rc = st_map(st, err);
    if (!rc) rc = st_read_header(st, err);
    if (!rc) rc = st_check_format(st, format, max_version, err);
    if (rc) {
        cb_st_close(st);
        return rc;
    }
    *out = st;
    return CB_OK;
}

/* Verify sections [lo, hi) of tensor i, each once. */
static int check_sections(const cb_st *st, size_t i, size_t lo, size_t hi, cb_error *err) {
    const st_tensor *t = &st->t[i];
    for (size_t s = lo; s < hi; s++) {
        size_t k = st->first_section[i] + s;
        if (__atomic_load_n(&st->checked[k], __ATOMIC_ACQUIRE)) continue;
        uint64_t want;
        memcpy(&want, st->sums + k * sizeof want, sizeof want);
        if (ST_VERIFY && section_sum(t, s, st->section_bytes) != want)
            return cb_fail(err, CB_EFORMAT, "%s: checksum mismatch in tensor '%s' (bytes %" PRIu64 "..%" PRIu64
                           "; file is corrupted)", st->path, t->name, (uint64_t)s * st->section_bytes,
                           (uint64_t)(s + 1) * st->section_bytes);
        __atomic_store_n(&st->checked[k], 1, __ATOMIC_RELEASE);
    }
    return CB_OK;
}

int cb_st_check(const cb_st *st, const void *p, size_t len, cb_error *err) {
    if (!st->section_bytes || len == 0) return CB_OK;
    const unsigned char *q = p;
    for (size_t i = 0; i < st->n; i++) {
        const unsigned char *d = st->t[i].data;
        if (q < d || q + len > d + st->t[i].nbytes) continue;
        if (st->first_section[i] == SIZE_MAX) return CB_OK; /* covered by the file's checksum */
        size_t lo = (size_t)((uint64_t)(q - d) / st->section_bytes);
        size_t hi = (size_t)(((uint64_t)(q - d) + len - 1) / st->section_bytes) + 1;
        return check_sections(st, i, lo, hi, err);
    }
    return cb_fail(err, CB_EINVAL, "%s: cb_st_check: the range is not inside one tensor", st->path);
}

static const st_tensor *find_tensor(const cb_st *st, const char *name, cb_st_dtype dtype, int ndim, int64_t *shape,
                                    cb_error *err);

const void *cb_st_tensor(const cb_st *st, const char *name, cb_st_dtype dtype, int ndim, int64_t *shape,
                         cb_error *err) {
    const st_tensor *t = find_tensor(st, name, dtype, ndim, shape, err);
    if (t && st->section_bytes && st->first_section[t - st->t] != SIZE_MAX &&
        check_sections(st, (size_t)(t - st->t), 0, n_sections_of(t, st->section_bytes), err))
        return NULL;
    return t ? t->data : NULL;
}

const void *cb_st_tensor_lazy(const cb_st *st, const char *name, cb_st_dtype dtype, int ndim, int64_t *shape,
                              cb_error *err) {
    const st_tensor *t = find_tensor(st, name, dtype, ndim, shape, err);
    return t ? t->data : NULL;
}

static const st_tensor *find_tensor(const cb_st *st, const char *name, cb_st_dtype dtype, int ndim, int64_t *shape,
                                    cb_error *err) {
    st_tensor key = {.name = (char *)name};
    const st_tensor *t = bsearch(&key, st->t, st->n, sizeof *st->t, cmp_tensor);
    if (!t) {
        cb_fail(err, CB_EFORMAT, "%s: tensor '%s' is missing", st->path, name);
        return NULL;
    }
    if (t->dtype != dtype || t->ndim != ndim) {
        cb_fail(err, CB_EFORMAT, "%s: tensor '%s' is %s with %d dims, expected %s with %d", st->path, name,
                dtype_names[t->dtype], t->ndim, dtype_names[dtype], ndim);
        return NULL;
    }
    /* Our writer aligns every tensor to its element size; a foreign file may
     * not, and reading floats through a misaligned pointer is undefined. */
    if ((uintptr_t)t->data % dtype_sizes[t->dtype]) {
        cb_fail(err, CB_EFORMAT, "%s: tensor '%s' is not aligned to its %zu-byte elements", st->path, name,
                dtype_sizes[t->dtype]);
        return NULL;
    }
    for (int d = 0; d < ndim; d++) shape[d] = t->shape[d];
    return t;
}

int cb_st_copy(const cb_st *st, cb_st_writer *w, const char *const *skip, cb_error *err) {
    static const char *const own[] = {"checksum", "format", "format_version", "section_bytes"};
    int rc = CB_OK;
    for (size_t i = 0; i < st->n && !rc; i++) {
        bool skipped = false;
        for (size_t k = 0; skip && skip[k]; k++) skipped |= !strcmp(skip[k], st->t[i].name);
        skipped |= !strcmp(st->t[i].name, ST_SECTIONS); /* the writer makes its own */
        if (!skipped) rc = cb_st_add(w, st->t[i].name, st->t[i].dtype, st->t[i].shape, st->t[i].ndim, st->t[i].data, err);
    }
    for (size_t i = 0; i < st->n_meta && !rc; i++) {
        bool skipped = false;
        for (size_t k = 0; k < 4; k++) skipped |= !strcmp(own[k], st->m[i].key);
        for (size_t k = 0; skip && skip[k]; k++) skipped |= !strcmp(skip[k], st->m[i].key);
        if (!skipped) rc = cb_st_set_meta(w, st->m[i].key, st->m[i].value, err);
    }
    return rc;
}

const char *cb_st_meta(const cb_st *st, const char *key) {
    st_meta k = {.key = (char *)key};
    const st_meta *m = st->m ? bsearch(&k, st->m, st->n_meta, sizeof *st->m, cmp_meta) : NULL;
    return m ? m->value : NULL;
}

int cb_st_format_version(const cb_st *st) { return st->version; }
const char *cb_st_path(const cb_st *st) { return st->path; }

int cb_npy_write_f32(const char *path, const float *data, uint64_t rows, uint64_t cols, cb_error *err) {
    char header[128];
    int n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%" PRIu64 ", %" PRIu64 "), }",
                     rows, cols);
    /* magic(6) + version(2) + len(2) + header, padded with spaces to 64, ending in '\n' */
    size_t total = (10 + (size_t)n + 1 + 63) / 64 * 64, hlen = total - 10;
    cb_atomic_file af;
    int rc = cb_atomic_open(&af, path, err);
    if (rc) return rc;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
    bool ok = fwrite(pre, 1, 10, af.fp) == 10 && fwrite(header, 1, (size_t)n, af.fp) == (size_t)n;
    for (size_t i = (size_t)n; ok && i + 1 < hlen; i++) ok = fputc(' ', af.fp) != EOF;
    ok = ok && fputc('\n', af.fp) != EOF;
    ok = ok && (rows * cols == 0 || fwrite(data, sizeof(float), (size_t)(rows * cols), af.fp) == rows * cols);
    if (!ok) {
        rc = cb_fail(err, CB_EIO, "%s: write failed: %s", path, strerror(errno));
        cb_atomic_abort(&af);
        return rc;
    }
    return cb_atomic_commit(&af, err);
}
