/* _cbrec — the CPython extension under `import cbrec`: thin types over the
 * public C API (include/cbrec.h only, linked statically), numpy in and out.
 *
 * What lives here: the exception hierarchy mapping CB_E* codes, keyword
 * arguments turned into cb_config keys ('_' -> '-'), the dataset (files or
 * arrays), training with a progress callback that re-acquires the GIL, checks
 * for Ctrl-C and stops the library, and the recommender's calls. The GIL is
 * released around every call that does real work (load, train, evaluate,
 * recommend, batch, similar, save). A pthread rwlock per model keeps the
 * library's threading rule: [shared] calls take it for reading, [exclusive]
 * ones for writing, and nobody waits for the GIL while holding it.
 * The pure-Python package (python/cbrec/__init__.py) subclasses these types
 * to add docstrings, keyword defaults and the result objects. */
#define CBREC_IMPORT_ARRAY /* this file calls import_array() */
#include "binding.h"

#include <math.h>
#include <numpy/arrayscalars.h>

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ exceptions */

PyObject *Error, *exc_by_code[8]; /* index: -code, 1..7 */
pthread_mutex_t file_writes = PTHREAD_MUTEX_INITIALIZER;

/* Raise the exception of e->code with the library's message; returns NULL. */
PyObject *raise_cb(const cb_error *e) {
    int k = -e->code;
    PyObject *type = (k >= 1 && k <= 7 && exc_by_code[k]) ? exc_by_code[k] : Error;
    /* decoded leniently: a message quotes the input, which a fixed buffer may cut inside a
     * UTF-8 sequence; "s" raised UnicodeDecodeError instead of the library's error */
    const char *msg = e->msg[0] ? e->msg : cb_strstatus(e->code);
    PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace");
    PyObject *exc = text ? PyObject_CallFunctionObjArgs(type, text, NULL) : NULL;
    Py_XDECREF(text);
    if (!exc) return NULL;
    PyObject *code = PyLong_FromLong(e->code);
    if (code) PyObject_SetAttrString(exc, "code", code);
    Py_XDECREF(code);
    PyErr_SetObject(type, exc);
    Py_DECREF(exc);
    return NULL;
}

static int add_exceptions(PyObject *m) {
    static const struct {
        int code;
        const char *name, *base, *doc;
    } defs[] = {
        {CB_EIO, "FileError", "OSError", "A file could not be opened, read or written (CB_EIO)."},
        {CB_EPARSE, "ParseError", "ValueError", "Malformed input data; the message names file and line (CB_EPARSE)."},
        {CB_ENOMEM, "OutOfMemory", "MemoryError", "The library ran out of memory (CB_ENOMEM)."},
        {CB_EINVAL, "InvalidArgument", "ValueError", "An invalid argument or setting (CB_EINVAL)."},
        {CB_ENOTFOUND, "NotFound", "LookupError", "An unknown user, item, column or setting name (CB_ENOTFOUND)."},
        {CB_EFORMAT, "FormatError", "ValueError", "A model or table file that is corrupt, foreign or of another version (CB_EFORMAT)."},
        {CB_ENUMERIC, "NumericError", "ArithmeticError", "Training diverged: a NaN or Inf loss (CB_ENUMERIC)."},
    };
    Error = PyErr_NewExceptionWithDoc("cbrec.Error",
                                      "Base class of every cbrec error. .code is the library's CB_E* status (negative).",
                                      NULL, NULL);
    if (!Error || PyModule_AddObjectRef(m, "Error", Error) < 0) return -1;
    PyObject *builtins = PyEval_GetBuiltins();
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        char qual[64];
        snprintf(qual, sizeof qual, "cbrec.%s", defs[i].name);
        PyObject *bases = Py_BuildValue("(OO)", Error, PyDict_GetItemString(builtins, defs[i].base));
        PyObject *t = bases ? PyErr_NewExceptionWithDoc(qual, defs[i].doc, bases, NULL) : NULL;
        Py_XDECREF(bases);
        if (!t || PyModule_AddObjectRef(m, defs[i].name, t) < 0) return -1;
        exc_by_code[-defs[i].code] = t;
    }
    return 0;
}

/* ---------------------------------------------------- keyword -> cb_config */

/* A Python value as the text a config key parses: booleans "true"/"false",
 * lists "a,b,c" (a numpy array as its list: str() wrote "[32 16]"), anything
 * else str(). New reference, NULL on error. */
