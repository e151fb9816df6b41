/* util — small helpers shared by every module: error reporting, checked
 * allocation, a seeded RNG, string-to-index vocabularies, and atomic file
 * writes. Internal to libcbrec (not installed). */
#ifndef CB_UTIL_H
#define CB_UTIL_H

#include "cbrec.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define CB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CB_PRINTF(a, b)
#endif

/* Fill `err` (may be NULL) with a formatted message and return `code`. */
int cb_fail(cb_error *err, int code, const char *fmt, ...) CB_PRINTF(3, 4);

/* Clear an error buffer (code CB_OK, empty message). */
void cb_error_clear(cb_error *err);

/* Allocation that reports failure through `err`. Return NULL on failure.
 * cb_calloc checks n*size for overflow. Free with free(). */
void *cb_malloc(size_t size, cb_error *err);
void *cb_calloc(size_t n, size_t size, cb_error *err);
void *cb_realloc_array(void *p, size_t n, size_t size, cb_error *err);
char *cb_strdup(const char *s, cb_error *err);
char *cb_strndup(const char *s, size_t len, cb_error *err);

/* ---- RNG: xoshiro256** seeded by splitmix64. Deterministic across runs. */
typedef struct cb_rng {
    uint64_t s[4];
} cb_rng;
void cb_rng_seed(cb_rng *rng, uint64_t seed);
uint64_t cb_rng_next(cb_rng *rng);
/* Uniform in [0, 1). */
double cb_rng_uniform(cb_rng *rng);
/* Uniform integer in [0, n), unbiased. n > 0. */
uint64_t cb_rng_below(cb_rng *rng, uint64_t n);
/* Standard normal (Box-Muller). */
double cb_rng_normal(cb_rng *rng);
/* Fisher-Yates shuffle of an index array. */
void cb_rng_shuffle_u32(cb_rng *rng, uint32_t *a, size_t n);

/* qsort comparator of uint32_t, ascending. */
int cb_cmp_u32(const void *a, const void *b);
/* Sorts and de-duplicates each row col[off[r] .. off[r+1]) of a CSR of
 * n_rows rows in place, compacting it (off[n_rows] = the new total). */
void cb_csr_sort_unique(size_t *off, uint32_t *col, uint32_t n_rows);

/* ---- Vocabulary: arbitrary byte-string ids <-> dense indices 0..n-1.
 * Open-addressing hash table; the vocabulary owns copies of the strings. */
typedef struct cb_vocab cb_vocab;
cb_vocab *cb_vocab_create(cb_error *err);
void cb_vocab_free(cb_vocab *v); /* NULL is a no-op */
/* Index of `s` (length `len`), adding it if new. `*added` (may be NULL) tells
 * whether it was new. Returns CB_OK or CB_ENOMEM. */
int cb_vocab_intern(cb_vocab *v, const char *s, size_t len, uint32_t *idx, bool *added, cb_error *err);
/* Index of `s` or -1 when absent. */
int64_t cb_vocab_find(const cb_vocab *v, const char *s, size_t len);
const char *cb_vocab_name(const cb_vocab *v, uint32_t idx);
uint32_t cb_vocab_size(const cb_vocab *v);
/* Bytes used by the vocabulary (for memory reports). */
size_t cb_vocab_bytes(const cb_vocab *v);

/* ---- Opening input files: the one way every reader opens a file (CSV,
 * schema, model, table, JSON). Anything but a regular file (a FIFO, a
 * directory, a device) is refused at once with a message naming the path:
 * the open itself never blocks (O_NONBLOCK until fstat has said "regular").
 * `what` (may be NULL) names the file's role in the message ("model file").
 * Returns CB_OK with *fd open (the caller closes it), or an error code. */
int cb_open_input(int *fd, const char *path, const char *what, cb_error *err);
/* Read a whole input file (opened by cb_open_input) into a NUL-terminated
 * malloc'd buffer; *len (may be NULL) excludes the NUL. More than max_len
 * bytes is CB_EPARSE "file too large". */
int cb_read_small_file(const char *path, char **out, size_t *len, size_t max_len, cb_error *err);

/* ---- Error text: at most `max` bytes of s (a user-given title, id, cell)
 * for a message, with "...(N bytes)" when cut, so a 50 MB field never ends up
 * whole in an error. Writes into buf[size] and returns buf. */
const char *cb_clip(char *buf, size_t size, const char *s, size_t len);
#define CB_CLIP_MAX 80 /* a buffer of CB_CLIP_MAX + 32 holds any clip */

/* ---- Atomic file writes: write to "<path>.tmp.<pid>", fsync, rename, fsync
 * the folder. A crash or a full disk never leaves a torn file at
 * `path`, and the old file stays intact until the rename. A process killed
 * before the rename leaves its temporary behind: the next cb_atomic_open of
 * the same path removes every "<path>.tmp.<pid>" whose pid is no
 * longer a live process (cb_atomic_sweep; also "<path>.tmp.<pid>.tmp.<pid>",
 * which earlier releases staged a model's parts through), so leftovers
 * never pile up. A file replaced keeps its permissions (the new one is not
 * the umask's 0644 when the old was 0600). A `path` that is a symbolic link
 * is written through, as editors and a shell's `>` write: the file its
 * links lead to is staged beside itself and replaced, and the link stays a
 * link (a dangling one creates the file it names; a loop is CB_EIO). */
