/* util — error reporting, checked allocation, RNG, vocabularies, atomic
 * writes and strict number parsing shared by all libcbrec modules. */
#define _POSIX_C_SOURCE 200809L
#include "base/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

const char *cb_version(void) { return CB_VERSION_STRING; }

const char *cb_strstatus(int code) {
    switch (code) {
    case CB_OK: return "ok";
    case CB_EIO: return "I/O error";
    case CB_EPARSE: return "parse error";
    case CB_ENOMEM: return "out of memory";
    case CB_EINVAL: return "invalid argument";
    case CB_ENOTFOUND: return "not found";
    case CB_EFORMAT: return "bad file format";
    case CB_ENUMERIC: return "numerical error";
    default: return "unknown error";
    }
}

int cb_fail(cb_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        cb_utf8_repair(err->msg); /* a quoted input cut by a precision or the size stays readable */
        err->code = code;
    }
    return code;
}

void cb_error_clear(cb_error *err) {
    if (err) {
        err->code = CB_OK;
        err->msg[0] = '\0';
    }
}

void *cb_malloc(size_t size, cb_error *err) {
    void *p = malloc(size ? size : 1);
    if (!p) cb_fail(err, CB_ENOMEM, "out of memory (%zu bytes)", size);
    return p;
}

void *cb_calloc(size_t n, size_t size, cb_error *err) {
    if (size && n > SIZE_MAX / size) {
        cb_fail(err, CB_ENOMEM, "allocation size overflow (%zu x %zu)", n, size);
        return NULL;
    }
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) cb_fail(err, CB_ENOMEM, "out of memory (%zu x %zu bytes)", n, size);
    return p;
}

void *cb_realloc_array(void *p, size_t n, size_t size, cb_error *err) {
    if (size && n > SIZE_MAX / size) {
        cb_fail(err, CB_ENOMEM, "allocation size overflow (%zu x %zu)", n, size);
        return NULL;
    }
    void *q = realloc(p, (n && size) ? n * size : 1);
    if (!q) cb_fail(err, CB_ENOMEM, "out of memory (%zu x %zu bytes)", n, size);
    return q;
}

