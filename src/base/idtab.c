/* idtab — string tables as offsets + bytes (+ a hash index); see idtab.h. */
#include "base/idtab.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct cb_idtab {
    uint32_t n, n_slots;   /* n_slots: 0 = not indexed */
    const int32_t *off;    /* [n + 1] */
    const char *bytes;     /* [off[n]] */
    const int32_t *slots;  /* [n_slots] index + 1, 0 empty (uint32 bits) */
    int32_t *own_off, *own_slots;
    char *own_bytes;
};

static uint32_t slot_of(const char *s, size_t len, uint32_t n_slots) {
    return (uint32_t)cb_hash64(s, len, 0) & (n_slots - 1);
}

void cb_idtab_free(cb_idtab *t) {
    if (!t) return;
    free(t->own_off);
    free(t->own_slots);
    free(t->own_bytes);
    free(t);
}

uint32_t cb_idtab_size(const cb_idtab *t) { return t ? t->n : 0; }

const char *cb_idtab_name(const cb_idtab *t, uint32_t i) { return t && i < t->n ? t->bytes + t->off[i] : NULL; }

int64_t cb_idtab_find(const cb_idtab *t, const char *s, size_t len) {
    if (!t || !t->n_slots) return -1;
    uint32_t mask = t->n_slots - 1, slot = slot_of(s, len, t->n_slots);
    for (uint32_t probe = 0; probe < t->n_slots; probe++, slot = (slot + 1) & mask) {
        uint32_t e = (uint32_t)t->slots[slot];
        if (e == 0 || e > t->n) return -1; /* empty (or, in a file, an entry the checksum let through) */
        const char *name = t->bytes + t->off[e - 1];
        if ((size_t)(t->off[e] - t->off[e - 1]) == len + 1 && memcmp(name, s, len) == 0) return e - 1;
    }
    return -1;
}

/* The hash index over t's strings; a duplicate is CB_EFORMAT naming it. */
static int build_index(cb_idtab *t, const char *what, cb_error *err) {
    uint32_t n_slots = 2;
    while (n_slots < 2 * (uint64_t)t->n) {
        if (n_slots > UINT32_MAX / 4) return cb_fail(err, CB_EINVAL, "%s: too many ids to index", what);
        n_slots *= 2;
    }
    if (!(t->own_slots = cb_calloc(n_slots, sizeof *t->own_slots, err))) return CB_ENOMEM;
    t->slots = t->own_slots;
    t->n_slots = n_slots;
    for (uint32_t i = 0; i < t->n; i++) {
        const char *s = t->bytes + t->off[i];
        size_t len = (size_t)(t->off[i + 1] - t->off[i]) - 1;
        if (cb_idtab_find(t, s, len) >= 0) {
            char clip[CB_CLIP_MAX + 32];
            return cb_fail(err, CB_EFORMAT, "duplicate %s id '%s'", what, cb_clip(clip, sizeof clip, s, len));
        }
        uint32_t slot = slot_of(s, len, n_slots);
        while (t->own_slots[slot]) slot = (slot + 1) & (n_slots - 1);
        t->own_slots[slot] = (int32_t)(i + 1);
    }
    return CB_OK;
}

int cb_idtab_from_names(cb_idtab **out, const char *const *names, uint32_t n, bool indexed, const char *what,
                        cb_error *err) {
    *out = NULL;
    cb_idtab *t = cb_calloc(1, sizeof *t, err);
    if (!t) return CB_ENOMEM;
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) total += (names && names[i] ? strlen(names[i]) : 0) + 1;
    int rc = CB_OK;
    if (total > INT32_MAX) rc = cb_fail(err, CB_EINVAL, "%s: %zu bytes of names: a table holds at most 2^31-1", what, total);
    else if (!(t->own_off = cb_malloc(((size_t)n + 1) * sizeof *t->own_off, err)) ||
             !(t->own_bytes = cb_malloc(total + 1, err)))
        rc = CB_ENOMEM;
    if (rc) {
        cb_idtab_free(t);
        return rc;
    }
    size_t pos = 0;
    for (uint32_t i = 0; i < n; i++) {
        const char *name = names && names[i] ? names[i] : "";
        size_t len = strlen(name);
        t->own_off[i] = (int32_t)pos;
        memcpy(t->own_bytes + pos, name, len + 1);
        pos += len + 1;
    }
    t->own_off[n] = (int32_t)pos;
    t->n = n;
    t->off = t->own_off;
    t->bytes = t->own_bytes;
    if (indexed && (rc = build_index(t, what, err))) {
        cb_idtab_free(t);
        return rc;
    }
    *out = t;
    return CB_OK;
}

int cb_idtab_from_vocab(cb_idtab **out, const cb_vocab *v, cb_error *err) {
    uint32_t n = cb_vocab_size(v);
    const char **names = cb_calloc((size_t)n + 1, sizeof *names, err);
    if (!names) return CB_ENOMEM;
    for (uint32_t i = 0; i < n; i++) names[i] = cb_vocab_name(v, i);
    int rc = cb_idtab_from_names(out, names, n, true, "vocabulary", err);
    free(names);
    return rc;
}

static const void *tensor_1d(const cb_st *st, const char *prefix, const char *part, cb_st_dtype dt, int64_t *len,
                             cb_error *err) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", prefix, part);
    return cb_st_tensor(st, name, dt, 1, len, err);
}

/* Does the stored index find every string of t, each from its own home slot,
 * and hold no two equal strings? Each string is hashed and its probe walked
 * from its home slot to its entry: the slots passed on the way must be full,
 * and any equal string (a duplicate shares the home slot, so one of the two
 * walks passes the other) is CB_EFORMAT naming it; a last pass over the slots
 * shows that they hold n entries, so each entry exactly once. One hash per
 * string and a short walk (the index is at most half full). */
