/* Tests of the recommend module and the public recommending API, on tiny
 * models trained here on synthetic data and on events files written here
 * (1 epoch, small towers), so they run
 * in seconds, also under ASan. The API part runs examples/embed.c, which
 * includes nothing but include/cbrec.h (it is included first, before any
 * internal header, so it cannot see internal declarations). */
#define EMBED_MAIN embed_main
#include "../examples/embed.c"

#include "rec/recommend.h"
#include "testutil.h"
#include "rec/recommender_internal.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>

typedef struct fixture {
    char *dir, *model_path, *table_path, *other_path;
    cb_dataset *ds;
    cb_bundle *rec, *other;
    cb_recommend_table table;
    cb_recommender *exact, *with_table;
    uint32_t cold_user; /* a user with no training ratings */
} fixture;

static cb_bundle *train_tiny(const cb_dataset *ds, cb_split *sp, uint64_t seed) {
    cb_error err;
    cb_model_config mc;
    cb_model_config_default(&mc);
    mc.objective = CB_OBJECTIVE_RATING; /* these tests pin the lectures' rating ranking */
    mc.n_user_layers = mc.n_item_layers = 1;
    mc.user_layers[0] = mc.item_layers[0] = 16;
    mc.dim = 8;
    mc.epochs = 1;
    mc.batch_size = 64;
    mc.seed = seed;
    mc.threads = 1;
    cb_feature_config fc;
    cb_feature_config_default(&fc);
    fc.top_k_popular = 20;
    cb_bundle_train_input in = {.ds = ds, .train_idx = sp->train, .n_train = sp->n_train, .features = &fc, .model = mc,
                             .scale_targets = true};
    cb_bundle *r = NULL;
    int rc = cb_bundle_train(&r, &in, NULL, &err);
    if (rc) fprintf(stderr, "train: %s\n", err.msg);
    assert_int_equal(rc, CB_OK);
    return r;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    cb_error err;
    cb_synth_config sc;
    cb_synth_config_default(&sc);
    sc.n_users = 120;
    sc.n_items = 150;
    sc.n_genres = 6;
    sc.n_ratings = 4000;
    assert_int_equal(cb_synth_generate(&f->ds, &sc, &err), CB_OK);
    /* cold-user split: the held-out users are known but have no training ratings */
    cb_split sp;
    assert_int_equal(cb_split_make(&sp, f->ds, CB_SPLIT_COLD_USERS, 0.1, 7, &err), CB_OK);
    f->rec = train_tiny(f->ds, &sp, 1);
    f->other = train_tiny(f->ds, &sp, 2);
    cb_split_free(&sp);
    f->cold_user = UINT32_MAX;
    for (uint32_t u = 0; u < f->rec->n_users && f->cold_user == UINT32_MAX; u++)
        if (f->rec->seen_off[u] == f->rec->seen_off[u + 1]) f->cold_user = u;
    assert_true(f->cold_user != UINT32_MAX);
    f->dir = tu_tmpdir();
    f->model_path = tu_path(f->dir, "m.cbrec");
    f->table_path = tu_path(f->dir, "t.table");
    f->other_path = tu_path(f->dir, "other.table");
    assert_int_equal(cb_bundle_save(f->rec, f->model_path, &err), CB_OK);
    bool clamped;
    assert_int_equal(cb_recommend_table_build(&f->table, f->rec, 20, 2, &clamped, &err), CB_OK);
    assert_false(clamped);
    assert_int_equal(cb_recommend_table_save(&f->table, f->table_path, f->rec->fingerprint, &err), CB_OK);
    cb_recommend_table other = {0};
    assert_int_equal(cb_recommend_table_build(&other, f->other, 5, 1, NULL, &err), CB_OK);
    assert_int_equal(cb_recommend_table_save(&other, f->other_path, f->other->fingerprint, &err), CB_OK);
    cb_recommend_table_free(&other);
    assert_int_equal(cb_recommender_wrap(&f->exact, f->rec, &err), CB_OK);
    assert_int_equal(cb_recommender_wrap(&f->with_table, f->rec, &err), CB_OK);
    assert_int_equal(cb_recommender_load_table(f->with_table, f->table_path, &err), CB_OK);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    cb_recommender_free(f->exact);
    cb_recommender_free(f->with_table);
    cb_recommend_table_free(&f->table);
    cb_bundle_free(f->rec);
    cb_bundle_free(f->other);
    cb_dataset_free(f->ds);
    tu_rmrf(f->dir);
    free(f->dir);
    free(f->model_path);
    free(f->table_path);
    free(f->other_path);
    free(f);
    return 0;
}

static void similar_table_equals_exact(void **state) {
    fixture *f = *state;
    cb_error err;
    cb_neighbor a[10], b[10];
    for (uint32_t item = 0; item < f->rec->n_items; item += 7) {
        size_t na, nb;
        assert_int_equal(cb_recommend_similar(f->exact, item, 10, a, &na, NULL, 0, &err), CB_OK);
        assert_int_equal(cb_recommend_similar(f->with_table, item, 10, b, &nb, NULL, 0, &err), CB_OK);
        assert_int_equal(na, 10);
        assert_int_equal(nb, 10);
        for (size_t j = 0; j < 10; j++) {
            assert_int_equal(a[j].item, b[j].item);
            assert_true(a[j].distance == b[j].distance);
            assert_int_not_equal(a[j].item, item);
            if (j) assert_true(a[j - 1].distance <= a[j].distance);
        }
    }
    /* the table loaded back from disk gives the same rows */
    cb_recommend_table t2;
    assert_int_equal(cb_recommend_table_load(&t2, f->rec, f->table_path, &err), CB_OK);
    assert_int_equal(t2.knn.k, 20);
    assert_memory_equal(t2.knn.neighbors, f->table.knn.neighbors, t2.knn.n_items * t2.knn.k * sizeof(int32_t));
    cb_recommend_table_free(&t2);
}

static void similar_k_clamped(void **state) {
    fixture *f = *state;
    cb_error err;
    size_t k = f->rec->n_items + 50, n;
    cb_neighbor *out = calloc(k, sizeof *out);
    char note[256];
    assert_int_equal(cb_recommend_similar(f->with_table, 3, k, out, &n, note, sizeof note, &err), CB_OK);
    assert_int_equal(n, f->rec->n_items - 1);
    assert_non_null(strstr(note, "more than"));
    for (size_t j = 0; j < n; j++) assert_int_not_equal(out[j].item, 3);
    assert_int_equal(cb_recommend_similar(f->exact, f->rec->n_items + 3, 5, out, &n, NULL, 0, &err), CB_ENOTFOUND);
    free(out);
}

static void find_item_by_id_and_title(void **state) {
    fixture *f = *state;
    cb_error err;
    size_t item, cands[5];
    size_t nc;
    const char *id = cb_bundle_item_id(f->rec, 17);
    assert_int_equal(cb_recommender_find_item(f->exact, id, &item, cands, 5, &nc, &err), CB_OK);
    assert_int_equal(item, 17);
    /* exact title, in another case */
    char title[512];
    snprintf(title, sizeof title, "%s", cb_bundle_item_title(f->rec, 42));
    for (char *p = title; *p; p++) *p = (char)toupper((unsigned char)*p);
    assert_int_equal(cb_recommender_find_item(f->exact, title, &item, cands, 5, &nc, &err), CB_OK);
    assert_int_equal(item, 42);
    /* "Story" is in every synthetic title: ambiguous, candidates listed */
    assert_int_equal(cb_recommender_find_item(f->exact, "story", &item, cands, 5, &nc, &err), CB_ENOTFOUND);
    assert_int_equal(nc, 5);
    assert_non_null(strstr(err.msg, "matches"));
    for (size_t i = 1; i < nc; i++)
        assert_true(cb_features_item_count(f->rec->features, cands[i - 1]) >=
                    cb_features_item_count(f->rec->features, cands[i]));
    assert_int_equal(cb_recommender_find_item(f->exact, "no such film zzz", &item, cands, 5, &nc, &err), CB_ENOTFOUND);
    assert_int_equal(nc, 0);
    /* an empty query is no part of a title (it matched every one) */
    assert_int_equal(cb_recommender_find_item(f->exact, " ", &item, cands, 5, &nc, &err), CB_EINVAL);
    assert_int_equal(nc, 0);
    assert_non_null(strstr(err.msg, "empty item id or title"));
}

static bool rated(const cb_bundle *r, uint32_t u, uint32_t item) {
    for (int32_t k = r->seen_off[u]; k < r->seen_off[u + 1]; k++)
        if ((uint32_t)r->seen_item[k] == item) return true;
    return false;
}

