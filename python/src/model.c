/* model — the _Model type of the extension: a cb_recommender (trained or
 * loaded) and its calls. Results come back as plain tuples and numpy arrays;
 * python/cbrec/__init__.py wraps them (Recommendations) and documents them.
 *
 * Locking: `lock` is a rwlock kept with the library's threading rule:
 * [shared] calls (recommend, similar, batch, vectors, save) read, [exclusive]
 * ones (build/load table, add item) write. Calls that do real work release
 * the GIL first and take the lock after; nobody waits for the GIL while
 * holding the lock, so there is no deadlock between the two. */
#include "binding.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    PyObject_HEAD
    cb_recommender *rec;
    pthread_rwlock_t lock;
    cb_config *defaults;  /* RECOMMEND defaults, made once: the common call sets nothing */
    PyObject *report;     /* the training report (dict) or None */
} ModelObject;

static PyObject *json_dumps; /* json.dumps, for new-user profiles and added items given as dicts */

static PyObject *Model_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    ModelObject *self = (ModelObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    pthread_rwlock_init(&self->lock, NULL);
    self->report = Py_NewRef(Py_None);
    return (PyObject *)self;
}

static void Model_dealloc(ModelObject *self) {
    cb_recommender_free(self->rec);
    cb_config_free(self->defaults);
    pthread_rwlock_destroy(&self->lock);
    Py_XDECREF(self->report);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int ready(ModelObject *self) {
    if (self->rec) return 1;
    PyErr_SetString(PyExc_ValueError, "this Model holds no model: make one with Model.train or Model.load");
    return 0;
}

/* A new instance of `type` owning rec (freed on failure). */
static PyObject *wrap(PyTypeObject *type, cb_recommender *rec) {
    ModelObject *self = (ModelObject *)type->tp_new(type, NULL, NULL);
    cb_error err;
    if (self && cb_config_create(&self->defaults, CB_CONFIG_RECOMMEND, &err)) {
        Py_DECREF(self);
        cb_recommender_free(rec);
        return raise_cb(&err);
    }
    if (!self) cb_recommender_free(rec);
    else self->rec = rec;
    return (PyObject *)self;
}

/* ---------------------------------------------------------- train, load, save */

static PyObject *report_dict(const cb_train_report *r) {
    PyObject *d = Py_BuildValue("{s:I,s:I,s:d,s:d,s:d,s:d,s:d,s:n,s:n,s:n,s:n,s:n,s:n,s:d}", "epochs_run", r->epochs_run,
                         "best_epoch", r->best_epoch, "train_loss", r->train_loss, "valid_loss", r->valid_loss,
                         "valid_rmse", r->valid_rmse, "test_rmse", r->test_rmse, "test_loss", r->test_loss, "n_train",
                         (Py_ssize_t)r->n_train, "n_valid", (Py_ssize_t)r->n_valid, "n_test", (Py_ssize_t)r->n_test,
                         "n_user_features", (Py_ssize_t)r->n_user_features, "n_item_features",
                         (Py_ssize_t)r->n_item_features, "n_params", (Py_ssize_t)r->n_params, "seconds", r->seconds);
    PyObject *nb = d ? Py_BuildValue("{s:z,s:I,s:d,s:d,s:d,s:d,s:n,s:d,s:z}", "neighbours", r->neighbours,
                                     "neighbours_k", r->neighbours_k, "neighbours_param", r->neighbours_param,
                                     "neighbours_weight", r->neighbours_weight, "tune_ndcg", r->tune_ndcg,
                                     "tune_ndcg_towers", r->tune_ndcg_towers, "tune_users",
                                     (Py_ssize_t)r->tune_users, "tune_seconds", r->tune_seconds, "objective",
                                     r->objective)
                     : NULL;
    if (!nb || PyDict_Update(d, nb)) Py_CLEAR(d);
    Py_XDECREF(nb);
    PyObject *st = d ? Py_BuildValue("{s:i,s:d,s:d,s:d,s:d}", "threads", r->threads, "step_towers", r->step_towers,
                                     "step_loss", r->step_loss, "step_update", r->step_update, "step_waits",
                                     r->step_waits)
                     : NULL;
    if (!st || PyDict_Update(d, st)) Py_CLEAR(d);
    Py_XDECREF(st);
    return d;
}

static PyObject *Model_train(PyTypeObject *type, PyObject *args) {
    DatasetObject *ds;
    PyObject *progress, *settings;
    if (!PyArg_ParseTuple(args, "O!OO!:_train", &DatasetType, &ds, &progress, &PyDict_Type, &settings)) return NULL;
    if (!ds->ds) return PyErr_Format(PyExc_ValueError, "the Dataset holds no data");
    py_progress pp;
    if (progress_init(&pp, progress) < 0) return NULL;
    cb_config *cfg = config_from(CB_CONFIG_TRAIN, settings);
    if (!cfg) return NULL;
    cb_recommender *rec = NULL;
    cb_train_report rep = {.size = sizeof rep};
    cb_error err;
    int rc;
    /* the callback always runs, printing or not: it is what sees Ctrl-C */
    Py_BEGIN_ALLOW_THREADS
    rc = cb_train(&rec, ds->ds, cfg, progress_fn, &pp, &rep, &err);
    Py_END_ALLOW_THREADS
    cb_config_free(cfg);
    if (progress_finish(&pp) < 0 || rc) {
        cb_recommender_free(rec);
        return rc && !PyErr_Occurred() ? raise_cb(&err) : NULL;
    }
    ModelObject *self = (ModelObject *)wrap(type, rec);
    if (self) {
        PyObject *d = report_dict(&rep);
        if (!d) Py_CLEAR(self);
        else Py_SETREF(self->report, d);
    }
    return (PyObject *)self;
}

/* An O& converter: None leaves *out NULL, anything else is a file system path. */
static int fs_or_none(PyObject *obj, void *out) {
    if (obj == Py_None) {
        *(PyObject **)out = NULL;
        return 1;
    }
    return PyUnicode_FSConverter(obj, out);
}

/* _load(path, table=None, history=None): NULL table = exact search, NULL
 * history = path + ".history" when it exists (cb_recommender_load_files). */
static PyObject *Model_load(PyTypeObject *type, PyObject *args) {
    PyObject *path, *table = NULL, *history = NULL;
    if (!PyArg_ParseTuple(args, "O&|O&O&:_load", PyUnicode_FSConverter, &path, fs_or_none, &table, fs_or_none,
                          &history))
        return NULL;
    cb_recommender *rec = NULL;
    cb_error err;
    int rc;
    const char *p = PyBytes_AS_STRING(path), *t = table ? PyBytes_AS_STRING(table) : NULL;
    const char *h = history ? PyBytes_AS_STRING(history) : NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = cb_recommender_load_files(&rec, p, h, t, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    Py_XDECREF(table);
    Py_XDECREF(history);
    return rc ? raise_cb(&err) : wrap(type, rec);
}

/* save(path, history=None) and save_table(path): [shared] calls, atomic, one
 * file write of the process at a time (file_writes). */
static PyObject *save_with(ModelObject *self, PyObject *args, PyObject *kw, bool table) {
    static char *names[] = {"path", "history", NULL}, *table_names[] = {"path", NULL};
    PyObject *path, *history = NULL;
    if (!ready(self) || !PyArg_ParseTupleAndKeywords(args, kw, table ? "O&:save_table" : "O&|O&:save",
                                                     table ? table_names : names, PyUnicode_FSConverter, &path,
                                                     fs_or_none, &history))
        return NULL;
    cb_error err;
    int rc;
    const char *p = PyBytes_AS_STRING(path), *h = history ? PyBytes_AS_STRING(history) : NULL;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&file_writes); /* before the model's lock: nobody holding that one waits for this */
    pthread_rwlock_rdlock(&self->lock);
    rc = table ? cb_recommender_save_table(self->rec, p, &err) : cb_recommender_save_files(self->rec, p, h, &err);
    pthread_rwlock_unlock(&self->lock);
    pthread_mutex_unlock(&file_writes);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    Py_XDECREF(history);
    return rc ? raise_cb(&err) : Py_NewRef(Py_None);
}

static PyObject *Model_save(ModelObject *self, PyObject *args, PyObject *kw) {
    return save_with(self, args, kw, false);
}
static PyObject *Model_save_table(ModelObject *self, PyObject *args, PyObject *kw) {
    return save_with(self, args, kw, true);
}

/* A call that changes the catalog or its filters from a file path (None:
 * NULL where the call takes it), alone (the write lock). */
static PyObject *with_path(ModelObject *self, PyObject *args, const char *format, bool none_ok,
                           int (*call)(cb_recommender *, const char *, cb_error *)) {
    PyObject *path = NULL, *arg = Py_None;
    if (!ready(self) || !PyArg_ParseTuple(args, format, &arg)) return NULL;
    if ((arg != Py_None || !none_ok) && !PyUnicode_FSConverter(arg, &path)) return NULL;
    cb_error err;
    int rc;
    const char *p = path ? PyBytes_AS_STRING(path) : NULL;
    Py_BEGIN_ALLOW_THREADS
    pthread_rwlock_wrlock(&self->lock);
    rc = call(self->rec, p, &err);
    pthread_rwlock_unlock(&self->lock);
    Py_END_ALLOW_THREADS
    Py_XDECREF(path);
    return rc ? raise_cb(&err) : Py_NewRef(Py_None);
}

static PyObject *Model_load_table(ModelObject *self, PyObject *args) {
    return with_path(self, args, "O:load_table", false, cb_recommender_load_table);
}

static PyObject *Model_set_block_file(ModelObject *self, PyObject *args) {
    return with_path(self, args, "|O:set_block_file", true, cb_recommender_set_block_file);
}

static PyObject *Model_build_table(ModelObject *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"k", "threads", NULL};
    Py_ssize_t k = 20;
    int threads = 0;
    if (!ready(self) || !PyArg_ParseTupleAndKeywords(args, kw, "|ni:build_table", names, &k, &threads)) return NULL;
    if (k < 1) return PyErr_Format(PyExc_ValueError, "k must be at least 1");
    cb_error err;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    pthread_rwlock_wrlock(&self->lock);
    rc = cb_recommender_build_table(self->rec, (size_t)k, threads, &err);
    pthread_rwlock_unlock(&self->lock);
    Py_END_ALLOW_THREADS
    return rc ? raise_cb(&err) : Py_NewRef(Py_None);
}

