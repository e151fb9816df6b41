/* recommender — the public recommending API of include/cbrec.h (cb_recommender_*),
 * a thin layer over model/bundle.h (the model file) and recommend.h (the
 * pipeline): it owns the loaded model, the optional table and the search
 * context, and copies results into self-contained lists for the caller. */
#include "rec/recommend.h"
#include "rec/recommender_internal.h"

#include <stdlib.h>
#include <string.h>

struct cb_recommender {
    cb_bundle *rec;
    cb_recommend_table table;
    bool has_table;
    cb_recommend_ctx *ctx;
};

CB_API void cb_recommender_free(cb_recommender *h) {
    if (!h) return;
    cb_recommend_ctx_free(h->ctx);
    cb_recommend_table_free(&h->table);
    cb_bundle_free(h->rec);
    free(h);
}

CB_API int cb_recommender_load(cb_recommender **out, const char *model_path, const char *table_path, cb_error *err) {
    if (!out) return cb_fail(err, CB_EINVAL, "cb_recommender_load: out is NULL");
    *out = NULL;
    if (!model_path) return cb_fail(err, CB_EINVAL, "cb_recommender_load: no model path");
    cb_recommender *h = cb_calloc(1, sizeof *h, err);
    if (!h) return CB_ENOMEM;
    int rc = cb_bundle_load(&h->rec, model_path, err);
    if (!rc && table_path) {
        rc = cb_recommend_table_load(&h->table, h->rec, table_path, err);
        h->has_table = rc == CB_OK;
    }
    if (!rc) rc = cb_recommend_ctx_create(&h->ctx, h->rec, h->has_table ? &h->table : NULL, err);
    if (rc) {
        cb_recommender_free(h);
        return rc;
    }
    *out = h;
    return CB_OK;
}

/* ---- over a trained bundle (recommender_internal.h) and saving */

int cb_recommender_from_bundle(cb_recommender **out, cb_bundle *b, cb_error *err) {
    *out = NULL;
    cb_recommender *h = cb_calloc(1, sizeof *h, err);
    if (!h) {
        cb_bundle_free(b);
        return CB_ENOMEM;
    }
    h->rec = b;
    int rc = cb_recommend_ctx_create(&h->ctx, h->rec, NULL, err);
    if (rc) {
        cb_recommender_free(h);
        return rc;
    }
    *out = h;
    return CB_OK;
}

cb_bundle *cb_recommender_bundle(cb_recommender *h) { return h ? h->rec : NULL; }

int cb_recommender_bundle_changed(cb_recommender *h, cb_error *err) {
    cb_recommend_ctx_free(h->ctx);
    h->ctx = NULL;
    if (h->has_table) cb_recommend_table_free(&h->table);
    h->has_table = false;
    return cb_recommend_ctx_create(&h->ctx, h->rec, NULL, err);
}

CB_API int cb_recommender_save(const cb_recommender *h, const char *path, cb_error *err) {
    if (!h || !path) return cb_fail(err, CB_EINVAL, "cb_recommender_save: NULL argument");
    return cb_bundle_save(h->rec, path, err);
}

CB_API size_t cb_recommender_dim(const cb_recommender *h) { return h ? h->rec->dim : 0; }
CB_API size_t cb_recommender_n_items(const cb_recommender *h) { return h ? h->rec->n_items : 0; }

CB_API int cb_recommender_user_vector(const cb_recommender *h, const char *user_id, float *out, cb_error *err) {
    if (!h || !user_id || !out) return cb_fail(err, CB_EINVAL, "cb_recommender_user_vector: NULL argument");
    int64_t u = cb_bundle_user(h->rec, user_id);
    if (u < 0) return cb_fail(err, CB_ENOTFOUND, "unknown user '%s'", user_id);
    memcpy(out, h->rec->user_vecs + (size_t)u * h->rec->dim, h->rec->dim * sizeof *out);
    return CB_OK;
}

CB_API int cb_recommender_new_user_vector(const cb_recommender *h, const char *user_json, float *out, cb_error *err) {
    if (!h || !user_json || !out) return cb_fail(err, CB_EINVAL, "cb_recommender_new_user_vector: NULL argument");
    cb_profile p;
    int rc = cb_recommend_profile_string(&p, h->rec, user_json, err);
    if (!rc) memcpy(out, p.vec, h->rec->dim * sizeof *out);
    cb_recommend_profile_free(&p);
    return rc;
}

CB_API void cb_recommendation_list_free(cb_recommendation_list *l) {
    if (!l) return;
    for (size_t i = 0; l->items && i < l->n; i++) {
        cb_recommendation *x = &l->items[i];
        free((char *)x->item);
        free((char *)x->title);
        for (size_t k = 0; x->reasons && k < x->n_reasons; k++) free((char *)x->reasons[k]);
        free((void *)x->reasons);
        free((void *)x->sources); /* the names themselves are static */
    }
    free(l->items);
    for (size_t k = 0; l->notes && k < l->n_notes; k++) free((char *)l->notes[k]);
    free((void *)l->notes);
    free(l);
}