static void recommend_known_user(void **state) {
    fixture *f = *state;
    cb_error err;
    cb_recommend_config cfg;
    cb_recommend_config_default(&cfg);
    for (uint32_t u = 0; u < f->rec->n_users; u += 9) {
        if (u == f->cold_user || f->rec->seen_off[u] == f->rec->seen_off[u + 1]) continue;
        cb_profile p;
        cb_recommend_result a, b;
        assert_int_equal(cb_recommend_profile_user(&p, f->rec, u, &err), CB_OK);
        assert_false(p.cold);
        assert_int_equal(cb_recommend(f->exact, &p, &cfg, NULL, &a, &err), CB_OK);
        assert_int_equal(cb_recommend(f->with_table, &p, &cfg, NULL, &b, &err), CB_OK);
        assert_int_equal(a.n, 10);
        assert_int_equal(b.n, a.n);
        for (size_t i = 0; i < a.n; i++) {
            assert_int_equal(a.items[i].item, b.items[i].item); /* table or exact: same answer */
            assert_false(rated(f->rec, u, a.items[i].item));
            assert_true(a.items[i].n_reasons >= 2);
            assert_non_null(strstr(a.items[i].reasons[a.items[i].n_reasons - 1], "predicted rating"));
            assert_true(a.items[i].sources != 0);
            if (i) assert_true(a.items[i - 1].score >= a.items[i].score);
            float pred = cb_bundle_predict_vec(f->rec, p.vec, a.items[i].item);
            assert_true(fabsf(pred - a.items[i].score) < 1e-4f);
        }
        cb_recommend_result_free(&a);
        cb_recommend_result_free(&b);
        cb_recommend_profile_free(&p);
    }
}

static void sources_can_be_switched_off(void **state) {
    fixture *f = *state;
    cb_error err;
    cb_recommend_config cfg;
    cb_recommend_config_default(&cfg);
    cfg.embedding_items = 0;
    cfg.top_genres = 0;
    cfg.group_items = 0;
    cfg.n = 30;
    cb_profile p;
    cb_recommend_result res;
    assert_int_equal(cb_recommend_profile_user(&p, f->rec, 0, &err), CB_OK);
    assert_int_equal(cb_recommend(f->exact, &p, &cfg, NULL, &res, &err), CB_OK);
    assert_true(res.n > 0);
    for (size_t i = 0; i < res.n; i++) {
        assert_int_equal(res.items[i].sources, 1u << CB_SRC_SIMILAR);
        assert_non_null(strstr(res.items[i].reasons[0], "similar to "));
    }
    cb_recommend_result_free(&res);
    /* every source off: no items, and a note saying why */
    cfg.recent_items = 0;
    assert_int_equal(cb_recommend(f->exact, &p, &cfg, NULL, &res, &err), CB_OK);
    assert_int_equal(res.n, 0);
    assert_true(res.n_notes >= 1);
    cb_recommend_result_free(&res);
    cb_recommend_profile_free(&p);
}

static void n_larger_than_catalog_is_clamped(void **state) {
    fixture *f = *state;
    cb_error err;
    cb_recommend_config cfg;
    cb_recommend_config_default(&cfg);
    cfg.n = 100000;
    cfg.embedding_items = 100000;
    cb_profile p;
    cb_recommend_result res;
    assert_int_equal(cb_recommend_profile_user(&p, f->rec, 1, &err), CB_OK);
    assert_int_equal(cb_recommend(f->exact, &p, &cfg, NULL, &res, &err), CB_OK);
    assert_int_equal(res.n, f->rec->n_items - p.n_ratings); /* everything not rated */
    assert_non_null(strstr(res.notes[0], "larger than the catalog"));
    cb_recommend_result_free(&res);
    cb_recommend_profile_free(&p);
}

static void cold_user_falls_back(void **state) {
    fixture *f = *state;
    cb_error err;
    cb_recommend_config cfg;
    cb_recommend_config_default(&cfg);
    cb_profile p;
    cb_recommend_result res;
    assert_int_equal(cb_recommend_profile_user(&p, f->rec, f->cold_user, &err), CB_OK);
    assert_true(p.cold);
    assert_int_equal(cb_recommend(f->exact, &p, &cfg, NULL, &res, &err), CB_OK);
    assert_int_equal(res.n, 10);
    assert_non_null(strstr(res.notes[0], "no training ratings"));
    cb_recommend_result_free(&res);
    cb_recommend_profile_free(&p);
}

static void new_user_from_json(void **state) {
    fixture *f = *state;
    cb_error err;
    cb_recommend_config cfg;
    cb_recommend_config_default(&cfg);
    cfg.embedding_items = 0;
    cfg.group_items = 0;
    const char *genre = cb_features_genre_name(f->rec->features, 2);
    char json[512];
    snprintf(json, sizeof json, "{\"genre_ratings\": {\"%s\": 5}, \"ratings\": {\"%s\": 4.5}, \"gender\": \"F\"}", genre,
             cb_bundle_item_id(f->rec, 5));
    cb_profile p;
    cb_recommend_result res;
    assert_int_equal(cb_recommend_profile_string(&p, f->rec, json, &err), CB_OK);
    assert_int_equal(p.n_ratings, 1);
    assert_int_equal(p.n_prefs, 1);
    assert_int_equal(cb_recommend(f->exact, &p, &cfg, NULL, &res, &err), CB_OK);
    bool genre_reason = false;
    for (size_t i = 0; i < res.n; i++) {
        assert_int_not_equal(res.items[i].item, 5); /* rated: never recommended */
        for (size_t k = 0; k < res.items[i].n_reasons; k++)
            if (strstr(res.items[i].reasons[k], genre)) genre_reason = true;
    }
    assert_true(genre_reason);
    cb_recommend_result_free(&res);
    cb_recommend_profile_free(&p);
    /* bad inputs: clear errors */
    assert_int_equal(cb_recommend_profile_string(&p, f->rec, "{\"genre_ratings\": {\"X\": 5}", &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, ":1:"));
    /* an unknown genre is a note, as an unknown value of "preferences" is; an error under strict */
    assert_int_equal(cb_recommend_profile_string(&p, f->rec, "{\"genre_ratings\": {\"NoSuchGenre\": 5}}", &err), CB_OK);
    assert_int_equal(p.n_prefs, 0);
    assert_non_null(strstr(p.note, "'NoSuchGenre' ignored: not a genre"));
    cb_recommend_profile_free(&p);
    assert_int_equal(cb_recommend_profile_string(&p, f->rec, "{\"strict\": true, \"genre_ratings\": {\"NoSuchGenre\": 5}}",
                                                 &err),
                     CB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "NoSuchGenre"));
    assert_int_equal(cb_recommend_profile_string(&p, f->rec, "{\"ratings\": {\"nope\": 5}}", &err), CB_ENOTFOUND);
    assert_int_equal(cb_recommend_profile_string(&p, f->rec, "{\"ratings\": {\"1\": 99}}", &err), CB_EINVAL);
    assert_int_equal(cb_recommend_profile_string(&p, f->rec, "[1, 2]", &err), CB_EPARSE);
    assert_int_equal(cb_recommend_profile_string(&p, f->rec, "{\"no_such_column\": 3}", &err), CB_ENOTFOUND);
    char *bad = tu_write(f->dir, "bad.json", "{\n  \"genre_ratings\": {\n    \"A\": 5,\n  }\n}\n");
    assert_int_equal(cb_recommend_profile_file(&p, f->rec, bad, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "bad.json:4:"));
    free(bad);
}

static void table_from_another_model_is_refused(void **state) {
    fixture *f = *state;
    cb_error err;
    cb_recommend_table t;
    assert_int_equal(cb_recommend_table_load(&t, f->rec, f->other_path, &err), CB_EFORMAT);
    assert_non_null(strstr(err.msg, "another model"));
    assert_null(t.knn.neighbors);
    cb_recommender *h;
    assert_int_equal(cb_recommender_load(&h, f->model_path, f->other_path, &err), CB_EFORMAT);
    assert_null(h);
}

/* A model file whose feature transform does not match its towers' input
 * widths (it can only be crafted: the checksum covers both) is refused on
 * load instead of letting the towers read past the feature rows. */
static void features_and_towers_must_agree(void **state) {
    fixture *f = *state;
    cb_error err;
    cb_feature_config fc;
    cb_feature_config_default(&fc);
    fc.top_k_popular = 5; /* the model's transform has 20 */
    uint32_t *all = malloc(f->ds->n_ratings * sizeof *all);
    for (size_t i = 0; i < f->ds->n_ratings; i++) all[i] = (uint32_t)i;
    cb_features *narrow = NULL;
    assert_int_equal(cb_features_fit(&narrow, f->ds, all, f->ds->n_ratings, &fc, &err), CB_OK);
    assert_int_not_equal(cb_features_user_dim(narrow), cb_features_user_dim(f->rec->features));
    cb_features *keep = f->rec->features;
    f->rec->features = narrow;
    char *path = tu_path(f->dir, "mismatch.cbrec");
    int rc = cb_bundle_save(f->rec, path, &err);
    f->rec->features = keep;
    cb_features_free(narrow);
    assert_int_equal(rc, CB_OK);
    cb_bundle *r = NULL;
    assert_int_equal(cb_bundle_load(&r, path, &err), CB_EFORMAT);
    assert_null(r);
    assert_non_null(strstr(err.msg, "towers take"));
    free(path);
    free(all);
}