static PyObject *Model_describe(ModelObject *self, PyObject *unused) {
    if (!ready(self)) return NULL;
    char *json = NULL;
    cb_error err;
    pthread_rwlock_rdlock(&self->lock);
    int rc = cb_recommender_describe(self->rec, &json, &err);
    pthread_rwlock_unlock(&self->lock);
    if (rc) return raise_cb(&err);
    PyObject *s = PyUnicode_FromString(json);
    free(json);
    return s;
}

/* ------------------------------------------------------------ ids, vectors */

static PyObject *Model_ids(ModelObject *self, PyObject *args) {
    int users;
    if (!ready(self) || !PyArg_ParseTuple(args, "p:_ids", &users)) return NULL;
    pthread_rwlock_rdlock(&self->lock);
    size_t n = users ? cb_recommender_user_count(self->rec) : cb_recommender_item_count(self->rec);
    PyObject *out = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; out && i < n; i++) {
        PyObject *s = PyUnicode_FromString(users ? cb_recommender_user_id(self->rec, i) : cb_recommender_item_id(self->rec, i));
        if (!s) Py_CLEAR(out);
        else PyList_SET_ITEM(out, (Py_ssize_t)i, s);
    }
    pthread_rwlock_unlock(&self->lock);
    return out;
}

static PyObject *Model_titles(ModelObject *self, PyObject *unused) {
    if (!ready(self)) return NULL;
    pthread_rwlock_rdlock(&self->lock);
    size_t n = cb_recommender_item_count(self->rec);
    PyObject *out = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; out && i < n; i++) {
        PyObject *s = PyUnicode_FromString(cb_recommender_item_title(self->rec, i));
        if (!s) Py_CLEAR(out);
        else PyList_SET_ITEM(out, (Py_ssize_t)i, s);
    }
    pthread_rwlock_unlock(&self->lock);
    return out;
}