/* A list of n items with room for notes; fields filled by the caller. */
static cb_recommendation_list *list_new(size_t n, cb_error *err) {
    cb_recommendation_list *l = cb_calloc(1, sizeof *l, err);
    if (l && !(l->items = cb_calloc(n + 1, sizeof *l->items, err))) {
        free(l);
        return NULL;
    }
    return l;
}

static int set_item(cb_recommendation *x, const cb_recommend_ctx *ctx, uint32_t item, cb_error *err) {
    x->item = cb_strdup(cb_recommend_item_id(ctx, item), err);
    x->title = cb_strdup(cb_recommend_item_title(ctx, item), err);
    return x->item && x->title ? CB_OK : CB_ENOMEM;
}

static int add_note(cb_recommendation_list *l, const char *note, cb_error *err) {
    const char **notes = cb_realloc_array((void *)l->notes, l->n_notes + 1, sizeof *notes, err);
    if (!notes) return CB_ENOMEM;
    l->notes = notes;
    if (!(notes[l->n_notes] = cb_strdup(note, err))) return CB_ENOMEM;
    l->n_notes++;
    return CB_OK;
}

CB_API int cb_recommender_similar(const cb_recommender *h, const char *item, size_t k, cb_recommendation_list **out,
                                  cb_error *err) {
    if (!out) return cb_fail(err, CB_EINVAL, "cb_recommender_similar: out is NULL");
    *out = NULL;
    if (!h || !item) return cb_fail(err, CB_EINVAL, "cb_recommender_similar: NULL argument");
    if (k == 0) return cb_fail(err, CB_EINVAL, "k must be at least 1");
    uint32_t n_all = cb_recommend_n_items(h->ctx), idx = 0;
    if (!cb_recommend_item_index(h->ctx, item, &idx)) return cb_fail(err, CB_ENOTFOUND, "unknown item '%s'", item);
    if (k > n_all) k = n_all; /* cb_recommend_similar clamps further and says so */
    cb_neighbor *nb = cb_malloc(k * sizeof *nb, err);
    cb_recommendation_list *l = nb ? list_new(k, err) : NULL;
    char note[256];
    size_t n = 0;
    int rc = l ? cb_recommend_similar(h->ctx, idx, k, nb, &n, note, sizeof note, err) : CB_ENOMEM;
    if (!rc && note[0]) rc = add_note(l, note, err);
    for (size_t i = 0; !rc && i < n; i++) {
        l->n = i + 1;
        l->items[i].score = nb[i].distance;
        rc = set_item(&l->items[i], h->ctx, nb[i].item, err);
    }
    free(nb);
    if (rc) {
        cb_recommendation_list_free(l);
        return rc;
    }
    *out = l;
    return CB_OK;
}

CB_API int cb_recommender_recommend(const cb_recommender *h, const char *user_id, const char *user_json, size_t n,
                                    cb_recommendation_list **out, cb_error *err) {
    if (!out) return cb_fail(err, CB_EINVAL, "cb_recommender_recommend: out is NULL");
    *out = NULL;
    if (!h || !user_id == !user_json)
        return cb_fail(err, CB_EINVAL, "cb_recommender_recommend: give exactly one of user_id and user_json");
    if (n == 0 || n > UINT32_MAX) return cb_fail(err, CB_EINVAL, "n must be between 1 and 2^32-1");
    cb_profile p = {0};
    cb_recommend_result res = {0};
    cb_recommendation_list *l = NULL;
    cb_recommend_config cfg;
    cb_recommend_config_default(&cfg);
    cfg.n = (uint32_t)n;
    int rc;
    if (user_id) {
        int64_t u = cb_bundle_user(h->rec, user_id);
        rc = u < 0 ? cb_fail(err, CB_ENOTFOUND, "unknown user '%s'", user_id)
                   : cb_recommend_profile_user(&p, h->rec, (uint32_t)u, err);
    } else {
        rc = cb_recommend_profile_string(&p, h->rec, user_json, err);
    }
    if (!rc) rc = cb_recommend(h->ctx, &p, &cfg, NULL, &res, err);
    if (!rc && !(l = list_new(res.n, err))) rc = CB_ENOMEM;
    for (size_t i = 0; !rc && i < res.n_notes; i++) rc = add_note(l, res.notes[i], err);
    for (size_t i = 0; !rc && i < res.n; i++) {
        const cb_recommend_item *it = &res.items[i];
        cb_recommendation *x = &l->items[i];
        l->n = i + 1;
        x->score = it->score;
        if ((rc = set_item(x, h->ctx, it->item, err))) break;
        const char **sources = cb_calloc(CB_SRC_COUNT, sizeof *sources, err);
        if (!sources) {
            rc = CB_ENOMEM;
            break;
        }
        x->sources = sources;
        for (int s = 0; s < CB_SRC_COUNT; s++)
            if (it->sources & (1u << s)) sources[x->n_sources++] = cb_recommend_source_name((cb_source)s);
        /* hand the reason strings over instead of copying them */
        x->reasons = (const char *const *)it->reasons;
        x->n_reasons = it->n_reasons;
        res.items[i].reasons = NULL;
        res.items[i].n_reasons = 0;
    }
    cb_recommend_result_free(&res);
    cb_recommend_profile_free(&p);
    if (rc) {
        cb_recommendation_list_free(l);
        return rc;
    }
    *out = l;
    return CB_OK;
}