static void block_list_filters(void **state) {
    fixture *f = *state;
    cb_error err;
    const char *genre = cb_features_genre_name(f->rec->features, 0);
    char text[256];
    snprintf(text, sizeof text, "# comment\ngenre %s\nitem %s\n%s\n", genre, cb_bundle_item_id(f->rec, 1),
             cb_bundle_item_id(f->rec, 2));
    char *path = tu_write(f->dir, "block.txt", text);
    cb_blocklist bl;
    assert_int_equal(cb_recommend_block_load(&bl, f->exact, path, &err), CB_OK);
    assert_int_equal(bl.n_blocked_values, 1);
    assert_int_equal(bl.n_blocked_items, 2);
    cb_recommend_config cfg;
    cb_recommend_config_default(&cfg);
    cfg.n = 40;
    cb_profile p;
    cb_recommend_result res;
    assert_int_equal(cb_recommend_profile_user(&p, f->rec, 3, &err), CB_OK);
    assert_int_equal(cb_recommend(f->exact, &p, &cfg, &bl, &res, &err), CB_OK);
    assert_true(res.n > 0);
    for (size_t i = 0; i < res.n; i++) {
        const uint32_t *gl;
        uint32_t ng;
        assert_int_equal(cb_features_item_genres(f->rec->features, res.items[i].item, &gl, &ng), CB_OK);
        for (uint32_t k = 0; k < ng; k++) assert_int_not_equal(gl[k], 0);
        assert_true(res.items[i].item != 1 && res.items[i].item != 2);
    }
    cb_recommend_result_free(&res);
    cb_recommend_profile_free(&p);
    cb_recommend_block_free(&bl);
    free(path);
    path = tu_write(f->dir, "block2.txt", "item 1\nitem no-such-item\n");
    assert_int_equal(cb_recommend_block_load(&bl, f->exact, path, &err), CB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "block2.txt:2:"));
    free(path);
}

static void diversity_genre_cap_and_mmr(void **state) {
    fixture *f = *state;
    cb_error err;
    cb_recommend_config cfg;
    cb_recommend_config_default(&cfg);
    cfg.diversity = CB_DIV_GENRE_CAP;
    cfg.genre_cap = 2;
    cb_profile p;
    cb_recommend_result res;
    assert_int_equal(cb_recommend_profile_user(&p, f->rec, 4, &err), CB_OK);
    assert_int_equal(cb_recommend(f->exact, &p, &cfg, NULL, &res, &err), CB_OK);
    uint32_t count[64] = {0};
    for (size_t i = 0; i < res.n; i++) {
        const uint32_t *gl;
        uint32_t ng;
        cb_features_item_genres(f->rec->features, res.items[i].item, &gl, &ng);
        for (uint32_t k = 0; k < ng; k++) assert_true(++count[gl[k]] <= 2);
    }
    cb_recommend_result_free(&res);
    /* MMR with lambda 1 is pure relevance: the plain ranking */
    cb_recommend_result plain;
    cfg.diversity = CB_DIV_NONE;
    cfg.genre_cap = 0; /* a cap > 0 applies without a diversity mode too */
    assert_int_equal(cb_recommend(f->exact, &p, &cfg, NULL, &plain, &err), CB_OK);
    cfg.diversity = CB_DIV_MMR;
    cfg.mmr_lambda = 1.0f;
    assert_int_equal(cb_recommend(f->exact, &p, &cfg, NULL, &res, &err), CB_OK);
    assert_int_equal(res.n, plain.n);
    for (size_t i = 0; i < res.n; i++) assert_int_equal(res.items[i].item, plain.items[i].item);
    cb_recommend_result_free(&res);
    cb_recommend_result_free(&plain);
    /* an MMR lambda without MMR is refused: it weighs nothing (it was taken and ignored) */
    cfg.diversity = CB_DIV_NONE;
    cfg.mmr_lambda = 0.3f;
    assert_int_equal(cb_recommend(f->exact, &p, &cfg, NULL, &res, &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "give diversity mmr too"));
    cfg.diversity = CB_DIV_MMR;
    /* a cap with MMR is refused: one of them would be dropped unsaid */
    cfg.genre_cap = 2;
    assert_int_equal(cb_recommend(f->exact, &p, &cfg, NULL, &res, &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "genre cap does not combine with MMR"));
    cb_recommend_profile_free(&p);
}

static void add_item_without_retraining(void **state) {
    fixture *f = *state;
    cb_error err;
    const char *genre = cb_features_genre_name(f->rec->features, 1);
    char text[256];
    snprintf(text, sizeof text, "{\"id\": \"new-1\", \"title\": \"Brand New (2024)\", \"genres\": [\"%s\"]}", genre);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    float vec[8];
    char *id, *title;
    assert_int_equal(cb_recommend_embed_item(f->rec, j, "item.json", vec, &id, &title, NULL, 0, &err), CB_OK);
    assert_string_equal(id, "new-1");
    cb_recommend_table t;
    assert_int_equal(cb_recommend_table_load(&t, f->rec, f->table_path, &err), CB_OK);
    assert_int_equal(cb_recommend_table_add(&t, f->rec, id, title, NULL, NULL, vec, &err), CB_OK);
    assert_int_equal(cb_recommend_table_add(&t, f->rec, id, title, NULL, NULL, vec, &err), CB_EINVAL); /* duplicate id */
    /* the grown table equals a fresh build over the vectors with the new one appended */
    size_t n = f->rec->n_items, d = f->rec->dim;
    float *V = malloc((n + 1) * d * sizeof *V);
    memcpy(V, f->rec->item_vecs, n * d * sizeof *V);
    memcpy(V + n * d, vec, d * sizeof *V);
    cb_knn_table fresh;
    assert_int_equal(cb_knn_similar_table(&fresh, V, n + 1, d, t.knn.k, 1, &err), CB_OK);
    assert_memory_equal(fresh.neighbors, t.knn.neighbors, (n + 1) * t.knn.k * sizeof(int32_t));
    cb_knn_table_free(&fresh);
    free(V);
    /* saved with the new item's id and title; `similar` on it works through the table */
    char *path = tu_path(f->dir, "t2.table");
    assert_int_equal(cb_recommend_table_save(&t, path, f->rec->fingerprint, &err), CB_OK);
    cb_recommend_table t2;
    int rc = cb_recommend_table_load(&t2, f->rec, path, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, CB_OK);
    assert_int_equal(t2.n_extra, 1);
    cb_recommender *ctx;
    assert_int_equal(cb_recommender_wrap(&ctx, f->rec, &err), CB_OK);
    assert_int_equal(cb_recommender_load_table(ctx, path, &err), CB_OK);
    size_t item, cands[3];
    size_t nc, nn;
    assert_int_equal(cb_recommender_find_item(ctx, "brand new", &item, cands, 3, &nc, &err), CB_OK);
    assert_int_equal(item, n);
    cb_neighbor nb[5];
    assert_int_equal(cb_recommend_similar(ctx, (uint32_t)item, 5, nb, &nn, NULL, 0, &err), CB_OK);
    assert_int_equal(nn, 5);
    assert_string_equal(cb_recommender_item_id(ctx, item), "new-1");
    /* the public call does the same from JSON: same vector, same neighbours */
    cb_recommender *pub;
    size_t added;
    assert_int_equal(cb_recommender_wrap(&pub, f->rec, &err), CB_OK);
    /* no table yet: kept in the recommender; a table loaded later receives it */
    assert_int_equal(cb_recommender_add_item(pub, text, &added, &err), CB_OK);
    assert_int_equal(added, n);
    assert_int_equal(cb_recommender_item_count(pub), n + 1);
    assert_int_equal(cb_recommender_table_k(pub), 0);
    assert_int_equal(cb_recommender_load_table(pub, f->table_path, &err), CB_OK);
    assert_int_equal(cb_recommender_item_count(pub), n + 1);
    assert_memory_equal(pub->table.knn.neighbors, t2.knn.neighbors, (n + 1) * t2.knn.k * sizeof(int32_t));
    assert_int_equal(cb_recommender_add_item(pub, text, &added, &err), CB_EINVAL); /* duplicate id */
    assert_int_equal(cb_recommender_add_item(pub, "{\"id\": ", &added, &err), CB_EPARSE);
    cb_recommender_free(pub);
    cb_recommender_free(ctx);
    cb_recommend_table_free(&t2);
    /* another model refuses it too */
    assert_int_equal(cb_recommend_table_load(&t2, f->other, path, &err), CB_EFORMAT);
    /* a file whose added items repeat an id is refused (the check ran before the id was read) */
    assert_int_equal(cb_recommend_table_add(&t, f->rec, "new-2", NULL, NULL, NULL, vec, &err), CB_OK);
    free(t.extra_ids[1]);
    t.extra_ids[1] = strdup("new-1");
    assert_int_equal(cb_recommend_table_save(&t, path, f->rec->fingerprint, &err), CB_OK);
    assert_int_equal(cb_recommend_table_load(&t2, f->rec, path, &err), CB_EFORMAT);
    assert_non_null(strstr(err.msg, "added item 1 is malformed or clashes with another item"));
    cb_recommend_table_free(&t);
    json_decref(j);
    free(id);
    free(title);
    free(path);
    /* a malformed item */
    j = json_loads("{\"title\": \"no id\"}", 0, &je);
    assert_int_equal(cb_recommend_embed_item(f->rec, j, "item.json", vec, &id, &title, NULL, 0, &err), CB_EPARSE);
    json_decref(j);
}