static PyObject *value_text(PyObject *v) {
    if (PyBool_Check(v)) return PyUnicode_FromString(v == Py_True ? "true" : "false");
    if (PyArray_Check(v) && PyArray_NDIM((PyArrayObject *)v) == 1) {
        PyObject *list = PyObject_CallMethod(v, "tolist", NULL), *out = list ? value_text(list) : NULL;
        Py_XDECREF(list);
        return out;
    }
    if (PyList_Check(v) || PyTuple_Check(v)) {
        if (Py_EnterRecursiveCall(" in a setting's list")) return NULL; /* a list holding itself crashed */
        PyObject *parts = PyList_New(0), *sep = NULL, *out = NULL;
        Py_ssize_t n = PySequence_Size(v);
        for (Py_ssize_t i = 0; parts && i < n; i++) {
            PyObject *x = PySequence_GetItem(v, i);
            if (x && (PyList_Check(x) || PyTuple_Check(x) || PyArray_Check(x))) { /* flattened: [[64], [32]] was 64,32 */
                PyErr_Format(PyExc_TypeError, "a setting's list holds a %.80s: give a flat list, as [64, 32]",
                             Py_TYPE(x)->tp_name);
                Py_CLEAR(x);
            }
            PyObject *s = x ? value_text(x) : NULL;
            Py_XDECREF(x);
            if (!s || PyList_Append(parts, s) < 0) {
                Py_XDECREF(s);
                Py_CLEAR(parts);
                break;
            }
            Py_DECREF(s);
        }
        if (parts && (sep = PyUnicode_FromString(","))) out = PyUnicode_Join(sep, parts);
        Py_XDECREF(sep);
        Py_XDECREF(parts);
        Py_LeaveRecursiveCall();
        return out;
    }
    PyObject *s = PyObject_Str(v);
    if (s && (!PyUnicode_CompareWithASCIIString(s, "True") || !PyUnicode_CompareWithASCIIString(s, "False"))) {
        int t = !PyUnicode_CompareWithASCIIString(s, "True"); /* numpy booleans */
        Py_DECREF(s);
        return PyUnicode_FromString(t ? "true" : "false");
    }
    return s;
}

static int name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'; }

/* The library's message names the key as the CLI spells it ("user-layers: '0'
 * is not accepted", "unknown train key 'batch-size' (did you mean batch?)"):
 * say it as the caller wrote it (user_layers), and the keys it suggests as a
 * keyword argument can spell them ("did you mean user-layers?" named no
 * keyword at all). */
static void python_names(cb_error *err, const char *dashed, const char *given) {
    char out[sizeof err->msg];
    const char *msg = err->msg, *mean = strstr(msg, "(did you mean ");
    size_t len = strlen(dashed), o = 0;
    int named = 0; /* the first mention is the key; a later one may be inside the value */
    for (const char *p = msg; *p && o + 1 < sizeof out;) {
        if (!named && len && (p == msg || !name_char(p[-1])) && !strncmp(p, dashed, len) && !name_char(p[len])) {
            int w = snprintf(out + o, sizeof out - o, "%s", given);
            o = w < 0 ? o : o + (size_t)w < sizeof out ? o + (size_t)w : sizeof out - 1;
            p += len;
            named = 1;
        } else {
            out[o++] = mean && p > mean && *p == '-' ? '_' : *p;
            p++;
        }
    }
    out[o] = 0;
    memcpy(err->msg, out, o + 1);
}

/* Set one key (Python spelling: '_' for '-'); None leaves the default. 0 or -1 (raised). */
static int config_set_py(cb_config *c, PyObject *key, PyObject *value) {
    if (value == Py_None) return 0;
    const char *k = utf8_text(key);
    if (!k) return -1;
    char name[128];
    snprintf(name, sizeof name, "%s", k);
    for (char *p = name; *p; p++)
        if (*p == '_') *p = '-';
    PyObject *t = value_text(value);
    if (!t && PyErr_ExceptionMatches(PyExc_TypeError)) { /* name the setting */
        PyObject *type, *val, *tb;
        PyErr_Fetch(&type, &val, &tb);
        PyErr_Format(PyExc_TypeError, "setting '%s': %S", k, val);
        Py_XDECREF(type), Py_XDECREF(val), Py_XDECREF(tb);
    }
    const char *v = t ? utf8_text(t) : NULL;
    cb_error err;
    int rc = v ? cb_config_set(c, name, v, &err) : -1;
    Py_XDECREF(t);
    if (rc == 0) return 0;
    if (v) {
        python_names(&err, name, k);
        raise_cb(&err);
    }
    return -1;
}

/* A new config of `kind` with every key of the dict `kw` (may be NULL) set;
 * NULL with an exception on failure. */
