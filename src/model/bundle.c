/* bundle — the training pipeline and the model file; see bundle.h. */
#include "model/bundle.h"
#include "base/threads.h"

#include <cblas.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- owned allocations */

static void *rec_alloc(cb_bundle *r, size_t n, size_t size, cb_error *err) {
    void **list = cb_realloc_array(r->owned, r->n_owned + 1, sizeof *list, err);
    if (!list) return NULL;
    r->owned = list;
    void *p = cb_calloc(n, size, err);
    if (p) r->owned[r->n_owned++] = p;
    return p;
}

void cb_bundle_free(cb_bundle *r) {
    if (!r) return;
    free(r->dataset);
    free(r->ratings_layout);
    free(r->fingerprint);
    cb_model_free(r->model);
    cb_features_free(r->features);
    cb_idtab_free(r->users);
    cb_idtab_free(r->items);
    cb_idtab_free(r->titles);
    for (uint32_t g = 0; g < r->n_groups; g++) {
        free(r->groups[g].column);
        for (uint32_t l = 0; r->groups[g].levels && l < r->groups[g].n_levels; l++) free(r->groups[g].levels[l]);
        free(r->groups[g].levels);
    }
    free(r->groups);
    cb_neighbours_free(r->neighbours);
    for (size_t i = 0; i < r->n_owned; i++) free(r->owned[i]);
    free(r->owned);
    cb_st_close(r->file);
    cb_st_close(r->history_file);
    free(r->history_path);
    free(r->history_note);
    free(r);
}

int64_t cb_bundle_user(const cb_bundle *r, const char *id) { return cb_idtab_find(r->users, id, strlen(id)); }
int64_t cb_bundle_item(const cb_bundle *r, const char *id) { return cb_idtab_find(r->items, id, strlen(id)); }
const char *cb_bundle_user_id(const cb_bundle *r, uint32_t user) { return cb_idtab_name(r->users, user); }
const char *cb_bundle_item_id(const cb_bundle *r, uint32_t item) { return cb_idtab_name(r->items, item); }
const char *cb_bundle_item_title(const cb_bundle *r, uint32_t item) {
    const char *t = cb_idtab_name(r->titles, item);
    return t ? t : "";
}

/* The dot product of the columns [off, off + len) of the user and item vectors. */
static float dot_part(const cb_bundle *r, const float *user_vec, uint32_t item, uint32_t off, uint32_t len) {
    const float *v = r->item_vecs + (size_t)item * r->dim + off;
    float dot = 0;
    for (uint32_t k = 0; k < len; k++) dot += user_vec[off + k] * v[k];
    return dot;
}

float cb_bundle_predict_vec(const cb_bundle *r, const float *user_vec, uint32_t item) {
    uint32_t off, len;
    cb_model_rating_part(r->model, &off, &len);
    return cb_model_score_to_prediction(r->model, dot_part(r, user_vec, item, off, len));
}

/* The rating below which a pick weighs mc->below_weight in the softmax:
 * relevant_from of the way up the rating range, on explicit ratings and on
 * 0/1 labels (a 0 weighs below_weight: chosen on a validation set, ml-100k
 * u1.base's labels y >= 4, where 0s as picks of weight 1 gave the list
 * 0.007 NDCG@10 less; docs/evaluation.md). Events have no range. */
static float positive_threshold_of(const cb_model_config *mc, const cb_dataset *ds) {
    if (ds->implicit || !(ds->y_max > ds->y_min)) return -INFINITY;
    return ds->y_min + mc->relevant_from * (ds->y_max - ds->y_min);
}

void cb_bundle_objective_for_data(cb_model_config *mc, const cb_dataset *ds) {
    if (ds->implicit && !ds->binary) return; /* weighted events: the weight is the target */
    if (ds->implicit) mc->objective = CB_OBJECTIVE_RETRIEVAL; /* events: nothing to predict but the pick */
    else if (ds->binary && mc->objective == CB_OBJECTIVE_RATING) mc->loss = CB_LOSS_BCE; /* 0/1 labels */
}

bool cb_bundle_has_rating(const cb_bundle *r) { return cb_model_has_rating(r->model); }

bool cb_bundle_has_retrieval(const cb_bundle *r) {
    return cb_model_config_of(r->model)->objective != CB_OBJECTIVE_RATING;
}

const float *cb_bundle_rank_bias(const cb_bundle *r) { return r->rank_bias; }

float cb_bundle_rank_of_dot(const cb_bundle *r, float dot, float bias) {
    if (!cb_bundle_has_retrieval(r)) return cb_model_score_to_prediction(r->model, dot);
    return cb_model_score_to_logit(r->model, dot) + bias;
}

static float rank_of_score(const cb_bundle *r, float dot, uint32_t item) {
    return cb_bundle_rank_of_dot(r, dot, r->rank_bias ? r->rank_bias[item] : 0.0f);
}

void cb_bundle_rank_part(const cb_bundle *r, uint32_t *off, uint32_t *len) {
    if (cb_bundle_has_retrieval(r)) cb_model_rank_part(r->model, off, len);
    else cb_model_rating_part(r->model, off, len);
}

float cb_bundle_rank_score(const cb_bundle *r, const float *user_vec, uint32_t item) {
    uint32_t off, len;
    cb_bundle_rank_part(r, &off, &len);
    return rank_of_score(r, dot_part(r, user_vec, item, off, len), item);
}

void cb_bundle_rank_scores(const cb_bundle *r, const float *user_vec, float *scores) {
    uint32_t off, len;
    cb_bundle_rank_part(r, &off, &len);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)r->n_items, (int)len, 1.0f, r->item_vecs + off, (int)r->dim,
                user_vec + off, 1, 0.0f, scores, 1);
    for (uint32_t i = 0; i < r->n_items; i++) scores[i] = rank_of_score(r, scores[i], i);
}

/* ---- building the retrieval lists */

typedef struct {
    double score;
    uint32_t item;
} scored;

static int cmp_scored_desc(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->item < y->item ? -1 : x->item > y->item;
}

/* Top CB_BUNDLE_TOP_LIST items by score among those with keep[i] (or all when
 * keep is NULL) and score > -inf, -1 padded. */
static void top_list(int32_t *out, const double *score, uint32_t n_items, scored *scratch) {
    uint32_t m = 0;
    for (uint32_t i = 0; i < n_items; i++)
        if (score[i] > -INFINITY) scratch[m++] = (scored){score[i], i};
    qsort(scratch, m, sizeof *scratch, cmp_scored_desc);
    for (uint32_t r = 0; r < CB_BUNDLE_TOP_LIST; r++) out[r] = r < m ? (int32_t)scratch[r].item : -1;
}

typedef struct {
    uint32_t ts, order;
} seen_key;