static void empty_catalog_is_an_error(void **state) {
    (void)state;
    cb_bundle empty;
    memset(&empty, 0, sizeof empty);
    cb_recommender *ctx = NULL;
    cb_error err;
    assert_int_equal(cb_recommender_wrap(&ctx, &empty, &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "empty"));
    assert_null(ctx);
    cb_recommend_table t;
    assert_int_equal(cb_recommend_table_build(&t, &empty, 5, 1, NULL, &err), CB_EINVAL);
}

static void public_api(void **state) {
    fixture *f = *state;
    cb_error err;
    cb_recommender *h;
    assert_int_equal(cb_recommender_load(&h, f->model_path, f->table_path, &err), CB_OK);
    assert_int_equal(cb_recommender_dim(h), f->rec->dim);
    assert_int_equal(cb_recommender_user_count(h), f->rec->n_users);
    assert_int_equal(cb_recommender_item_count(h), f->rec->n_items);
    assert_int_equal(cb_recommender_table_k(h), 20);
    assert_null(cb_recommender_item_id(h, f->rec->n_items));
    cb_config *opts;
    assert_int_equal(cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err), CB_OK);
    assert_int_equal(cb_config_set(opts, "n", "7", &err), CB_OK);
    assert_int_equal(cb_config_set(opts, "n", "0", &err), CB_EINVAL);
    assert_int_equal(cb_config_set(opts, "rank-by", "nonsense", &err), CB_EINVAL);
    cb_list *l;
    const char *user = cb_bundle_user_id(f->rec, 0);
    assert_int_equal(cb_recommender_recommend(h, user, NULL, opts, &l, &err), CB_OK);
    assert_int_equal(cb_list_size(l), 7);
    assert_string_equal(cb_list_criterion(l), "predicted rating");
    for (size_t i = 0; i < cb_list_size(l); i++) {
        assert_true(cb_list_n_reasons(l, i) >= 2);
        assert_true(cb_list_n_sources(l, i) >= 1);
        assert_non_null(cb_list_source(l, i, 0));
        assert_null(cb_list_source(l, i, cb_list_n_sources(l, i)));
        assert_false(rated(f->rec, 0, (uint32_t)cb_list_item(l, i)));
        assert_string_equal(cb_list_item_id(l, i), cb_bundle_item_id(f->rec, (uint32_t)cb_list_item(l, i)));
        assert_true(cb_list_score(l, i) == cb_list_rating(l, i)); /* ranked by the predicted rating */
        if (i) assert_true(cb_list_score(l, i - 1) >= cb_list_score(l, i));
    }
    /* the JSON document: the same items, in order */
    char *json;
    assert_int_equal(cb_list_to_json(l, &json, &err), CB_OK);
    json_error_t je;
    json_t *doc = json_loads(json, 0, &je);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "criterion")), "predicted rating");
    json_t *items = json_object_get(doc, "items");
    assert_int_equal(json_array_size(items), 7);
    for (size_t i = 0; i < 7; i++) {
        json_t *it = json_array_get(items, i);
        assert_string_equal(json_string_value(json_object_get(it, "item")), cb_list_item_id(l, i));
        assert_int_equal(json_integer_value(json_object_get(it, "rank")), (json_int_t)i + 1);
        assert_true(fabs(json_real_value(json_object_get(it, "score")) - cb_list_score(l, i)) < 1e-5);
        assert_int_equal(json_array_size(json_object_get(it, "reasons")), cb_list_n_reasons(l, i));
    }
    json_decref(doc);
    free(json);
    cb_list_free(l);
    assert_int_equal(cb_recommender_recommend(h, "no-such-user", NULL, NULL, &l, &err), CB_ENOTFOUND);
    assert_null(l);
    assert_int_equal(cb_recommender_recommend(h, NULL, "{\"genre_ratings\": ", NULL, &l, &err), CB_EPARSE);
    assert_int_equal(cb_recommender_recommend(h, NULL, NULL, NULL, &l, &err), CB_EINVAL);
    /* (user and JSON together: a known user plus live events, tests/test_serve_api.c) */
    /* similar: cosine similarity, descending, same order as the distances */
    size_t item0;
    assert_int_equal(cb_recommender_find_item(h, cb_bundle_item_id(f->rec, 0), &item0, NULL, 0, NULL, &err), CB_OK);
    assert_int_equal(cb_recommender_similar(h, item0, 100000, &l, &err), CB_OK);
    assert_int_equal(cb_list_size(l), f->rec->n_items - 1);
    assert_int_equal(cb_list_n_notes(l), 1);
    assert_non_null(strstr(cb_list_note(l, 0), "k = 100000 is more than")); /* the k asked for, not the catalog's */
    assert_string_equal(cb_list_criterion(l), "cosine similarity");
    for (size_t i = 0; i < cb_list_size(l); i++) {
        float c = cb_list_score(l, i);
        assert_true(c >= -1.0001f && c <= 1.0001f);
        assert_true(isnan(cb_list_rating(l, i)));
        if (i) assert_true(cb_list_score(l, i - 1) >= c - 1e-5f); /* unit vectors: distance order = cosine order */
    }
    cb_list_free(l);
    assert_int_equal(cb_recommender_similar(h, f->rec->n_items + 5, 5, &l, &err), CB_ENOTFOUND);
    float v[8];
    assert_int_equal(cb_recommender_user_vector(h, user, v, &err), CB_OK);
    assert_memory_equal(v, f->rec->user_vecs, sizeof v);
    size_t un;
    assert_int_equal(cb_recommender_find_user(h, user, &un, &err), CB_OK);
    assert_int_equal(un, 0);
    assert_int_equal(cb_recommender_find_user(h, "no-such-user", &un, &err), CB_ENOTFOUND);
    float p;
    assert_int_equal(cb_recommender_predict(h, user, cb_bundle_item_id(f->rec, 3), &p, &err), CB_OK);
    assert_true(p == cb_bundle_predict_vec(f->rec, f->rec->user_vecs, 3));
    assert_int_equal(cb_recommender_predict(h, user, "no-such-item", &p, &err), CB_ENOTFOUND);
    /* a prediction past the rating scale is the scale's end (5.1 on 0.5-5 was shown): with the scale's top
     * moved to the middle of this user's raw predictions, those above it come back as it, the rest as they are */
    cb_bundle *hb = cb_recommender_bundle(h); /* h's own copy, loaded from the file */
    float saved = hb->y_max, lo = INFINITY, hi = -INFINITY;
    for (uint32_t i = 0; i < hb->n_items; i++) {
        float raw = cb_bundle_predict_vec(hb, hb->user_vecs, i);
        lo = raw < lo ? raw : lo, hi = raw > hi ? raw : hi;
    }
    assert_true(hi > lo && lo >= hb->y_min);
    hb->y_max = (lo + hi) / 2;
    uint32_t clipped = 0;
    for (uint32_t i = 0; i < hb->n_items; i++) {
        float raw = cb_bundle_predict_vec(hb, hb->user_vecs, i);
        assert_int_equal(cb_recommender_predict(h, user, cb_bundle_item_id(hb, i), &p, &err), CB_OK);
        assert_true(raw > hb->y_max ? p == hb->y_max : fabsf(p - raw) < 1e-5f);
        clipped += raw > hb->y_max;
    }
    hb->y_max = saved;
    assert_true(clipped > 0);
    char *desc;
    assert_int_equal(cb_recommender_describe(h, &desc, &err), CB_OK);
    assert_non_null(strstr(desc, "\"table\": true"));
    free(desc);
    cb_config_free(opts);
    cb_recommender_free(h);
    /* the example program, which sees only include/cbrec.h */
    char new_user[128];
    snprintf(new_user, sizeof new_user, "{\"genre_ratings\": {\"%s\": 5}}", cb_features_genre_name(f->rec->features, 0));
    char *argv[] = {"embed", f->model_path, (char *)user, (char *)cb_bundle_item_id(f->rec, 3), new_user, NULL};
    assert_int_equal(embed_main(5, argv), 0);
    char *bad_argv[] = {"embed", f->model_path, "no-such-user", "1", NULL};
    assert_int_equal(embed_main(4, bad_argv), 1);
}