/* A read-only (rows, dim) float32 view of the model's item or user vectors,
 * with the model as its base: no copy, and the model lives while it does. */
static PyObject *Model_vectors(ModelObject *self, PyObject *args) {
    int users;
    Py_ssize_t rows;
    if (!ready(self) || !PyArg_ParseTuple(args, "pn:_vectors", &users, &rows)) return NULL;
    size_t limit = users ? cb_recommender_user_count(self->rec) : cb_recommender_item_count(self->rec);
    const float *data = users ? cb_recommender_user_vectors(self->rec) : cb_recommender_item_vectors(self->rec);
    if (rows < 0 || (size_t)rows > limit || !data) return PyErr_Format(PyExc_ValueError, "no such vectors");
    npy_intp dims[2] = {rows, (npy_intp)cb_recommender_dim(self->rec)};
    PyObject *a = PyArray_New(&PyArray_Type, 2, dims, NPY_FLOAT32, NULL, (void *)data, 0, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED, NULL);
    if (!a) return NULL;
    if (PyArray_SetBaseObject((PyArrayObject *)a, Py_NewRef((PyObject *)self)) < 0) {
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

/* obj as a value json can write when it is numpy's (tolist()), a set or
 * frozenset (a list: genres) or a mapping that is not a dict (the dict of
 * its items(): a pandas Series of ratings by item id); NULL without an
 * error when it is none of them. New reference. */
static PyObject *builtin_of(PyObject *obj) {
    if (PyArray_IsScalar(obj, Generic) || PyArray_Check(obj)) return PyObject_CallMethod(obj, "tolist", NULL);
    if (PyAnySet_Check(obj)) return PySequence_List(obj);
    if (PyDict_Check(obj) || PyUnicode_Check(obj) || !PyObject_HasAttrString(obj, "keys") ||
        !PyObject_HasAttrString(obj, "items"))
        return NULL;
    PyObject *items = PyObject_CallMethod(obj, "items", NULL), *d = items ? PyDict_New() : NULL;
    if (d && PyDict_MergeFromSeq2(d, items, 1) < 0) Py_CLEAR(d);
    Py_XDECREF(items);
    return d;
}

/* obj with every value json cannot write as one it can (builtin_of), in
 * dict keys and values and lists: a profile made from a DataFrame,
 * {"ratings": {np.int64(7): np.float32(4.5)}} or {"ratings":
 * df.set_index("movieId").rating}, was a TypeError ('Object of type Series
 * is not JSON serializable'). A NaN (pandas' gap) is None: JSON has no NaN,
 * json.dumps wrote one anyway and the library refused the text ("new-user
 * JSON:1:21: invalid token near 'NaN'"); as null a rating's message names
 * its item, an attribute is missing. A dict holding itself is a
 * RecursionError. New reference. */
static PyObject *plain(PyObject *obj) {
    PyObject *converted = builtin_of(obj);
    if (converted || PyErr_Occurred()) {
        PyObject *out = converted ? plain(converted) : NULL;
        Py_XDECREF(converted);
        return out;
    }
    if (PyFloat_Check(obj) && isnan(PyFloat_AS_DOUBLE(obj))) Py_RETURN_NONE;
    int dict = PyDict_Check(obj);
    if (!dict && !PyList_Check(obj) && !PyTuple_Check(obj)) return Py_NewRef(obj);
    if (Py_EnterRecursiveCall(" in a profile or an item")) return NULL;
    PyObject *out = dict ? PyDict_New() : PyList_New(0), *key, *value;
    Py_ssize_t pos = 0, n = dict ? 0 : PySequence_Size(obj);
    for (Py_ssize_t i = 0; out && (dict ? PyDict_Next(obj, &pos, &key, &value) : i < n); i++) {
        PyObject *k = dict ? plain(key) : NULL, *v = plain(dict ? value : PySequence_Fast_GET_ITEM(obj, i));
        int bad = !v || (dict ? !k || PyDict_SetItem(out, k, v) < 0 : PyList_Append(out, v) < 0);
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (bad) Py_CLEAR(out);
    }
    Py_LeaveRecursiveCall();
    return out;
}

/* obj (a dict) as JSON text, numpy values as Python's. New reference. */
static PyObject *json_text(PyObject *obj) {
    if (!json_dumps) {
        PyObject *mod = PyImport_ImportModule("json");
        json_dumps = mod ? PyObject_GetAttrString(mod, "dumps") : NULL;
        Py_XDECREF(mod);
        if (!json_dumps) return NULL;
    }
    PyObject *p = plain(obj), *out = p ? PyObject_CallOneArg(json_dumps, p) : NULL;
    Py_XDECREF(p);
    return out;
}

/* A user argument as (user_id, user_json): an id (str or int) or a new-user
 * profile (dict, serialised with json.dumps). *keep owns the text. */
static int user_arg(PyObject *user, PyObject **keep, const char **id, const char **json) {
    *id = *json = NULL;
    if (PyDict_Check(user)) {
        *keep = json_text(user);
    } else {
        *keep = id_text(user);
    }
    const char *s = *keep ? utf8_text(*keep) : NULL;
    if (!s) {
        Py_CLEAR(*keep);
        return -1;
    }
    if (PyDict_Check(user)) *json = s;
    else *id = s;
    return 0;
}

static PyObject *Model_user_vector(ModelObject *self, PyObject *user) {
    if (!ready(self)) return NULL;
    PyObject *keep;
    const char *id, *json;
    if (user_arg(user, &keep, &id, &json) < 0) return NULL;
    npy_intp dim = (npy_intp)cb_recommender_dim(self->rec);
    PyObject *a = PyArray_SimpleNew(1, &dim, NPY_FLOAT32);
    cb_error err;
    int rc = 0;
    if (a) {
        float *out = PyArray_DATA((PyArrayObject *)a);
        pthread_rwlock_rdlock(&self->lock);
        rc = id ? cb_recommender_user_vector(self->rec, id, out, &err) : cb_recommender_new_user_vector(self->rec, json, out, &err);
        pthread_rwlock_unlock(&self->lock);
    }
    Py_DECREF(keep);
    if (rc) {
        Py_XDECREF(a);
        return raise_cb(&err);
    }
    return a;
}

/* ---------------------------------------------------------------- lists */

/* A list as (criterion, ids, items, titles, scores, ratings, reasons,
 * sources, notes): lists of str, numpy int64 / float32 arrays, lists of
 * lists of str. The list owns its strings: no lock needed. */
static PyObject *list_tuple(const cb_list *l) {
    Py_ssize_t n = (Py_ssize_t)cb_list_size(l);
    npy_intp dn = n;
    PyObject *ids = PyList_New(n), *titles = PyList_New(n), *reasons = PyList_New(n), *sources = PyList_New(n);
    PyObject *items = PyArray_SimpleNew(1, &dn, NPY_INT64), *scores = PyArray_SimpleNew(1, &dn, NPY_FLOAT32);
    PyObject *ratings = PyArray_SimpleNew(1, &dn, NPY_FLOAT32), *notes = PyList_New((Py_ssize_t)cb_list_n_notes(l));
    int ok = ids && titles && reasons && sources && items && scores && ratings && notes;
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        size_t r = (size_t)i;
        ((int64_t *)PyArray_DATA((PyArrayObject *)items))[i] = (int64_t)cb_list_item(l, r);
        ((float *)PyArray_DATA((PyArrayObject *)scores))[i] = cb_list_score(l, r);
        ((float *)PyArray_DATA((PyArrayObject *)ratings))[i] = cb_list_rating(l, r);
        PyObject *id = PyUnicode_FromString(cb_list_item_id(l, r)), *t = PyUnicode_FromString(cb_list_title(l, r));
        PyObject *rs = PyList_New((Py_ssize_t)cb_list_n_reasons(l, r)), *ss = PyList_New((Py_ssize_t)cb_list_n_sources(l, r));
        ok = id && t && rs && ss;
        for (size_t j = 0; ok && j < cb_list_n_reasons(l, r); j++) {
            PyObject *s = PyUnicode_FromString(cb_list_reason(l, r, j));
            if (!(ok = s != NULL)) break;
            PyList_SET_ITEM(rs, (Py_ssize_t)j, s);
        }
        for (size_t j = 0; ok && j < cb_list_n_sources(l, r); j++) {
            PyObject *s = PyUnicode_FromString(cb_list_source(l, r, j));
            if (!(ok = s != NULL)) break;
            PyList_SET_ITEM(ss, (Py_ssize_t)j, s);
        }
        if (!ok) {
            Py_XDECREF(id);
            Py_XDECREF(t);
            Py_XDECREF(rs);
            Py_XDECREF(ss);
            break;
        }
        PyList_SET_ITEM(ids, i, id);
        PyList_SET_ITEM(titles, i, t);
        PyList_SET_ITEM(reasons, i, rs);
        PyList_SET_ITEM(sources, i, ss);
    }
    for (size_t j = 0; ok && j < cb_list_n_notes(l); j++) {
        PyObject *s = PyUnicode_FromString(cb_list_note(l, j));
        if (!(ok = s != NULL)) break;
        PyList_SET_ITEM(notes, (Py_ssize_t)j, s);
    }
    if (ok) return Py_BuildValue("(sNNNNNNNN)", cb_list_criterion(l), ids, items, titles, scores, ratings, reasons, sources, notes);
    Py_XDECREF(ids);
    Py_XDECREF(titles);
    Py_XDECREF(reasons);
    Py_XDECREF(sources);
    Py_XDECREF(items);
    Py_XDECREF(scores);
    Py_XDECREF(ratings);
    Py_XDECREF(notes);
    return NULL;
}

/* The RECOMMEND settings of the dict kw: the cached defaults when kw is empty
 * (*made = NULL), else a new config in *made. */
static const cb_config *opts_of(ModelObject *self, PyObject *kw, cb_config **made) {
    *made = NULL;
    if (!kw || kw == Py_None || (PyDict_Check(kw) && PyDict_Size(kw) == 0)) return self->defaults;
    if (!PyDict_Check(kw)) {
        PyErr_SetString(PyExc_TypeError, "settings must be a dict");
        return NULL;
    }
    return *made = config_from(CB_CONFIG_RECOMMEND, kw);
}

static PyObject *Model_recommend(ModelObject *self, PyObject *args) {
    PyObject *user, *kw = NULL, *keep;
    if (!ready(self) || !PyArg_ParseTuple(args, "O|O:_recommend", &user, &kw)) return NULL;
    const char *id, *json;
    cb_config *made;
    const cb_config *opts = opts_of(self, kw, &made);
    if (!opts) return NULL;
    if (user_arg(user, &keep, &id, &json) < 0) {
        cb_config_free(made);
        return NULL;
    }
    cb_list *l = NULL;
    cb_error err;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    pthread_rwlock_rdlock(&self->lock);
    rc = cb_recommender_recommend(self->rec, id, json, opts, &l, &err);
    pthread_rwlock_unlock(&self->lock);
    Py_END_ALLOW_THREADS
    Py_DECREF(keep);
    cb_config_free(made);
    if (rc) return raise_cb(&err);
    PyObject *t = list_tuple(l);
    cb_list_free(l);
    return t;
}

/* The number of the item id or title s names, the model's lock held (CB_ENOTFOUND lists candidates). */
static int find_item_held(ModelObject *self, const char *s, size_t *out, cb_error *err) {
    size_t cands[5], n_cands = 0;
    int rc = cb_recommender_find_item(self->rec, s, out, cands, 5, &n_cands, err);
    if (rc && n_cands) { /* name the candidates in the message */
        size_t len = strlen(err->msg);
        for (size_t i = 0; i < n_cands && len + 8 < sizeof err->msg; i++) {
            snprintf(err->msg + len, sizeof err->msg - len, "%s %s (%s)", i ? "," : "; candidates:",
                     cb_recommender_item_id(self->rec, cands[i]), cb_recommender_item_title(self->rec, cands[i]));
            len = strlen(err->msg);
        }
    }
    return rc;
}

/* find_item_held for an id or title given from Python. With `keep`, the
 * read lock stays held on success (the caller reads the item and unlocks). */
static int find_item_locked(ModelObject *self, PyObject *item, size_t *out, bool keep) {
    PyObject *q = id_text(item);
    const char *s = q ? utf8_text(q) : NULL;
    if (!s) {
        Py_XDECREF(q);
        return -1;
    }
    cb_error err;
    pthread_rwlock_rdlock(&self->lock);
    int rc = find_item_held(self, s, out, &err);
    if (rc || !keep) pthread_rwlock_unlock(&self->lock);
    Py_DECREF(q);
    if (rc) raise_cb(&err);
    return rc ? -1 : 0;
}

/* The number of an item given by id or title (CB_ENOTFOUND lists candidates). */
static int find_item(ModelObject *self, PyObject *item, size_t *out) { return find_item_locked(self, item, out, false); }

static PyObject *Model_find_item(ModelObject *self, PyObject *item) {
    size_t i;
    if (!ready(self) || find_item(self, item, &i) < 0) return NULL;
    return PyLong_FromSize_t(i);
}

/* Append text s (UTF-8) to list; non-zero when Python failed. */
static int append_text(PyObject *list, const char *s) {
    PyObject *t = PyUnicode_FromString(s);
    int bad = !t || PyList_Append(list, t) < 0;
    Py_XDECREF(t);
    return bad;
}

/* {"genres": [...], column: [values], ...}: an item's genres and its other
 * content columns' values (cb_recommender_item_genres, _item_content), every one. */
static PyObject *Model_item_content(ModelObject *self, PyObject *item) {
    size_t i;
    if (!ready(self) || find_item_locked(self, item, &i, true) < 0) return NULL; /* the lock held: i stays i */
    size_t ng = cb_recommender_item_genres(self->rec, i, NULL, 0);
    size_t nc = cb_recommender_item_content(self->rec, i, NULL, NULL, 0);
    const char **genres = PyMem_Malloc((ng + 2 * nc + 1) * sizeof *genres);
    const char **cols = genres ? genres + ng : NULL, **vals = cols ? cols + nc : NULL;
    PyObject *d = genres ? PyDict_New() : PyErr_NoMemory(), *g = d ? PyList_New(0) : NULL;
    int bad = !d || !g || PyDict_SetItemString(d, "genres", g) < 0;
    if (!bad) {
        cb_recommender_item_genres(self->rec, i, genres, ng);
        cb_recommender_item_content(self->rec, i, cols, vals, nc);
    }
    for (size_t k = 0; !bad && k < ng; k++) bad = append_text(g, genres[k]);
    for (size_t k = 0; !bad && k < nc; k++) {
        PyObject *list = PyDict_GetItemString(d, cols[k]); /* borrowed */
        if (!list) {
            if (!(list = PyList_New(0)) || PyDict_SetItemString(d, cols[k], list) < 0) {
                Py_XDECREF(list);
                bad = 1;
                break;
            }
            Py_DECREF(list); /* the dict holds it */
        }
        bad = append_text(list, vals[k]);
    }
    PyMem_Free(genres);
    pthread_rwlock_unlock(&self->lock);
    Py_XDECREF(g);
    if (bad) Py_CLEAR(d);
    return d;
}

static PyObject *Model_similar(ModelObject *self, PyObject *args) {
    PyObject *item;
    Py_ssize_t k = 10;
    size_t i;
    if (!ready(self) || !PyArg_ParseTuple(args, "O|n:_similar", &item, &k)) return NULL;
    if (k < 1) return PyErr_Format(PyExc_ValueError, "k must be at least 1");
    if (find_item(self, item, &i) < 0) return NULL;
    cb_list *l = NULL;
    cb_error err;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    pthread_rwlock_rdlock(&self->lock);
    rc = cb_recommender_similar(self->rec, i, (size_t)k, &l, &err);
    pthread_rwlock_unlock(&self->lock);
    Py_END_ALLOW_THREADS
    if (rc) return raise_cb(&err);
    PyObject *t = list_tuple(l);
    cb_list_free(l);
    return t;
}

/* Numbers of the users in `users` (ids), PyMem-allocated into *out. */
static int user_numbers(ModelObject *self, PyObject *users, size_t **out, Py_ssize_t *n) {
    PyObject *keep;
    const char **ids;
    if (ids_of(users, "users", &keep, &ids, n) < 0) return -1;
    *out = PyMem_Malloc((size_t)(*n ? *n : 1) * sizeof **out);
    cb_error err;
    int rc = *out ? 0 : (PyErr_NoMemory(), -1);
    pthread_rwlock_rdlock(&self->lock);
    for (Py_ssize_t i = 0; !rc && i < *n; i++) {
        if (!ids[i]) rc = (PyErr_SetString(PyExc_TypeError, "a user id is None"), -1);
        else if (cb_recommender_find_user(self->rec, ids[i], &(*out)[i], &err)) rc = (raise_cb(&err), -1);
    }
    pthread_rwlock_unlock(&self->lock);
    Py_DECREF(keep);
    PyMem_Free(ids);
    if (rc) {
        PyMem_Free(*out);
        *out = NULL;
    }
    return rc;
}

static PyObject *Model_recommend_batch(ModelObject *self, PyObject *args) {
    PyObject *users, *kw = NULL;
    Py_ssize_t n;
    if (!ready(self) || !PyArg_ParseTuple(args, "On|O:_recommend_batch", &users, &n, &kw)) return NULL;
    if (n < 1) return PyErr_Format(PyExc_ValueError, "n must be at least 1");
    /* no more columns than items: n = 10**8 over 8 items filled 8 GB with padding */
    size_t n_items = cb_recommender_item_count(self->rec);
    if ((size_t)n > n_items) n = (Py_ssize_t)n_items;
    size_t *nums = NULL;
    Py_ssize_t n_users = (Py_ssize_t)cb_recommender_user_count(self->rec);
    if (users != Py_None && user_numbers(self, users, &nums, &n_users) < 0) return NULL;
    cb_config *made;
    const cb_config *opts = opts_of(self, kw, &made);
    const char *unused = opts ? cb_recommend_batch_unused(opts) : NULL;
    if (unused) { /* the library's refusal, the key as a keyword argument spells it */
        cb_error e = {.code = CB_EINVAL};
        int n_msg = snprintf(e.msg, sizeof e.msg, "%s: recommend_batch ranks the whole catalog per user, without the "
                             "retrieval sources or a re-rank (recommend takes it)", unused);
        for (int i = 0; i < n_msg && i < (int)sizeof e.msg && e.msg[i] != ':'; i++)
            if (e.msg[i] == '-') e.msg[i] = '_';
        PyMem_Free(nums);
        cb_config_free(made);
        return raise_cb(&e);
    }
    npy_intp dims[2] = {n_users, n};
    PyObject *items = opts ? PyArray_SimpleNew(2, dims, NPY_INT64) : NULL;
    PyObject *scores = items ? PyArray_SimpleNew(2, dims, NPY_FLOAT32) : NULL;
    cb_error err;
    int rc = -1;
    if (scores) {
        int64_t *it = PyArray_DATA((PyArrayObject *)items);
        float *sc = PyArray_DATA((PyArrayObject *)scores);
        Py_BEGIN_ALLOW_THREADS
        pthread_rwlock_rdlock(&self->lock);
        rc = n_users ? cb_recommender_recommend_batch(self->rec, nums, (size_t)n_users, (size_t)n, opts, it, sc, &err) : 0;
        pthread_rwlock_unlock(&self->lock);
        Py_END_ALLOW_THREADS
        if (rc) raise_cb(&err);
    }
    PyMem_Free(nums);
    cb_config_free(made);
    if (rc) {
        Py_XDECREF(items);
        Py_XDECREF(scores);
        return NULL;
    }
    return Py_BuildValue("(NN)", items, scores);
}

static PyObject *Model_predict(ModelObject *self, PyObject *args) {
    PyObject *user, *item;
    if (!ready(self) || !PyArg_ParseTuple(args, "OO:predict", &user, &item)) return NULL;
    PyObject *u = id_text(user), *i = u ? id_text(item) : NULL;
    const char *us = i ? utf8_text(u) : NULL, *is = us ? utf8_text(i) : NULL;
    float y = NAN;
    cb_error err;
    int rc = -1;
    if (is) {
        pthread_rwlock_rdlock(&self->lock);
        rc = cb_recommender_predict(self->rec, us, is, &y, &err);
        pthread_rwlock_unlock(&self->lock);
        if (rc) raise_cb(&err);
    }
    Py_XDECREF(u);
    Py_XDECREF(i);
    return rc ? NULL : PyFloat_FromDouble((double)y);
}

/* _add_item(item): a dict or its JSON text. */
static PyObject *Model_add_item(ModelObject *self, PyObject *obj) {
    if (!ready(self)) return NULL;
    PyObject *text = PyUnicode_Check(obj) ? Py_NewRef(obj) : json_text(obj);
    const char *json = text ? utf8_text(text) : NULL;
    size_t item = 0;
    cb_error err;
    char note[512] = "";
    int rc = -1;
    if (json) {
        Py_BEGIN_ALLOW_THREADS
        pthread_rwlock_wrlock(&self->lock);
        rc = cb_recommender_add_item(self->rec, json, &item, &err);
        if (!rc) snprintf(note, sizeof note, "%s", cb_recommender_add_item_note(self->rec)); /* the next add's */
        pthread_rwlock_unlock(&self->lock);
        Py_END_ALLOW_THREADS
        if (rc) raise_cb(&err);
    }
    Py_XDECREF(text);
    /* values the model does not know were left out: said, as the CLI's add-item says them */
    if (!rc && note[0] && PyErr_WarnEx(PyExc_UserWarning, note, 1) < 0) return NULL;
    return rc ? NULL : PyLong_FromSize_t(item);
}

static double clock_seconds(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The peer of the Python-overhead benchmark: the same recommend calls made
 * from C (one cb_recommender_recommend + cb_list_free per user id, default
 * settings), `repeat` passes; returns (wall seconds, this thread's CPU
 * seconds) of the passes: CPU time leaves out preemption by other processes. */
static PyObject *Model_bench_c(ModelObject *self, PyObject *args) {
    PyObject *users, *keep;
    int repeat = 1;
    if (!ready(self) || !PyArg_ParseTuple(args, "O|i:_bench_c_recommend", &users, &repeat)) return NULL;
    const char **ids;
    Py_ssize_t n;
    if (ids_of(users, "users", &keep, &ids, &n) < 0) return NULL;
    cb_error err;
    int rc = 0;
    double t0 = clock_seconds(CLOCK_MONOTONIC), c0 = clock_seconds(CLOCK_THREAD_CPUTIME_ID);
    Py_BEGIN_ALLOW_THREADS
    pthread_rwlock_rdlock(&self->lock);
    for (int r = 0; r < repeat && !rc; r++)
        for (Py_ssize_t i = 0; i < n && !rc; i++) {
            cb_list *l = NULL;
            rc = cb_recommender_recommend(self->rec, ids[i], NULL, self->defaults, &l, &err);
            cb_list_free(l);
        }
    pthread_rwlock_unlock(&self->lock);
    Py_END_ALLOW_THREADS
    double cpu = clock_seconds(CLOCK_THREAD_CPUTIME_ID) - c0, secs = clock_seconds(CLOCK_MONOTONIC) - t0;
    Py_DECREF(keep);
    PyMem_Free(ids);
    return rc ? raise_cb(&err) : Py_BuildValue("(dd)", secs, cpu);
}

static PyObject *Model_get_count(ModelObject *self, void *which) {
    if (!ready(self)) return NULL;
    switch ((int)(intptr_t)which) {
    case 0: return PyLong_FromSize_t(cb_recommender_user_count(self->rec));
    case 1: return PyLong_FromSize_t(cb_recommender_item_count(self->rec));
    case 2: return PyLong_FromSize_t(cb_recommender_dim(self->rec));
    default: return PyLong_FromSize_t(cb_recommender_table_k(self->rec));
    }
}

static PyObject *Model_get_report(ModelObject *self, void *unused) { return Py_NewRef(self->report); }

/* _set_report(dict or None): the report a model made by unpickling carries. */
static PyObject *Model_set_report(ModelObject *self, PyObject *report) {
    if (report != Py_None && !PyDict_Check(report)) return PyErr_Format(PyExc_TypeError, "a report is a dict or None");
    Py_SETREF(self->report, Py_NewRef(report));
    return Py_NewRef(Py_None);
}

#define M(name, fn, flags, doc) {name, (PyCFunction)(void (*)(void))fn, flags, doc}
static PyMethodDef Model_methods[] = {
    M("_train", Model_train, METH_VARARGS | METH_CLASS, "_train(dataset, progress, settings): see Model.train."),
    M("_load", Model_load, METH_VARARGS | METH_CLASS, "_load(path, table=None, history=None): see Model.load."),
    M("save", Model_save, METH_VARARGS | METH_KEYWORDS,
      "save(path, history=None)\n\nWrite the model file and its history file (history: its path, default path + '.history'),\n"
      "atomically: a failure leaves existing files intact; a file replaced keeps its permissions. Saves from\n"
      "several threads take turns."),
    M("save_table", Model_save_table, METH_VARARGS | METH_KEYWORDS,
      "save_table(path)\n\nWrite the similar-items table (with any added items), atomically."),
    M("load_table", Model_load_table, METH_VARARGS,
      "load_table(path)\n\nLoad a similar-items table made from this model (cbrec precompute, save_table)."),
    M("set_block_file", Model_set_block_file, METH_VARARGS,
      "set_block_file(path=None)\n\nItems never shown from now on, in any recommendation, batch row or similar list:\n"
      "a block file's lines \"item ID\", \"genre NAME\", \"tags violent\" (any content column) or an id; an item\n"
      "added later with a blocked value is blocked too. None clears it. NotFound names the file and line."),
    M("build_table", Model_build_table, METH_VARARGS | METH_KEYWORDS,
      "build_table(k=20, threads=0)\n\nPrecompute the k nearest items of every item (threads 0 = all CPUs);\n"
      "recommend's similar-items source and similar() then look them up."),
    M("_describe", Model_describe, METH_NOARGS, "_describe() -> JSON text: see Model.describe."),
    M("_ids", Model_ids, METH_VARARGS, "_ids(users) -> list of the item (users False) or user ids."),
    M("_titles", Model_titles, METH_NOARGS, "_titles() -> list of item titles ('' when none)."),
    M("_vectors", Model_vectors, METH_VARARGS, "_vectors(users, rows) -> read-only float32 view."),
    M("user_vector", Model_user_vector, METH_O,
      "user_vector(user) -> numpy float32 array (dim,)\n\nThe user vector v_u of a known user (id) or of a new user\n"
      "described by a profile dict such as {\"genre_ratings\": {\"Comedy\": 5}, \"ratings\": {\"1\": 4}}."),
    M("_recommend", Model_recommend, METH_VARARGS, "_recommend(user, settings) -> tuple: see Model.recommend."),
    M("_similar", Model_similar, METH_VARARGS, "_similar(item, k) -> tuple: see Model.similar."),
    M("_recommend_batch", Model_recommend_batch, METH_VARARGS, "_recommend_batch(users, n, settings): see Model.recommend_batch."),
    M("_find_item", Model_find_item, METH_O, "_find_item(id_or_title) -> item number."),
    M("item_content", Model_item_content, METH_O,
      "item_content(item) -> dict\n\nAn item's content by column (id or title; added items too): {\"genres\": [...]}\n"
      "and each other content column's values, e.g. {\"genres\": [\"Comedy\"], \"tags\": [\"jazz\"], \"brand\": [\"Acme\"]}."),
    M("predict", Model_predict, METH_VARARGS,
      "predict(user, item) -> float\n\nThe model's rating (or probability, for 0/1 labels) for a known user and an item\n"
      "id of the model or added to it."),
    M("_add_item", Model_add_item, METH_O, "_add_item(item: dict or JSON text) -> item number: see Model.add_item."),
    M("_set_report", Model_set_report, METH_O, "_set_report(dict or None): see Model.__reduce__."),
    M("_bench_c_recommend", Model_bench_c, METH_VARARGS,
      "_bench_c_recommend(user_ids, repeat=1) -> (wall, thread CPU) seconds of the same recommend calls made from C\n"
      "(the benchmark's peer)."),
    {NULL, NULL, 0, NULL}};
#undef M

static PyGetSetDef Model_getset[] = {
    {"n_users", (getter)Model_get_count, NULL, "Number of users the model knows.", (void *)0},
    {"n_items", (getter)Model_get_count, NULL, "Number of items: the model's plus any added with add_item.", (void *)1},
    {"dim", (getter)Model_get_count, NULL, "Width of the user and item vectors.", (void *)2},
    {"table_k", (getter)Model_get_count, NULL, "Neighbours per item in the similar-items table (0: none).", (void *)3},
    {"train_report", (getter)Model_get_report, NULL,
     "What training reported (epochs_run, losses, test_rmse, n_params, seconds, ...) as a dict; None for a loaded model.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL}};

PyTypeObject ModelType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "cbrec._cbrec._Model",
    .tp_basicsize = sizeof(ModelObject),
    .tp_dealloc = (destructor)Model_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The C recommender handle under cbrec.Model.",
    .tp_methods = Model_methods,
    .tp_getset = Model_getset,
    .tp_new = Model_new,
};