static int cmp_seen(const void *a, const void *b) {
    const seen_key *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* The history CSR from the ratings train_idx[0..n_train) (all when NULL):
 * grouped by user with a counting sort straight into the output arrays,
 * then each user's run ordered by (time, rating index) through a scratch of
 * the longest run, so no temporary grows with the number of ratings. */
static int build_history(cb_bundle *r, const cb_dataset *ds, const uint32_t *train_idx, size_t n_train,
                         uint32_t *count, cb_error *err) {
    uint32_t nu = r->n_users;
    int32_t *off = rec_alloc(r, (size_t)nu + 1, sizeof *off, err);
    int32_t *items = rec_alloc(r, n_train, sizeof *items, err);
    float *ys = rec_alloc(r, n_train, sizeof *ys, err);
    int32_t *ts = rec_alloc(r, n_train, sizeof *ts, err);
    int32_t *order = (int32_t *)ts; /* the rating index, until the times are written below */
    if (!off || !items || !ys || !ts) return CB_ENOMEM;
    for (size_t i = 0; i < n_train; i++) off[ds->ratings[train_idx ? train_idx[i] : i].user + 1]++;
    int32_t longest = 0;
    for (uint32_t u = 0; u < nu; u++) {
        longest = off[u + 1] > longest ? off[u + 1] : longest;
        off[u + 1] += off[u];
    }
    for (size_t i = 0; i < n_train; i++) { /* off[u] walks to the end of u's run, then is restored */
        uint32_t k = train_idx ? train_idx[i] : (uint32_t)i;
        order[off[ds->ratings[k].user]++] = (int32_t)k;
    }
    for (uint32_t u = nu; u > 0; u--) off[u] = off[u - 1];
    off[0] = 0;
    seen_key *keys = cb_calloc((size_t)longest + 1, sizeof *keys, err);
    if (!keys) return CB_ENOMEM;
    for (uint32_t u = 0; u < nu; u++) {
        int32_t lo = off[u], n = off[u + 1] - lo;
        for (int32_t j = 0; j < n; j++) keys[j] = (seen_key){ds->ratings[order[lo + j]].ts, (uint32_t)order[lo + j]};
        qsort(keys, (size_t)n, sizeof *keys, cmp_seen);
        for (int32_t j = 0; j < n; j++) {
            const cb_rating *x = &ds->ratings[keys[j].order];
            items[lo + j] = (int32_t)x->item;
            ys[lo + j] = x->y;
            ts[lo + j] = (int32_t)x->ts;
            count[x->item]++;
        }
    }
    free(keys);
    r->seen_off = off;
    r->seen_item = items;
    r->seen_y = ys;
    r->seen_ts = ts;
    r->has_history = true;
    return CB_OK;
}

int cb_bundle_build_lists(cb_bundle *r, const cb_dataset *ds, const uint32_t *train_idx, size_t n_train, cb_error *err) {
    uint32_t nu = r->n_users, ni = r->n_items;
    double *score = cb_calloc(ni, sizeof *score, err);
    scored *scratch = cb_calloc(ni, sizeof *scratch, err);
    uint32_t *count = cb_calloc(ni, sizeof *count, err);
    int rc = CB_ENOMEM;
    if (!score || !scratch || !count) goto out;
    /* seen: training ratings grouped by user, in time order */
    if ((rc = build_history(r, ds, train_idx, n_train, count, err))) goto out;
    rc = CB_ENOMEM;
    const int32_t *off = r->seen_off, *items = r->seen_item;

    /* overall popularity */
    int32_t *pop = rec_alloc(r, CB_BUNDLE_TOP_LIST, sizeof *pop, err);
    if (!pop) goto out;
    for (uint32_t i = 0; i < ni; i++) score[i] = count[i] ? (double)count[i] : -INFINITY;
    top_list(pop, score, ni, scratch);
    r->popular = pop;

    /* per genre: best shrunk mean among items with enough ratings */
    r->n_genres = cb_features_n_genres(r->features);
    int32_t *gtop = rec_alloc(r, (size_t)(r->n_genres ? r->n_genres : 1) * CB_BUNDLE_TOP_LIST, sizeof *gtop, err);
    if (!gtop) goto out;
    for (uint32_t g = 0; g < r->n_genres; g++) {
        for (uint32_t i = 0; i < ni; i++) {
            const uint32_t *gl;
            uint32_t ng = 0;
            score[i] = -INFINITY;
            if (!count[i] || cb_features_item_genres(r->features, i, &gl, &ng) != CB_OK) continue;
            for (uint32_t k = 0; k < ng; k++)
                if (gl[k] == g) score[i] = cb_features_item_mean(r->features, i);
        }
        top_list(gtop + (size_t)g * CB_BUNDLE_TOP_LIST, score, ni, scratch);
    }
    r->genre_top = gtop;

    /* per level of each categorical user attribute: most rated among those users */
    const cb_table *ut = &ds->user_attr;
    uint32_t n_cat = 0;
    for (uint32_t c = 0; c < ut->n_cols; c++) n_cat += ut->cols[c].kind == CB_COL_CATEGORICAL;
    if (n_cat && !ds->prejoined) {
        r->groups = cb_calloc(n_cat, sizeof *r->groups, err);
        if (!r->groups) goto out;
        for (uint32_t c = 0; c < ut->n_cols; c++) {
            const cb_column *col = &ut->cols[c];
            if (col->kind != CB_COL_CATEGORICAL) continue;
            cb_bundle_group *g = &r->groups[r->n_groups++];
            g->n_levels = cb_vocab_size(col->levels);
            g->column = cb_strdup(col->name, err);
            g->levels = cb_calloc(g->n_levels, sizeof *g->levels, err);
            int32_t *lev = rec_alloc(r, nu, sizeof *lev, err);
            int32_t *top = rec_alloc(r, (size_t)(g->n_levels ? g->n_levels : 1) * CB_BUNDLE_TOP_LIST, sizeof *top, err);
            if (!g->column || !g->levels || !lev || !top) goto out;
            for (uint32_t l = 0; l < g->n_levels; l++)
                if (!(g->levels[l] = cb_strdup(cb_vocab_name(col->levels, l), err))) goto out;
            for (uint32_t u = 0; u < nu; u++)
                lev[u] = (u < ut->n_rows && col->cat[u] != CB_MISSING) ? (int32_t)col->cat[u] : -1;
            for (uint32_t l = 0; l < g->n_levels; l++) {
                for (uint32_t i = 0; i < ni; i++) score[i] = 0;
                for (uint32_t u = 0; u < nu; u++)
                    if (lev[u] == (int32_t)l)
                        for (int32_t k = off[u]; k < off[u + 1]; k++) score[items[k]] += 1;
                for (uint32_t i = 0; i < ni; i++)
                    if (score[i] == 0) score[i] = -INFINITY;
                top_list(top + (size_t)l * CB_BUNDLE_TOP_LIST, score, ni, scratch);
            }
            g->user_level = lev;
            g->top = top;
        }
    }
    rc = CB_OK;
out:
    free(score);
    free(scratch);
    free(count);
    return rc;
}

/* ---- training */

int cb_bundle_tables(const cb_bundle *r, const cb_dataset *ds, const uint32_t *train_idx, size_t n_train, float **X_u,
                  float **X_m, cb_error *err) {
    uint32_t du = cb_features_user_dim(r->features), dm = cb_features_item_dim(r->features);
    *X_u = cb_calloc((size_t)cb_dataset_n_users(ds) * du, sizeof(float), err);
    *X_m = cb_calloc((size_t)cb_dataset_n_items(ds) * dm, sizeof(float), err);
    int rc = (*X_u && *X_m) ? CB_OK : CB_ENOMEM;
    if (!rc) rc = cb_features_users(r->features, ds, train_idx, n_train, *X_u, err);
    if (!rc) rc = cb_features_items(r->features, ds, *X_m, err);
    if (rc) {
        free(*X_u);
        free(*X_m);
        *X_u = *X_m = NULL;
    }
    return rc;
}

static char *fingerprint_of(const float *v, size_t n, cb_error *err) {
    char buf[40];
    snprintf(buf, sizeof buf, "%016" PRIx64, cb_fnv1a64(v, n * sizeof *v, CB_FNV1A64_INIT));
    return cb_strdup(buf, err);
}

/* The ranking bias of a retrieval / both model: popularity_prior · log q. */
static int rank_bias_of(cb_bundle *r, const cb_bundle_train_input *in, cb_error *err) {
    const cb_model_config *c = cb_model_config_of(r->model);
    r->rank_bias = NULL;
    if (c->objective == CB_OBJECTIVE_RATING || c->popularity_prior == 0.0f) return CB_OK;
    float *b = rec_alloc(r, r->n_items, sizeof *b, err);
    if (!b) return CB_ENOMEM;
    int rc = cb_model_train_log_q(r->model, b, in->ds->ratings, in->train_idx, in->n_train, r->n_items, err);
    if (rc) return rc;
    for (uint32_t i = 0; i < r->n_items; i++) b[i] *= c->popularity_prior;
    r->rank_bias = b;
    return CB_OK;
}

/* The item columns derived from interactions, with the value a never-rated
 * item has in each (NAN elsewhere), for item dropout: the columns that change
 * between a new item with no ratings and one with many. *out = NULL when the
 * model trains without item dropout. */
static int item_cold_of(const cb_bundle *r, float **out, cb_error *err) {
    *out = NULL;
    if (!(cb_model_config_of(r->model)->item_dropout > 0.0f)) return CB_OK;
    uint32_t dm = cb_features_item_dim(r->features);
    float *cold = cb_malloc(2 * (size_t)dm * sizeof *cold, err);
    if (!cold) return CB_ENOMEM;
    cb_item_input none = {.year = NAN}, many = {.year = NAN, .rating_count = 1000,
                                               .rating_mean = cb_features_global_mean(r->features) + 1.0f};
    int rc = cb_features_new_item(r->features, &none, cold, err);
    if (!rc) rc = cb_features_new_item(r->features, &many, cold + dm, err);
    for (uint32_t j = 0; !rc && j < dm; j++)
        if (cold[j] == cold[dm + j]) cold[j] = NAN;
    if (rc) free(cold);
    else *out = cold;
    return rc;
}

/* The same for users (user dropout): the columns that change between a new
 * user with no ratings and one who rated every item at the top of the scale. */
static int user_cold_of(const cb_bundle *r, float **out, cb_error *err) {
    *out = NULL;
    if (!(cb_model_config_of(r->model)->user_dropout > 0.0f)) return CB_OK;
    uint32_t du = cb_features_user_dim(r->features);
    float *cold = cb_malloc(2 * (size_t)du * sizeof *cold, err);
    cb_item_rating *all = cb_malloc(((size_t)r->n_items + 1) * sizeof *all, err);
    int rc = cold && all ? CB_OK : CB_ENOMEM;
    for (uint32_t i = 0; !rc && i < r->n_items; i++) all[i] = (cb_item_rating){i, r->y_max};
    cb_user_input none = {0}, every = {.ratings = all, .n_ratings = r->n_items};
    if (!rc) rc = cb_features_new_user(r->features, &none, cold, err);
    if (!rc) rc = cb_features_new_user(r->features, &every, cold + du, err);
    for (uint32_t j = 0; !rc && j < du; j++)
        if (cold[j] == cold[du + j]) cold[j] = NAN;
    free(all);
    if (rc) free(cold);
    else *out = cold;
    return rc;
}

/* Each user's training items, CSR (the history bag's input): *off [n_users + 1],
 * *items; both NULL when the model has no history bag. */
static int history_of(const cb_bundle *r, const cb_bundle_train_input *in, uint32_t **off, uint32_t **items,
                      cb_error *err) {
    *off = *items = NULL;
    if (!cb_model_has_history(r->model)) return CB_OK;
    *off = cb_calloc((size_t)r->n_users + 2, sizeof **off, err);
    *items = cb_malloc((in->n_train + 1) * sizeof **items, err);
    if (!*off || !*items) {
        free(*off);
        free(*items);
        *off = *items = NULL;
        return CB_ENOMEM;
    }
    const cb_rating *rt = in->ds->ratings;
    for (size_t j = 0; j < in->n_train; j++) (*off)[rt[in->train_idx[j]].user + 2]++;
    for (uint32_t u = 0; u < r->n_users; u++) (*off)[u + 2] += (*off)[u + 1];
    for (size_t j = 0; j < in->n_train; j++) (*items)[(*off)[rt[in->train_idx[j]].user + 1]++] = rt[in->train_idx[j]].item;
    return CB_OK;
}

int cb_bundle_user_vector(const cb_bundle *r, const float *x, const uint32_t *items, size_t n_items, float *out,
                          cb_error *err) {
    if (n_items > UINT32_MAX) return cb_fail(err, CB_EINVAL, "cb_bundle_user_vector: too many history items");
    uint32_t off[2] = {0, (uint32_t)n_items};
    return cb_model_user_vectors_hist(r->model, x, 1, off, items, out, err);
}

/* The vectors of every user from the user table X_u (densified a chunk at a
 * time) and the history bag's CSR (NULL: none) into uv [n_users x dim]. */
/* The item and user vectors after training, by chunks of EMBED_CHUNK rows
 * (a multiple of the model's forward blocks, EVAL_CHUNK (512) in model.c,
 * so a chunk's rows are the bits one pass over all the rows gives) taken
 * from a shared counter on the model's threads, OpenBLAS held at one thread
 * meanwhile: the vectors depend on neither thread count. */
#define EMBED_CHUNK 1024
typedef struct embed_job {
    const cb_bundle *r;
    const float *X_m;
    const cb_rows *X_u;
    const uint32_t *h_off, *h_item;
    float *iv, *uv;
    size_t n_item_chunks;
    float *x;      /* per worker: EMBED_CHUNK users' dense rows */
    uint32_t *ids; /* per worker: EMBED_CHUNK item ids */
    atomic_int rc; /* the first failure's status, its message in err */
    cb_error err;
} embed_job;

static void embed_chunk(void *ctx, size_t c, int worker) {
    embed_job *j = ctx;
    const cb_bundle *r = j->r;
    if (atomic_load(&j->rc)) return;
    size_t du = j->X_u->width, di = cb_features_item_dim(r->features);
    bool item = c < j->n_item_chunks;
    uint32_t total = item ? r->n_items : r->n_users, s = (uint32_t)((item ? c : c - j->n_item_chunks) * EMBED_CHUNK);
    uint32_t n = total - s < EMBED_CHUNK ? total - s : EMBED_CHUNK, *ids = j->ids + (size_t)worker * EMBED_CHUNK;
    float *x = j->x + (size_t)worker * EMBED_CHUNK * (du ? du : 1);
    cb_error err = {0};
    int rc;
    if (item) {
        for (uint32_t k = 0; k < n; k++) ids[k] = s + k;
        rc = cb_model_item_vectors_ids(r->model, j->X_m + (size_t)s * di, ids, n, j->iv + (size_t)s * r->dim, &err);
    } else {
        for (uint32_t k = 0; k < n; k++) cb_rows_get(j->X_u, s + k, x + (size_t)k * du);
        rc = cb_model_user_vectors_hist(r->model, x, n, j->h_off ? j->h_off + s : NULL, j->h_item,
                                        j->uv + (size_t)s * r->dim, &err);
    }
    int ok = CB_OK;
    if (rc && atomic_compare_exchange_strong(&j->rc, &ok, rc)) j->err = err; /* read after the threads join */
}

static int embed(const cb_bundle *r, const float *X_m, const cb_rows *X_u, const uint32_t *h_off,
                 const uint32_t *h_item, int threads, float *iv, float *uv, cb_error *err) {
    embed_job j = {.r = r, .X_m = X_m, .X_u = X_u, .h_off = h_off, .h_item = h_item, .iv = iv, .uv = uv,
                   .n_item_chunks = ((size_t)r->n_items + EMBED_CHUNK - 1) / EMBED_CHUNK};
    size_t n_chunks = j.n_item_chunks + ((size_t)r->n_users + EMBED_CHUNK - 1) / EMBED_CHUNK;
    int n = cb_threads_resolve(threads, CB_THREADS_MAX);
    n = n_chunks < (size_t)n ? (n_chunks ? (int)n_chunks : 1) : n;
    size_t du = X_u->width ? X_u->width : 1;
    atomic_init(&j.rc, CB_OK);
    j.x = cb_malloc((size_t)n * EMBED_CHUNK * du * sizeof *j.x, err);
    j.ids = j.x ? cb_malloc((size_t)n * EMBED_CHUNK * sizeof *j.ids, err) : NULL;
    if (j.ids) {
        cb_blas_hold_one();
        cb_threads_for(0, n_chunks, n, embed_chunk, &j);
        cb_blas_release();
    }
    int rc = j.ids ? atomic_load(&j.rc) : CB_ENOMEM;
    if (rc && j.ids && err) *err = j.err;
    free(j.x);
    free(j.ids);
    return rc;
}

/* Train the towers on the tables and refresh vectors; shared by train and resume. */
static int fit_and_embed(cb_bundle *r, const cb_bundle_train_input *in, cb_train_result *res, cb_error *err) {
    const cb_dataset *ds = in->ds;
    cb_rows X_u = {0};
    float *X_m = cb_calloc((size_t)r->n_items * cb_features_item_dim(r->features) + 1, sizeof *X_m, err);
    cb_train_result dummy;
    if (!res) res = &dummy;
    float *item_cold = NULL, *user_cold = NULL;
    uint32_t *h_off = NULL, *h_item = NULL;
    /* the user table as rows (dense head, multi-hot tail as column lists): at
     * 20M ratings 580 MB dense, ~65 MB so */
    int rc = X_m ? cb_features_items(r->features, ds, X_m, err) : CB_ENOMEM;
    if (!rc) rc = cb_features_user_rows(r->features, ds, in->train_idx, in->n_train, &X_u, err);
    if (!rc && !(rc = item_cold_of(r, &item_cold, err)) && !(rc = user_cold_of(r, &user_cold, err)))
        rc = history_of(r, in, &h_off, &h_item, err);
    if (rc) {
        cb_rows_free(&X_u);
        free(X_m);
        free(item_cold);
        free(user_cold);
        return rc;
    }
    cb_train_data td = {NULL, r->n_users, X_m, r->n_items, ds->ratings, in->train_idx, in->n_train,
                        in->valid_idx, in->n_valid, h_off, h_item, item_cold, user_cold, in->comm, &X_u, 0};
    rc = cb_model_train(r->model, &td, in->on_epoch, in->ctx, res, err);
    res->test_loss = res->test_rmse = NAN;
    if (rc == CB_OK && in->n_test)
        rc = cb_model_evaluate(r->model, &td, in->test_idx, in->n_test, &res->test_loss, &res->test_rmse, err);
    if (rc == CB_OK) rc = rank_bias_of(r, in, err);
    if (rc == CB_OK) {
        float *iv = rec_alloc(r, (size_t)r->n_items * r->dim, sizeof(float), err);
        float *uv = rec_alloc(r, (size_t)r->n_users * r->dim, sizeof(float), err);
        rc = (iv && uv) ? CB_OK : CB_ENOMEM;
        if (!rc) rc = embed(r, X_m, &X_u, h_off, h_item, in->model.threads, iv, uv, err);
        if (!rc) {
            r->item_vecs = iv;
            r->user_vecs = uv;
            free(r->fingerprint);
            r->fingerprint = fingerprint_of(iv, (size_t)r->n_items * r->dim, err);
            if (!r->fingerprint) rc = CB_ENOMEM;
        }
    }
    cb_rows_free(&X_u);
    free(X_m);
    free(item_cold);
    free(user_cold);
    free(h_off);
    free(h_item);
    return rc;
}

/* Labels 0/1 only (loss bce under the rating objective). */
static bool labels_binary(const cb_dataset *ds, const uint32_t *idx, size_t n) {
    for (size_t j = 0; j < n; j++) {
        float y = ds->ratings[idx[j]].y;
        if (y != 0.0f && y != 1.0f) return false;
    }
    return true;
}

/* ---- the ratings file's row layout, as the model file keeps it (in "info")
 * and cb_recommender_ratings_layout gives it: {"fields": [{"name", "role"}],
 * "delimiter", "header", "quoting"}, role user, item, rating, timestamp, weight or
 * other. */

static const char *const LAYOUT_ROLES[] = {"other", "user", "item", "rating", "timestamp", "weight"};

static char *layout_text(const cb_ratings_layout *l, cb_error *err) {
    json_t *fields = json_array();
    for (size_t i = 0; fields && i < l->n_fields; i++)
        json_array_append_new(fields, json_pack("{s:s,s:s}", "name", l->names[i], "role", LAYOUT_ROLES[l->roles[i]]));
    json_t *o = fields ? json_pack("{s:o,s:s,s:b,s:b}", "fields", fields, "delimiter", l->delim, "header", l->header,
                                   "quoting", l->quoting)
                       : NULL;
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!text) cb_fail(err, CB_ENOMEM, "out of memory");
    return text;
}