cb_config *config_from(cb_config_kind kind, PyObject *kw) {
    cb_error err;
    cb_config *c = NULL;
    if (cb_config_create(&c, kind, &err)) return (cb_config *)raise_cb(&err);
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (kw && PyDict_Next(kw, &pos, &key, &value)) {
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "setting names must be strings");
            cb_config_free(c);
            return NULL;
        }
        if (config_set_py(c, key, value) < 0) {
            cb_config_free(c);
            return NULL;
        }
    }
    return c;
}

/* ------------------------------------------------------- strings from Python */

/* A missing value: None, a float NaN (what pandas puts in a text column's
 * empty cells), pandas.NA or a NaT (numpy's or pandas'); str() made them the
 * value "nan" / "<NA>" / "NaT". */
static int missing(PyObject *x) {
    if (x == Py_None) return 1;
    if (PyFloat_Check(x)) return isnan(PyFloat_AS_DOUBLE(x));
    if (PyArray_IsScalar(x, Floating)) {
        double v = PyFloat_AsDouble(x);
        return v == -1.0 && PyErr_Occurred() ? (PyErr_Clear(), 0) : isnan(v);
    }
    if (PyArray_IsScalar(x, Datetime) || PyArray_IsScalar(x, Timedelta))
        return ((PyDatetimeScalarObject *)x)->obval == NPY_DATETIME_NAT;
    return !strcmp(Py_TYPE(x)->tp_name, "NAType") || !strcmp(Py_TYPE(x)->tp_name, "NaTType");
}

/* What str() makes garbage of, as an id or a text: bytes ("b'a'"), a
 * sequence or a mapping (a row of a 2-D array: "['a']"). */
static int not_text(PyObject *x) {
    return PyBytes_Check(x) || PyByteArray_Check(x) || PyList_Check(x) || PyTuple_Check(x) || PyDict_Check(x) ||
           PyAnySet_Check(x) || PyArray_Check(x);
}

/* 1 with *v when x is a float (Python's or numpy's) holding a whole number
 * below 2^53, 0 when not, -1 with an exception. */
static int whole_number(PyObject *x, long long *v) {
    if (!PyFloat_Check(x) && !PyArray_IsScalar(x, Floating)) return 0;
    double d = PyFloat_AsDouble(x);
    if (d == -1.0 && PyErr_Occurred()) return -1;
    if (!(isfinite(d) && d == floor(d) && fabs(d) < 9007199254740992.0)) return 0;
    *v = (long long)d;
    return 1;
}

/* The text of an id value x (not missing): a str as it is; a whole-number
 * float as that integer ("1", not "1.0": a pandas int column with a gap is
 * float64, and Python's 1 == 1.0; the ids were "1.0" and recommend(1) found
 * no one); anything else str(). New reference. */
static PyObject *id_value_text(PyObject *x) {
    if (PyUnicode_Check(x)) return Py_NewRef(x);
    long long v;
    int whole = whole_number(x, &v);
    if (whole) return whole < 0 ? NULL : PyUnicode_FromFormat("%lld", v);
    return PyObject_Str(x);
}

/* Every element of `seq` as UTF-8 (str, or str() of anything else: ints,
 * numpy scalars; as_ids: id_value_text), a missing one (above) as NULL;
 * `keep` (a new list) holds the strings alive while *out is used. *out is
 * PyMem-allocated. 0 or -1 (raised: TypeError naming what[i] for bytes, a
 * list or an array). */
static int texts_of(PyObject *seq, const char *what, int as_ids, PyObject **keep, const char ***out, Py_ssize_t *n) {
    *keep = NULL;
    *out = NULL;
    char msg[200];
    snprintf(msg, sizeof msg, "%s must be a sequence", what);
    if (PyUnicode_Check(seq) || PyBytes_Check(seq)) { /* its characters were the ids: "alice" was 5 users */
        PyErr_Format(PyExc_TypeError, "%s, not a %.80s", msg, Py_TYPE(seq)->tp_name);
        return -1;
    }
    PyObject *fast = PySequence_Fast(seq, msg);
    if (!fast) return -1;
    *n = PySequence_Fast_GET_SIZE(fast);
    *keep = PyList_New(*n);
    *out = PyMem_Malloc((size_t)(*n ? *n : 1) * sizeof **out);
    if (!*keep || !*out) goto fail;
    for (Py_ssize_t i = 0; i < *n; i++) {
        PyObject *x = PySequence_Fast_GET_ITEM(fast, i);
        if (not_text(x)) {
            PyErr_Format(PyExc_TypeError, "%s[%zd]: a %.80s is not an id or a text (give a str or a number)", what,
                         i, Py_TYPE(x)->tp_name);
            goto fail;
        }
        int gap = missing(x);
        PyObject *s = gap ? NULL : as_ids ? id_value_text(x) : PyUnicode_Check(x) ? Py_NewRef(x) : PyObject_Str(x);
        if (!s && !gap) goto fail;
        PyList_SET_ITEM(*keep, i, s ? s : (Py_INCREF(Py_None), Py_None));
        (*out)[i] = s ? utf8_text(s) : NULL;
        if (s && !(*out)[i]) goto fail;
    }
    Py_DECREF(fast);
    return 0;
fail:
    Py_DECREF(fast);
    Py_CLEAR(*keep);
    PyMem_Free(*out);
    *out = NULL;
    if (!PyErr_Occurred()) PyErr_NoMemory();
    return -1;
}

