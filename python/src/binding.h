/* binding — what the two C files of the extension share: the exception
 * mapping, keyword arguments as cb_config, strings from Python sequences,
 * the progress callback (Ctrl-C, printing, a Python callable), and the
 * types. cbrec_module.c: errors, settings, Dataset, evaluate, the module;
 * model.c: the Model type. */
#ifndef CBREC_BINDING_H
#define CBREC_BINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL cbrec_ARRAY_API
#ifndef CBREC_IMPORT_ARRAY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>
#include <pthread.h>

#include "cbrec.h"

/* Raise the cbrec.Error subclass of e->code with the library's message (and
 * .code); returns NULL. */
PyObject *raise_cb(const cb_error *e);
/* A new config of `kind` with each key of the dict kw (may be NULL; '_' in a
 * name is '-'; None keeps the default) set; NULL with an exception. */
cb_config *config_from(cb_config_kind kind, PyObject *kw);
/* Every element of seq as an id's UTF-8 (a str; a whole-number float as its
 * integer, 1.0 as "1"; str() of anything else; a missing value -> NULL); *keep
 * holds them alive; free *out with PyMem_Free. 0 or -1 (raised; `what` names
 * seq in messages: "users", "items column 'brand'"). */
int ids_of(PyObject *seq, const char *what, PyObject **keep, const char ***out, Py_ssize_t *n);
/* s's UTF-8, or NULL with ValueError when s holds a NUL (C would cut it there). */
const char *utf8_text(PyObject *s);
/* An id argument: str, str() of an int, a whole-number float as its integer
 * (new reference), else TypeError. */
PyObject *id_text(PyObject *x);

/* The progress callback's state. Training runs with the GIL released; the
 * callback takes it back, checks for signals (Ctrl-C), prints or calls
 * `callback`, and returns non-zero to stop the library on an exception,
 * which it keeps (saved) for the caller to raise once the call returns. */
typedef struct py_progress {
    PyObject *callback;   /* a callable(dict), or NULL */
    int print;            /* print a line per epoch to sys.stderr (and one as the tuning starts) */
    int stage;            /* the stage of the last report (CB_STAGE_*) */
    int stopped;          /* the callable returned True: this and every later training stop */
    PyObject *saved[3];   /* the exception that stopped training (type, value, traceback) */
} py_progress;
/* 0 when `progress` (None/False, True or a callable) is understood, else -1 (raised). */
int progress_init(py_progress *p, PyObject *progress);
int progress_fn(const cb_progress *p, void *ctx);
/* After the call: re-raise a saved exception (returns -1) or return 0. */
int progress_finish(py_progress *p);

/* Held (with the GIL released) around every call that writes files (save,
 * save_table, synth): the library stages a file at "<path>.tmp.<pid>", which
 * two threads of one process writing the same path at once would share
 * (FileError 'cannot rename into place', or one's bytes in the other's file). */
extern pthread_mutex_t file_writes;

extern PyObject *Error;
extern PyTypeObject DatasetType, ModelType;

typedef struct {
    PyObject_HEAD
    cb_dataset *ds;
} DatasetObject;

#endif