/* Is j a layout as layout_text writes it (a file's, checked before use)? */
static bool layout_valid(const json_t *j) {
    const json_t *fields = json_object_get(j, "fields"), *delim = json_object_get(j, "delimiter");
    bool ok = json_is_array(fields) && json_array_size(fields) && json_is_string(delim) && json_string_length(delim) &&
              json_string_length(delim) < 8 && json_is_boolean(json_object_get(j, "header")) &&
              json_is_boolean(json_object_get(j, "quoting"));
    for (size_t i = 0; ok && i < json_array_size(fields); i++) {
        const json_t *f = json_array_get(fields, i), *role = json_object_get(f, "role");
        ok = json_is_string(json_object_get(f, "name")) && json_is_string(role);
        bool known = false;
        for (size_t k = 0; ok && k < sizeof LAYOUT_ROLES / sizeof *LAYOUT_ROLES; k++)
            known |= !strcmp(json_string_value(role), LAYOUT_ROLES[k]);
        ok = ok && known;
    }
    return ok;
}

int cb_bundle_train(cb_bundle **out, const cb_bundle_train_input *in, cb_train_result *res, cb_error *err) {
    *out = NULL;
    const cb_dataset *ds = in->ds;
    if (in->n_train == 0) return cb_fail(err, CB_EINVAL, "no training ratings");
    /* The model file stores the "already rated" lists and item indices as int32. */
    if (ds->n_ratings > INT32_MAX || cb_dataset_n_items(ds) > INT32_MAX)
        return cb_fail(err, CB_EINVAL, "%zu ratings / %u items: a model file holds at most 2^31-1 of each",
                       ds->n_ratings, cb_dataset_n_items(ds));
    cb_bundle *r = cb_calloc(1, sizeof *r, err);
    if (!r) return CB_ENOMEM;
    int rc = cb_features_fit(&r->features, ds, in->train_idx, in->n_train, in->features, err);
    if (rc) goto fail;
    r->n_users = cb_dataset_n_users(ds);
    r->n_items = cb_dataset_n_items(ds);
    r->y_min = ds->y_min;
    r->y_max = ds->y_max;
    r->binary = ds->binary;
    r->weighted = ds->implicit && !ds->binary;
    cb_model_config model = in->model, *mc = &model;
    mc->user_in = cb_features_user_dim(r->features);
    mc->item_in = cb_features_item_dim(r->features);
    mc->item_ids = mc->item_id_embedding ? cb_dataset_n_items(ds) : 0;
    mc->history_items = mc->history_dim ? cb_dataset_n_items(ds) : 0;
    mc->positive_threshold = positive_threshold_of(mc, ds);
    if (mc->objective == CB_OBJECTIVE_RATING && mc->loss == CB_LOSS_BCE &&
        (!labels_binary(ds, in->train_idx, in->n_train) || !labels_binary(ds, in->valid_idx, in->n_valid))) {
        rc = cb_fail(err, CB_EINVAL, "loss bce needs labels 0 or 1, and the training ratings have other values "
                                     "(use loss mse, or the retrieval objective for implicit data)");
        goto fail;
    }
    if (mc->loss == CB_LOSS_MSE && in->scale_targets && ds->y_max > ds->y_min) {
        /* MinMax to [-1, 1], as the lab: unit vectors' dot products live there. */
        mc->target_scale = 2.0f / (ds->y_max - ds->y_min);
        mc->target_shift = -1.0f - ds->y_min * mc->target_scale;
    } else if (mc->loss == CB_LOSS_MSE && in->scale_targets && ds->y_max == ds->y_min) {
        /* every rating the same value: targets 0, so the head has nothing to
         * learn and predictions come back as that value (unshifted, the
         * towers' [-1, 1] could not reach a 5 and training diverged) */
        mc->target_scale = 1.0f;
        mc->target_shift = -ds->y_min;
    }
    const char *why = cb_model_config_check(mc);
    if (why) {
        rc = cb_fail(err, CB_EINVAL, "model configuration: %s", why);
        goto fail;
    }
    if ((rc = cb_model_create(&r->model, mc, err))) goto fail;
    r->dim = cb_model_out_dim(r->model);
    if ((rc = cb_idtab_from_vocab(&r->users, ds->users, err)) || (rc = cb_idtab_from_vocab(&r->items, ds->items, err)) ||
        (rc = cb_idtab_from_names(&r->titles, (const char *const *)ds->titles, r->n_items, false, "title", err)))
        goto fail;
    if (!(r->dataset = cb_strdup(ds->name ? ds->name : "unnamed", err)) ||
        (ds->ratings_layout.n_fields && !(r->ratings_layout = layout_text(&ds->ratings_layout, err)))) {
        rc = CB_ENOMEM;
        goto fail;
    }
    /* A numerical failure keeps the last good parameters: still a usable model. */
    if ((rc = fit_and_embed(r, in, res, err)) && rc != CB_ENUMERIC) goto fail;
    /* the lists after training: the history (12 B per rating) is not held
     * beside the training tables (peak memory) */
    int rc_lists = in->lists_later        ? CB_OK
                   : in->seen_all_ratings ? cb_bundle_build_lists(r, ds, NULL, ds->n_ratings, err)
                                          : cb_bundle_build_lists(r, ds, in->train_idx, in->n_train, err);
    if (rc_lists) {
        rc = rc_lists;
        goto fail;
    }
    *out = r;
    return rc;
fail:
    cb_bundle_free(r);
    return rc;
}