static int strings_of(PyObject *seq, const char *what, PyObject **keep, const char ***out, Py_ssize_t *n) {
    return texts_of(seq, what, 0, keep, out, n);
}

int ids_of(PyObject *seq, const char *what, PyObject **keep, const char ***out, Py_ssize_t *n) {
    return texts_of(seq, what, 1, keep, out, n);
}

/* s as UTF-8 (kept by s); NULL with ValueError when it holds a NUL, where C
 * would cut it (an id "1\0002" would be read as user "1"). */
const char *utf8_text(PyObject *s) {
    Py_ssize_t n;
    const char *t = PyUnicode_AsUTF8AndSize(s, &n);
    if (t && strlen(t) != (size_t)n) {
        PyErr_Format(PyExc_ValueError, "embedded null character in %R", s);
        return NULL;
    }
    return t;
}

/* A user or item id argument: str, or str() of an int. New reference. */
PyObject *id_text(PyObject *x) {
    if (PyUnicode_Check(x)) return Py_NewRef(x);
    if (PyLong_Check(x) || PyArray_IsScalar(x, Integer)) return PyObject_Str(x);
    long long v;
    int whole = whole_number(x, &v); /* a float id column's value: as the dataset builder reads it */
    if (whole) return whole < 0 ? NULL : PyUnicode_FromFormat("%lld", v);
    PyErr_Format(PyExc_TypeError, "an id must be a str, an int or a whole-number float, not %.80s", Py_TYPE(x)->tp_name);
    return NULL;
}

/* --------------------------------------------------------------- Dataset */

