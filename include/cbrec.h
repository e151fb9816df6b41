/* cbrec — a content-based recommender (two-tower model) in C.
 *
 * This is the public header of libcbrec. It is deliberately short: plain
 * status codes, an error buffer the caller owns, and opaque handles with
 * _create/_load and _free pairs. Everything else is internal.
 *
 * Status: every fallible call returns CB_OK (0) or a negative CB_E* code and,
 * when `err` is not NULL, writes a one-line, human-readable reason into it
 * (naming file and line for input errors). The library never prints and never
 * exits.
 *
 * Threading: handles are not internally locked. A loaded model (cb_model) and
 * a similar-items table are read-only after loading and may be shared by any
 * number of threads for prediction, embedding and recommendation; each thread
 * passes its own cb_error. Training, dataset loading and any call that
 * modifies a handle need exclusive access to it.
 */
#ifndef CBREC_H
#define CBREC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported symbols of libcbrec.so; everything else is hidden. */
#if defined(__GNUC__)
#define CB_API __attribute__((visibility("default")))
#else
#define CB_API
#endif

#define CB_VERSION_MAJOR 0
#define CB_VERSION_MINOR 1
#define CB_VERSION_PATCH 0
#define CB_VERSION_STRING "0.1.0"

/* Status codes. */
enum {
    CB_OK = 0,
    CB_EIO = -1,      /* a file could not be opened, read or written */
    CB_EPARSE = -2,   /* malformed input data (file and line in the message) */
    CB_ENOMEM = -3,   /* out of memory */
    CB_EINVAL = -4,   /* invalid argument or configuration */
    CB_ENOTFOUND = -5,/* unknown user, item, column or name */
    CB_EFORMAT = -6,  /* a model or table file that is corrupt, foreign or of another version */
    CB_ENUMERIC = -7  /* training diverged (NaN or Inf) */
};

/* An error message buffer owned by the caller. */
typedef struct cb_error {
    int code;
    char msg[512];
} cb_error;

/* The library's version string, e.g. "0.1.0". */
CB_API const char *cb_version(void);

/* A short English name for a status code ("I/O error", ...). */
CB_API const char *cb_strstatus(int code);

#ifdef __cplusplus
}
#endif
#endif /* CBREC_H */