int cb_bundle_resume(cb_bundle *r, const cb_bundle_train_input *in, cb_train_result *res, cb_error *err) {
    const cb_dataset *ds = in->ds;
    if (cb_dataset_n_users(ds) != r->n_users || cb_dataset_n_items(ds) != r->n_items)
        return cb_fail(err, CB_EINVAL, "--resume: the data has %u users and %u items, the model %u and %u",
                       cb_dataset_n_users(ds), cb_dataset_n_items(ds), r->n_users, r->n_items);
    for (uint32_t i = 0; i < r->n_items; i++)
        if (strcmp(cb_vocab_name(ds->items, i), cb_bundle_item_id(r, i)))
            return cb_fail(err, CB_EINVAL, "--resume: item %u is '%s' in the data but '%s' in the model", i,
                           cb_vocab_name(ds->items, i), cb_bundle_item_id(r, i));
    int rc = cb_features_check_token_rules(r->features, "--resume: ", err);
    if (rc) return rc;
    /* Only the optimiser's fields come from the caller; the architecture,
     * the objective and the settings of its loss (temperature, below-weight,
     * relevant-from, the sampled negatives, the lr decay) are the model's own. */
    cb_model_config c = *cb_model_config_of(r->model);
    const cb_model_config *t = &in->model;
    c.optimizer = t->optimizer;
    c.lr = t->lr;
    c.weight_decay = t->weight_decay;
    c.adam_beta1 = t->adam_beta1;
    c.adam_beta2 = t->adam_beta2;
    c.adam_eps = t->adam_eps;
    c.batch_size = t->batch_size;
    c.epochs = t->epochs;
    c.patience = t->patience;
    c.seed = t->seed;
    c.threads = t->threads;
    c.item_dropout = t->item_dropout;
    c.user_dropout = t->user_dropout;
    if (r->caller_train_settings) { /* a file from before they were stored: the caller's, as then */
        c.lr_decay = t->lr_decay;
        c.negatives = t->negatives;
        c.negatives_power = t->negatives_power;
        c.below_weight = t->below_weight;
        c.relevant_from = t->relevant_from;
    }
    c.positive_threshold = positive_threshold_of(&c, ds);
    rc = cb_model_set_train_config(r->model, &c, err);
    if (rc) return rc;
    return fit_and_embed(r, in, res, err);
}

/* ---- model file */

static json_t *model_config_json(const cb_model_config *c) {
    json_t *ul = json_array(), *il = json_array();
    for (uint32_t i = 0; i < c->n_user_layers; i++) json_array_append_new(ul, json_integer(c->user_layers[i]));
    for (uint32_t i = 0; i < c->n_item_layers; i++) json_array_append_new(il, json_integer(c->item_layers[i]));
    json_t *j = json_pack("{s:I,s:I,s:o,s:o,s:I,s:b,s:f,s:s,s:f,s:f,s:f,s:s,s:f,s:f,s:f,s:f,s:f,s:I,s:I,s:I,s:I,s:i}",
                     "user_in", (json_int_t)c->user_in, "item_in", (json_int_t)c->item_in, "user_layers", ul,
                     "item_layers", il, "dim", (json_int_t)c->dim, "l2norm", c->l2norm, "l2norm_eps",
                     (double)c->l2norm_eps, "loss", c->loss == CB_LOSS_BCE ? "bce" : "mse", "target_scale",
                     (double)c->target_scale, "target_shift", (double)c->target_shift, "bce_scale_init",
                     (double)c->bce_scale_init, "optimizer", c->optimizer == CB_OPT_SGD ? "sgd" : "adam", "lr",
                     (double)c->lr, "weight_decay", (double)c->weight_decay, "adam_beta1", (double)c->adam_beta1,
                     "adam_beta2", (double)c->adam_beta2, "adam_eps", (double)c->adam_eps, "batch_size",
                     (json_int_t)c->batch_size, "epochs", (json_int_t)c->epochs, "patience", (json_int_t)c->patience,
                     "seed", (json_int_t)c->seed, "threads", c->threads);
    /* the objective's fields (files before them are rating models) */
    if (j && (json_object_set_new(j, "item_dropout", json_real((double)c->item_dropout)) ||
              json_object_set_new(j, "user_dropout", json_real((double)c->user_dropout)) ||
              json_object_set_new(j, "history_dim", json_integer(c->history_dim)) ||
              json_object_set_new(j, "history_items", json_integer(c->history_items)))) {
        json_decref(j);
        return NULL;
    }
    /* the loss's training settings (files before them: the caller's on resume) */
    if (j && json_object_update_new(j, json_pack("{s:I,s:f,s:f,s:f,s:f}", "negatives", (json_int_t)c->negatives,
                                                 "negatives_power", (double)c->negatives_power, "below_weight",
                                                 (double)c->below_weight, "relevant_from", (double)c->relevant_from,
                                                 "lr_decay", (double)c->lr_decay))) {
        json_decref(j);
        return NULL;
    }
    if (j && json_object_update_new(j, json_pack("{s:s,s:f,s:b,s:f,s:f,s:b,s:I,s:b}", "objective",
                                                 cb_objective_name(c->objective), "temperature",
                                                 (double)c->temperature, "logq", c->logq, "rating_weight",
                                                 (double)c->rating_weight, "popularity_prior",
                                                 (double)c->popularity_prior, "item_id_embedding",
                                                 c->item_id_embedding, "item_ids", (json_int_t)c->item_ids,
                                                 "split_heads", c->split_heads))) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static int layers_from_json(const json_t *a, uint32_t *n, uint32_t *sizes) {
    if (!json_is_array(a) || json_array_size(a) > CB_MODEL_MAX_LAYERS) return -1;
    *n = (uint32_t)json_array_size(a);
    for (uint32_t i = 0; i < *n; i++) {
        json_t *x = json_array_get(a, i);
        if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > 1 << 20) return -1;
        sizes[i] = (uint32_t)json_integer_value(x);
    }
    return 0;
}

/* The loss's training settings stored since they were added to the file: *stored
 * false (and c's defaults kept) for an older file; -1 when present but bad. */
static int train_settings_from_json(cb_model_config *c, json_t *j, bool *stored) {
    json_int_t negatives = c->negatives;
    double power = c->negatives_power, below = c->below_weight, from = c->relevant_from, decay = c->lr_decay;
    *stored = json_object_get(j, "below_weight") != NULL;
    if (json_unpack(j, "{s?I,s?F,s?F,s?F,s?F}", "negatives", &negatives, "negatives_power", &power, "below_weight",
                    &below, "relevant_from", &from, "lr_decay", &decay) ||
        negatives < 0 || negatives > UINT32_MAX)
        return -1;
    c->negatives = (uint32_t)negatives;
    c->negatives_power = (float)power;
    c->below_weight = (float)below;
    c->relevant_from = (float)from;
    c->lr_decay = (float)decay;
    return 0; /* ranges: cb_model_config_check */
}

static int model_config_from_json(cb_model_config *c, json_t *j, bool *train_settings) {
    json_t *ul, *il;
    const char *loss, *opt;
    json_int_t user_in, item_in, dim, batch, epochs, patience, seed;
    int l2norm, threads;
    double eps, ts, tsh, bsi, lr, wd, b1, b2, ae;
    cb_model_config_default(c);
    if (json_unpack(j, "{s:I,s:I,s:o,s:o,s:I,s:b,s:F,s:s,s:F,s:F,s:F,s:s,s:F,s:F,s:F,s:F,s:F,s:I,s:I,s:I,s:I,s:i}",
                    "user_in", &user_in, "item_in", &item_in, "user_layers", &ul, "item_layers", &il, "dim", &dim,
                    "l2norm", &l2norm, "l2norm_eps", &eps, "loss", &loss, "target_scale", &ts, "target_shift", &tsh,
                    "bce_scale_init", &bsi, "optimizer", &opt, "lr", &lr, "weight_decay", &wd, "adam_beta1", &b1,
                    "adam_beta2", &b2, "adam_eps", &ae, "batch_size", &batch, "epochs", &epochs, "patience",
                    &patience, "seed", &seed, "threads", &threads))
        return -1;
    if (user_in < 1 || item_in < 1 || dim < 1 || user_in > 1 << 24 || item_in > 1 << 24 || dim > 1 << 16 ||
        batch < 1 || batch > 1 << 24 || epochs < 0 || epochs > 1 << 24 || patience < 0 || patience > 1 << 24)
        return -1;
    if (layers_from_json(ul, &c->n_user_layers, c->user_layers) || layers_from_json(il, &c->n_item_layers, c->item_layers))
        return -1;
    c->user_in = (uint32_t)user_in;
    c->item_in = (uint32_t)item_in;
    c->dim = (uint32_t)dim;
    c->l2norm = l2norm;
    c->l2norm_eps = (float)eps;
    c->loss = !strcmp(loss, "bce") ? CB_LOSS_BCE : CB_LOSS_MSE;
    c->target_scale = (float)ts;
    c->target_shift = (float)tsh;
    c->bce_scale_init = (float)bsi;
    c->optimizer = !strcmp(opt, "sgd") ? CB_OPT_SGD : CB_OPT_ADAM;
    c->lr = (float)lr;
    c->weight_decay = (float)wd;
    c->adam_beta1 = (float)b1;
    c->adam_beta2 = (float)b2;
    c->adam_eps = (float)ae;
    c->batch_size = (uint32_t)batch;
    c->epochs = (uint32_t)epochs;
    c->patience = (uint32_t)patience;
    c->seed = (uint64_t)seed;
    c->threads = threads;
    const char *objective = "rating";
    double temp = c->temperature, rw = c->rating_weight, prior = 0.0, drop = 0.0, udrop = 0.0;
    int logq = c->logq, id_emb = 0, split = 0;
    json_int_t item_ids = 0, hist_dim = 0, hist_items = 0;
    if (json_unpack(j, "{s?s,s?F,s?b,s?F,s?F,s?b,s?I,s?b,s?F,s?I,s?I}", "objective", &objective, "temperature", &temp,
                    "logq", &logq, "rating_weight", &rw, "popularity_prior", &prior, "item_id_embedding", &id_emb,
                    "item_ids", &item_ids, "split_heads", &split, "item_dropout", &drop, "history_dim", &hist_dim,
                    "history_items", &hist_items) ||
        cb_objective_parse(objective, &c->objective) || item_ids < 0 || item_ids > INT32_MAX || !(drop >= 0.0) ||
        drop > 1.0 || hist_dim < 0 || hist_dim > 65536 || hist_items < 0 || hist_items > INT32_MAX ||
        json_unpack(j, "{s?F}", "user_dropout", &udrop) || !(udrop >= 0.0) || udrop > 1.0)
        return -1;
    c->user_dropout = (float)udrop;
    c->history_dim = (uint32_t)hist_dim;
    c->history_items = (uint32_t)hist_items;
    c->item_dropout = (float)drop;
    c->item_id_embedding = id_emb;
    c->item_ids = (uint32_t)item_ids;
    c->split_heads = split;
    c->temperature = (float)temp;
    c->logq = logq;
    c->rating_weight = (float)rw;
    c->popularity_prior = (float)prior;
    return train_settings_from_json(c, j, train_settings);
}