static void Dataset_dealloc(DatasetObject *self) {
    cb_dataset_close(self->ds);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *dataset_wrap(PyTypeObject *type, cb_dataset *ds) {
    DatasetObject *o = (DatasetObject *)type->tp_alloc(type, 0);
    if (!o) {
        cb_dataset_close(ds);
        return NULL;
    }
    o->ds = ds;
    return (PyObject *)o;
}

static int dataset_ready(DatasetObject *self) {
    if (self->ds) return 1;
    PyErr_SetString(PyExc_ValueError, "this Dataset holds no data: make one with Dataset.load or Dataset.from_arrays");
    return 0;
}

static PyObject *Dataset_load(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *path_obj;
    if (!PyArg_ParseTuple(args, "O&:load", PyUnicode_FSConverter, &path_obj)) return NULL;
    cb_config *cfg = config_from(CB_CONFIG_TRAIN, kw);
    if (!cfg) {
        Py_DECREF(path_obj);
        return NULL;
    }
    cb_dataset *ds = NULL;
    cb_error err;
    int rc;
    const char *path = PyBytes_AS_STRING(path_obj);
    Py_BEGIN_ALLOW_THREADS
    rc = cb_dataset_open(&ds, path, cfg, &err);
    Py_END_ALLOW_THREADS
    cb_config_free(cfg);
    Py_DECREF(path_obj);
    return rc ? raise_cb(&err) : dataset_wrap(type, ds);
}

/* One attribute column (users, name, kind, ids, values, sep) into the builder. */
static int add_column(cb_dataset_builder *b, PyObject *spec) {
    int users;
    const char *name, *kind, *sep = NULL;
    PyObject *ids_obj, *values_obj, *keep_ids = NULL, *keep_text = NULL, *num = NULL;
    if (!PyArg_ParseTuple(spec, "pssOO|z:column", &users, &name, &kind, &ids_obj, &values_obj, &sep)) return -1;
    const char **ids = NULL, **text = NULL;
    Py_ssize_t n_ids, n_vals;
    char what[160];
    snprintf(what, sizeof what, "%s column '%.80s'", users ? "users" : "items", name);
    int rc = ids_of(ids_obj, what, &keep_ids, &ids, &n_ids);
    if (!rc && !strcmp(kind, "numeric")) {
        num = PyArray_FROMANY(values_obj, NPY_DOUBLE, 1, 1, NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
        rc = num ? 0 : -1;
        n_vals = num ? PyArray_SIZE((PyArrayObject *)num) : 0;
    } else if (!rc) {
        rc = strings_of(values_obj, what, &keep_text, &text, &n_vals);
    }
    if (!rc && n_vals != n_ids) {
        PyErr_Format(PyExc_ValueError, "column '%s': %zd ids but %zd values", name, n_ids, n_vals);
        rc = -1;
    }
    cb_error err;
    if (!rc && cb_dataset_builder_add_column(b, users, name, kind, ids, text,
                                             num ? (const double *)PyArray_DATA((PyArrayObject *)num) : NULL,
                                             (size_t)n_ids, sep, &err)) {
        raise_cb(&err);
        rc = -1;
    }
    Py_XDECREF(keep_ids);
    Py_XDECREF(keep_text);
    Py_XDECREF(num);
    PyMem_Free(ids);
    PyMem_Free(text);
    return rc;
}

/* A catalog (users, ids) into the builder: every id is kept, rated or not. */
static int add_ids(cb_dataset_builder *b, PyObject *spec) {
    int users;
    PyObject *ids_obj, *keep = NULL;
    if (!PyArg_ParseTuple(spec, "pO:catalog", &users, &ids_obj)) return -1;
    const char **ids = NULL;
    Py_ssize_t n = 0;
    int rc = ids_of(ids_obj, "catalog ids must be a sequence", &keep, &ids, &n);
    cb_error err;
    if (!rc && cb_dataset_builder_add_ids(b, users, ids, (size_t)n, &err)) {
        raise_cb(&err);
        rc = -1;
    }
    Py_XDECREF(keep);
    PyMem_Free(ids);
    return rc;
}

/* The ratings columns into the builder: users, items, values (None:
 * implicit), timestamps (None). */
static int add_ratings(cb_dataset_builder *b, PyObject *users, PyObject *items, PyObject *values, PyObject *ts) {
    PyObject *ku = NULL, *ki = NULL, *v = NULL, *t = NULL;
    const char **u = NULL, **it = NULL;
    Py_ssize_t nu = 0, ni = 0;
    int rc = ids_of(users, "users", &ku, &u, &nu);
    if (!rc) rc = ids_of(items, "items", &ki, &it, &ni);
    if (!rc && values != Py_None) {
        v = PyArray_FROMANY(values, NPY_FLOAT32, 1, 1, NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
        rc = v ? 0 : -1;
    }
    if (!rc && ts != Py_None) {
        t = PyArray_FROMANY(ts, NPY_INT64, 1, 1, NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
        rc = t ? 0 : -1;
    }
    if (!rc && (ni != nu || (v && PyArray_SIZE((PyArrayObject *)v) != nu) ||
                (t && PyArray_SIZE((PyArrayObject *)t) != nu))) {
        PyErr_SetString(PyExc_ValueError, "users, items, ratings and timestamps must have the same length");
        rc = -1;
    }
    cb_error err;
    if (!rc && cb_dataset_builder_add_ratings(b, u, it, v ? PyArray_DATA((PyArrayObject *)v) : NULL,
                                              t ? PyArray_DATA((PyArrayObject *)t) : NULL, (size_t)nu, &err)) {
        raise_cb(&err);
        rc = -1;
    }
    Py_XDECREF(ku);
    Py_XDECREF(ki);
    Py_XDECREF(v);
    Py_XDECREF(t);
    PyMem_Free(u);
    PyMem_Free(it);
    return rc;
}

/* add(b, spec) for each spec of a sequence. */
static int add_each(cb_dataset_builder *b, PyObject *specs, int (*add)(cb_dataset_builder *, PyObject *)) {
    PyObject *fast = PySequence_Fast(specs, "catalogs and columns must be sequences");
    if (!fast) return -1;
    int rc = 0;
    for (Py_ssize_t i = 0; !rc && i < PySequence_Fast_GET_SIZE(fast); i++) rc = add(b, PySequence_Fast_GET_ITEM(fast, i));
    Py_DECREF(fast);
    return rc;
}

static PyObject *Dataset_from_columns(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *users, *items, *values, *ts, *catalogs, *columns;
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "OOOOOO|z:_from_columns", &users, &items, &values, &ts, &catalogs, &columns, &name))
        return NULL;
    cb_config *cfg = config_from(CB_CONFIG_TRAIN, kw);
    if (!cfg) return NULL;
    cb_dataset_builder *b = NULL;
    cb_dataset *ds = NULL;
    cb_error err;
    int rc = cb_dataset_builder_create(&b, name, cfg, &err) ? (raise_cb(&err), -1) : 0;
    cb_config_free(cfg);
    if (!rc) rc = add_each(b, catalogs, add_ids);
    if (!rc) rc = add_each(b, columns, add_column);
    if (!rc) rc = add_ratings(b, users, items, values, ts);
    if (!rc && cb_dataset_builder_finish(b, &ds, &err)) rc = (raise_cb(&err), -1);
    cb_dataset_builder_free(b);
    return rc ? NULL : dataset_wrap(type, ds);
}

static PyObject *Dataset_describe(DatasetObject *self, PyObject *args, PyObject *kw) {
    if (!dataset_ready(self)) return NULL;
    int features = 0;
    if (!PyArg_ParseTuple(args, "|p:_describe", &features)) return NULL;
    cb_config *cfg = features ? config_from(CB_CONFIG_TRAIN, kw) : NULL;
    if (features && !cfg) return NULL;
    char *json = NULL;
    cb_error err;
    int rc = cb_dataset_describe(self->ds, cfg, &json, &err);
    cb_config_free(cfg);
    if (rc) return raise_cb(&err);
    PyObject *s = PyUnicode_FromString(json);
    free(json);
    return s;
}

static PyObject *Dataset_get_count(DatasetObject *self, void *which) {
    if (!dataset_ready(self)) return NULL;
    switch ((int)(intptr_t)which) {
    case 0: return PyLong_FromSize_t(cb_dataset_user_count(self->ds));
    case 1: return PyLong_FromSize_t(cb_dataset_item_count(self->ds));
    case 2: return PyLong_FromSize_t(cb_dataset_rating_count(self->ds));
    default: return PyLong_FromSize_t(cb_dataset_skipped_count(self->ds));
    }
}

static PyObject *Dataset_get_layout(DatasetObject *self, void *unused) {
    return dataset_ready(self) ? PyUnicode_FromString(cb_dataset_layout(self->ds)) : NULL;
}

static PyMethodDef Dataset_methods[] = {
    {"_load", (PyCFunction)(void (*)(void))Dataset_load, METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "_load(path, **train_settings): the C loader (see Dataset.load)."},
    {"_from_columns", (PyCFunction)(void (*)(void))Dataset_from_columns, METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "_from_columns(users, items, ratings, timestamps, catalogs, columns, name=None, **train_settings): "
     "the C builder (see Dataset.from_arrays)."},
    {"_describe", (PyCFunction)(void (*)(void))Dataset_describe, METH_VARARGS | METH_KEYWORDS,
     "_describe(features=False, **train_settings) -> JSON text (see Dataset.describe)."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Dataset_getset[] = {
    {"n_users", (getter)Dataset_get_count, NULL, "Number of distinct users.", (void *)0},
    {"n_items", (getter)Dataset_get_count, NULL, "Number of items (the catalog, rated or not).", (void *)1},
    {"n_ratings", (getter)Dataset_get_count, NULL, "Number of ratings (or merged implicit events).", (void *)2},
    {"n_skipped", (getter)Dataset_get_count, NULL, "Malformed rows skipped (only with skip_bad_rows=True).", (void *)3},
    {"layout", (getter)Dataset_get_layout, NULL, "The detected layout: 'movielens-latest-small', 'generic', 'arrays', ...",
     NULL},
    {NULL, NULL, NULL, NULL, NULL}};

PyTypeObject DatasetType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "cbrec._cbrec._Dataset",
    .tp_basicsize = sizeof(DatasetObject),
    .tp_dealloc = (destructor)Dataset_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The C dataset handle under cbrec.Dataset.",
    .tp_methods = Dataset_methods,
    .tp_getset = Dataset_getset,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------- progress */

int progress_init(py_progress *p, PyObject *progress) {
    memset(p, 0, sizeof *p);
    if (!progress || progress == Py_None || progress == Py_False) return 0;
    if (progress == Py_True) {
        p->print = 1;
        return 0;
    }
    if (!PyCallable_Check(progress)) {
        PyErr_SetString(PyExc_TypeError, "progress must be True, False or a callable taking a dict");
        return -1;
    }
    p->callback = progress;
    return 0;
}

static PyObject *progress_dict(const cb_progress *p) {
    const char *stage = p->stage == CB_STAGE_TUNE_TOWERS ? "tune-towers"
                        : p->stage == CB_STAGE_TUNE_GRID ? "tune-grid"
                                                         : "train";
    return Py_BuildValue("{s:I,s:I,s:n,s:n,s:O,s:d,s:d,s:d,s:d,s:d,s:O,s:s,s:d}", "epoch", p->epoch, "epochs", p->epochs,
                         "batch", (Py_ssize_t)p->batch, "n_batches", (Py_ssize_t)p->n_batches, "end_of_epoch",
                         p->end_of_epoch ? Py_True : Py_False, "train_loss", p->train_loss, "valid_loss",
                         p->valid_loss, "valid_rmse", p->valid_rmse, "examples_per_sec", p->examples_per_sec,
                         "seconds", p->seconds, "best", p->best ? Py_True : Py_False, "stage", stage, "elapsed",
                         p->elapsed);
}

/* Runs on the library's training thread with the GIL released: take it
 * back, look for Ctrl-C (PyErr_CheckSignals runs Python's handler, which
 * raises KeyboardInterrupt), report, and stop the library on any exception
 * (raised after the call) or when the callable returns True (the C
 * callback's non-zero: the model so far is kept). */
int progress_fn(const cb_progress *p, void *ctx) {
    py_progress *pp = ctx;
    PyGILState_STATE g = PyGILState_Ensure();
    /* once stopped (an evaluation trains several models), every later training stops at once */
    int stop = pp->saved[0] != NULL || pp->stopped || PyErr_CheckSignals() < 0;
    if (!stop && pp->callback) {
        PyObject *d = progress_dict(p);
        PyObject *r = d ? PyObject_CallOneArg(pp->callback, d) : NULL;
        Py_XDECREF(d);
        /* numpy's True too: a test on numpy values, "return np.mean(losses) < 0.5", went on */
        pp->stopped = r == Py_True || (r && PyArray_IsScalar(r, Bool) && r == PyArrayScalar_True);
        stop = r == NULL || pp->stopped;
        Py_XDECREF(r);
    } else if (!stop && pp->print && p->stage == CB_STAGE_TUNE_TOWERS && pp->stage != p->stage) {
        PySys_WriteStderr("tuning the neighbour component: towers on a carve of the training ratings (%u epochs)\n",
                          p->epochs);
    } else if (!stop && pp->print && p->end_of_epoch) {
        char line[256];
        int n = snprintf(line, sizeof line, "epoch %u/%u  train_loss %.5f", p->epoch, p->epochs, p->train_loss);
        if (!isnan(p->valid_loss) && n < (int)sizeof line)
            n += snprintf(line + n, sizeof line - (size_t)n, "  valid_loss %.5f", p->valid_loss);
        if (n < (int)sizeof line)
            snprintf(line + n, sizeof line - (size_t)n, "  %.0f ex/s  %.1fs\n", p->examples_per_sec, p->seconds);
        PySys_WriteStderr("%s", line);
    }
    pp->stage = p->stage;
    if (stop && !pp->saved[0]) PyErr_Fetch(&pp->saved[0], &pp->saved[1], &pp->saved[2]);
    else if (stop) PyErr_Clear();
    PyGILState_Release(g);
    return stop;
}

int progress_finish(py_progress *p) {
    if (!p->saved[0]) return 0;
    PyErr_Restore(p->saved[0], p->saved[1], p->saved[2]);
    memset(p->saved, 0, sizeof p->saved);
    return -1;
}

/* ------------------------------------------------------------- evaluate */

static PyObject *py_evaluate(PyObject *mod, PyObject *args) {
    DatasetObject *ds;
    PyObject *eval_kw, *train_kw, *progress;
    if (!PyArg_ParseTuple(args, "O!O!O!O:_evaluate", &DatasetType, &ds, &PyDict_Type, &eval_kw, &PyDict_Type,
                          &train_kw, &progress))
        return NULL;
    if (!ds->ds) return PyErr_Format(PyExc_ValueError, "the Dataset holds no data");
    py_progress pp;
    if (progress_init(&pp, progress) < 0) return NULL;
    cb_config *ec = config_from(CB_CONFIG_EVAL, eval_kw), *tc = ec ? config_from(CB_CONFIG_TRAIN, train_kw) : NULL;
    char *json = NULL;
    cb_error err;
    int rc = -1;
    if (tc) {
        Py_BEGIN_ALLOW_THREADS
        rc = cb_evaluate(ds->ds, ec, tc, progress_fn, &pp, &json, &err);
        Py_END_ALLOW_THREADS
    }
    cb_config_free(ec);
    cb_config_free(tc);
    if (!ec || !tc) return NULL;
    if (progress_finish(&pp) < 0) {
        free(json);
        return NULL;
    }
    if (rc) return raise_cb(&err);
    PyObject *s = PyUnicode_FromString(json);
    free(json);
    return s;
}

/* The names, defaults and help of one kind's keys: [(name, hint, default, help, section, is_bool)]. */
static PyObject *py_settings(PyObject *mod, PyObject *args) {
    int kind;
    if (!PyArg_ParseTuple(args, "i:_settings", &kind)) return NULL;
    size_t n = cb_config_n_keys((cb_config_kind)kind);
    PyObject *out = PyList_New(0);
    for (size_t i = 0; out && i < n; i++) {
        cb_config_key_info k;
        if (cb_config_key((cb_config_kind)kind, i, &k)) break;
        PyObject *t = Py_BuildValue("(sssssO)", k.name, k.value_hint, k.default_value, k.help, k.section,
                                    k.is_bool ? Py_True : Py_False);
        if (!t || PyList_Append(out, t) < 0) Py_CLEAR(out);
        Py_XDECREF(t);
    }
    return out;
}

static PyObject *py_synth(PyObject *mod, PyObject *args) {
    PyObject *dir, *kw;
    if (!PyArg_ParseTuple(args, "O&O!:_synth", PyUnicode_FSConverter, &dir, &PyDict_Type, &kw)) return NULL;
    cb_config *cfg = config_from(CB_CONFIG_SYNTH, kw);
    cb_error err;
    int rc = -1;
    const char *d = PyBytes_AS_STRING(dir);
    if (cfg) {
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&file_writes);
        rc = cb_synth_write_folder(d, cfg, &err);
        pthread_mutex_unlock(&file_writes);
        Py_END_ALLOW_THREADS
    }
    cb_config_free(cfg);
    Py_DECREF(dir);
    if (!cfg) return NULL;
    return rc ? raise_cb(&err) : Py_NewRef(Py_None);
}

/* _time_parse(text) -> seconds since 1970 UTC, or None: the library's one
 * reader of times in text (cb_time_parse), so a timestamp text means in
 * Python what it means in a data file. */
static PyObject *py_time_parse(PyObject *self, PyObject *args) {
    (void)self;
    const char *s;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "s#:_time_parse", &s, &len)) return NULL;
    int64_t seconds;
    if (!cb_time_parse(s, (size_t)len, &seconds)) return Py_NewRef(Py_None);
    return PyLong_FromLongLong((long long)seconds);
}

/* _near_names(name, names) -> "a, b" (or ""): the library's "did you mean"
 * (cb_config_near_names), for a mistyped key of two tables at once. */
static PyObject *py_near_names(PyObject *self, PyObject *args) {
    (void)self;
    const char *name;
    PyObject *list;
    if (!PyArg_ParseTuple(args, "sO!:_near_names", &name, &PyList_Type, &list)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(list);
    const char **names = PyMem_Calloc((size_t)n + 1, sizeof *names);
    if (!names) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++)
        if (!(names[i] = PyUnicode_AsUTF8(PyList_GET_ITEM(list, i)))) return PyMem_Free(names), NULL;
    char out[512];
    cb_config_near_names(name, names, (size_t)n, NULL, out, sizeof out);
    PyMem_Free(names);
    return PyUnicode_FromString(out);
}

/* _id_text(x) -> the id's text as the builder makes it (id_value_text), or
 * None for a missing value: the Python side's checks name ids alike. */
static PyObject *py_id_text(PyObject *self, PyObject *x) {
    (void)self;
    return missing(x) ? Py_NewRef(Py_None) : id_value_text(x);
}

/* _id_arg(x) -> the text of an id argument (id_text's rule), else TypeError. */
static PyObject *py_id_arg(PyObject *self, PyObject *x) {
    (void)self;
    return id_text(x);
}

static PyMethodDef module_methods[] = {
    {"_id_arg", py_id_arg, METH_O, "_id_arg(x) -> an id argument's text (str, int, whole-number float), else TypeError."},
    {"_id_text", py_id_text, METH_O, "_id_text(x) -> an id value's text as the dataset builder makes it, or None."},
    {"_near_names", py_near_names, METH_VARARGS, "_near_names(name, names) -> 'a, b': see cbrec.h cb_config_near_names."},
    {"_time_parse", py_time_parse, METH_VARARGS, "_time_parse(text) -> seconds or None: see cbrec.h cb_time_parse."},
    {"_synth", py_synth, METH_VARARGS, "_synth(folder, settings): see cbrec.synth."},
    {"_evaluate", py_evaluate, METH_VARARGS,
     "_evaluate(dataset, eval_settings, train_settings, progress) -> JSON text (see cbrec.evaluate)."},
    {"_settings", py_settings, METH_VARARGS, "_settings(kind) -> the keys of a settings kind (1 TRAIN, 2 RECOMMEND, 3 SYNTH, 4 EVAL)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "cbrec._cbrec",
    "The C extension under the cbrec package: import cbrec, not this.", -1, module_methods,
    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__cbrec(void) {
    import_array();
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    if (add_exceptions(m) < 0 || PyType_Ready(&DatasetType) < 0 || PyType_Ready(&ModelType) < 0 ||
        PyModule_AddObjectRef(m, "_Dataset", (PyObject *)&DatasetType) < 0 ||
        PyModule_AddObjectRef(m, "_Model", (PyObject *)&ModelType) < 0 ||
        PyModule_AddStringConstant(m, "library_version", cb_version()) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