/* include-seen, exclude and allow lists, through the public options. */
static void per_call_filters(void **state) {
    fixture *f = *state;
    cb_error err;
    cb_config *opts;
    cb_list *l;
    uint32_t u = 2;
    const char *user = cb_bundle_user_id(f->rec, u);
    assert_int_equal(cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err), CB_OK);
    assert_int_equal(cb_config_set(opts, "n", "150", &err), CB_OK);
    assert_int_equal(cb_config_set(opts, "embedding", "150", &err), CB_OK);
    /* include-seen: the whole catalog comes back, rated items included */
    assert_int_equal(cb_config_set(opts, "include-seen", "true", &err), CB_OK);
    assert_int_equal(cb_recommender_recommend(f->exact, user, NULL, opts, &l, &err), CB_OK);
    assert_int_equal(cb_list_size(l), f->rec->n_items);
    cb_list_free(l);
    assert_int_equal(cb_config_set(opts, "include-seen", "false", &err), CB_OK);
    /* exclude two ids: never returned */
    char list[128];
    snprintf(list, sizeof list, "%s, %s", cb_bundle_item_id(f->rec, 10), cb_bundle_item_id(f->rec, 11));
    assert_int_equal(cb_config_set(opts, "exclude", list, &err), CB_OK);
    assert_int_equal(cb_recommender_recommend(f->exact, user, NULL, opts, &l, &err), CB_OK);
    for (size_t i = 0; i < cb_list_size(l); i++) {
        assert_true(cb_list_item(l, i) != 10 && cb_list_item(l, i) != 11);
        assert_false(rated(f->rec, u, (uint32_t)cb_list_item(l, i)));
    }
    cb_list_free(l);
    assert_int_equal(cb_config_set(opts, "exclude", "", &err), CB_OK);
    /* allow: only the listed (unrated) items */
    uint32_t allowed[3], na = 0;
    for (uint32_t i = 0; i < f->rec->n_items && na < 3; i++)
        if (!rated(f->rec, u, i)) allowed[na++] = i;
    snprintf(list, sizeof list, "%s,%s,%s", cb_bundle_item_id(f->rec, allowed[0]),
             cb_bundle_item_id(f->rec, allowed[1]), cb_bundle_item_id(f->rec, allowed[2]));
    assert_int_equal(cb_config_set(opts, "allow", list, &err), CB_OK);
    assert_int_equal(cb_recommender_recommend(f->exact, user, NULL, opts, &l, &err), CB_OK);
    assert_int_equal(cb_list_size(l), 3);
    for (size_t i = 0; i < 3; i++)
        assert_true(cb_list_item(l, i) == allowed[0] || cb_list_item(l, i) == allowed[1] ||
                    cb_list_item(l, i) == allowed[2]);
    /* the taste vector's rank is among the allowed items: "#1 of the catalog" was not true of them */
    bool ranked = false;
    for (size_t k = 0; k < cb_list_n_reasons(l, 0); k++) {
        assert_null(strstr(cb_list_reason(l, 0, k), "of the catalog"));
        ranked = ranked || strstr(cb_list_reason(l, 0, k), "close match to your taste vector (#1 of the allowed items)");
    }
    assert_true(ranked);
    cb_list_free(l);
    /* rank-by dot: the criterion and the scores are v_u . v_m, the order the same */
    assert_int_equal(cb_config_set(opts, "allow", "", &err), CB_OK);
    assert_int_equal(cb_config_set(opts, "n", "10", &err), CB_OK);
    cb_list *by_rating;
    assert_int_equal(cb_recommender_recommend(f->exact, user, NULL, opts, &by_rating, &err), CB_OK);
    assert_int_equal(cb_config_set(opts, "rank-by", "dot", &err), CB_OK);
    assert_int_equal(cb_recommender_recommend(f->exact, user, NULL, opts, &l, &err), CB_OK);
    assert_string_equal(cb_list_criterion(l), "dot product");
    assert_int_equal(cb_list_size(l), cb_list_size(by_rating));
    for (size_t i = 0; i < cb_list_size(l); i++) {
        const float *vu = f->rec->user_vecs + (size_t)u * f->rec->dim, *vm = f->rec->item_vecs + cb_list_item(l, i) * f->rec->dim;
        float dot = 0;
        for (uint32_t k = 0; k < f->rec->dim; k++) dot += vu[k] * vm[k];
        assert_true(fabsf(dot - cb_list_score(l, i)) < 1e-5f);
        assert_int_equal(cb_list_item(l, i), cb_list_item(by_rating, i)); /* the rating is monotone in the dot */
    }
    cb_list_free(l);
    cb_list_free(by_rating);
    assert_int_equal(cb_config_set(opts, "rank-by", "auto", &err), CB_OK);
    /* an unknown id is an error naming it */
    assert_int_equal(cb_config_set(opts, "allow", "no-such-item", &err), CB_OK);
    assert_int_equal(cb_recommender_recommend(f->exact, user, NULL, opts, &l, &err), CB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no-such-item"));
    /* the wrong kind of config is refused */
    cb_config *train;
    assert_int_equal(cb_config_create(&train, CB_CONFIG_TRAIN, &err), CB_OK);
    assert_int_equal(cb_recommender_recommend(f->exact, user, NULL, train, &l, &err), CB_EINVAL);
    cb_config_free(train);
    cb_config_free(opts);
}

/* Batch: every user's row is the top n by the ranking score over all unrated
 * items, checked against a brute-force scan here. */
static void batch_matches_brute_force(void **state) {
    fixture *f = *state;
    cb_error err;
    size_t nu = f->rec->n_users, ni = f->rec->n_items, n = 12, d = f->rec->dim;
    int64_t *items = malloc(nu * n * sizeof *items);
    float *scores = malloc(nu * n * sizeof *scores);
    assert_int_equal(cb_recommender_recommend_batch(f->exact, NULL, nu, n, NULL, items, scores, &err), CB_OK);
    for (size_t u = 0; u < nu; u++) {
        const float *vu = f->rec->user_vecs + u * d;
        float kth = scores[u * n + n - 1];
        for (size_t r = 0; r < n; r++) {
            int64_t it = items[u * n + r];
            assert_true(it >= 0 && (size_t)it < ni);
            assert_false(rated(f->rec, (uint32_t)u, (uint32_t)it));
            float pred = cb_bundle_predict_vec(f->rec, vu, (uint32_t)it);
            assert_true(fabsf(pred - scores[u * n + r]) < 1e-4f);
            if (r) assert_true(scores[u * n + r - 1] >= scores[u * n + r]);
        }
        /* nothing left out scores clearly better than the n-th */
        for (size_t i = 0; i < ni; i++) {
            if (rated(f->rec, (uint32_t)u, (uint32_t)i)) continue;
            bool in = false;
            for (size_t r = 0; r < n; r++) in |= items[u * n + r] == (int64_t)i;
            if (!in) assert_true(cb_bundle_predict_vec(f->rec, vu, (uint32_t)i) <= kth + 1e-4f);
        }
    }
    /* the same rows from 3 threads (blocks of 64 users: two of them work here) */
    cb_config *opts;
    assert_int_equal(cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err), CB_OK);
    assert_int_equal(cb_config_set(opts, "threads", "3", &err), CB_OK);
    int64_t *ti = malloc(nu * n * sizeof *ti);
    float *ts = malloc(nu * n * sizeof *ts);
    assert_int_equal(cb_recommender_recommend_batch(f->exact, NULL, nu, n, opts, ti, ts, &err), CB_OK);
    assert_memory_equal(ti, items, nu * n * sizeof *ti);
    assert_memory_equal(ts, scores, nu * n * sizeof *ts);
    free(ti), free(ts);
    cb_config_free(opts);
    /* a list of users, include-seen and n beyond the catalog (padded) */
    assert_int_equal(cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err), CB_OK);
    assert_int_equal(cb_config_set(opts, "include-seen", "true", &err), CB_OK);
    size_t users[2] = {5, 1}, big = ni + 3;
    int64_t *bi = malloc(2 * big * sizeof *bi);
    float *bs = malloc(2 * big * sizeof *bs);
    assert_int_equal(cb_recommender_recommend_batch(f->exact, users, 2, big, opts, bi, bs, &err), CB_OK);
    for (size_t k = 0; k < 2; k++) {
        for (size_t r = 0; r < ni; r++) assert_true(bi[k * big + r] >= 0);
        for (size_t r = ni; r < big; r++) assert_true(bi[k * big + r] == -1 && isinf(bs[k * big + r]));
    }
    char *line;
    assert_int_equal(cb_recommender_batch_row_json(f->exact, 5, bi, bs, 3, opts, &line, &err), CB_OK);
    assert_non_null(strstr(line, "\"criterion\":\"predicted rating\""));
    assert_non_null(strstr(line, cb_bundle_user_id(f->rec, 5)));
    free(line);
    users[0] = nu; /* out of range */
    assert_int_equal(cb_recommender_recommend_batch(f->exact, users, 2, 3, opts, bi, bs, &err), CB_ENOTFOUND);
    cb_config_free(opts);
    /* what a batch does not use is refused, not taken and ignored (a source's key even at its default) */
    const char *unused[][2] = {{"diversity", "mmr"}, {"genre-cap", "2"}, {"recent", "10"}, {"embedding", "50"}};
    users[0] = 5;
    for (size_t k = 0; k < sizeof unused / sizeof *unused; k++) {
        assert_int_equal(cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err), CB_OK);
        assert_int_equal(cb_config_set(opts, unused[k][0], unused[k][1], &err), CB_OK);
        assert_string_equal(cb_recommend_batch_unused(opts), unused[k][0]);
        assert_int_equal(cb_recommender_recommend_batch(f->exact, users, 2, 3, opts, bi, bs, &err), CB_EINVAL);
        if (strncmp(err.msg, unused[k][0], strlen(unused[k][0])) || !strstr(err.msg, "a batch ranks the whole catalog"))
            fail_msg("message: %s", err.msg);
        cb_config_free(opts);
    }
    free(bi);
    free(bs);
    free(items);
    free(scores);
}