/* Metadata entries are JSON documents stored as strings. */
static int set_meta_json(cb_st_writer *w, const char *key, json_t *j, cb_error *err) {
    if (!j) return cb_fail(err, CB_ENOMEM, "out of memory serialising %s", key);
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(j);
    if (!s) return cb_fail(err, CB_ENOMEM, "out of memory serialising %s", key);
    int rc = cb_st_set_meta(w, key, s, err);
    free(s);
    return rc;
}

#define ADD(name, dt, nd, data, ...)                                                       \
    do {                                                                                   \
        int64_t shape_[] = {__VA_ARGS__};                                                  \
        if (!rc) rc = cb_st_add(w, name, dt, shape_, nd, data, err);                       \
    } while (0)

/* The history file: the seen.* tensors and the model's fingerprint. */
static int save_history(const cb_bundle *r, cb_atomic_file *staged, const char *path, cb_error *err) {
    cb_st_writer *w = cb_st_writer_create(err);
    if (!w) return CB_ENOMEM;
    int rc = CB_OK;
    uint32_t nu = r->n_users, nseen = (uint32_t)r->seen_off[nu];
    ADD("seen.offsets", CB_ST_I32, 1, r->seen_off, nu + 1);
    ADD("seen.items", CB_ST_I32, 1, r->seen_item, nseen);
    ADD("seen.ratings", CB_ST_F32, 1, r->seen_y, nseen);
    ADD("seen.timestamps", CB_ST_I32, 1, r->seen_ts, nseen);
    cb_st_writer_sectioned(w); /* read a user's rows without reading the file (format 2) */
    if (!rc) rc = cb_st_set_meta(w, "fingerprint", r->fingerprint, err);
    if (!rc) rc = cb_st_write_staged(w, staged, path, CB_BUNDLE_HISTORY_FORMAT, CB_BUNDLE_HISTORY_VERSION, err);
    cb_st_writer_free(w);
    return rc;
}

bool cb_bundle_history_path(const char *model_path, char *buf, size_t size) {
    return (size_t)snprintf(buf, size, "%s%s", model_path, CB_BUNDLE_HISTORY_SUFFIX) < size;
}

int cb_bundle_save(const cb_bundle *r, const char *path, cb_error *err) { return cb_bundle_save_files(r, path, NULL, err); }

static int save_model(const cb_bundle *r, cb_atomic_file *staged, const char *path, cb_error *err);

int cb_bundle_check_paths(const char *path, const char *history_path, cb_error *err) {
    if (history_path && cb_atomic_same_target(path, history_path))
        return cb_fail(err, CB_EINVAL, "%s: the history file would be the model file %s (the model would overwrite "
                       "the history): give the history another path", history_path, path);
    return CB_OK;
}

/* After a save with the history elsewhere (--history): a history of an older
 * model left at the default path, which a load of the model without
 * --history would take and refuse as another model's. Only a cbrec history
 * of another fingerprint is removed: a file of any other kind is not ours. */
static int remove_stale_default(const cb_bundle *r, const char *path, const char *history_path, cb_error *err) {
    char beside[4096];
    if (!cb_bundle_history_path(path, beside, sizeof beside) || cb_atomic_same_target(beside, history_path)) return CB_OK;
    cb_st *st = NULL;
    cb_error ignored;
    bool stale = !cb_st_open(&st, beside, CB_BUNDLE_HISTORY_FORMAT, CB_BUNDLE_HISTORY_VERSION, &ignored) &&
                 (!cb_st_meta(st, "fingerprint") || strcmp(cb_st_meta(st, "fingerprint"), r->fingerprint));
    cb_st_close(st);
    if (stale && remove(beside) != 0 && errno != ENOENT)
        return cb_fail(err, CB_EIO, "%s: cannot remove the stale history file (of the model %s replaced): %s", beside,
                       path, strerror(errno));
    return CB_OK;
}

int cb_bundle_save_files(const cb_bundle *r, const char *path, const char *history_path, cb_error *err) {
    char beside[4096];
    if (!history_path) {
        if (!cb_bundle_history_path(path, beside, sizeof beside)) return cb_fail(err, CB_EINVAL, "%s: path too long", path);
        history_path = beside;
    }
    int rc = cb_bundle_check_paths(path, history_path, err);
    /* a missing or unwritable folder, before the files are built */
    if (!rc && r->has_history) rc = cb_atomic_check_writable(history_path, err);
    if (!rc) rc = cb_atomic_check_writable(path, err);
    if (rc) return rc;
    /* Both parts staged first, then renamed back to back, the history first,
     * so the model's rename commits the save: a failed write leaves the old
     * pair intact; the model file is what readers, a server's reload and
     * cb_bundle_load_files's retry watch, so once it changes the pair is
     * whole; a reader between the renames sees the old model with the new
     * history, refused by fingerprint and retried, never misread. A crash
     * between them leaves the old model working for everything but its
     * users' histories (cb_bundle_load_model leaves the new history out
     * with a note; the other loads refuse it naming the staged model) and
     * one rename of the staged NAME.tmp.PID to finish the save. */
    cb_atomic_file staged[2] = {{0}}; /* the history, then the model: renamed in this order */
    rc = r->has_history ? cb_bundle_history_check(r, err) : CB_OK; /* never copy unverified rows */
    if (!rc && r->has_history) rc = save_history(r, &staged[0], history_path, err);
    if (!rc) rc = save_model(r, &staged[1], path, err);
    if ((rc = cb_atomic_publish(staged, 2, rc, err))) return rc;
    /* a stale history of an older model: removed only once the model is in */
    if (!r->has_history && remove(history_path) != 0 && errno != ENOENT)
        rc = cb_fail(err, CB_EIO, "%s: cannot remove the stale history file: %s", history_path, strerror(errno));
    return rc ? rc : remove_stale_default(r, path, history_path, err);
}

static int save_model(const cb_bundle *r, cb_atomic_file *staged, const char *path, cb_error *err) {
    cb_st_writer *w = cb_st_writer_create(err);
    if (!w) return CB_ENOMEM;
    int rc = CB_OK;
    char names[CB_MODEL_MAX_LAYERS * 4 + 8][40];
    size_t nt = cb_model_n_tensors(r->model);
    for (size_t i = 0; i < nt && !rc; i++) {
        cb_tensor t;
        cb_model_tensor(r->model, i, &t);
        snprintf(names[i], sizeof names[i], "tower.%s", t.name);
        int64_t shape[2] = {t.shape[0], t.shape[1]};
        rc = cb_st_add(w, names[i], CB_ST_F32, shape, (int)t.ndim, t.data, err);
    }
    uint32_t nu = r->n_users, ni = r->n_items;
    ADD("item_vectors", CB_ST_F32, 2, r->item_vecs, ni, r->dim);
    ADD("user_vectors", CB_ST_F32, 2, r->user_vecs, nu, r->dim);
    if (r->rank_bias) ADD("rank_bias", CB_ST_F32, 1, r->rank_bias, ni);
    ADD("lists.popular", CB_ST_I32, 1, r->popular, CB_BUNDLE_TOP_LIST);
    ADD("lists.genre_top", CB_ST_I32, 2, r->genre_top, r->n_genres, CB_BUNDLE_TOP_LIST);
    char gname[2][300];
    json_t *groups = json_array();
    for (uint32_t g = 0; g < r->n_groups && !rc && groups; g++) {
        const cb_bundle_group *gr = &r->groups[g];
        json_t *lv = json_array();
        for (uint32_t l = 0; l < gr->n_levels; l++) json_array_append_new(lv, json_string(gr->levels[l]));
        json_array_append_new(groups, json_pack("{s:s,s:o}", "column", gr->column, "levels", lv));
        snprintf(gname[0], sizeof gname[0], "group.%u.user_level", g);
        snprintf(gname[1], sizeof gname[1], "group.%u.top", g);
        /* cb_st_add copies names, so the buffers can be reused next round */
        ADD(gname[0], CB_ST_I32, 1, gr->user_level, nu);
        ADD(gname[1], CB_ST_I32, 2, gr->top, gr->n_levels, CB_BUNDLE_TOP_LIST);
    }
    if (!rc) rc = set_meta_json(w, "groups", groups, err);
    else json_decref(groups);
    /* ids and titles as binary tables (format 4): loaded without parsing */
    if (!rc) rc = cb_idtab_save(r->users, w, "users", err);
    if (!rc) rc = cb_idtab_save(r->items, w, "items", err);
    if (!rc) rc = cb_idtab_save(r->titles, w, "titles", err);
    if (!rc) rc = set_meta_json(w, "model_config", model_config_json(cb_model_config_of(r->model)), err);
    if (!rc) rc = set_meta_json(w, "features", cb_features_to_json_st(r->features, w, err), err);
    json_t *info = json_pack("{s:s,s:f,s:f,s:b,s:b,s:s}", "dataset", r->dataset, "y_min", (double)r->y_min, "y_max",
                             (double)r->y_max, "binary", r->binary, "weighted", r->weighted, "cbrec_version",
                             CB_VERSION_STRING);
    if (info && r->ratings_layout && json_object_set_new(info, "ratings_layout", json_loads(r->ratings_layout, 0, NULL)))
        info = (json_decref(info), NULL);
    if (!rc) rc = set_meta_json(w, "info", info, err);
    else json_decref(info);
    if (!rc) rc = cb_st_set_meta(w, "fingerprint", r->fingerprint, err);
    if (!rc && r->neighbours) rc = cb_neighbours_save(r->neighbours, w, err); /* optional section */
    if (!rc) rc = cb_st_write_staged(w, staged, path, CB_BUNDLE_FORMAT, CB_BUNDLE_FORMAT_VERSION, err);
    cb_st_writer_free(w);
    return rc;
}