static int check_index(const cb_idtab *t, const char *path, const char *prefix, cb_error *err) {
    const uint32_t mask = t->n_slots - 1;
    char clip[CB_CLIP_MAX + 32];
    enum { AHEAD = 32 }; /* home slots hashed and prefetched ahead: the index is larger than L2 */
    uint32_t home[AHEAD];
    for (uint32_t i = 0; i < t->n; i++) {
        if (i % AHEAD == 0)
            for (uint32_t a = 0; a < AHEAD && i + a < t->n; a++) {
                home[a] = slot_of(t->bytes + t->off[i + a], (size_t)(t->off[i + a + 1] - t->off[i + a]) - 1, t->n_slots);
                __builtin_prefetch(t->slots + home[a]);
            }
        const char *s = t->bytes + t->off[i];
        const int32_t size = t->off[i + 1] - t->off[i];
        uint32_t slot = home[i % AHEAD], probe = 0, e;
        for (; probe < t->n_slots && (e = (uint32_t)t->slots[slot]) != i + 1; probe++, slot = (slot + 1) & mask) {
            if (e == 0 || e > t->n) break;
            if (t->off[e] - t->off[e - 1] == size && memcmp(t->bytes + t->off[e - 1], s, (size_t)size) == 0)
                return cb_fail(err, CB_EFORMAT, "%s: duplicate id '%s' in table '%s' (entries %u and %u)", path,
                               cb_clip(clip, sizeof clip, s, (size_t)size - 1), prefix, e < i + 1 ? e - 1 : i,
                               e < i + 1 ? i : e - 1);
        }
        if (probe == t->n_slots || (uint32_t)t->slots[slot] != i + 1)
            return cb_fail(err, CB_EFORMAT, "%s: tensor '%s.index' does not find id %u ('%s')", path, prefix, i,
                           cb_clip(clip, sizeof clip, s, (size_t)size - 1));
    }
    uint32_t full = 0;
    for (uint32_t slot = 0; slot < t->n_slots; slot++) {
        uint32_t e = (uint32_t)t->slots[slot];
        if (e > t->n) return cb_fail(err, CB_EFORMAT, "%s: tensor '%s.index' holds entry %u of %u", path, prefix, e, t->n);
        full += e != 0;
    }
    if (full != t->n)
        return cb_fail(err, CB_EFORMAT, "%s: tensor '%s.index' holds %u entries for %u ids", path, prefix, full, t->n);
    return CB_OK;
}

int cb_idtab_from_st(cb_idtab **out, const cb_st *st, const char *prefix, uint32_t n, bool indexed, cb_error *err) {
    *out = NULL;
    const char *path = cb_st_path(st);
    int64_t n_off = 0, n_bytes = 0, n_slots = 0;
    const int32_t *off = tensor_1d(st, prefix, "offsets", CB_ST_I32, &n_off, err);
    const char *bytes = off ? tensor_1d(st, prefix, "bytes", CB_ST_U8, &n_bytes, err) : NULL;
    const int32_t *slots = bytes && indexed ? tensor_1d(st, prefix, "index", CB_ST_I32, &n_slots, err) : NULL;
    if (!off || !bytes || (indexed && !slots)) return CB_EFORMAT;
    if (n_off != (int64_t)n + 1 || off[0] != 0 || off[n] != n_bytes)
        return cb_fail(err, CB_EFORMAT, "%s: tensor '%s.offsets' does not hold %u strings of '%s.bytes'", path, prefix,
                       n, prefix);
    for (uint32_t i = 0; i < n; i++) /* each string at least its NUL, and ends with it */
        if (off[i + 1] <= off[i] || off[i + 1] > n_bytes || bytes[off[i + 1] - 1] != '\0')
            return cb_fail(err, CB_EFORMAT, "%s: tensor '%s.offsets' is not monotone or string %u is not terminated",
                           path, prefix, i);
    if (indexed && (n_slots < (int64_t)n + 1 || n_slots > UINT32_MAX || (n_slots & (n_slots - 1)) != 0))
        return cb_fail(err, CB_EFORMAT, "%s: tensor '%s.index' has %" PRId64 " slots for %u ids (a power of two > n)",
                       path, prefix, n_slots, n);
    cb_idtab *t = cb_calloc(1, sizeof *t, err);
    if (!t) return CB_ENOMEM;
    *t = (cb_idtab){.n = n, .n_slots = (uint32_t)n_slots, .off = off, .bytes = bytes, .slots = slots};
    int rc = indexed ? check_index(t, path, prefix, err) : CB_OK;
    if (rc) {
        cb_idtab_free(t);
        return rc;
    }
    *out = t;
    return CB_OK;
}

int cb_idtab_save(const cb_idtab *t, cb_st_writer *w, const char *prefix, cb_error *err) {
    char name[128];
    int64_t n_off = (int64_t)t->n + 1, n_bytes = t->off[t->n], n_slots = t->n_slots;
    snprintf(name, sizeof name, "%s.offsets", prefix);
    int rc = cb_st_add(w, name, CB_ST_I32, &n_off, 1, t->off, err);
    snprintf(name, sizeof name, "%s.bytes", prefix);
    if (!rc) rc = cb_st_add(w, name, CB_ST_U8, &n_bytes, 1, t->bytes, err);
    snprintf(name, sizeof name, "%s.index", prefix);
    if (!rc && t->n_slots) rc = cb_st_add(w, name, CB_ST_I32, &n_slots, 1, t->slots, err);
    return rc;
}