/* ---- one handle shared by threads ([shared] calls at once, include/cbrec.h) */

enum { SHARED_THREADS = 4, SHARED_USERS = 24 };

typedef struct shared_run {
    const cb_recommender *h;
    const char *new_user_json;
    char *answers[SHARED_USERS]; /* per user: every answer's JSON and numbers, joined */
    int rc;
} shared_run;

/* Everything a server or a binding asks of one handle for user u, as one
 * string to compare: recommend (known, known + live events, new), similar,
 * predict, the user vector, a batch row (2 threads of its own), find_item. */
static char *shared_answers(const cb_recommender *h, size_t u, const char *new_user_json, cb_error *err) {
    const char *user = cb_recommender_user_id(h, u), *item = cb_recommender_item_id(h, (u * 7) % cb_recommender_item_count(h));
    char live[256], *out = NULL, *json[4] = {NULL};
    snprintf(live, sizeof live, "{\"ratings\": {\"%s\": 5}}", item);
    cb_list *l[4] = {NULL};
    cb_config *opts = NULL;
    size_t found = 0, dim = cb_recommender_dim(h);
    int64_t items[5];
    float scores[5], rating = 0, *vec = calloc(dim, sizeof *vec);
    int rc = cb_recommender_recommend(h, user, NULL, NULL, &l[0], err);
    if (!rc) rc = cb_recommender_recommend(h, user, live, NULL, &l[1], err);
    if (!rc) rc = cb_recommender_recommend(h, NULL, new_user_json, NULL, &l[2], err);
    if (!rc) rc = cb_recommender_similar(h, (u * 5) % cb_recommender_item_count(h), 6, &l[3], err);
    for (int k = 0; k < 4 && !rc; k++) rc = cb_list_to_json(l[k], &json[k], err);
    if (!rc) rc = cb_recommender_predict(h, user, item, &rating, err);
    if (!rc) rc = cb_recommender_user_vector(h, user, vec, err);
    if (!rc) rc = cb_config_create(&opts, CB_CONFIG_RECOMMEND, err);
    if (!rc) rc = cb_config_set(opts, "threads", "2", err);
    size_t users[1] = {u};
    if (!rc) rc = cb_recommender_recommend_batch(h, users, 1, 5, opts, items, scores, err);
    if (!rc) rc = cb_recommender_find_item(h, item, &found, NULL, 0, NULL, err);
    double vsum = 0;
    for (size_t i = 0; i < dim; i++) vsum += vec[i];
    if (!rc && asprintf(&out, "%s\n%s\n%s\n%s\n%.9g %.9g %zu %lld %lld %.9g", json[0], json[1], json[2], json[3],
                        rating, vsum, found, (long long)items[0], (long long)items[4], scores[4]) < 0)
        out = NULL;
    for (int k = 0; k < 4; k++) cb_list_free(l[k]), free(json[k]);
    cb_config_free(opts);
    free(vec);
    return out;
}

static void *shared_worker(void *arg) {
    shared_run *r = arg;
    cb_error err = {0};
    for (size_t u = 0; u < SHARED_USERS && !r->rc; u++)
        if (!(r->answers[u] = shared_answers(r->h, u, r->new_user_json, &err))) r->rc = 1;
    if (r->rc) fprintf(stderr, "shared_worker: %s\n", err.msg);
    return NULL;
}

/* SHARED_THREADS threads and then this one alone ask h the same: equal answers. */
static void shared_answers_agree(const cb_recommender *h, const char *new_user) {
    shared_run runs[SHARED_THREADS + 1];
    pthread_t t[SHARED_THREADS];
    for (int k = 0; k <= SHARED_THREADS; k++) runs[k] = (shared_run){.h = h, .new_user_json = new_user};
    for (int k = 0; k < SHARED_THREADS; k++) assert_int_equal(pthread_create(&t[k], NULL, shared_worker, &runs[k]), 0);
    for (int k = 0; k < SHARED_THREADS; k++) pthread_join(t[k], NULL);
    shared_worker(&runs[SHARED_THREADS]); /* alone, after them */
    for (int k = 0; k <= SHARED_THREADS; k++) {
        assert_int_equal(runs[k].rc, 0);
        for (size_t u = 0; u < SHARED_USERS; u++) {
            assert_string_equal(runs[k].answers[u], runs[SHARED_THREADS].answers[u]);
            if (k < SHARED_THREADS) free(runs[k].answers[u]);
        }
    }
    for (size_t u = 0; u < SHARED_USERS; u++) free(runs[SHARED_THREADS].answers[u]);
}

/* Threads asking one loaded handle at once (its history checked lazily, the
 * table loaded; then searching its HNSW index) get what one thread alone
 * gets. Under make test-tsan this is the check that the [shared] calls only
 * read the handle. */
static void shared_handle_between_threads(void **state) {
    fixture *f = *state;
    cb_error err;
    cb_recommender *h;
    assert_int_equal(cb_recommender_load(&h, f->model_path, f->table_path, &err), CB_OK);
    char new_user[256];
    snprintf(new_user, sizeof new_user, "{\"ratings\": {\"%s\": 4.5, \"%s\": 2}}", cb_recommender_item_id(h, 3),
             cb_recommender_item_id(h, 11));
    shared_answers_agree(h, new_user);
    assert_int_equal(cb_recommender_build_index(h, 8, 40, 2, &err), CB_OK);
    assert_int_equal(cb_recommender_set_search(h, CB_SEARCH_APPROX, 0, &err), CB_OK);
    assert_true(cb_recommender_search_is_approximate(h));
    shared_answers_agree(h, new_user);
    cb_recommender_free(h);
}

/* Overwrite added item `item`'s vector with c * v / |v|. */
static void set_added_vec(cb_recommender *rec, size_t item, const float *v, float c) {
    uint32_t d = rec->r->dim;
    float norm = 0;
    for (uint32_t k = 0; k < d; k++) norm += v[k] * v[k];
    norm = sqrtf(norm);
    float *dst = rec->table.extra_vecs + (item - rec->r->n_items) * d;
    for (uint32_t k = 0; k < d; k++) dst[k] = c * v[k] / norm;
}

/* One recommend call as JSON (opts may be NULL). */
static char *rec_json(const cb_recommender *rec, const char *user, const cb_config *opts) {
    cb_error err;
    cb_list *l = NULL;
    int rc = cb_recommender_recommend(rec, user, NULL, opts, &l, &err);
    if (rc) fprintf(stderr, "recommend: %s\n", err.msg);
    assert_int_equal(rc, CB_OK);
    char *s = NULL;
    assert_int_equal(cb_list_to_json(l, &s, &err), CB_OK);
    cb_list_free(l);
    return s;
}

/* Items added after training are recommended (scored from their vector), to
 * the user whose taste they match, with their reason; filtered like any item;
 * the batch agrees; users they do not reach get the same lists as before. */