/* ---- loading */

static json_t *meta_json(const cb_st *st, const char *key, cb_error *err) {
    const char *s = cb_st_meta(st, key);
    json_error_t je;
    json_t *j = s ? json_loads(s, 0, &je) : NULL;
    if (!j) cb_fail(err, CB_EFORMAT, "%s: metadata '%s' is missing or not valid JSON", cb_st_path(st), key);
    return j;
}

/* A string table from the JSON list `key` of a format 1-3 file: ids
 * (indexed; strings, unique) or titles (strings or null). */
static int idtab_from_json(cb_idtab **out, const cb_st *st, const char *key, bool indexed, uint32_t expect,
                           cb_error *err) {
    json_t *a = meta_json(st, key, err);
    if (!a) return CB_EFORMAT;
    int rc = CB_OK;
    if (!json_is_array(a) || (expect != UINT32_MAX && json_array_size(a) != expect) || json_array_size(a) >= UINT32_MAX)
        rc = cb_fail(err, CB_EFORMAT, "%s: %s list has the wrong length", cb_st_path(st), key);
    uint32_t n = rc ? 0 : (uint32_t)json_array_size(a);
    const char **names = rc ? NULL : cb_calloc((size_t)n + 1, sizeof *names, err);
    if (!rc && !names) rc = CB_ENOMEM;
    for (uint32_t i = 0; !rc && i < n; i++) {
        json_t *x = json_array_get(a, i);
        if (json_is_string(x) && strlen(json_string_value(x)) == json_string_length(x)) names[i] = json_string_value(x);
        else if (indexed || !json_is_null(x))
            rc = cb_fail(err, CB_EFORMAT, "%s: %s entry %u is not a string", cb_st_path(st), key, i);
    }
    cb_error dup;
    if (!rc && (rc = cb_idtab_from_names(out, names, n, indexed, key, &dup)) != CB_OK)
        cb_fail(err, rc, "%s: %s", cb_st_path(st), dup.msg);
    free(names);
    json_decref(a);
    return rc;
}

/* The entries n of a binary id table from its offsets tensor `name` (n + 1 of them). */
static int table_count(const cb_st *st, const char *name, uint32_t *n, cb_error *err) {
    int64_t shape[1];
    if (!cb_st_tensor(st, name, CB_ST_I32, 1, shape, err)) return CB_EFORMAT;
    if (shape[0] < 1 || shape[0] - 1 > INT32_MAX)
        return cb_fail(err, CB_EFORMAT, "%s: tensor '%s' has %lld entries: it must hold n + 1 >= 1, n < 2^31",
                       cb_st_path(st), name, (long long)shape[0]);
    *n = (uint32_t)(shape[0] - 1);
    return CB_OK;
}

/* The id and title tables, binary (format 4) or JSON (1-3); sets n_users, n_items. */
static int load_ids(cb_bundle *r, cb_error *err) {
    const cb_st *st = r->file;
    if (cb_st_format_version(st) < 4) {
        int rc = idtab_from_json(&r->users, st, "users", true, UINT32_MAX, err);
        if (!rc) rc = idtab_from_json(&r->items, st, "items", true, UINT32_MAX, err);
        if (!rc) rc = idtab_from_json(&r->titles, st, "titles", false, cb_idtab_size(r->items), err);
        r->n_users = cb_idtab_size(r->users);
        r->n_items = cb_idtab_size(r->items);
        return rc;
    }
    int rc = table_count(st, "users.offsets", &r->n_users, err);
    if (!rc) rc = table_count(st, "items.offsets", &r->n_items, err);
    if (rc) return rc;
    rc = cb_idtab_from_st(&r->users, st, "users", r->n_users, true, err);
    if (!rc) rc = cb_idtab_from_st(&r->items, st, "items", r->n_items, true, err);
    if (!rc) rc = cb_idtab_from_st(&r->titles, st, "titles", r->n_items, false, err);
    return rc;
}

/* Fetch a tensor and check its shape; NULL + error otherwise. */
static const void *get(const cb_st *st, const char *name, cb_st_dtype dt, int nd, int64_t d0, int64_t d1,
                       cb_error *err) {
    int64_t shape[2] = {0, 0};
    const void *p = cb_st_tensor(st, name, dt, nd, shape, err);
    if (p && (shape[0] != d0 || (nd > 1 && shape[1] != d1))) {
        cb_fail(err, CB_EFORMAT, "%s: tensor '%s' has an unexpected shape", cb_st_path(st), name);
        return NULL;
    }
    return p;
}

static bool indices_ok(const int32_t *a, size_t n, int32_t lo, int32_t hi) {
    for (size_t i = 0; i < n; i++)
        if (a[i] < lo || a[i] >= hi) return false;
    return true;
}

/* The model configuration from its JSON and the towers from the file's tensors. */
static int load_towers(cb_bundle *r, cb_model_config *cfg, json_t *mc, cb_error *err) {
    const cb_st *st = r->file;
    bool stored = false;
    if (model_config_from_json(cfg, mc, &stored)) return cb_fail(err, CB_EFORMAT, "%s: bad model_config", cb_st_path(st));
    r->caller_train_settings = !stored;
    const char *why = cb_model_config_check(cfg);
    if (why) return cb_fail(err, CB_EFORMAT, "%s: bad model_config: %s", cb_st_path(st), why);
    cb_model *probe;
    int rc = cb_model_create(&probe, cfg, err);
    if (rc) return rc;
    size_t nt = cb_model_n_tensors(probe);
    cb_tensor *ts = cb_calloc(nt, sizeof *ts, err);
    rc = ts ? CB_OK : CB_ENOMEM;
    for (size_t i = 0; i < nt && !rc; i++) {
        cb_model_tensor(probe, i, &ts[i]);
        char name[48];
        snprintf(name, sizeof name, "tower.%s", ts[i].name);
        const void *p = get(st, name, CB_ST_F32, (int)ts[i].ndim, ts[i].shape[0], ts[i].shape[1], err);
        if (!p) rc = CB_EFORMAT;
        ts[i].data = (float *)p; /* create_from_tensors copies */
    }
    if (!rc) rc = cb_model_create_from_tensors(&r->model, cfg, ts, nt, err);
    free(ts);
    cb_model_free(probe);
    return rc;
}

/* ---- post-load validation: one table, one row per field of the model file.
 * The checksum stops accidents; these rows stop a file that is well formed but
 * whose contents would make garbage (NaN vectors, an empty fingerprint, an
 * inverted rating range). Each row returns NULL or why the field is bad (into
 * why[size]); add a row when you add a field. */
typedef const char *(*bundle_check_fn)(const cb_bundle *r, char *why, size_t size);

/* First non-finite value of a float array, or SIZE_MAX. */
static size_t first_non_finite(const float *a, size_t n) {
    for (size_t i = 0; a && i < n; i++)
        if (!isfinite(a[i])) return i;
    return SIZE_MAX;
}

static const char *finite_or_why(const char *name, const float *a, size_t n, size_t row_len, char *why, size_t size) {
    size_t bad = first_non_finite(a, n);
    if (bad == SIZE_MAX) return NULL;
    if (row_len > 1) snprintf(why, size, "tensor '%s' has a non-finite value (%g) in row %zu", name, (double)a[bad], bad / row_len);
    else snprintf(why, size, "tensor '%s' has a non-finite value (%g) at %zu", name, (double)a[bad], bad);
    return why;
}

static const char *check_info(const cb_bundle *r, char *why, size_t size) {
    if (!isfinite(r->y_min) || !isfinite(r->y_max) || r->y_min > r->y_max)
        return snprintf(why, size, "info: bad rating range y_min=%g, y_max=%g", (double)r->y_min, (double)r->y_max), why;
    if (r->binary && (r->y_min < 0.0f || r->y_max > 1.0f))
        return snprintf(why, size, "info: binary labels but range [%g, %g]", (double)r->y_min, (double)r->y_max), why;
    if (r->binary && r->weighted) return snprintf(why, size, "info: both binary labels and weighted events"), why;
    if (!r->dataset) return snprintf(why, size, "info: no dataset name"), why;
    return NULL;
}

static const char *check_fingerprint(const cb_bundle *r, char *why, size_t size) {
    if (!r->fingerprint || !r->fingerprint[0]) return snprintf(why, size, "metadata 'fingerprint' is missing or empty"), why;
    for (const char *c = r->fingerprint; *c; c++)
        if (!isxdigit((unsigned char)*c)) return snprintf(why, size, "metadata 'fingerprint' is not hexadecimal"), why;
    return NULL;
}

static const char *check_sizes(const cb_bundle *r, char *why, size_t size) {
    if (r->dim == 0) return snprintf(why, size, "the towers have no output units"), why;
    if (r->n_items == 0) return snprintf(why, size, "the model has no items"), why;
    return NULL;
}

static const char *check_vectors(const cb_bundle *r, char *why, size_t size) {
    const char *w = finite_or_why("item_vectors", r->item_vecs, (size_t)r->n_items * r->dim, r->dim, why, size);
    if (!w) w = finite_or_why("user_vectors", r->user_vecs, (size_t)r->n_users * r->dim, r->dim, why, size);
    if (!w) w = finite_or_why("rank_bias", r->rank_bias, r->rank_bias ? r->n_items : 0, 1, why, size);
    return w;
}

