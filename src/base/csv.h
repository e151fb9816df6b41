/* csv — a strict, streaming reader of delimited text files.
 *
 * Handles RFC 4180 quoting (fields with delimiters, quotes "" and newlines
 * inside quotes), CRLF and LF line ends, a UTF-8 byte-order mark, single-byte
 * delimiters and multi-byte ones (MovieLens 1M's "::"), and optional latin-1 to
 * UTF-8 conversion. Every error names the file and the 1-based line. Lines
 * longer than `max_line` bytes are an error rather than unbounded memory.
 * Fields point into the reader's buffer and are valid until the next call;
 * each is also NUL-terminated (fields[i][lens[i]] == '\0'). */
#ifndef CB_CSV_H
#define CB_CSV_H

#include "base/util.h"
#include <stddef.h>

typedef struct cb_csv cb_csv;

typedef struct cb_csv_options {
    const char *delim;    /* delimiter string, e.g. ",", "\t", "|", "::" (default ",") */
    int quoting;          /* 1: honour "..." quoting (default for ","), 0: quotes are data */
    int latin1;           /* 1: input is latin-1, convert fields to UTF-8 */
    int check_utf8;       /* 1: invalid UTF-8 in a field is an error */
    size_t max_line;      /* longest accepted record in bytes (default 1 MiB) */
    int skip_empty_lines; /* 1: blank lines are skipped (default 1) */
} cb_csv_options;

/* Defaults: delim ",", quoting 1, latin1 0, check_utf8 1, max_line 1 MiB, skip_empty_lines 1. */
void cb_csv_options_default(cb_csv_options *o);

/* Open `path`. Missing or unreadable files fail with CB_EIO. */
int cb_csv_open(cb_csv **out, const char *path, const cb_csv_options *opt, cb_error *err);
/* Read from a memory buffer (for tests and fuzzing); `name` is used in messages. */
int cb_csv_open_mem(cb_csv **out, const char *name, const char *data, size_t len,
                    const cb_csv_options *opt, cb_error *err);
void cb_csv_close(cb_csv *c); /* NULL is a no-op */

/* Read the next record. Returns 1 with `*fields`/`*lens`/`*n_fields` set, 0 at
 * end of file, or a negative CB_E* code with `err` naming file and line. */
int cb_csv_next(cb_csv *c, char ***fields, size_t **lens, size_t *n_fields, cb_error *err);

/* Start reading at byte `offset` of the input, which the caller knows to be
 * the start of line `line` and of a record (no byte-order mark is looked for
 * there; cb_csv_bytes() counts from `offset`). For resuming a file part of
 * which was read another way. Call before the first cb_csv_next. */
int cb_csv_seek(cb_csv *c, size_t offset, size_t line, cb_error *err);

/* 1-based line number where the last returned record started. */
size_t cb_csv_line(const cb_csv *c);
const char *cb_csv_name(const cb_csv *c);
/* Bytes consumed so far (for progress and throughput reports). */
size_t cb_csv_bytes(const cb_csv *c);

/* For tests and fuzzing only: read the input `block_size` bytes at a time
 * (>= 1; the default is 1 MiB) and, when `reference` is 1, parse every record
 * with the plain byte-at-a-time parser instead of the vectorised fast path.
 * Output and errors must be identical either way; the tests and the fuzzer
 * compare them. Call before the first cb_csv_next. */
void cb_csv_set_debug(cb_csv *c, size_t block_size, int reference);

#endif /* CB_CSV_H */