static void added_items_are_recommended(void **state) {
    fixture *f = *state;
    cb_error err;
    const cb_bundle *r = f->rec;
    uint32_t d = r->dim, u = 3;
    const char *uid = cb_bundle_user_id(r, u);
    const float *vu = r->user_vecs + (size_t)u * d;
    float max_norm = 0;
    for (uint32_t i = 0; i < r->n_items; i++) {
        float nn = 0;
        for (uint32_t k = 0; k < d; k++) nn += r->item_vecs[(size_t)i * d + k] * r->item_vecs[(size_t)i * d + k];
        if (sqrtf(nn) > max_norm) max_norm = sqrtf(nn);
    }
    const char *genre = cb_features_genre_name(r->features, 2);
    char text[256];
    snprintf(text, sizeof text, "{\"id\": \"fresh\", \"title\": \"Fresh (2030)\", \"genres\": [\"%s\"]}", genre);
    cb_recommender *rec, *plain;
    assert_int_equal(cb_recommender_wrap(&rec, f->rec, &err), CB_OK);
    assert_int_equal(cb_recommender_wrap(&plain, f->rec, &err), CB_OK);
    char *before = rec_json(rec, uid, NULL);
    size_t item;
    assert_int_equal(cb_recommender_add_item(rec, text, &item, &err), CB_OK); /* no table: in memory */
    assert_int_equal(item, r->n_items);
    /* pointing away from the user: the user's list is unchanged */
    set_added_vec(rec, item, vu, -(max_norm + 1));
    char *away = rec_json(rec, uid, NULL);
    assert_string_equal(before, away);
    /* along the user's vector, longer than any item: v_u . v_new beats every item, so it ranks first */
    set_added_vec(rec, item, vu, max_norm + 1);
    cb_list *l = NULL;
    assert_int_equal(cb_recommender_recommend(rec, uid, NULL, NULL, &l, &err), CB_OK);
    assert_string_equal(cb_list_item_id(l, 0), "fresh");
    assert_int_equal(cb_list_item(l, 0), item);
    bool said = false;
    for (size_t j = 0; j < cb_list_n_reasons(l, 0); j++)
        said |= strstr(cb_list_reason(l, 0, j), "new in the catalog: close to your taste vector") != NULL;
    assert_true(said);
    char *js;
    assert_int_equal(cb_list_to_json(l, &js, &err), CB_OK);
    assert_non_null(strstr(js, "\"item\":\"fresh\""));
    assert_non_null(strstr(js, "\"new\":true"));
    assert_null(strstr(strstr(js, "\"new\":true") + 1, "\"new\":true")); /* only on the added item */
    float single = cb_list_score(l, 0);
    free(js);
    cb_list_free(l);
    /* the batch agrees: first for that user, the same score */
    int64_t bi[10];
    float bs[10];
    size_t users[1] = {u};
    assert_int_equal(cb_recommender_recommend_batch(rec, users, 1, 10, NULL, bi, bs, &err), CB_OK);
    assert_int_equal(bi[0], (int64_t)item);
    assert_true(fabsf(bs[0] - single) < 1e-4f);
    /* the rest of the batch row is the batch row without the added item, shifted by one */
    int64_t pi[10];
    float ps[10];
    assert_int_equal(cb_recommender_recommend_batch(plain, users, 1, 10, NULL, pi, ps, &err), CB_OK);
    for (int k = 1; k < 10; k++) assert_int_equal(bi[k], pi[k - 1]);
    /* filtered: exclude by id, allow without it, block by id, block by its declared genre */
    cb_config *opts;
    assert_int_equal(cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err), CB_OK);
    char *block_id = tu_write(f->dir, "block-new.txt", "item fresh\n");
    char gline[128];
    snprintf(gline, sizeof gline, "genre %s\n", genre);
    char *block_genre = tu_write(f->dir, "block-new-genre.txt", gline);
    const char *keys[4] = {"exclude", "allow", "block-file", "block-file"};
    const char *vals[4] = {"fresh", cb_bundle_item_id(r, 0), block_id, block_genre};
    for (int t = 0; t < 4; t++) {
        cb_config_free(opts);
        assert_int_equal(cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err), CB_OK);
        assert_int_equal(cb_config_set(opts, keys[t], vals[t], &err), CB_OK);
        assert_int_equal(cb_recommender_recommend(rec, uid, NULL, opts, &l, &err), CB_OK);
        for (size_t i = 0; i < cb_list_size(l); i++) assert_string_not_equal(cb_list_item_id(l, i), "fresh");
        cb_list_free(l);
        assert_int_equal(cb_recommender_recommend_batch(rec, users, 1, 10, opts, bi, bs, &err), CB_OK);
        for (int k = 0; k < 10; k++) assert_true(bi[k] != (int64_t)item);
    }
    /* allow the added item only: it is all there is */
    cb_config_free(opts);
    assert_int_equal(cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err), CB_OK);
    assert_int_equal(cb_config_set(opts, "allow", "fresh", &err), CB_OK);
    assert_int_equal(cb_recommender_recommend(rec, uid, NULL, opts, &l, &err), CB_OK);
    assert_int_equal(cb_list_size(l), 1);
    assert_string_equal(cb_list_item_id(l, 0), "fresh");
    cb_list_free(l);
    cb_config_free(opts);
    /* saved without a table: an added-items file; another recommender loads it and recommends the same */
    char *path = tu_path(f->dir, "added.cbrec");
    assert_int_equal(cb_recommender_save_table(rec, path, &err), CB_OK);
    cb_recommender *back;
    assert_int_equal(cb_recommender_wrap(&back, f->rec, &err), CB_OK);
    assert_int_equal(cb_recommender_load_table(back, path, &err), CB_OK);
    assert_int_equal(cb_recommender_item_count(back), r->n_items + 1);
    assert_int_equal(cb_recommender_table_k(back), 0);
    char *a = rec_json(rec, uid, NULL), *b = rec_json(back, uid, NULL);
    assert_string_equal(a, b);
    /* similar works on it without a table (exact), and a table loaded later keeps it */
    assert_int_equal(cb_recommender_similar(back, item, 5, &l, &err), CB_OK);
    assert_int_equal(cb_list_size(l), 5);
    cb_list_free(l);
    assert_int_equal(cb_recommender_load_table(back, f->table_path, &err), CB_OK);
    assert_int_equal(cb_recommender_item_count(back), r->n_items + 1);
    free(b);
    b = rec_json(back, uid, NULL);
    assert_non_null(strstr(b, "\"item\":\"fresh\""));
    /* the added-items file of another model is refused */
    cb_recommender *o;
    assert_int_equal(cb_recommender_wrap(&o, f->other, &err), CB_OK);
    assert_int_equal(cb_recommender_load_table(o, path, &err), CB_EFORMAT);
    cb_recommender_free(o);
    free(a);
    free(b);
    free(path);
    free(block_id);
    free(block_genre);
    free(before);
    free(away);
    cb_recommender_free(back);
    cb_recommender_free(plain);
    cb_recommender_free(rec);
}

/* An added item's bias is the mean of the catalog's (none: 0). */
static void added_item_bias_is_the_mean(void **state) {
    (void)state;
    const float bias[4] = {-1.0f, 0.5f, 2.0f, 2.5f};
    assert_true(cb_rec_added_item_bias(bias, 4) == 1.0f);
    assert_true(cb_rec_added_item_bias(NULL, 0) == 0.0f);
}

/* A model trained on the events in dir d (30 items of 3 genres, 40 users,
 * each event with weight column n when `weighted`), saved and loaded back. */