static const char *check_towers(const cb_bundle *r, char *why, size_t size) {
    size_t nt = r->model ? cb_model_n_tensors(r->model) : 0;
    for (size_t i = 0; i < nt; i++) {
        cb_tensor t;
        cb_model_tensor(r->model, i, &t);
        char name[48];
        snprintf(name, sizeof name, "tower.%s", t.name);
        size_t n = (size_t)t.shape[0] * (t.ndim > 1 ? t.shape[1] : 1);
        if (finite_or_why(name, t.data, n, t.ndim > 1 ? t.shape[1] : 1, why, size)) return why;
    }
    return NULL;
}

static const bundle_check_fn bundle_checks[] = {check_info, check_fingerprint, check_sizes, check_vectors,
                                                check_towers};

int cb_bundle_validate(const cb_bundle *r, const char *path, cb_error *err) {
    char why[256];
    for (size_t i = 0; i < sizeof bundle_checks / sizeof *bundle_checks; i++)
        if (bundle_checks[i](r, why, sizeof why)) return cb_fail(err, CB_EFORMAT, "%s: %s", path, why);
    return CB_OK;
}

int cb_bundle_check_vector(const cb_bundle *r, const float *vec, bool is_user, cb_error *err) {
    const char *what = is_user ? "user" : "item";
    double norm = 0;
    for (uint32_t d = 0; d < r->dim; d++) {
        if (!isfinite(vec[d])) return cb_fail(err, CB_ENUMERIC, "the %s vector has a non-finite value", what);
        norm += (double)vec[d] * vec[d];
    }
    if (!(norm > 0)) return cb_fail(err, CB_ENUMERIC, "the %s vector is all zero: the model cannot place this %s", what, what);
    if (!is_user || r->n_items < 2) return CB_OK;
    /* Widening [lo, hi] never makes a spread range degenerate again, so the
     * scan stops at the first items that differ (usually the second): this
     * runs on every new-user and live-event request, beside the ranking. */
    float lo = INFINITY, hi = -INFINITY;
    for (uint32_t i = 0; i < r->n_items; i++) {
        float s = cb_bundle_rank_score(r, vec, i);
        if (!isfinite(s)) return cb_fail(err, CB_ENUMERIC, "the user's score of item %u is not finite", i);
        lo = s < lo ? s : lo;
        hi = s > hi ? s : hi;
        if (hi - lo > 1e-6f * (fabsf(hi) + fabsf(lo) + 1e-12f)) return CB_OK;
    }
    return cb_fail(err, CB_ENUMERIC, "every item scores the same (%g) for this user: the input makes the model degenerate",
                   (double)hi);
}

/* Rows [lo, hi) of the history: items of the model, ratings in its range. */
static int history_rows_valid(const cb_bundle *r, const char *path, int32_t lo, int32_t hi, cb_error *err) {
    float ylo = r->y_min - 1e-3f, yhi = r->y_max + 1e-3f;
    for (int32_t k = lo; k < hi; k++) {
        if (r->seen_item[k] < 0 || (uint32_t)r->seen_item[k] >= r->n_items)
            return cb_fail(err, CB_EFORMAT, "%s: seen.items[%d] = %d is not an item of the model", path, k, r->seen_item[k]);
        if (!(r->seen_y[k] >= ylo && r->seen_y[k] <= yhi))
            return cb_fail(err, CB_EFORMAT, "%s: tensor 'seen.ratings' holds %g, outside the model's range [%g, %g]", path,
                           (double)r->seen_y[k], (double)r->y_min, (double)r->y_max);
    }
    return CB_OK;
}

/* The seen.* tensors of st (the history file, or an old model file): the
 * offsets checked monotone at once; the rows too, unless the file is
 * sectioned (history format 2), where each user's rows are verified and
 * checked when first read (cb_bundle_history_rows). */
static int history_from(cb_bundle *r, const cb_st *st, cb_error *err) {
    const char *path = cb_st_path(st);
    uint32_t nu = r->n_users;
    const int32_t *off = get(st, "seen.offsets", CB_ST_I32, 1, (int64_t)nu + 1, 0, err);
    if (!off) return CB_EFORMAT;
    for (uint32_t u = 0; u < nu; u++)
        if (off[u] > off[u + 1] || off[0] != 0)
            return cb_fail(err, CB_EFORMAT, "%s: seen.offsets is not monotone", path);
    int32_t nseen = off[nu];
    if (nseen < 0) return cb_fail(err, CB_EFORMAT, "%s: seen.offsets is not monotone", path);
    bool lazy = st == r->history_file && cb_st_format_version(st) >= 2;
    const void *(*tensor)(const cb_st *, const char *, cb_st_dtype, int, int64_t *, cb_error *) =
        lazy ? cb_st_tensor_lazy : cb_st_tensor;
    int64_t shape[3][1];
    if (!(r->seen_item = tensor(st, "seen.items", CB_ST_I32, 1, shape[0], err)) ||
        !(r->seen_y = tensor(st, "seen.ratings", CB_ST_F32, 1, shape[1], err)) ||
        !(r->seen_ts = tensor(st, "seen.timestamps", CB_ST_I32, 1, shape[2], err)))
        return CB_EFORMAT;
    if (shape[0][0] != nseen || shape[1][0] != nseen || shape[2][0] != nseen)
        return cb_fail(err, CB_EFORMAT, "%s: the seen.* tensors do not hold the %d rows seen.offsets says", path, nseen);
    r->seen_off = off;
    r->history_lazy = lazy;
    int rc = lazy ? CB_OK : history_rows_valid(r, path, 0, nseen, err);
    if (!rc) r->has_history = true;
    return rc;
}

int cb_bundle_history_rows(const cb_bundle *r, uint32_t user, cb_error *err) {
    if (!r->history_lazy || user >= r->n_users) return CB_OK;
    int32_t lo = r->seen_off[user], n = r->seen_off[user + 1] - lo;
    if (n == 0) return CB_OK;
    const cb_st *st = r->history_file;
    int rc = cb_st_check(st, r->seen_item + lo, (size_t)n * sizeof *r->seen_item, err);
    if (!rc) rc = cb_st_check(st, r->seen_y + lo, (size_t)n * sizeof *r->seen_y, err);
    if (!rc) rc = cb_st_check(st, r->seen_ts + lo, (size_t)n * sizeof *r->seen_ts, err);
    return rc ? rc : history_rows_valid(r, cb_st_path(st), lo, lo + n, err);
}

int cb_bundle_history_check(const cb_bundle *r, cb_error *err) {
    if (!r->history_lazy || __atomic_load_n(&r->history_checked, __ATOMIC_ACQUIRE)) return CB_OK;
    const cb_st *st = r->history_file;
    int32_t n = r->seen_off[r->n_users];
    int rc = n ? cb_st_check(st, r->seen_item, (size_t)n * sizeof *r->seen_item, err) : CB_OK;
    if (!rc && n) rc = cb_st_check(st, r->seen_y, (size_t)n * sizeof *r->seen_y, err);
    if (!rc && n) rc = cb_st_check(st, r->seen_ts, (size_t)n * sizeof *r->seen_ts, err);
    if (!rc) rc = history_rows_valid(r, cb_st_path(st), 0, n, err);
    if (!rc) __atomic_store_n(&((cb_bundle *)r)->history_checked, 1, __ATOMIC_RELEASE);
    return rc;
}

/* No history: every user's is empty (see bundle.h for what that costs). */
static int no_history(cb_bundle *r, cb_error *err) {
    int32_t *off = rec_alloc(r, (size_t)r->n_users + 1, sizeof *off, err);
    if (!off) return CB_ENOMEM;
    r->seen_off = off;
    r->seen_item = NULL;
    r->seen_y = NULL;
    r->seen_ts = NULL;
    r->has_history = false;
    return CB_OK;
}

/* A model staged by an interrupted save beside model_path ("NAME.tmp.PID",
 * cb_bundle_save_files) whose fingerprint is fp, into buf; false: none. */
static bool staged_model_of(const char *model_path, const char *fp, char *buf, size_t size) {
    const char *slash = strrchr(model_path, '/'), *base = slash ? slash + 1 : model_path;
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - model_path) + 1 : 2, slash ? model_path : "./");
    DIR *d = opendir(dir);
    bool found = false;
    size_t n = strlen(base);
    for (struct dirent *e; d && !found && (e = readdir(d));) {
        const char *pid = e->d_name + n + 5;
        if (strncmp(e->d_name, base, n) || strncmp(e->d_name + n, ".tmp.", 5) || !*pid || pid[strspn(pid, "0123456789")])
            continue;
        cb_st *st = NULL;
        cb_error ignored;
        if ((size_t)snprintf(buf, size, "%s%s", dir, e->d_name) < size &&
            !cb_st_open(&st, buf, CB_BUNDLE_FORMAT, CB_BUNDLE_FORMAT_VERSION, &ignored))
            found = cb_st_meta(st, "fingerprint") && !strcmp(cb_st_meta(st, "fingerprint"), fp);
        cb_st_close(st);
    }
    if (d) closedir(d);
    return found;
}

/* The refusal of a history of another model, with what happened and the way
 * out: a save interrupted between its two renames leaves the new history
 * beside the model it was replacing, and the new model staged beside it. */
static int other_models_history(const cb_bundle *r, const char *model_path, const char *history_path,
                                const char *fp, cb_error *err) {
    char staged[4400];
    if (fp && staged_model_of(model_path, fp, staged, sizeof staged))
        return cb_fail(err, CB_EFORMAT, "%s: the history of another model, the one an interrupted save left staged "
                                        "in %s (its history was moved into place, its model not): rename %s to %s to "
                                        "finish that save, or train again", history_path, staged, staged, model_path);
    return cb_fail(err, CB_EFORMAT, "%s: the history of another model (fingerprint %s; %s is %s): give the history "
                                    "file written with this model (--history FILE), or train again",
                   history_path, fp ? fp : "missing", model_path, r->fingerprint);
}

/* The history of model_path is another model's, and the caller can do
 * without one: loaded as if absent, with a note saying why. */
static int history_left_out(cb_bundle *r, const char *model_path, const char *history_path, const char *fp,
                            cb_error *err) {
    cb_error why;
    other_models_history(r, model_path, history_path, fp, &why);
    cb_st_close(r->history_file);
    r->history_file = NULL;
    size_t n = strlen(why.msg) + 64;
    if (!(r->history_note = cb_malloc(n, err))) return CB_ENOMEM;
    snprintf(r->history_note, n, "%s; left out, as if absent", why.msg);
    return no_history(r, err);
}

/* The history of the model loaded from model_path (see cb_bundle_load_files);
 * *mismatch tells a history of another model, refused unless `optional`. */