char *cb_strndup(const char *s, size_t len, cb_error *err) {
    char *d = cb_malloc(len + 1, err);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *cb_strdup(const char *s, cb_error *err) { return cb_strndup(s, strlen(s), err); }

/* ---- RNG */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void cb_rng_seed(cb_rng *rng, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t cb_rng_next(cb_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double cb_rng_uniform(cb_rng *rng) { return (double)(cb_rng_next(rng) >> 11) * 0x1.0p-53; }

uint64_t cb_rng_below(cb_rng *rng, uint64_t n) {
    /* Rejection sampling on the top of the range keeps it unbiased. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = cb_rng_next(rng);
    while (r >= limit);
    return r % n;
}

double cb_rng_normal(cb_rng *rng) {
    double u1 = cb_rng_uniform(rng), u2 = cb_rng_uniform(rng);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void cb_rng_shuffle_u32(cb_rng *rng, uint32_t *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)cb_rng_below(rng, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* ---- Vocabulary */

struct cb_vocab {
    char **names;      /* [n] owned strings, index order */
    uint32_t *lens;    /* [n] */
    uint32_t n, cap;   /* entries */
    uint32_t *slots;   /* [n_slots] index+1, 0 = empty */
    uint32_t n_slots;  /* power of two */
    size_t bytes;
};

uint64_t cb_fnv1a64(const void *data, size_t len, uint64_t h) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#define H64_P1 0x9E3779B185EBCA87ULL
#define H64_P2 0xC2B2AE3D27D4EB4FULL
#define H64_P3 0x165667B19E3779F9ULL
#define H64_P4 0x85EBCA77C2B2AE63ULL
#define H64_P5 0x27D4EB2F165667C5ULL

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static uint64_t h64_round(uint64_t acc, uint64_t w) { return rotl64(acc + w * H64_P2, 31) * H64_P1; }
static uint64_t h64_merge(uint64_t h, uint64_t lane) { return (h ^ h64_round(0, lane)) * H64_P1 + H64_P4; }
static uint64_t load64(const unsigned char *p) { /* little-endian hosts (st.c refuses others) */
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

uint64_t cb_hash64(const void *data, size_t len, uint64_t h) {
    const unsigned char *p = data, *end = p + len;
    uint64_t acc;
    if (len >= 32) {
        uint64_t v0 = h + H64_P1 + H64_P2, v1 = h + H64_P2, v2 = h, v3 = h - H64_P1;
        for (; end - p >= 32; p += 32) {
            v0 = h64_round(v0, load64(p));
            v1 = h64_round(v1, load64(p + 8));
            v2 = h64_round(v2, load64(p + 16));
            v3 = h64_round(v3, load64(p + 24));
        }
        acc = rotl64(v0, 1) + rotl64(v1, 7) + rotl64(v2, 12) + rotl64(v3, 18);
        acc = h64_merge(h64_merge(h64_merge(h64_merge(acc, v0), v1), v2), v3);
    } else {
        acc = h + H64_P5;
    }
    acc += (uint64_t)len;
    for (; end - p >= 8; p += 8) acc = rotl64(acc ^ h64_round(0, load64(p)), 27) * H64_P1 + H64_P4;
    if (end - p >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        acc = rotl64(acc ^ (w * H64_P1), 23) * H64_P2 + H64_P3;
        p += 4;
    }
    for (; p < end; p++) acc = rotl64(acc ^ (*p * H64_P5), 11) * H64_P1;
    acc ^= acc >> 33;
    acc *= H64_P2;
    acc ^= acc >> 29;
    acc *= H64_P3;
    return acc ^ (acc >> 32);
}

cb_vocab *cb_vocab_create(cb_error *err) {
    cb_vocab *v = cb_calloc(1, sizeof *v, err);
    if (!v) return NULL;
    v->n_slots = 64;
    v->slots = cb_calloc(v->n_slots, sizeof *v->slots, err);
    if (!v->slots) {
        free(v);
        return NULL;
    }
    return v;
}

void cb_vocab_free(cb_vocab *v) {
    if (!v) return;
    for (uint32_t i = 0; i < v->n; i++) free(v->names[i]);
    free(v->names);
    free(v->lens);
    free(v->slots);
    free(v);
}

static int vocab_grow(cb_vocab *v, cb_error *err) {
    uint32_t n_slots = v->n_slots * 2;
    uint32_t *slots = cb_calloc(n_slots, sizeof *slots, err);
    if (!slots) return CB_ENOMEM;
    for (uint32_t i = 0; i < v->n; i++) {
        uint64_t h = cb_fnv1a64(v->names[i], v->lens[i], CB_FNV1A64_INIT);
        uint32_t s = (uint32_t)h & (n_slots - 1);
        while (slots[s]) s = (s + 1) & (n_slots - 1);
        slots[s] = i + 1;
    }
    free(v->slots);
    v->slots = slots;
    v->n_slots = n_slots;
    return CB_OK;
}

int64_t cb_vocab_find(const cb_vocab *v, const char *s, size_t len) {
    uint64_t h = cb_fnv1a64(s, len, CB_FNV1A64_INIT);
    uint32_t slot = (uint32_t)h & (v->n_slots - 1);
    for (;;) {
        uint32_t e = v->slots[slot];
        if (!e) return -1;
        e--;
        if (v->lens[e] == len && memcmp(v->names[e], s, len) == 0) return e;
        slot = (slot + 1) & (v->n_slots - 1);
    }
}

int cb_vocab_intern(cb_vocab *v, const char *s, size_t len, uint32_t *idx, bool *added, cb_error *err) {
    int64_t found = cb_vocab_find(v, s, len);
    if (found >= 0) {
        *idx = (uint32_t)found;
        if (added) *added = false;
        return CB_OK;
    }
    if (v->n == UINT32_MAX - 1 || len > UINT32_MAX)
        return cb_fail(err, CB_EINVAL, "vocabulary full");
    if ((uint64_t)(v->n + 1) * 2 > v->n_slots) {
        int rc = vocab_grow(v, err);
        if (rc) return rc;
    }
    if (v->n == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 64;
        char **names = cb_realloc_array(v->names, cap, sizeof *names, err);
        if (!names) return CB_ENOMEM;
        v->names = names;
        uint32_t *lens = cb_realloc_array(v->lens, cap, sizeof *lens, err);
        if (!lens) return CB_ENOMEM;
        v->lens = lens;
        v->cap = cap;
    }
    char *copy = cb_strndup(s, len, err);
    if (!copy) return CB_ENOMEM;
    uint64_t h = cb_fnv1a64(s, len, CB_FNV1A64_INIT);
    uint32_t slot = (uint32_t)h & (v->n_slots - 1);
    while (v->slots[slot]) slot = (slot + 1) & (v->n_slots - 1);
    v->slots[slot] = v->n + 1;
    v->names[v->n] = copy;
    v->lens[v->n] = (uint32_t)len;
    v->bytes += len + 1 + sizeof(char *) + sizeof(uint32_t);
    *idx = v->n++;
    if (added) *added = true;
    return CB_OK;
}

const char *cb_vocab_name(const cb_vocab *v, uint32_t idx) { return idx < v->n ? v->names[idx] : NULL; }
uint32_t cb_vocab_size(const cb_vocab *v) { return v ? v->n : 0; }
size_t cb_vocab_bytes(const cb_vocab *v) {
    return v ? v->bytes + (size_t)v->n_slots * sizeof(uint32_t) + sizeof *v : 0;
}

/* ---- Input files */

int cb_open_input(int *out, const char *path, const char *what, cb_error *err) {
    const char *role = what ? what : "file";
    *out = -1;
    if (!path || !*path) return cb_fail(err, CB_EINVAL, "no %s path given", role);
    int fd;
    do fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    char ebuf[128];
    if (fd < 0) return cb_fail(err, CB_EIO, "%s: cannot open the %s: %s", path, role, strerror_r(errno, ebuf, sizeof ebuf));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return cb_fail(err, CB_EIO, "%s: cannot stat the %s: %s", path, role, strerror_r(e, ebuf, sizeof ebuf));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        const char *kind = S_ISDIR(sb.st_mode) ? "a directory" : S_ISFIFO(sb.st_mode) ? "a FIFO (named pipe)"
                           : S_ISSOCK(sb.st_mode) ? "a socket" : "a device";
        return cb_fail(err, CB_EINVAL, "%s: the %s is %s, not a regular file", path, role, kind);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    *out = fd;
    return CB_OK;
}

int cb_read_small_file(const char *path, char **out, size_t *len, size_t max_len, cb_error *err) {
    *out = NULL;
    int fd, rc = cb_open_input(&fd, path, NULL, err);
    if (rc) return rc;
    char *buf = cb_malloc(max_len + 1, err);
    size_t n = 0;
    rc = buf ? CB_OK : CB_ENOMEM;
    while (!rc && n <= max_len) {
        ssize_t got = read(fd, buf + n, max_len + 1 - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) rc = cb_fail(err, CB_EIO, "%s: read error: %s", path, strerror(errno));
        if (got <= 0) break;
        n += (size_t)got;
    }
    close(fd);
    if (!rc && n > max_len) rc = cb_fail(err, CB_EPARSE, "%s:1: file too large (more than %zu bytes)", path, max_len);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return CB_OK;
}

/* ---- Error text */

const char *cb_clip(char *buf, size_t size, const char *s, size_t len) {
    if (!size) return buf;
    size_t keep = len <= CB_CLIP_MAX ? len : CB_CLIP_MAX;
    if (keep >= size) keep = size - 1;
    /* never cut a UTF-8 sequence in half */
    while (keep < len && keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80) keep--;
    if (keep == len) snprintf(buf, size, "%.*s", (int)keep, s);
    else snprintf(buf, size, "%.*s...(%zu bytes)", (int)keep, s, len);
    return buf;
}

/* ---- Atomic files */

/* The folder of `path` ("." when it has none) into dir[size]; false if too long. */
static bool folder_of(const char *path, char *dir, size_t size) {
    const char *slash = strrchr(path, '/');
    if (!slash) return snprintf(dir, size, ".") < (int)size;
    if (slash == path) return snprintf(dir, size, "/") < (int)size;
    if ((size_t)(slash - path) >= size) return false;
    snprintf(dir, size, "%.*s", (int)(slash - path), path);
    return true;
}

int cb_atomic_sweep(const char *path) {
    char dir[4096];
    if (!folder_of(path, dir, sizeof dir)) return 0;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t blen = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp.", 5) != 0) continue;
        const char *digits = name + blen + 5;
        char *end;
        errno = 0;
        long pid = strtol(digits, &end, 10);
        /* a staged part's own staging copy: "<path>.tmp.<pid>.tmp.<pid>" */
        while (end != digits && !strncmp(end, ".tmp.", 5) && isdigit((unsigned char)end[5])) {
            char *next;
            if (strtol(end + 5, &next, 10) != pid) break;
            end = next;
        }
        if (end == digits || *end || errno || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours to judge) */
        char full[8192];
        if (snprintf(full, sizeof full, "%s/%s", dir, name) < (int)sizeof full && unlink(full) == 0) removed++;
    }
    closedir(d);
    return removed;
}

int cb_atomic_check_writable(const char *path, cb_error *err) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return cb_fail(err, CB_EIO, "%s: is a directory, not a file to write", path);
    cb_atomic_file af;
    int rc = cb_atomic_open(&af, path, err);
    if (!rc) cb_atomic_abort(&af);
    return rc;
}

/* Where a write to `path` lands, into *out (malloc'd): `path` itself, or,
 * when it is a symbolic link, the file its chain of links names (a relative
 * link read from the link's own folder), which need not exist yet. CB_EIO
 * for a loop, CB_ENOMEM. */
static int write_target(const char *path, char **out, cb_error *err) {
    char *at = cb_strdup(path, err), link[4096];
    struct stat sb;
    for (int hops = 0; at && lstat(at, &sb) == 0 && S_ISLNK(sb.st_mode); hops++) {
        const char *why = hops == 40 ? "too many levels of symbolic links" : NULL;
        ssize_t len = why ? -1 : readlink(at, link, sizeof link - 1);
        if (!why && len < 0) why = strerror(errno);
        else if (!why && (size_t)len == sizeof link - 1) why = "the path it names is too long";
        if (why) {
            free(at);
            *out = NULL;
            return cb_fail(err, CB_EIO, "%s: cannot follow its symbolic link: %s", path, why);
        }
        const char *slash = strrchr(at, '/');
        int folder = link[0] == '/' || !slash ? 0 : (int)(slash - at + 1); /* "dir/" of a relative link */
        char *next = cb_malloc((size_t)folder + (size_t)len + 1, err);
        if (next) snprintf(next, (size_t)folder + (size_t)len + 1, "%.*s%.*s", folder, at, (int)len, link);
        free(at);
        at = next;
    }
    *out = at;
    return at ? CB_OK : CB_ENOMEM;
}

bool cb_atomic_same_target(const char *a, const char *b) {
    char *ta = NULL, *tb = NULL;
    if (!write_target(a, &ta, NULL) && !write_target(b, &tb, NULL)) a = ta, b = tb; /* else as spelt */
    const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
    char da[4096], db[4096];
    struct stat fa, fb;
    bool same;
    if (strcmp(sa ? sa + 1 : a, sb ? sb + 1 : b) != 0) same = false;
    else if (!folder_of(a, da, sizeof da) || !folder_of(b, db, sizeof db)) same = !strcmp(a, b);
    else if (stat(da, &fa) != 0 || stat(db, &fb) != 0) same = !strcmp(da, db);
    else same = fa.st_dev == fb.st_dev && fa.st_ino == fb.st_ino;
    free(ta);
    free(tb);
    return same;
}

int cb_check_not_input(const char *out, const char *input, cb_error *err) {
    struct stat a, b;
    if (cb_atomic_same_target(out, input) ||
        (stat(out, &a) == 0 && stat(input, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino))
        return cb_fail(err, CB_EINVAL, "%s: writing there would replace the input %s: give another path", out, input);
    return CB_OK;
}

int cb_atomic_open(cb_atomic_file *af, const char *path, cb_error *err) {
    memset(af, 0, sizeof *af);
    /* "" staged ".tmp.PID" in the working folder, and a save wrote its ".history" there before failing */
    if (!*path) return cb_fail(err, CB_EINVAL, "no file path given to write");
    af->path = cb_strdup(path, err);
    int rc = af->path ? write_target(path, &af->final_path, err) : CB_ENOMEM;
    size_t n = rc ? 0 : strlen(af->final_path) + 32;
    if (!rc && !(af->tmp_path = cb_malloc(n, err))) rc = CB_ENOMEM;
    if (rc) {
        cb_atomic_abort(af);
        return rc;
    }
    snprintf(af->tmp_path, n, "%s.tmp.%ld", af->final_path, (long)getpid());
    struct stat sb; /* the rename would replace a device or FIFO (as root: /dev/null) by a regular file */
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        rc = cb_fail(err, CB_EIO, "%s: is %s, not a file: cbrec writes a file by replacing it; give a file path",
                     path, S_ISDIR(sb.st_mode) ? "a directory" : "a device, FIFO or socket");
        cb_atomic_abort(af);
        return rc;
    }
    (void)cb_atomic_sweep(af->final_path);
    af->fp = fopen(af->tmp_path, "wb");
    if (!af->fp) { /* the path the user gave first: a missing folder is theirs */
        bool linked = strcmp(path, af->final_path) != 0;
        rc = cb_fail(err, CB_EIO, "%s: cannot write there: %s (%s%s%screating its temporary file %s)", path,
                     strerror(errno), linked ? "a symbolic link to " : "", linked ? af->final_path : "",
                     linked ? "; " : "", af->tmp_path);
        free(af->tmp_path); /* not ours to remove (a folder of that name): cb_atomic_abort leaves it */
        af->tmp_path = NULL;
        cb_atomic_abort(af);
        return rc;
    }
    return CB_OK;
}

/* The file at `to` that a rename of `from` will replace keeps its
 * permissions: a model or history made private (0600) was readable by all
 * (the umask's 0644) after the next save. Best effort, as a copy's would be. */
static void keep_mode(const char *from, const char *to) {
    struct stat sb;
    if (stat(to, &sb) == 0 && S_ISREG(sb.st_mode)) (void)chmod(from, sb.st_mode & 07777);
}

/* After the rename: fsync the folder holding `path`, so the new directory
 * entry survives a crash too. Best effort: some file systems refuse it. */
static void fsync_parent_dir(const char *path) {
    char dir[4096];
    if (!folder_of(path, dir, sizeof dir)) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

int cb_atomic_commit(cb_atomic_file *af, cb_error *err) {
    int rc = cb_atomic_stage(af, err);
    return rc ? rc : cb_atomic_publish(af, 1, CB_OK, err);
}

int cb_atomic_stage(cb_atomic_file *af, cb_error *err) {
    int rc = CB_OK;
    /* named by the path the user gave (the staged file is removed, a file already there is kept) */
    const char *what = NULL;
    if (fflush(af->fp) != 0 || ferror(af->fp)) what = "write";
    else if (fsync(fileno(af->fp)) != 0) what = "fsync";
    int e = errno;
    if (fclose(af->fp) != 0 && !what) what = "close", e = errno;
    if (what)
        rc = cb_fail(err, CB_EIO, "%s: %s failed: %s (a file already there is unchanged)", af->path, what,
                     strerror(e));
    af->fp = NULL;
    if (rc != CB_OK) cb_atomic_abort(af);
    return rc;
}

int cb_atomic_publish(cb_atomic_file *files, size_t n, int rc, cb_error *err) {
    for (size_t i = 0; i < n && rc == CB_OK; i++) {
        if (!files[i].tmp_path) continue; /* a file the set did not write */
        keep_mode(files[i].tmp_path, files[i].final_path);
        if (rename(files[i].tmp_path, files[i].final_path) != 0)
            rc = cb_fail(err, CB_EIO, "%s: cannot rename into place: %s", files[i].path, strerror(errno));
        else fsync_parent_dir(files[i].final_path);
        free(files[i].tmp_path); /* renamed: nothing for the abort below to remove */
        files[i].tmp_path = NULL;
    }
    for (size_t i = 0; i < n; i++) cb_atomic_abort(&files[i]);
    return rc;
}

void cb_atomic_abort(cb_atomic_file *af) {
    if (af->fp) fclose(af->fp);
    if (af->tmp_path) remove(af->tmp_path); /* open or staged */
    free(af->path);
    free(af->final_path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

/* ---- Misc */

double cb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* [s, s+len) without surrounding spaces and tabs, NUL-terminated in buf[size]
 * for strtod / strtoll. Returns its length, or 0 when empty or too long
 * (numbers never need that many characters). */
static size_t trimmed_copy(char *buf, size_t size, const char *s, size_t len) {
    while (len && (*s == ' ' || *s == '\t')) s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    if (len == 0 || len >= size) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return len;
}

bool cb_parse_double(const char *s, size_t len, double *out) {
    char buf[64];
    /* decimal only: strtod also reads hex ("0x5" as 5) */
    if (!(len = trimmed_copy(buf, sizeof buf, s, len)) || strpbrk(buf, "xX")) return false;
    char *end;
    errno = 0;
    double d = strtod(buf, &end);
    if (end != buf + len || errno == ERANGE || !isfinite(d)) return false;
    *out = d;
    return true;
}

bool cb_parse_float(const char *s, size_t len, float *out) {
    double d;
    if (!cb_parse_double(s, len, &d) || fabs(d) > 3.4e38) return false;
    *out = (float)d;
    return true;
}

bool cb_parse_i64(const char *s, size_t len, int64_t *out) {
    char buf[32];
    if (!(len = trimmed_copy(buf, sizeof buf, s, len))) return false;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (end != buf + len || errno == ERANGE) return false;
    *out = v;
    return true;
}

/* Days from 1970-01-01 to the proleptic Gregorian date y-m-d (m 1-12). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                   /* [0, 399] */
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;   /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

/* n digits at *p (all of them digits) as *v; advances *p. */
static bool time_digits(const char **p, const char *end, int n, int *v) {
    if (end - *p < n) return false;
    int x = 0;
    for (int i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)(*p)[i] - '0';
        if (d >= 10) return false;
        x = x * 10 + (int)d;
    }
    *p += n, *v = x;
    return true;
}

/* "hh[:mm[:ss[.fff]]]" then "Z", "+hh", "+hh:mm" or "+hhmm" (or '-'), or nothing (UTC). */
static bool iso_time_of_day(const char *p, const char *end, int64_t *sec) {
    int h, mi = 0, s = 0, oh = 0, om = 0;
    if (!time_digits(&p, end, 2, &h) || h > 23) return false;
    if (p < end && *p == ':') {
        if (p++, !time_digits(&p, end, 2, &mi) || mi > 59) return false;
        if (p < end && *p == ':') {
            if (p++, !time_digits(&p, end, 2, &s) || s > 60) return false; /* 60: a leap second */
            if (p < end && (*p == '.' || *p == ',')) { /* a fraction: dropped */
                if (++p == end || (unsigned)(unsigned char)*p - '0' >= 10) return false;
                while (p < end && (unsigned)(unsigned char)*p - '0' < 10) p++;
            }
        }
    }
    int sign = 0;
    if (p < end && (*p == 'Z' || *p == 'z')) p++;
    else if (p < end && (*p == '+' || *p == '-')) {
        sign = *p++ == '+' ? 1 : -1;
        if (!time_digits(&p, end, 2, &oh) || oh > 23) return false;
        bool colon = p < end && *p == ':';
        p += colon;
        if ((colon || p < end) && (!time_digits(&p, end, 2, &om) || om > 59)) return false;
    }
    if (p != end) return false;
    *sec = (int64_t)h * 3600 + mi * 60 + s - sign * ((int64_t)oh * 3600 + om * 60);
    return true;
}

/* "YYYY-MM-DD", then optionally 'T' or ' ' and a time of day. */
static bool iso_time(const char *p, const char *end, int64_t *out) {
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, m, d;
    if (!time_digits(&p, end, 4, &y) || p == end || *p++ != '-' || !time_digits(&p, end, 2, &m) || m < 1 || m > 12 ||
        p == end || *p++ != '-' || !time_digits(&p, end, 2, &d) || d < 1 || d > mdays[m - 1])
        return false;
    if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) return false;
    int64_t sec = 0;
    if (p < end && (*p != 'T' && *p != 't' && *p != ' ')) return false;
    if (p < end && !iso_time_of_day(p + 1, end, &sec)) return false;
    *out = days_from_civil(y, m, d) * 86400 + sec;
    return true;
}

CB_API int cb_time_parse(const char *s, size_t len, int64_t *seconds) {
    char buf[64];
    if (!(len = trimmed_copy(buf, sizeof buf, s, len))) return false;
    size_t sign = buf[0] == '-' || buf[0] == '+', whole = sign + strspn(buf + sign, "0123456789");
    if (whole == len || (whole > sign && buf[whole] == '.' && whole + 1 < len &&
                         strspn(buf + whole + 1, "0123456789") == len - whole - 1)) {
        int64_t v; /* seconds; a fraction is dropped toward the past */
        if (!cb_parse_i64(buf, whole, &v)) return false;
        bool below = whole < len && buf[0] == '-' && strspn(buf + whole + 1, "0") != len - whole - 1;
        if (below && v == INT64_MIN) return false;
        *seconds = v - below;
        return true;
    }
    return iso_time(buf, buf + len, seconds);
}

CB_API size_t cb_utf8_decode(const char *str, size_t len, uint32_t *code_point) {
    const unsigned char *s = (const unsigned char *)str;
    unsigned c = s[0];
    if (c < 0x80) return *code_point = c, 1;
    size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) n = 1, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) n = 2, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) n = 3, cp = c & 0x07;
    else return 0;
    if (n >= len) return 0; /* truncated */
    for (size_t k = 1; k <= n; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) ||
        cp > 0x10FFFF)
        return 0;
    *code_point = cp;
    return n + 1;
}

