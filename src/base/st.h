/* st — the file container of cbrec models, similar-items tables and
 * embeddings: the safetensors layout (8-byte little-endian header length, a
 * JSON header naming each tensor's dtype, shape and byte range, then the raw
 * little-endian tensor bytes), so numpy/PyTorch users can open our files with
 * the `safetensors` package or a few lines of Python.
 *
 * cbrec adds, inside the standard "__metadata__" string map:
 *   "format"         e.g. "cbrec-model" (who wrote it and what it holds)
 *   "format_version" integer as a string
 *   "checksum"       "xxh64:" + XXH64 (hex) over every tensor's name, dtype,
 *                    shape and bytes and every other metadata key and value,
 *                    so any corruption of header or data is detected on load
 *                    (files before it carry bare-hex FNV-1a 64, still verified).
 * A sectioned file (cb_st_writer_sectioned; "checksum" = "xxh64s:" + hex)
 * covers each tensor of at least CB_ST_SECTION_BYTES by one XXH64 per
 * section of that size, kept in a tensor "__sections__" (and the size in
 * "section_bytes"), and the checksum covers those hashes instead of those
 * tensors' bytes: opening it reads only the header and the small tensors,
 * and a large tensor is verified a section at a time when it is read
 * (cb_st_tensor: all of it; cb_st_tensor_lazy + cb_st_check: the bytes
 * asked for), so one user's rows of a 240 MB history cost a few sections.
 * Files are written atomically (temporary file, fsync, rename) and read with
 * mmap (read-only, shared between processes). A reader validates everything
 * before handing out a pointer: truncation, offsets, shapes, dtypes, checksum. */
#ifndef CB_ST_H
#define CB_ST_H

#include "base/util.h"
#include <stdint.h>

typedef enum cb_st_dtype { CB_ST_F32 = 0, CB_ST_I32 = 1, CB_ST_U8 = 2 } cb_st_dtype;

#define CB_ST_MAX_DIMS 4

/* ---- Writing. Tensor data is referenced, not copied: it must stay valid
 * until cb_st_write returns. Metadata strings are copied. */
typedef struct cb_st_writer cb_st_writer;
cb_st_writer *cb_st_writer_create(cb_error *err);
int cb_st_add(cb_st_writer *w, const char *name, cb_st_dtype dtype, const int64_t *shape, int ndim,
              const void *data, cb_error *err);
int cb_st_set_meta(cb_st_writer *w, const char *key, const char *value, cb_error *err);
/* Write atomically to `path`, with "format" = `format` and "format_version". */
int cb_st_write(cb_st_writer *w, const char *path, const char *format, int format_version, cb_error *err);
/* The same, staged and not yet in place (cb_atomic_stage): *staged is then
 * renamed into `path` by cb_atomic_publish, with the other files of a set
 * (a model and its history); zeroed on failure. */
int cb_st_write_staged(cb_st_writer *w, cb_atomic_file *staged, const char *path, const char *format, int format_version,
                       cb_error *err);
/* Make w write a sectioned file (see above). */
void cb_st_writer_sectioned(cb_st_writer *w);
#define CB_ST_SECTION_BYTES (64u << 10)
void cb_st_writer_free(cb_st_writer *w);

/* ---- Reading. */
typedef struct cb_st cb_st;
/* Map and validate `path`. `format` (may be NULL) must match the file's
 * "format"; `max_version` is the newest format_version this reader knows. */
int cb_st_open(cb_st **out, const char *path, const char *format, int max_version, cb_error *err);
void cb_st_close(cb_st *st); /* NULL is a no-op; invalidates every pointer it gave */
/* The tensor `name` with the expected dtype and ndim; its shape is written to
 * shape[0..ndim-1]. Returns NULL with a CB_EFORMAT message naming the file
 * when it is missing or of another dtype or rank. */
const void *cb_st_tensor(const cb_st *st, const char *name, cb_st_dtype dtype, int ndim, int64_t *shape,
                         cb_error *err);
/* The same, without verifying a sectioned tensor's bytes: read none of them
 * before cb_st_check has said CB_OK for them. */
const void *cb_st_tensor_lazy(const cb_st *st, const char *name, cb_st_dtype dtype, int ndim, int64_t *shape,
                              cb_error *err);
/* Verify the bytes [p, p + len) of one tensor of st (each section once, safe
 * from several threads): CB_OK, or CB_EFORMAT "checksum mismatch in tensor
 * ..." naming the file. A no-op in files that are not sectioned and for
 * tensors the file's checksum covers. */
int cb_st_check(const cb_st *st, const void *p, size_t len, cb_error *err);
/* Add every tensor and metadata entry of `st` to `w` (tensor data still
 * points into `st`: keep it open until cb_st_write), except the names listed
 * in `skip` (NULL-terminated; may be NULL) and the container's own keys
 * (checksum, format, format_version). For tools and tests that re-save a
 * file with a field changed or left out. */
int cb_st_copy(const cb_st *st, cb_st_writer *w, const char *const *skip, cb_error *err);
/* Metadata value or NULL. */
const char *cb_st_meta(const cb_st *st, const char *key);
int cb_st_format_version(const cb_st *st);
const char *cb_st_path(const cb_st *st);



/* Write a float32 matrix [rows x cols] as a NumPy .npy file (version 1.0,
 * little-endian '<f4', C order), atomically. */
int cb_npy_write_f32(const char *path, const float *data, uint64_t rows, uint64_t cols, cb_error *err);
#endif