static int load_history(cb_bundle *r, const char *model_path, const char *history_path, bool optional,
                        bool *mismatch, cb_error *err) {
    if (!history_path && cb_st_format_version(r->file) < 3) return history_from(r, r->file, err); /* it holds it */
    char beside[4096];
    if (!history_path) {
        if (!cb_bundle_history_path(model_path, beside, sizeof beside))
            return cb_fail(err, CB_EINVAL, "%s: path too long", model_path);
        if (access(beside, F_OK) != 0 && errno == ENOENT) return no_history(r, err);
        history_path = beside;
    }
    int rc = cb_st_open(&r->history_file, history_path, CB_BUNDLE_HISTORY_FORMAT, CB_BUNDLE_HISTORY_VERSION, err);
    if (rc) return rc;
    const char *fp = cb_st_meta(r->history_file, "fingerprint");
    *mismatch = !fp || strcmp(fp, r->fingerprint) != 0;
    if (*mismatch && optional) return history_left_out(r, model_path, history_path, fp, err);
    if (*mismatch) return other_models_history(r, model_path, history_path, fp, err);
    if ((rc = history_from(r, r->history_file, err))) return rc;
    if (!(r->history_path = cb_strdup(history_path, err))) return CB_ENOMEM;
    return CB_OK;
}

int cb_bundle_load(cb_bundle **out, const char *path, cb_error *err) { return cb_bundle_load_files(out, path, NULL, err); }

static int load_once(cb_bundle **out, const char *path, const char *history_path, bool optional, bool *mismatch,
                     cb_error *err);

/* Has the file at `path` been replaced since *seen (another inode, size or
 * modification time)? Polled for up to ~50 ms: a writer renames the model
 * right after the history (cb_bundle_save_files). *seen becomes the new one. */
static bool model_replaced(const char *path, struct stat *seen) {
    for (int i = 0; i < 10; i++) {
        struct stat now;
        if (stat(path, &now) == 0 &&
            (now.st_dev != seen->st_dev || now.st_ino != seen->st_ino || now.st_size != seen->st_size ||
             now.st_mtim.tv_sec != seen->st_mtim.tv_sec || now.st_mtim.tv_nsec != seen->st_mtim.tv_nsec)) {
            *seen = now;
            return true;
        }
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    return false;
}

/* cb_bundle_load_files, and with `optional` cb_bundle_load_model. */
static int load_files(cb_bundle **out, const char *path, const char *history_path, bool optional, cb_error *err) {
    /* A writer replaces the history, then the model (cb_bundle_save_files): a
     * reader between the two renames finds the new history beside the old
     * model. It loads again only while the model file is being replaced; a
     * history of another model beside a model left alone fails at once
     * (after a ~50 ms look), not after reloading the model 200 times, or,
     * when the caller can do without, loads without it. */
    bool mismatch = false;
    struct stat seen = {0};
    if (stat(path, &seen) != 0) memset(&seen, 0, sizeof seen);
    int rc = load_once(out, path, history_path, false, &mismatch, err);
    for (int tries = 0; rc == CB_EFORMAT && mismatch && !history_path && tries < 200; tries++) {
        if (!model_replaced(path, &seen)) break;
        mismatch = false;
        rc = load_once(out, path, history_path, false, &mismatch, err);
    }
    if (rc == CB_EFORMAT && mismatch && optional) rc = load_once(out, path, history_path, true, &mismatch, err);
    return rc;
}

int cb_bundle_load_files(cb_bundle **out, const char *path, const char *history_path, cb_error *err) {
    return load_files(out, path, history_path, false, err);
}

int cb_bundle_load_model(cb_bundle **out, const char *path, cb_error *err) {
    return load_files(out, path, NULL, true, err);
}

static int load_once(cb_bundle **out, const char *path, const char *history_path, bool optional, bool *mismatch,
                     cb_error *err) {
    *out = NULL;
    cb_error_clear(err);
    cb_bundle *r = cb_calloc(1, sizeof *r, err);
    if (!r) return CB_ENOMEM;
    json_t *mc = NULL, *feat = NULL, *info = NULL, *groups = NULL;
    int rc = cb_st_open(&r->file, path, CB_BUNDLE_FORMAT, CB_BUNDLE_FORMAT_VERSION, err);
    if (rc) goto done;
    const cb_st *st = r->file;
    rc = CB_EFORMAT;
    if (!(mc = meta_json(st, "model_config", err)) || !(feat = meta_json(st, "features", err)) ||
        !(info = meta_json(st, "info", err)) || !(groups = meta_json(st, "groups", err)))
        goto done;
    cb_model_config cfg;
    if ((rc = load_towers(r, &cfg, mc, err))) goto done;
    if ((rc = cb_features_from_json_st(&r->features, feat, cb_st_format_version(st) >= 4 ? st : NULL, err))) goto done;
    r->dim = cb_model_out_dim(r->model);
    if ((rc = load_ids(r, err))) goto done;
    rc = CB_EFORMAT;
    if (cb_features_n_items(r->features) != r->n_items) {
        cb_fail(err, CB_EFORMAT, "%s: feature transform and item list disagree", path);
        goto done;
    }
    /* The towers read feature rows of exactly these widths (new users, new items). */
    if (cb_features_user_dim(r->features) != cfg.user_in || cb_features_item_dim(r->features) != cfg.item_in) {
        cb_fail(err, CB_EFORMAT, "%s: the feature transform gives %u user and %u item features, the towers take %u and %u",
                path, cb_features_user_dim(r->features), cb_features_item_dim(r->features), cfg.user_in, cfg.item_in);
        goto done;
    }
    const char *ds_name;
    double ymin, ymax;
    int binary;
    if (json_unpack(info, "{s:s,s:F,s:F,s:b}", "dataset", &ds_name, "y_min", &ymin, "y_max", &ymax, "binary", &binary)) {
        cb_fail(err, CB_EFORMAT, "%s: bad info metadata", path);
        goto done;
    }
    r->y_min = (float)ymin;
    r->y_max = (float)ymax;
    r->binary = binary;
    r->weighted = json_is_true(json_object_get(info, "weighted")); /* absent from older files */
    json_t *layout = json_object_get(info, "ratings_layout");        /* absent from older files too */
    if (layout && !layout_valid(layout)) {
        cb_fail(err, CB_EFORMAT, "%s: bad ratings_layout in the info metadata", path);
        goto done;
    }
    if (layout && !(r->ratings_layout = json_dumps(layout, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
        rc = cb_fail(err, CB_ENOMEM, "out of memory");
        goto done;
    }
    const char *fp = cb_st_meta(st, "fingerprint");
    if (!fp) {
        cb_fail(err, CB_EFORMAT, "%s: metadata 'fingerprint' is missing", path);
        goto done;
    }
    if (!(r->dataset = cb_strdup(ds_name, err)) || !(r->fingerprint = cb_strdup(fp, err))) {
        rc = CB_ENOMEM;
        goto done;
    }
    uint32_t nu = r->n_users, ni = r->n_items;
    r->n_genres = cb_features_n_genres(r->features);
    if (!(r->item_vecs = get(st, "item_vectors", CB_ST_F32, 2, ni, r->dim, err)) ||
        !(r->user_vecs = get(st, "user_vectors", CB_ST_F32, 2, nu, r->dim, err)) ||
        !(r->popular = get(st, "lists.popular", CB_ST_I32, 1, CB_BUNDLE_TOP_LIST, 0, err)) ||
        !(r->genre_top = get(st, "lists.genre_top", CB_ST_I32, 2, r->n_genres, CB_BUNDLE_TOP_LIST, err)))
        goto done;
    /* saved exactly when the model ranks with a popularity prior (rank_bias_of) */
    if (cfg.objective != CB_OBJECTIVE_RATING && cfg.popularity_prior != 0.0f &&
        !(r->rank_bias = get(st, "rank_bias", CB_ST_F32, 1, ni, 0, err)))
        goto done;
    if (!indices_ok(r->popular, CB_BUNDLE_TOP_LIST, -1, (int32_t)ni) ||
        !indices_ok(r->genre_top, (size_t)r->n_genres * CB_BUNDLE_TOP_LIST, -1, (int32_t)ni)) {
        cb_fail(err, CB_EFORMAT, "%s: an item index is out of range", path);
        goto done;
    }
    if (!json_is_array(groups)) {
        cb_fail(err, CB_EFORMAT, "%s: bad groups metadata", path);
        goto done;
    }
    r->groups = cb_calloc(json_array_size(groups) + 1, sizeof *r->groups, err);
    if (!r->groups) goto done;
    for (size_t g = 0; g < json_array_size(groups); g++) {
        json_t *lv;
        const char *col;
        cb_bundle_group *gr = &r->groups[r->n_groups++];
        if (json_unpack(json_array_get(groups, g), "{s:s,s:o}", "column", &col, "levels", &lv) || !json_is_array(lv)) {
            cb_fail(err, CB_EFORMAT, "%s: bad groups metadata", path);
            goto done;
        }
        gr->n_levels = (uint32_t)json_array_size(lv);
        if (!(gr->column = cb_strdup(col, err)) || !(gr->levels = cb_calloc(gr->n_levels, sizeof *gr->levels, err)))
            goto done;
        for (uint32_t l = 0; l < gr->n_levels; l++) {
            json_t *x = json_array_get(lv, l);
            if (!json_is_string(x) || !(gr->levels[l] = cb_strdup(json_string_value(x), err))) {
                cb_fail(err, CB_EFORMAT, "%s: bad group level", path);
                goto done;
            }
        }
        char name[64];
        snprintf(name, sizeof name, "group.%zu.user_level", g);
        if (!(gr->user_level = get(st, name, CB_ST_I32, 1, nu, 0, err))) goto done;
        snprintf(name, sizeof name, "group.%zu.top", g);
        if (!(gr->top = get(st, name, CB_ST_I32, 2, gr->n_levels, CB_BUNDLE_TOP_LIST, err))) goto done;
        if (!indices_ok(gr->user_level, nu, -1, (int32_t)gr->n_levels) ||
            !indices_ok(gr->top, (size_t)gr->n_levels * CB_BUNDLE_TOP_LIST, -1, (int32_t)ni)) {
            cb_fail(err, CB_EFORMAT, "%s: group index out of range", path);
            goto done;
        }
    }
    /* optional section: absent in older files and models trained without it */
    if ((rc = cb_neighbours_load(&r->neighbours, st, ni, err))) goto done;
    rc = cb_bundle_validate(r, path, err);
    if (!rc) rc = load_history(r, path, history_path, optional, mismatch, err);
done:
    json_decref(mc);
    json_decref(feat);
    json_decref(info);
    json_decref(groups);
    if (rc) cb_bundle_free(r);
    else *out = r;
    return rc;
}