static cb_recommender *train_events(const char *d, bool weighted) {
    char events[16384] = "user,item,time,n\n", *path = tu_path(d, "m.cbrec");
    for (int u = 0, t = 1000; u < 40; u++)
        for (int k = 0; k < 8; k++)
            for (int rep = 0; rep <= (u + k) % 3; rep++) /* repeats: summed weights */
                snprintf(events + strlen(events), sizeof events - strlen(events), "u%d,i%d,%d,%d\n", u,
                         (u * 7 + k * 3) % 30, t++, 1 + (u * k + rep) % 3);
    char items[1024] = "id,name,genres\n";
    for (int i = 0; i < 30; i++)
        snprintf(items + strlen(items), sizeof items - strlen(items), "i%d,Item %d,%s\n", i, i,
                 (const char *[]){"Action", "Comedy", "Drama"}[i % 3]);
    free(tu_write(d, "cbrec.schema", weighted ? "ratings = e.csv\nratings.columns = user, item, time:timestamp, n:weight\n"
                                               "items = i.csv\nitems.columns = id, name:title, genres:multi(|)\n"
                                             : "ratings = e.csv\nratings.columns = user, item, time:timestamp, n:ignore\n"
                                               "items = i.csv\nitems.columns = id, name:title, genres:multi(|)\n"));
    free(tu_write(d, "e.csv", events));
    free(tu_write(d, "i.csv", items));
    cb_error err = {0};
    cb_dataset *ds = NULL;
    cb_recommender *rec = NULL, *loaded = NULL;
    cb_config *tc;
    if (cb_dataset_open(&ds, d, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(cb_config_create(&tc, CB_CONFIG_TRAIN, &err), CB_OK);
    assert_int_equal(cb_config_set(tc, "user-layers", "16", &err), CB_OK);
    assert_int_equal(cb_config_set(tc, "item-layers", "16", &err), CB_OK);
    assert_int_equal(cb_config_set(tc, "epochs", "1", &err), CB_OK);
    assert_int_equal(cb_config_set(tc, "threads", "1", &err), CB_OK);
    if (cb_train(&rec, ds, tc, NULL, NULL, NULL, &err)) fail_msg("train: %s", err.msg);
    if (cb_recommender_save(rec, path, &err) || cb_recommender_load(&loaded, path, NULL, &err)) fail_msg("%s", err.msg);
    cb_recommender_free(rec);
    cb_config_free(tc);
    cb_dataset_close(ds);
    free(path);
    return loaded;
}

/* Every reason of the lists of users u0..u9 (also ranked by rating when
 * `by_rating`: a model with a rating half), one per line. */
static char *events_reasons(const cb_recommender *rec, bool by_rating) {
    size_t cap = 1 << 16, len = 0;
    char *all = calloc(cap, 1), user[16];
    cb_error err = {0};
    cb_config *opts;
    assert_int_equal(cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err), CB_OK);
    assert_int_equal(cb_config_set(opts, "rank-by", "rating", &err), CB_OK);
    for (int u = 0; u < (by_rating ? 20 : 10); u++) {
        cb_list *l = NULL;
        snprintf(user, sizeof user, "u%d", u % 10);
        if (cb_recommender_recommend(rec, user, NULL, u < 10 ? NULL : opts, &l, &err)) fail_msg("%s", err.msg);
        for (size_t i = 0; i < cb_list_size(l); i++)
            for (size_t j = 0; j < cb_list_n_reasons(l, i) && len + 512 < cap; j++)
                len += (size_t)snprintf(all + len, cap - len, "%.500s\n", cb_list_reason(l, i, j));
        cb_list_free(l);
    }
    cb_config_free(opts);
    return all;
}

/* Events quote no rating: weighted events (the summed weight) say "which you
 * picked (weight 6)", 0/1 events "which you picked", as do the neighbour and
 * popularity reasons; what the rating half of a weighted-events model
 * predicts is a weight (0/1 events train no rating half). The flag survives
 * the model file. */
static void event_reasons_quote_no_rating(void **state) {
    (void)state;
    for (int weighted = 1; weighted >= 0; weighted--) {
        char *d = tu_tmpdir();
        cb_recommender *rec = train_events(d, weighted);
        char *all = events_reasons(rec, weighted);
        if (strstr(all, "rated") || strstr(all, "of your ratings") || strstr(all, "predicted rating"))
            fail_msg("reasons quote a rating:\n%s", all);
        assert_non_null(strstr(all, weighted ? "which you picked (weight " : "which you picked"));
        assert_true(weighted ? strstr(all, "predicted weight ") != NULL : strstr(all, "predicted") == NULL);
        assert_non_null(strstr(all, "among the most picked items overall"));
        if (!weighted) assert_null(strstr(all, "(weight "));
        free(all);
        if (!weighted) { /* a 0 (a live event's "not picked") is no pick: its reasons quote the 0 */
            cb_config *opts;
            cb_list *l = NULL;
            cb_error err = {0};
            assert_int_equal(cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err), CB_OK);
            assert_int_equal(cb_config_set(opts, "all-anchors", "true", &err), CB_OK);
            assert_int_equal(cb_recommender_recommend(rec, NULL, "{\"ratings\": {\"i3\": 0}}", opts, &l, &err), CB_OK);
            bool quoted = false;
            for (size_t i = 0; i < cb_list_size(l); i++)
                for (size_t j = 0; j < cb_list_n_reasons(l, i); j++) {
                    const char *why = cb_list_reason(l, i, j);
                    assert_null(strstr(why, "you picked Item 3"));
                    quoted = quoted || strstr(why, "which you rated 0");
                }
            assert_true(quoted);
            cb_list_free(l);
            cb_config_free(opts);
        }
        /* what a page needs to word its values the same way (cbrec serve's /v1/meta) */
        char *about = NULL;
        cb_error err = {0};
        assert_int_equal(cb_recommender_describe(rec, &about, &err), CB_OK);
        assert_non_null(strstr(about, weighted ? "\"prediction\": \"predicted weight\""
                                               : "\"prediction\": \"predicted probability\""));
        assert_non_null(strstr(about, weighted ? "\"weighted\": true" : "\"binary\": true"));
        free(about);
        cb_recommender_free(rec);
        tu_rmrf(d);
        free(d);
    }
}

/* The RECOMMEND keys: defaults from the table, help for every key. */
static void recommend_keys(void **state) {
    (void)state;
    cb_recommend_config c;
    cb_recommend_config_default(&c);
    assert_int_equal(c.n, 10);
    assert_int_equal(c.embedding_items, 50);
    assert_true(c.mmr_lambda == 0.7f);
    assert_int_equal(c.threads, 1);
    assert_int_equal(c.rank_by, CB_RANK_AUTO);
    size_t nk = cb_config_n_keys(CB_CONFIG_RECOMMEND);
    assert_true(nk >= 15);
    cb_config_key_info k;
    for (size_t i = 0; i < nk; i++) {
        assert_int_equal(cb_config_key(CB_CONFIG_RECOMMEND, i, &k), CB_OK);
        assert_true(strlen(k.help) > 5);
    }
    assert_int_equal(cb_config_key(CB_CONFIG_RECOMMEND, nk, &k), CB_ENOTFOUND);
}

/* A reason's figure that rounds to zero prints as 0, never "-0.00" (a
 * towers' part of -0.0001 read as a penalty); others print as they are. */
static void reasons_show_no_negative_zero(void **state) {
    (void)state;
    char buf[32];
    const struct { double v; int digits; const char *want; } cases[] = {
        {-0.0004, 2, "0.00"}, {-0.004, 2, "0.00"}, {-0.006, 2, "-0.01"}, {0.3, 2, "0.30"},
        {-0.0004, 3, "0.000"}, {-0.04, 1, "0.0"}, {-1.25, 1, "-1.2"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(buf, sizeof buf, "%.*f", cases[i].digits, cb_rec_shown(cases[i].v, cases[i].digits));
        assert_string_equal(buf, cases[i].want);
    }
    assert_true(isnan(cb_rec_shown(NAN, 2)));
}

/* The ids files' one line rule: escape then unescape gives the id back, in
 * place too; a backslash that starts no escape is refused, naming the byte. */
static void id_lines_round_trip(void **state) {
    (void)state;
    const char *ids[] = {"plain", "a\nb", "c\\d", "cr\r", "\\n", "", "#u1"};
    const char *lines[] = {"plain", "a\\nb", "c\\\\d", "cr\\r", "\\\\n", "", "#u1"};
    cb_error err = {0};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char line[16], id[16];
        assert_int_equal(cb_id_line_escape(line, ids[i]), strlen(lines[i]));
        assert_string_equal(line, lines[i]);
        assert_int_equal(cb_id_line_unescape(id, line, &err), CB_OK);
        assert_string_equal(id, ids[i]);
        assert_int_equal(cb_id_line_unescape(line, line, &err), CB_OK);
        assert_string_equal(line, ids[i]);
    }
    char id[16];
    assert_int_equal(cb_id_line_unescape(id, "ab\\t", &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "byte 3: a backslash must start"));
    assert_int_equal(cb_id_line_unescape(id, "ab\\", &err), CB_EPARSE); /* at the end */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(similar_table_equals_exact),
        cmocka_unit_test(similar_k_clamped),
        cmocka_unit_test(find_item_by_id_and_title),
        cmocka_unit_test(recommend_known_user),
        cmocka_unit_test(sources_can_be_switched_off),
        cmocka_unit_test(n_larger_than_catalog_is_clamped),
        cmocka_unit_test(cold_user_falls_back),
        cmocka_unit_test(new_user_from_json),
        cmocka_unit_test(table_from_another_model_is_refused),
        cmocka_unit_test(features_and_towers_must_agree),
        cmocka_unit_test(block_list_filters),
        cmocka_unit_test(diversity_genre_cap_and_mmr),
        cmocka_unit_test(add_item_without_retraining),
        cmocka_unit_test(empty_catalog_is_an_error),
        cmocka_unit_test(public_api),
        cmocka_unit_test(id_lines_round_trip),
        cmocka_unit_test(per_call_filters),
        cmocka_unit_test(batch_matches_brute_force),
        cmocka_unit_test(shared_handle_between_threads),
        cmocka_unit_test(added_items_are_recommended),
        cmocka_unit_test(added_item_bias_is_the_mean),
        cmocka_unit_test(recommend_keys),
        cmocka_unit_test(event_reasons_quote_no_rating),
        cmocka_unit_test(reasons_show_no_negative_zero),
    };
    return cmocka_run_group_tests_name("recommend", tests, setup, teardown);
}