bool cb_utf8_valid(const char *s, size_t len) {
    uint32_t cp;
    for (size_t i = 0, n; i < len; i += n)
        if (!(n = cb_utf8_decode(s + i, len - i, &cp))) return false;
    return true;
}

char *cb_number_text(double x, char *buf, size_t size) {
    for (int digits = 1; digits <= 17; digits++) { /* the fewest digits that read back as x */
        snprintf(buf, size, "%.*g", digits, x);
        if (strtod(buf, NULL) == x) break;
    }
    return buf;
}

CB_API void cb_utf8_repair(char *s) {
    size_t len = strlen(s);
    uint32_t cp;
    for (size_t i = 0, n; i < len; i += n)
        if (!(n = cb_utf8_decode(s + i, len - i, &cp))) s[i] = '?', n = 1;
}

int cb_cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

void cb_csr_sort_unique(size_t *off, uint32_t *col, uint32_t n_rows) {
    size_t w = 0;
    for (uint32_t r = 0; r < n_rows; r++) {
        size_t b = off[r], e = off[r + 1];
        qsort(col + b, e - b, sizeof *col, cb_cmp_u32);
        off[r] = w;
        for (size_t j = b; j < e; j++)
            if (j == b || col[j] != col[j - 1]) col[w++] = col[j];
    }
    off[n_rows] = w;
}

bool cb_cpu_avx2(void) {
#if CB_X86_SIMD
    static _Atomic int cached = -1; /* every thread computes the same value */
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        const char *off = getenv("CBREC_NO_AVX2");
        v = !(off && *off && strcmp(off, "0") != 0) && __builtin_cpu_supports("avx2") &&
            __builtin_cpu_supports("fma");
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v != 0;
#else
    return false;
#endif
}