typedef struct cb_atomic_file {
    FILE *fp;
    char *path;       /* the path given: what messages name */
    char *final_path; /* the file the rename replaces: path, or where its links lead */
    char *tmp_path;   /* final_path + ".tmp.<pid>", in the final file's folder */
} cb_atomic_file;
int cb_atomic_open(cb_atomic_file *af, const char *path, cb_error *err);
/* Flush, fsync, close and rename; on any failure remove the temporary file. */
int cb_atomic_commit(cb_atomic_file *af, cb_error *err);
/* Close and remove the temporary file (after an error, or a staged one). */
void cb_atomic_abort(cb_atomic_file *af);
/* Files written as one set (a dataset folder): each flushed, fsynced and
 * closed by cb_atomic_stage (on failure removed), then cb_atomic_publish
 * renames every staged one of files[0..n) into place when rc is CB_OK, or
 * removes them all when not, so a failure half-way through the set leaves
 * the old files, never some new ones beside old ones. Zeroed entries (files
 * not written) are skipped. Returns rc, or the first rename's error. */
int cb_atomic_stage(cb_atomic_file *af, cb_error *err);
int cb_atomic_publish(cb_atomic_file *files, size_t n, int rc, cb_error *err);
/* Remove the temporaries of `path` left by dead processes; returns how many. */
int cb_atomic_sweep(const char *path);
/* Can a file be created at `path` (its folder exists and is writable, and
 * `path` itself is not a folder)? Checked before long work (training) so an
 * unwritable output fails in a second, not after an hour. Creates and removes
 * a probe temporary. */
int cb_atomic_check_writable(const char *path, cb_error *err);
/* Do writes to the paths a and b land on one directory entry (the same base
 * name in the same folder, however spelt: "m", "./m", a symlinked folder, a
 * link to the other file)? Then a write to one replaces the other. */
bool cb_atomic_same_target(const char *a, const char *b);
/* CB_EINVAL naming both paths when writing `out` would replace the file
 * `input` (the same entry however spelt, or the same file through a link). */
int cb_check_not_input(const char *out, const char *input, cb_error *err);

/* ---- Misc. */
/* Monotonic wall time in seconds. */
double cb_now(void);
/* 64-bit FNV-1a over bytes, continuing from h (start with CB_FNV1A64_INIT):
 * a stable, non-cryptographic checksum for detecting corruption. */
uint64_t cb_fnv1a64(const void *data, size_t len, uint64_t h);
#define CB_FNV1A64_INIT 0xcbf29ce484222325ULL
/* XXH64 (xxHash's 64-bit hash: 8-byte words in four independent lanes) of
 * the bytes with seed h, so calls chain like cb_fnv1a64's: the same purpose as
 * cb_fnv1a64 at memory speed (FNV-1a's one multiply per byte runs at ~1 GB/s;
 * this at ~10). Not cryptographic; stable across hosts (little-endian words). */
uint64_t cb_hash64(const void *data, size_t len, uint64_t h);
/* Parse a float strictly: the whole [s, s+len) must be a finite number.
 * Returns true on success. */
bool cb_parse_float(const char *s, size_t len, float *out);
bool cb_parse_double(const char *s, size_t len, double *out);
/* x as the text a data file would hold: the shortest form that reads back as
 * x ("0.1", "7.5", "1992" for 1992.0; "%.17g" gave "0.10000000000000001",
 * which no level read from a file matches). Returns buf (size 32 at least). */
char *cb_number_text(double x, char *buf, size_t size);
/* Parse a signed 64-bit integer strictly. */
bool cb_parse_i64(const char *s, size_t len, int64_t *out);
/* True when [s, s+len) is valid UTF-8. */
bool cb_utf8_valid(const char *s, size_t len);
/* cb_utf8_repair (cbrec.h): cb_fail repairs every message it writes. */

/* ---- Wider vectors where the CPU has them. The build targets x86-64-v2
 * (SSE4.2) so the binary runs anywhere; CB_X86_SIMD says x86-64 intrinsics
 * are there (SSE2 always, with GCC or clang). A hot loop may add an AVX2 +
 * FMA version written with intrinsics in a function marked CB_TARGET_AVX2
 * and pick it at run time when cb_cpu_avx2() is true, keeping the plain path
 * (and a test that both agree within float tolerance). */
#if defined(__GNUC__) && defined(__x86_64__)
#define CB_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define CB_X86_SIMD 1
#else
#define CB_TARGET_AVX2
#define CB_X86_SIMD 0
#endif
/* True when the CPU runs AVX2 and FMA and the environment does not say
 * CBREC_NO_AVX2=1 (so tests and benchmarks can compare both paths). */
bool cb_cpu_avx2(void);

#endif /* CB_UTIL_H */
