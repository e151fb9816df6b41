/* Tests of the ranking's neighbour component (model/neighbours.h and its
 * use in rec/): the lists equal a slow dense reference (cosine with
 * shrinkage, top K; also with an item bigger than a fit block), a planted
 * pair structure is found, the tuning on a carve prefers the component when
 * the towers cannot see the structure, a trained recommender ranks an
 * item's partner first for a new user who picked the item and says why (and
 * does not with the component off), the section round-trips through the
 * model file, the lists and the tuning are the same bits on any number of
 * threads, a model without it still loads and recommends, and a corrupt
 * section is refused. */
#include "model/bundle.h"
#include "model/comm.h"
#include "rec/recommend.h"
#include "cbrec.h"
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>

#define N_PAIRS 30
#define N_ITEMS (2 * N_PAIRS)
#define N_USERS 240

/* Planted pairs: every user picks 3 random pairs (both items of each: 2a
 * and 2a+1) and 2 random single items. Every item has the same content
 * (one genre, no year), so only the interactions tell the pairs apart. */
static cb_dataset *planted(cb_error *err) {
    cb_dataset_builder *b = NULL;
    assert_int_equal(cb_dataset_builder_create(&b, "planted", NULL, err), CB_OK);
    char ubuf[N_USERS * 10][16], ibuf[N_USERS * 10][16];
    const char *users[N_USERS * 10], *items[N_USERS * 10];
    float ys[N_USERS * 10];
    size_t n = 0;
    uint64_t s = 12345;
    for (int u = 0; u < N_USERS; u++) {
        bool taken[N_ITEMS] = {false};
        for (int k = 0; k < 5;) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            int a = (int)((s >> 33) % N_PAIRS), item = k < 3 ? 2 * a : (int)((s >> 40) % N_ITEMS);
            if (taken[item] || (k < 3 && taken[item + 1])) continue;
            for (int t = 0; t < (k < 3 ? 2 : 1); t++) {
                taken[item + t] = true;
                snprintf(ubuf[n], sizeof ubuf[n], "u%d", u);
                snprintf(ibuf[n], sizeof ibuf[n], "i%d", item + t);
                users[n] = ubuf[n], items[n] = ibuf[n], ys[n] = 4 + (float)((s >> 50) & 1);
                n++;
            }
            k++;
        }
    }
    assert_int_equal(cb_dataset_builder_add_ratings(b, users, items, ys, NULL, n, err), CB_OK);
    const char *ids[N_ITEMS], *genres[N_ITEMS], *titles[N_ITEMS];
    char tbuf[N_ITEMS][24], idb[N_ITEMS][16];
    for (int i = 0; i < N_ITEMS; i++) {
        snprintf(tbuf[i], sizeof tbuf[i], "Film %d", i);
        snprintf(idb[i], sizeof idb[i], "i%d", i);
        ids[i] = idb[i], genres[i] = "Drama", titles[i] = tbuf[i];
    }
    assert_int_equal(cb_dataset_builder_add_column(b, 0, "title", "title", ids, titles, NULL, N_ITEMS, NULL, err),
                     CB_OK);
    assert_int_equal(cb_dataset_builder_add_column(b, 0, "genres", "multi", ids, genres, NULL, N_ITEMS, "|", err),
                     CB_OK);
    cb_dataset *ds = NULL;
    assert_int_equal(cb_dataset_builder_finish(b, &ds, err), CB_OK);
    cb_dataset_builder_free(b);
    return ds;
}

static uint32_t *all_ratings(const cb_dataset *ds) {
    uint32_t *all = malloc(ds->n_ratings * sizeof *all);
    for (size_t j = 0; j < ds->n_ratings; j++) all[j] = (uint32_t)j;
    return all;
}

/* The slow reference: dense co-occurrence, every cosine, sorted. */
static void reference_list(const cb_dataset *ds, uint32_t item, float shrink, float *sim) {
    uint32_t ni = cb_dataset_n_items(ds), nu = cb_dataset_n_users(ds);
    uint8_t *x = calloc((size_t)nu * ni, 1);
    for (size_t j = 0; j < ds->n_ratings; j++) x[(size_t)ds->ratings[j].user * ni + ds->ratings[j].item] = 1;
    double n_i = 0;
    for (uint32_t u = 0; u < nu; u++) n_i += x[(size_t)u * ni + item];
    for (uint32_t j = 0; j < ni; j++) {
        double c = 0, n_j = 0;
        for (uint32_t u = 0; u < nu; u++) {
            c += x[(size_t)u * ni + item] && x[(size_t)u * ni + j];
            n_j += x[(size_t)u * ni + j];
        }
        sim[j] = j == item || c == 0 ? 0.0f : (float)(c / (sqrt(n_i * n_j) + shrink));
    }
    free(x);
}

/* Every cosine list of nb (k neighbours, fitted on every rating of ds) is
 * the reference's best: similarities equal, best first, nothing better
 * left out, as long as the reference has items to list. */
static void check_cosine_lists(const cb_dataset *ds, const cb_neighbours *nb, int32_t k, float shrink) {
    uint32_t ni = cb_dataset_n_items(ds);
    float *ref = malloc(ni * sizeof *ref);
    for (uint32_t i = 0; i < ni; i++) {
        reference_list(ds, i, shrink, ref);
        int32_t b = nb->off[i], e = nb->off[i + 1], positive = 0;
        assert_true(e - b <= k);
        for (int32_t t = b; t < e; t++) {
            uint32_t j = (uint32_t)nb->item[t];
            assert_true(fabsf(nb->sim[t] - ref[j]) < 1e-5f);
            /* best first, equals by item (the order any sort by (similarity, item) gives) */
            if (t + 1 < e)
                assert_true(nb->sim[t] > nb->sim[t + 1] || (nb->sim[t] == nb->sim[t + 1] && nb->item[t] < nb->item[t + 1]));
        }
        for (uint32_t j = 0; j < ni; j++) {
            bool listed = false;
            for (int32_t t = b; t < e; t++) listed |= (uint32_t)nb->item[t] == j;
            positive += ref[j] > 0;
            if (!listed) assert_true(ref[j] <= (e - b == k ? nb->sim[e - 1] + 1e-6f : 0));
        }
        assert_int_equal(e - b, positive < k ? positive : k);
    }
    free(ref);
}

static cb_dataset *random_picks(int nu, int ni, int per_user, cb_error *err);

static void lists_match_reference(void **state) {
    (void)state;
    cb_error err;
    cb_dataset *ds = planted(&err);
    uint32_t *all = all_ratings(ds), ni = cb_dataset_n_items(ds);
    cb_neighbours *nb = NULL;
    assert_int_equal(cb_neighbours_fit(&nb, ds, all, ds->n_ratings, CB_NEIGHBOURS_COSINE, 5, 3.0f, &err), CB_OK);
    check_cosine_lists(ds, nb, 5, 3.0f);
    cb_neighbours *wide = NULL; /* K 200: every candidate kept and sorted, not through the heap */
    assert_int_equal(cb_neighbours_fit(&wide, ds, all, ds->n_ratings, CB_NEIGHBOURS_COSINE, 200, 0.0f, &err), CB_OK);
    check_cosine_lists(ds, wide, 200, 0.0f);
    cb_neighbours_free(wide);
    cb_dataset *many = random_picks(400, 300, 12, &err); /* 300 items: two bytes of item for the radix passes */
    uint32_t *many_all = all_ratings(many);
    assert_int_equal(cb_neighbours_fit(&wide, many, many_all, many->n_ratings, CB_NEIGHBOURS_COSINE, 200, 0.0f, &err),
                     CB_OK);
    check_cosine_lists(many, wide, 200, 0.0f);
    cb_neighbours_free(wide);
    for (uint32_t k = 1; k <= 5; k += 4) { /* ~150 candidates an item, past 8 x K: spilled into the heap */
        assert_int_equal(cb_neighbours_fit(&wide, many, many_all, many->n_ratings, CB_NEIGHBOURS_COSINE, k, 0.0f, &err),
                         CB_OK);
        check_cosine_lists(many, wide, (int32_t)k, 0.0f);
        cb_neighbours_free(wide);
    }
    free(many_all);
    cb_dataset_free(many);
    size_t partners_first = 0;
    for (uint32_t i = 0; i < ni; i++) {
        int32_t b = nb->off[i];
        /* the planted partner (2a <-> 2a+1) is every item's nearest */
        const char *id = cb_vocab_name(ds->items, i), *pid = cb_vocab_name(ds->items, (uint32_t)nb->item[b]);
        int a = atoi(id + 1), p = atoi(pid + 1);
        partners_first += (a ^ 1) == p;
    }
    assert_int_equal(partners_first, ni);
    /* EASE's lists find the same pairs (the user form: fewer users than items? here the item form) */
    cb_neighbours *ease = NULL;
    assert_int_equal(cb_neighbours_fit(&ease, ds, all, ds->n_ratings, CB_NEIGHBOURS_EASE, 5, 50.0f, &err), CB_OK);
    for (uint32_t i = 0; i < ni; i++) {
        assert_true(ease->off[i + 1] - ease->off[i] <= 5 && ease->off[i + 1] > ease->off[i]);
        const char *id = cb_vocab_name(ds->items, i), *pid = cb_vocab_name(ds->items, (uint32_t)ease->item[ease->off[i]]);
        assert_int_equal(atoi(id + 1) ^ 1, atoi(pid + 1));
    }
    assert_int_equal(ease->kind, CB_NEIGHBOURS_EASE);
    cb_neighbours_free(ease);
    /* the score of a history: the sum of the lists; the top contributor */
    uint32_t hist[2] = {0, 1};
    float *row = malloc(ni * sizeof *row);
    float max = cb_neighbours_row(nb, hist, 2, 0, row);
    assert_true(max > 0);
    for (int32_t t = nb->off[0]; t < nb->off[1]; t++) {
        float sim;
        int64_t at;
        uint32_t item = (uint32_t)nb->item[t];
        assert_int_equal(cb_neighbours_top_contributors(nb, hist, 2, 0, &item, 1, &at, &sim, &err), CB_OK);
        assert_true(at >= 0 && sim > 0 && row[nb->item[t]] >= sim - 1e-6f);
    }
    /* all items at once (one pass, an item asked twice, one out of range)
     * against a scan of the history's lists per item */
    uint32_t long_hist[6] = {3, 0, 7, 1, 3, ni + 4}, asked[64];
    size_t n_asked = 0;
    for (uint32_t i = 0; i < ni && n_asked < 60; i++) asked[n_asked++] = i;
    asked[n_asked++] = 2;
    asked[n_asked++] = ni + 9;
    int64_t pos[64];
    float sims[64];
    for (uint32_t k = 0; k < 3; k += 2) { /* every neighbour, then the 2 most similar of each list */
        assert_int_equal(cb_neighbours_top_contributors(nb, long_hist, 6, k, asked, n_asked, pos, sims, &err), CB_OK);
        size_t found = 0;
        for (size_t q = 0; q < n_asked; q++) {
            int64_t want = -1;
            float best = 0;
            for (size_t h = 0; h < 6; h++) {
                if (long_hist[h] >= ni) continue;
                int32_t lo = nb->off[long_hist[h]], end = nb->off[long_hist[h] + 1];
                for (int32_t t = lo; t < end && (!k || t < lo + (int32_t)k); t++)
                    if ((uint32_t)nb->item[t] == asked[q] && nb->sim[t] > best) best = nb->sim[t], want = (int64_t)h;
            }
            assert_int_equal(pos[q], want);
            assert_true(sims[q] == best);
            found += want >= 0;
        }
        assert_true(found >= 4); /* the scan found something to compare */
    }
    free(row);
    free(all);
    cb_neighbours_free(nb);
    cb_dataset_free(ds);
}

/* The cosine fits the items' users a block of items at a time (about an
 * eighth of the interactions each): an item every user picked, more than a
 * block alone, still gives the reference's lists, on 1 and 3 threads. */
static void lists_match_reference_skewed(void **state) {
    (void)state;
    enum { NU = 50, NI = 40, PER = 4 };
    char ub[NU * PER][16], ib[NU * PER][16];
    const char *users[NU * PER], *items[NU * PER];
    float ys[NU * PER];
    uint64_t s = 99;
    for (int u = 0, at = 0; u < NU; u++) {
        bool taken[NI] = {true}; /* item 0, then three other distinct items */
        for (int k = 0; k < PER; at++, k++) {
            int item = 0;
            while (k && taken[item]) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                item = (int)((s >> 33) % NI);
            }
            taken[item] = true;
            snprintf(ub[at], sizeof ub[at], "u%d", u);
            snprintf(ib[at], sizeof ib[at], "i%d", item);
            users[at] = ub[at], items[at] = ib[at], ys[at] = 4;
        }
    }
    cb_error err;
    cb_dataset_builder *b = NULL;
    cb_dataset *ds = NULL;
    assert_int_equal(cb_dataset_builder_create(&b, "skewed", NULL, &err), CB_OK);
    assert_int_equal(cb_dataset_builder_add_ratings(b, users, items, ys, NULL, NU * PER, &err), CB_OK);
    assert_int_equal(cb_dataset_builder_finish(b, &ds, &err), CB_OK);
    cb_dataset_builder_free(b);
    uint32_t *all = all_ratings(ds);
    for (int threads = 1; threads <= 3; threads += 2) {
        cb_neighbours *nb = NULL;
        assert_int_equal(cb_neighbours_fit_shared(&nb, ds, all, ds->n_ratings, CB_NEIGHBOURS_COSINE, 6, 2.0f, NULL,
                                                  threads, &err), CB_OK);
        check_cosine_lists(ds, nb, 6, 2.0f);
        cb_neighbours_free(nb);
    }
    free(all);
    cb_dataset_free(ds);
}

static cb_config *train_config(const char *neighbours, const char *weight) {
    cb_error err;
    cb_config *cfg = NULL;
    assert_int_equal(cb_config_create(&cfg, CB_CONFIG_TRAIN, &err), CB_OK);
    const char *kv[][2] = {{"epochs", "1"},       {"user-layers", "16"}, {"item-layers", "16"}, {"dim", "8"},
                           {"threads", "1"},       {"split", "none"},     {"top-k-popular", "0"},
                           {"neighbours", neighbours}, {"neighbour-kind", "cosine"}, {"neighbour-shrink", "0"},
                           {"neighbour-weight", weight}};
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++) assert_int_equal(cb_config_set(cfg, kv[i][0], kv[i][1], &err), CB_OK);
    return cfg;
}

/* A new user who picked items 2a (a = 0, 5, 10): with the component, the
 * partners 2a+1 are the top three, each explained by its partner. */
static void check_partners_first(const cb_recommender *rec, bool on) {
    cb_error err;
    cb_config *opts = NULL;
    assert_int_equal(cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err), CB_OK);
    assert_int_equal(cb_config_set(opts, "neighbours", on ? "true" : "false", &err), CB_OK);
    cb_list *l = NULL;
    int rc = cb_recommender_recommend(rec, NULL, "{\"ratings\": {\"i0\": 5, \"i10\": 5, \"i20\": 4}}", opts, &l, &err);
    if (rc) fprintf(stderr, "recommend: %s\n", err.msg);
    assert_int_equal(rc, CB_OK);
    size_t partners = 0, explained = 0;
    for (size_t k = 0; k < 3 && k < cb_list_size(l); k++) {
        const char *id = cb_list_item_id(l, k);
        bool partner = !strcmp(id, "i1") || !strcmp(id, "i11") || !strcmp(id, "i21");
        partners += partner;
        for (size_t j = 0; j < cb_list_n_reasons(l, k); j++) {
            const char *why = cb_list_reason(l, k, j);
            if (strstr(why, "also picked this")) {
                int partner_of = atoi(id + 1) - 1; /* the reason names the anchor 2a of item 2a+1 */
                char want[32];
                snprintf(want, sizeof want, "Film %d", partner_of);
                assert_non_null(strstr(why, want));
                explained++;
            }
        }
    }
    if (on) {
        assert_int_equal(partners, 3);
        assert_int_equal(explained, 3);
    } else {
        assert_int_equal(explained, 0); /* off: no neighbour reason, the towers alone */
        assert_true(partners < 3);      /* one epoch of 8-wide towers cannot see the pairs */
    }
    cb_list_free(l);
    cb_config_free(opts);
}

static void recommender_uses_and_saves_it(void **state) {
    (void)state;
    cb_error err;
    cb_dataset *ds = planted(&err);
    cb_config *cfg = train_config("5", "4");
    cb_recommender *rec = NULL;
    int rc = cb_train(&rec, ds, cfg, NULL, NULL, NULL, &err);
    if (rc) fprintf(stderr, "train: %s\n", err.msg);
    assert_int_equal(rc, CB_OK);
    check_partners_first(rec, true);
    check_partners_first(rec, false);
    /* batch: a known user's row changes with the component */
    int64_t it_on[10], it_off[10];
    float sc_on[10], sc_off[10];
    size_t user = 0;
    cb_config *off = NULL;
    assert_int_equal(cb_config_create(&off, CB_CONFIG_RECOMMEND, &err), CB_OK);
    assert_int_equal(cb_config_set(off, "neighbours", "false", &err), CB_OK);
    assert_int_equal(cb_recommender_recommend_batch(rec, &user, 1, 10, NULL, it_on, sc_on, &err), CB_OK);
    assert_int_equal(cb_recommender_recommend_batch(rec, &user, 1, 10, off, it_off, sc_off, &err), CB_OK);
    assert_true(memcmp(sc_on, sc_off, sizeof sc_on) != 0);
    /* every user, listed backwards, from 3 threads (4 blocks of 64 users):
     * the same rows, with the component, as from one */
    size_t nu = cb_recommender_user_count(rec), *all = malloc(nu * sizeof *all);
    for (size_t u = 0; u < nu; u++) all[u] = nu - 1 - u;
    int64_t *i1 = malloc(nu * 10 * sizeof *i1), *i3 = malloc(nu * 10 * sizeof *i3);
    float *s1 = malloc(nu * 10 * sizeof *s1), *s3 = malloc(nu * 10 * sizeof *s3);
    cb_config *three = NULL;
    assert_int_equal(cb_config_create(&three, CB_CONFIG_RECOMMEND, &err), CB_OK);
    assert_int_equal(cb_config_set(three, "threads", "3", &err), CB_OK);
    assert_true(nu > 2 * cb_recommender_batch_block(rec));
    assert_int_equal(cb_recommender_recommend_batch(rec, all, nu, 10, NULL, i1, s1, &err), CB_OK);
    assert_int_equal(cb_recommender_recommend_batch(rec, all, nu, 10, three, i3, s3, &err), CB_OK);
    assert_memory_equal(i1, i3, nu * 10 * sizeof *i1);
    assert_memory_equal(s1, s3, nu * 10 * sizeof *s1);
    cb_config_free(three);
    free(all), free(i1), free(i3), free(s1), free(s3);
    /* the neighbour budget: all of each list while the history fits, then
     * budget / n_hist of each, never fewer than the floor, never the whole list */
    assert_int_equal(cb_rec_neighbour_k(200, 0, 5000), 0);
    assert_int_equal(cb_rec_neighbour_k(200, 20000, 100), 0);
    assert_int_equal(cb_rec_neighbour_k(200, 20000, 101), 198);
    assert_int_equal(cb_rec_neighbour_k(200, 20000, 400), 50);
    assert_int_equal(cb_rec_neighbour_k(200, 20000, 5000), CB_REC_NEIGHBOUR_K_MIN);
    assert_int_equal(cb_rec_neighbour_k(5, 1, 100), 0);
    /* with a budget the single call and the batch still rank alike (the
     * lists here are shorter than the floor: the same as without) */
    cb_config *budget = NULL;
    int64_t it_b[10];
    float sc_b[10];
    assert_int_equal(cb_config_create(&budget, CB_CONFIG_RECOMMEND, &err), CB_OK);
    assert_int_equal(cb_config_set(budget, "neighbour-budget", "3", &err), CB_OK);
    assert_int_equal(cb_recommender_recommend_batch(rec, &user, 1, 10, budget, it_b, sc_b, &err), CB_OK);
    assert_memory_equal(it_b, it_on, sizeof it_on);
    cb_config_free(budget);
    /* the single call and the batch rank alike */
    cb_list *l = NULL;
    assert_int_equal(cb_recommender_recommend(rec, cb_recommender_user_id(rec, 0), NULL, NULL, &l, &err), CB_OK);
    assert_int_equal(cb_list_item(l, 0), (size_t)it_on[0]);
    assert_true(fabsf(cb_list_score(l, 0) - sc_on[0]) < 1e-4f);
    cb_list_free(l);

    /* round trip through the file: the same lists, weight and recommendations */
    char *dir = tu_tmpdir(), *path = tu_path(dir, "m.cbrec");
    assert_int_equal(cb_recommender_save(rec, path, &err), CB_OK);
    cb_recommender *back = NULL;
    assert_int_equal(cb_recommender_load(&back, path, NULL, &err), CB_OK);
    cb_bundle *a = NULL, *b = NULL;
    assert_int_equal(cb_bundle_load(&a, path, &err), CB_OK);
    cb_neighbours *na = a->neighbours;
    assert_non_null(na);
    assert_true(na->weight == 4.0f && na->k == 5 && na->shrink == 0.0f && na->n_items == a->n_items);
    check_partners_first(back, true);
    int64_t it_back[10];
    float sc_back[10];
    assert_int_equal(cb_recommender_recommend_batch(back, &user, 1, 10, NULL, it_back, sc_back, &err), CB_OK);
    assert_memory_equal(it_back, it_on, sizeof it_on);

    /* a model without the section (older files, --neighbours 0) still loads and recommends */
    cb_st *st = NULL;
    assert_int_equal(cb_st_open(&st, path, CB_BUNDLE_FORMAT, CB_BUNDLE_FORMAT_VERSION, &err), CB_OK);
    const char *skip[] = {"neighbours.offsets", "neighbours.items", "neighbours.weights", CB_NEIGHBOURS_META, NULL};
    char *bare = tu_path(dir, "bare.cbrec");
    cb_st_writer *w = cb_st_writer_create(&err);
    assert_int_equal(cb_st_copy(st, w, skip, &err), CB_OK);
    assert_int_equal(cb_st_write(w, bare, CB_BUNDLE_FORMAT, CB_BUNDLE_FORMAT_VERSION, &err), CB_OK);
    cb_st_writer_free(w);
    assert_int_equal(cb_bundle_load(&b, bare, &err), CB_OK);
    assert_null(b->neighbours);
    cb_bundle_free(b);
    cb_recommender *old = NULL; /* with the model's history file: the same "already rated" filter */
    char *hist = tu_path(dir, "m.cbrec.history");
    assert_int_equal(cb_recommender_load_files(&old, bare, hist, NULL, &err), CB_OK);
    free(hist);
    int64_t it_old[10];
    float sc_old[10];
    assert_int_equal(cb_recommender_recommend_batch(old, &user, 1, 10, NULL, it_old, sc_old, &err), CB_OK);
    assert_memory_equal(it_old, it_off, sizeof it_off); /* = the towers alone */
    cb_recommender_free(old);
    /* the model without its history file (seen_item NULL): the batch's
     * neighbour term is empty, the towers alone (UBSan: no NULL + 0) */
    char *lone = tu_path(dir, "lone.cbrec");
    w = cb_st_writer_create(&err);
    const char *skip_none[] = {NULL};
    assert_int_equal(cb_st_copy(st, w, skip_none, &err), CB_OK);
    assert_int_equal(cb_st_write(w, lone, CB_BUNDLE_FORMAT, CB_BUNDLE_FORMAT_VERSION, &err), CB_OK);
    cb_st_writer_free(w);
    assert_int_equal(cb_recommender_load(&old, lone, NULL, &err), CB_OK);
    int64_t it_lone[10], it_lone_off[10];
    float sc_lone[10], sc_lone_off[10];
    assert_int_equal(cb_recommender_recommend_batch(old, &user, 1, 10, NULL, it_lone, sc_lone, &err), CB_OK);
    assert_int_equal(cb_recommender_recommend_batch(old, &user, 1, 10, off, it_lone_off, sc_lone_off, &err), CB_OK);
    assert_memory_equal(it_lone, it_lone_off, sizeof it_lone);
    cb_recommender_free(old);
    free(lone);

    /* a corrupt section is refused, naming the field */
    int32_t nnz = na->off[na->n_items];
    int32_t *items = malloc((size_t)nnz * sizeof *items), *offs = malloc((a->n_items + 1) * sizeof *offs);
    float *sims = malloc((size_t)nnz * sizeof *sims);
    const struct {
        const char *what, *meta, *expect;
        int32_t item0, off1;
        float sim0;
    } bad[] = {
        {"self", NULL, "itself", -2, 0, 1},
        {"out of range", NULL, "out of range", 1 << 20, 0, 1},
        {"nan", NULL, "similarity", -1, 0, NAN},
        {"negative", NULL, "similarity", -1, 0, -0.5f},
        {"offsets", NULL, "monotone", -1, 1 << 20, 1},
        {"weight", "{\"kind\":\"cosine\",\"k\":5,\"shrink\":0,\"weight\":-1}", "out of range", -1, 0, 1},
        {"kind", "{\"kind\":\"svd\",\"k\":5,\"shrink\":0,\"weight\":1}", "kind 'svd'", -1, 0, 1},
        {"meta", "[1,2]", "not {kind", -1, 0, 1},
    };
    for (size_t c = 0; c < sizeof bad / sizeof *bad; c++) {
        memcpy(items, na->item, (size_t)nnz * sizeof *items);
        memcpy(offs, na->off, (a->n_items + 1) * sizeof *offs);
        memcpy(sims, na->sim, (size_t)nnz * sizeof *sims);
        if (bad[c].item0 == -2) items[0] = 0; /* item 0's first neighbour: item 0 itself */
        else if (bad[c].item0 >= 0) items[0] = bad[c].item0;
        if (bad[c].off1) offs[1] = bad[c].off1;
        if (!isnan(bad[c].sim0) && bad[c].sim0 != 1) sims[0] = bad[c].sim0;
        if (isnan(bad[c].sim0)) sims[0] = NAN;
        w = cb_st_writer_create(&err);
        const char *skip_all[] = {"neighbours.offsets", "neighbours.items", "neighbours.weights",
                                  bad[c].meta ? CB_NEIGHBOURS_META : NULL, NULL};
        assert_int_equal(cb_st_copy(st, w, skip_all, &err), CB_OK);
        int64_t n_off = a->n_items + 1, n_nb = nnz;
        assert_int_equal(cb_st_add(w, "neighbours.offsets", CB_ST_I32, &n_off, 1, offs, &err), CB_OK);
        assert_int_equal(cb_st_add(w, "neighbours.items", CB_ST_I32, &n_nb, 1, items, &err), CB_OK);
        assert_int_equal(cb_st_add(w, "neighbours.weights", CB_ST_F32, &n_nb, 1, sims, &err), CB_OK);
        if (bad[c].meta) assert_int_equal(cb_st_set_meta(w, CB_NEIGHBOURS_META, bad[c].meta, &err), CB_OK);
        char *p = tu_path(dir, "bad.cbrec");
        assert_int_equal(cb_st_write(w, p, CB_BUNDLE_FORMAT, CB_BUNDLE_FORMAT_VERSION, &err), CB_OK);
        cb_st_writer_free(w);
        cb_recommender *r = NULL;
        rc = cb_recommender_load(&r, p, NULL, &err);
        if (rc != CB_EFORMAT || !strstr(err.msg, bad[c].expect))
            fprintf(stderr, "case %s: rc %d, '%s'\n", bad[c].what, rc, err.msg);
        assert_int_equal(rc, CB_EFORMAT);
        assert_non_null(strstr(err.msg, bad[c].expect));
        assert_null(r);
        free(p);
    }
    /* the items one shorter than the offsets say (the weights not read then:
     * the refusal had no message) */
    w = cb_st_writer_create(&err);
    const char *skip_lists[] = {"neighbours.items", "neighbours.weights", NULL};
    assert_int_equal(cb_st_copy(st, w, skip_lists, &err), CB_OK);
    int64_t n_short = nnz - 1, n_nb = nnz;
    assert_int_equal(cb_st_add(w, "neighbours.items", CB_ST_I32, &n_short, 1, na->item, &err), CB_OK);
    assert_int_equal(cb_st_add(w, "neighbours.weights", CB_ST_F32, &n_nb, 1, na->sim, &err), CB_OK);
    char *short_path = tu_path(dir, "short.cbrec");
    assert_int_equal(cb_st_write(w, short_path, CB_BUNDLE_FORMAT, CB_BUNDLE_FORMAT_VERSION, &err), CB_OK);
    cb_st_writer_free(w);
    assert_int_equal(cb_bundle_load(&b, short_path, &err), CB_EFORMAT);
    if (!strstr(err.msg, "disagree on their length")) fail_msg("message: '%s'", err.msg);
    free(short_path);
    /* a missing tensor while the metadata is there */
    w = cb_st_writer_create(&err);
    const char *skip_items[] = {"neighbours.items", NULL};
    assert_int_equal(cb_st_copy(st, w, skip_items, &err), CB_OK);
    char *p = tu_path(dir, "missing.cbrec");
    assert_int_equal(cb_st_write(w, p, CB_BUNDLE_FORMAT, CB_BUNDLE_FORMAT_VERSION, &err), CB_OK);
    cb_st_writer_free(w);
    assert_int_equal(cb_bundle_load(&b, p, &err), CB_EFORMAT);
    assert_non_null(strstr(err.msg, "neighbours.items"));
    free(p);
    cb_st_close(st);
    free(items), free(offs), free(sims);
    cb_bundle_free(a);
    cb_recommender_free(back);
    cb_recommender_free(rec);
    cb_config_free(off);
    cb_config_free(cfg);
    tu_rmrf(dir);
    free(dir), free(path), free(bare);
    cb_dataset_free(ds);
}

/* Random lists (NI items, up to 60 neighbours each, similarities on a
 * coarse grid so that ties are common, strongest first) against plain
 * loops: the row is the same floats as the sums in list order, and the
 * contributors are the largest similarity, the first in the history of
 * equals, for few asked items (AVX2's compare) and many (the bitset), some
 * asked twice, some out of any list, some out of range. Run again with
 * CBREC_NO_AVX2=1 (main). */
static void fast_paths_match_plain_loops(void **state) {
    (void)state;
    enum { NI = 700, KMAX = 60, NH = 300 };
    int32_t *off = malloc((NI + 1) * sizeof *off), *item = malloc(NI * KMAX * sizeof *item);
    float *sim = malloc(NI * KMAX * sizeof *sim);
    cb_rng r;
    cb_rng_seed(&r, 99);
    off[0] = 0;
    for (uint32_t i = 0; i < NI; i++) {
        int32_t len = i % 50 == 7 ? 0 : (int32_t)(cb_rng_next(&r) % KMAX) + 1, o = off[i];
        float s = 1.0f;
        for (int32_t t = 0; t < len; t++) {
            int32_t j;
            bool dup;
            do { /* distinct, never the last 20 items (asked but out of every list) */
                j = (int32_t)(cb_rng_next(&r) % (NI - 20));
                dup = false;
                for (int32_t u = o; u < o + t; u++) dup |= item[u] == j;
            } while (dup);
            if (cb_rng_next(&r) % 3 == 0) s -= 1.0f / 128; /* else a tie with the previous */
            item[o + t] = j, sim[o + t] = s > 0 ? s : 1.0f / 1024;
        }
        off[i + 1] = o + len;
    }
    cb_neighbours nb = {.n_items = NI, .k = KMAX, .off = off, .item = item, .sim = sim};
    uint32_t hist[NH];
    for (size_t h = 0; h < NH; h++) hist[h] = h % 97 == 5 ? NI + 3 : (uint32_t)(cb_rng_next(&r) % NI);
    hist[10] = hist[3]; /* a history item twice */
    float *row = malloc(NI * sizeof *row), *ref = malloc(NI * sizeof *ref);
    for (uint32_t k = 0; k <= 40; k += 40) {
        memset(ref, 0, NI * sizeof *ref);
        float max = 0;
        for (size_t h = 0; h < NH; h++)
            for (int32_t t = 0; hist[h] < NI && t < off[hist[h] + 1] - off[hist[h]] && (!k || t < (int32_t)k); t++)
                ref[item[off[hist[h]] + t]] += sim[off[hist[h]] + t];
        for (uint32_t i = 0; i < NI; i++) max = ref[i] > max ? ref[i] : max;
        assert_true(cb_neighbours_row(&nb, hist, NH, k, row) == max);
        assert_memory_equal(row, ref, NI * sizeof *row);
        for (size_t n_asked = 1; n_asked <= 100; n_asked = n_asked * 3 + 1) {
            uint32_t asked[100];
            int64_t pos[100];
            float got[100];
            for (size_t q = 0; q < n_asked; q++) asked[q] = (uint32_t)(cb_rng_next(&r) % (NI + 5));
            if (n_asked > 2) asked[1] = asked[0];
            cb_error err;
            assert_int_equal(cb_neighbours_top_contributors(&nb, hist, NH, k, asked, n_asked, pos, got, &err), CB_OK);
            for (size_t q = 0; q < n_asked; q++) {
                int64_t want = -1;
                float best = 0;
                for (size_t h = 0; h < NH; h++)
                    for (int32_t t = 0; hist[h] < NI && t < off[hist[h] + 1] - off[hist[h]] && (!k || t < (int32_t)k); t++)
                        if ((uint32_t)item[off[hist[h]] + t] == asked[q] && sim[off[hist[h]] + t] > best)
                            best = sim[off[hist[h]] + t], want = (int64_t)h;
                assert_int_equal(pos[q], want);
                assert_true(got[q] == best);
            }
        }
    }
    free(row), free(ref), free(off), free(item), free(sim);
}

static const char *self_path;

/* The same tests on the plain path: this binary again, CBREC_NO_AVX2=1
 * (nothing to do when this run is already plain). */
static void plain_path_agrees(void **state) {
    (void)state;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "CBREC_NO_AVX2=1 '%s' --plain >/dev/null 2>&1", self_path);
    if (cb_cpu_avx2()) assert_int_equal(system(cmd), 0);
}

/* K's tie-break as the tuning JSON shows it: the chosen K is the smallest
 * whose best cell with lists (w > 0) is within that cell's margin (one paired standard error of
 * its difference from the grid's best, at least 0.001: neighbours.c's
 * k_margin) of the grid's best NDCG@10 (K clamped to the lists' length), and
 * the chosen (divisor, w) is that K's best cell. The JSON keeps 5
 * significant digits, hence the 2e-5 slack. */
static void check_k_tie_break(const cb_neighbours *nb) {
    json_error_t jerr;
    json_t *doc = json_loads(nb->tuning, 0, &jerr), *grid = json_object_get(doc, "grid"), *cell;
    assert_true(json_array_size(grid) > 0);
    enum { MAX_K = 600 };
    double top = -1, best[MAX_K], margin[MAX_K], chosen = -1; /* best and its margin per K */
    for (int k = 0; k < MAX_K; k++) best[k] = -1, margin[k] = 0;
    size_t i, n_k = 0;
    json_array_foreach(grid, i, cell) {
        double v = json_real_value(json_object_get(cell, "ndcg10"));
        double m = json_real_value(json_object_get(cell, "margin"));
        uint32_t k = (uint32_t)json_integer_value(json_object_get(cell, "k"));
        assert_true(k < MAX_K && m >= 0.001 - 1e-9);
        top = v > top ? v : top;
        if (v > best[k] && json_real_value(json_object_get(cell, "weight")) > 0) /* w = 0 has no K */
            best[k] = v, margin[k] = m;
        if ((k < N_ITEMS - 1 ? k : N_ITEMS - 1) != nb->k) continue; /* the lists' length clamps K */
        n_k++;
        bool one = !strcmp(json_string_value(json_object_get(cell, "divisor")), "one");
        if (one == nb->raw && fabs(json_real_value(json_object_get(cell, "weight")) - nb->weight) < 1e-6 &&
            fabs(json_real_value(json_object_get(cell, "param")) - nb->lambda) < 1e-3)
            chosen = v > chosen ? v : chosen;
    }
    assert_true(n_k > 0 && n_k < json_array_size(grid)); /* several K tried */
    bool found = false;
    for (uint32_t k = 1; k < MAX_K && !found; k++) {
        if (best[k] < 0) continue;
        if ((k < N_ITEMS - 1 ? k : N_ITEMS - 1) < nb->k) { /* a smaller K: not the best's equal */
            assert_true(best[k] < top - margin[k] + 2e-5);
            continue;
        }
        assert_true(best[k] >= top - margin[k] - 2e-5);
        assert_true(chosen >= best[k] - 2e-5);
        found = true;
    }
    assert_true(found);
    json_decref(doc);
}

/* Random picks: nu users, each with per_user distinct items of ni. */
static cb_dataset *random_picks(int nu, int ni, int per_user, cb_error *err) {
    size_t n = (size_t)nu * (size_t)per_user;
    char (*ub)[16] = malloc(n * sizeof *ub), (*ib)[16] = malloc(n * sizeof *ib);
    const char **users = malloc(n * sizeof *users), **items = malloc(n * sizeof *items);
    float *ys = malloc(n * sizeof *ys);
    bool *taken = malloc((size_t)ni);
    uint64_t s = 777;
    for (int u = 0, at = 0; u < nu; u++) {
        memset(taken, 0, (size_t)ni);
        for (int k = 0; k < per_user;) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            int item = (int)((s >> 33) % (uint64_t)ni);
            if (taken[item]) continue;
            taken[item] = true, k++;
            snprintf(ub[at], sizeof ub[at], "u%d", u);
            snprintf(ib[at], sizeof ib[at], "i%d", item);
            users[at] = ub[at], items[at] = ib[at], ys[at] = (float)(1 + (s >> 50) % 5), at++;
        }
    }
    cb_dataset_builder *b = NULL;
    assert_int_equal(cb_dataset_builder_create(&b, "random", NULL, err), CB_OK);
    assert_int_equal(cb_dataset_builder_add_ratings(b, users, items, ys, NULL, n, err), CB_OK);
    cb_dataset *ds = NULL;
    assert_int_equal(cb_dataset_builder_finish(b, &ds, err), CB_OK);
    cb_dataset_builder_free(b);
    free(ub), free(ib), free(users), free(items), free(ys), free(taken);
    return ds;
}

/* EASE's lists in both forms (item form: 400 users of 300 items; user form:
 * 60 users of 500) against the dense reference: B = I - P / diag(P), P =
 * (X^T X + lambda I)^-1 over every item, item i's list the K largest
 * positive B_ij (j != i), best first. Weights within 1e-4 of the row's
 * largest; the items too, but where two weights are that close. */
static void ease_lists_match_a_dense_reference(void **state) {
    (void)state;
    cb_error err;
    cb_dataset *sets[2] = {random_picks(400, 300, 12, &err), random_picks(60, 500, 25, &err)};
    for (int d = 0; d < 2; d++) {
        cb_dataset *ds = sets[d];
        uint32_t *all = all_ratings(ds), ni = cb_dataset_n_items(ds), nu = cb_dataset_n_users(ds), K = 9;
        double *x = calloc((size_t)nu * ni, sizeof *x), *p = calloc((size_t)ni * ni, sizeof *p), lambda = 20;
        for (size_t j = 0; j < ds->n_ratings; j++) x[(size_t)ds->ratings[j].user * ni + ds->ratings[j].item] = 1;
        for (uint32_t u = 0; u < nu; u++) /* the Gram matrix X^T X */
            for (uint32_t a = 0; a < ni; a++)
                if (x[(size_t)u * ni + a])
                    for (uint32_t b = 0; b < ni; b++) p[(size_t)a * ni + b] += x[(size_t)u * ni + b];
        assert_int_equal(cb_neighbours_ridge_inverse(p, ni, lambda, 1, NULL, &err), CB_OK);
        cb_neighbours *nb = NULL;
        assert_int_equal(cb_neighbours_fit(&nb, ds, all, ds->n_ratings, CB_NEIGHBOURS_EASE, K, (float)lambda, &err),
                         CB_OK);
        size_t listed = 0;
        for (uint32_t i = 0; i < ni; i++) {
            double w[K + 1], top = 0; /* the reference's K + 1 best of row i (the last: for ties) */
            uint32_t id[K + 1], n = 0;
            for (uint32_t j = 0; j < ni; j++) {
                double b = -p[(size_t)i * ni + j] / p[(size_t)j * ni + j];
                if (j == i || !(b > 0) || (n == K + 1 && !(b > w[K]))) continue;
                uint32_t q = n < K + 1 ? n++ : K;
                for (; q > 0 && b > w[q - 1]; q--) w[q] = w[q - 1], id[q] = id[q - 1];
                w[q] = b, id[q] = j;
            }
            top = n ? w[0] : 0;
            uint32_t m = n < K ? n : K;
            assert_int_equal(nb->off[i + 1] - nb->off[i], m);
            for (uint32_t r = 0; r < m; r++) {
                double got = nb->sim[nb->off[i] + r];
                assert_true(fabs(got - w[r]) <= 1e-4 * top);
                bool tie = (r > 0 && w[r - 1] - w[r] <= 1e-4 * top) || (r + 1 < n && w[r] - w[r + 1] <= 1e-4 * top);
                if (!tie) assert_int_equal(nb->item[nb->off[i] + r], id[r]);
            }
            listed += m;
        }
        assert_true(listed > (size_t)ni * K / 2); /* lists to compare */
        cb_neighbours_free(nb);
        free(x), free(p), free(all);
        cb_dataset_free(ds);
    }
}

/* The lists of every kind (the cosine, EASE's item and user forms) are the
 * same bits on 1, 2 and 3 threads (items in chunks taken by whichever thread
 * is free: a list written for the wrong item or in the wrong order differs). */
static void lists_same_on_threads(void **state) {
    (void)state;
    cb_error err;
    cb_dataset *sets[2] = {random_picks(400, 300, 12, &err), random_picks(60, 500, 25, &err)}; /* item, user form */
    for (int d = 0; d < 2; d++) {
        uint32_t *all = all_ratings(sets[d]), ni = cb_dataset_n_items(sets[d]);
        for (int kind = 0; kind < 2; kind++) {
            cb_neighbours *one = NULL;
            float param = kind == CB_NEIGHBOURS_EASE ? 20.0f : 2.0f;
            assert_int_equal(cb_neighbours_fit_shared(&one, sets[d], all, sets[d]->n_ratings, (cb_neighbours_kind)kind,
                                                      7, param, NULL, 1, &err), CB_OK);
            assert_true(one->off[ni] > (int32_t)ni); /* lists to compare */
            for (int threads = 2; threads <= 3; threads++) {
                cb_neighbours *nb = NULL;
                assert_int_equal(cb_neighbours_fit_shared(&nb, sets[d], all, sets[d]->n_ratings,
                                                          (cb_neighbours_kind)kind, 7, param, NULL, threads, &err),
                                 CB_OK);
                assert_memory_equal(nb->off, one->off, ((size_t)ni + 1) * sizeof *nb->off);
                assert_memory_equal(nb->item, one->item, (size_t)one->off[ni] * sizeof *nb->item);
                assert_memory_equal(nb->sim, one->sim, (size_t)one->off[ni] * sizeof *nb->sim);
                cb_neighbours_free(nb);
            }
            cb_neighbours_free(one);
        }
        free(all);
        cb_dataset_free(sets[d]);
    }
}

/* A fixed tower row per user: a hash of (user, item) in [0, 1). */
static void hashed_row(void *ctx, uint32_t user, float *row) {
    uint32_t ni = *(const uint32_t *)ctx;
    for (uint32_t i = 0; i < ni; i++) {
        uint64_t h = ((uint64_t)user * 2654435761u + i) * 0x9E3779B97F4A7C15ull;
        row[i] = (float)(h >> 40) / (float)(1u << 24);
    }
}

/* The data the tuning tests share: 700 users' random picks of 300 items and
 * a per-user carve of them. */
typedef struct tune_case {
    cb_dataset *ds;
    uint32_t *all, ni;
    cb_split carve;
    size_t *hoff, *roff; /* tune_case_lists: each user's carve training items and relevant items */
    uint32_t *hist, *rel;
} tune_case;

static void tune_case_open(tune_case *t) {
    cb_error err;
    memset(t, 0, sizeof *t);
    t->ds = random_picks(700, 300, 14, &err);
    t->all = all_ratings(t->ds);
    t->ni = cb_dataset_n_items(t->ds);
    assert_int_equal(cb_split_carve(&t->carve, t->ds, t->all, t->ds->n_ratings, CB_SPLIT_PER_USER, 0.2, 1, &err), CB_OK);
}

static void tune_case_close(tune_case *t) {
    free(t->hist), free(t->hoff), free(t->rel), free(t->roff);
    cb_split_free(&t->carve);
    free(t->all);
    cb_dataset_free(t->ds);
}

/* The tuning's choice and JSON are the same bits on 1, 2 and 3 threads (the
 * blocks of users scored on several threads, the fits too), for the cosine
 * and EASE. */
static void tuning_same_on_threads(void **state) {
    (void)state;
    cb_error err;
    tune_case tc;
    tune_case_open(&tc);
    for (int kind = 0; kind < 2; kind++) {
        cb_neighbours_choice fixed = {.kind = kind, .param = -1, .weight = -1}, first;
        char *json1 = NULL;
        for (int threads = 1; threads <= 3; threads++) {
            cb_neighbours_choice ch;
            char *json = NULL;
            assert_int_equal(cb_neighbours_tune(&ch, &json, &fixed, tc.ds, &tc.carve, 3.0f, 0, hashed_row, &tc.ni, NULL,
                                                threads, &err), CB_OK);
            assert_non_null(json);
            assert_true(ch.n_users > 3 * 16); /* several blocks of users */
            if (threads == 1) {
                first = ch, json1 = json;
                continue;
            }
            assert_memory_equal(&ch, &first, sizeof ch);
            assert_string_equal(json, json1);
            free(json);
        }
        free(json1);
    }
    tune_case_close(&tc);
}

/* Sorted distinct items per user of the ratings idx[0..n) (those with y >=
 * min_y): CSR off[nu + 1], items. */
static uint32_t *user_items(const cb_dataset *ds, const uint32_t *idx, size_t n, float min_y, size_t **off) {
    uint32_t nu = cb_dataset_n_users(ds);
    *off = calloc((size_t)nu + 2, sizeof **off);
    uint32_t *items = malloc((n + 1) * sizeof *items);
    for (size_t j = 0; j < n; j++)
        if (ds->ratings[idx[j]].y >= min_y) (*off)[ds->ratings[idx[j]].user + 2]++;
    for (uint32_t u = 0; u < nu; u++) (*off)[u + 2] += (*off)[u + 1];
    for (size_t j = 0; j < n; j++)
        if (ds->ratings[idx[j]].y >= min_y) items[(*off)[ds->ratings[idx[j]].user + 1]++] = ds->ratings[idx[j]].item;
    for (uint32_t u = 0; u < nu; u++) { /* insertion sort, then duplicates dropped in place */
        uint32_t *a = items + (*off)[u];
        size_t m = (*off)[u + 1] - (*off)[u], w = 0;
        for (size_t i = 1; i < m; i++)
            for (size_t k = i; k > 0 && a[k - 1] > a[k]; k--) {
                uint32_t t = a[k];
                a[k] = a[k - 1], a[k - 1] = t;
            }
        for (size_t i = 0; i < m; i++)
            if (!w || a[w - 1] != a[i]) a[w++] = a[i];
        for (size_t i = w; i < m; i++) a[i] = UINT32_MAX; /* never an item, never relevant */
    }
    return items;
}

/* The case's per-user lists the slow way measures with (reference_ndcg). */
static void tune_case_lists(tune_case *t) {
    t->hist = user_items(t->ds, t->carve.train, t->carve.n_train, -INFINITY, &t->hoff);
    t->rel = user_items(t->ds, t->carve.test, t->carve.n_test, 3.0f, &t->roff);
}

/* One grid cell's NDCG@10 (and *recall20; each measured user's in
 * per_user, when not NULL) the slow way: every measured
 * user's blended row (tower + scale x the neighbour row, as
 * cb_neighbours_blend makes it), its top 20 by a full pass per rank (score descending, item ascending,
 * -inf never listed), the hits against the relevant items. */
static double reference_ndcg(const tune_case *tc, const cb_neighbours *nb, uint32_t k, bool one, float w,
                             double *recall20, double *per_user) {
    uint32_t ni = tc->ni, nu = cb_dataset_n_users(tc->ds);
    const size_t *hoff = tc->hoff, *roff = tc->roff;
    const uint32_t *hist = tc->hist, *rel = tc->rel;
    float *tower = malloc(ni * sizeof *tower), *raw = malloc(ni * sizeof *raw);
    double sum = 0, rsum = 0;
    size_t n_users = 0;
    for (uint32_t u = 0; u < nu; u++) {
        size_t n_hist = 0, n_rel = 0;
        while (hoff[u] + n_hist < hoff[u + 1] && hist[hoff[u] + n_hist] != UINT32_MAX) n_hist++;
        while (roff[u] + n_rel < roff[u + 1] && rel[roff[u] + n_rel] != UINT32_MAX) n_rel++;
        if (!n_hist || !n_rel) continue;
        n_users++;
        hashed_row((void *)&tc->ni, u, tower);
        for (size_t h = 0; h < n_hist; h++) tower[hist[hoff[u] + h]] = -INFINITY;
        float max = cb_neighbours_row(nb, hist + hoff[u], n_hist, k, raw);
        cb_neighbours_blend(tower, raw, ni, one && max > 0 ? 1.0f : max, w);
        double dcg = 0, idcg = 0, hits = 0;
        for (int r = 0; r < 20; r++) {
            uint32_t best = UINT32_MAX;
            for (uint32_t i = 0; i < ni; i++)
                if (tower[i] > -INFINITY && (best == UINT32_MAX || tower[i] > tower[best])) best = i;
            if (best == UINT32_MAX) break;
            for (size_t q = 0; q < n_rel; q++)
                if (rel[roff[u] + q] == best) dcg += r < 10 ? 1.0 / log2(r + 2.0) : 0, hits++;
            tower[best] = -INFINITY;
        }
        for (size_t r = 0; r < n_rel && r < 10; r++) idcg += 1.0 / log2(r + 2.0);
        sum += dcg / idcg;
        rsum += hits / (double)n_rel;
        if (per_user) per_user[n_users - 1] = dcg / idcg;
    }
    free(tower), free(raw);
    *recall20 = rsum / (double)n_users;
    return sum / (double)n_users;
}

/* The grid's cells (every 7th, both kinds, both divisors, every K and
 * weight among them) equal the slow way's NDCG@10: the scan's shortcuts
 * (each cell's top list bounded from below by the last cell's, the tower's
 * own list made once a user, eight items at a time) list what a full sort
 * lists. The JSON keeps 5 significant digits. */
static void grid_cells_match_a_full_sort(void **state) {
    (void)state;
    cb_error err;
    tune_case tc;
    tune_case_open(&tc);
    tune_case_lists(&tc);
    for (int kind = 0; kind < 2; kind++) {
        cb_neighbours_choice fixed = {.kind = kind, .param = -1, .weight = -1}, ch;
        char *json = NULL;
        assert_int_equal(cb_neighbours_tune(&ch, &json, &fixed, tc.ds, &tc.carve, 3.0f, 0, hashed_row, &tc.ni, NULL, 1,
                                            &err), CB_OK);
        json_error_t jerr;
        json_t *doc = json_loads(json, 0, &jerr), *grid = json_object_get(doc, "grid"), *cell;
        assert_true(json_array_size(grid) > 100);
        size_t i, checked = 0;
        cb_neighbours *nb = NULL;
        double nb_param = -1;
        json_array_foreach(grid, i, cell) {
            if (i % 7) continue;
            double param = json_real_value(json_object_get(cell, "param"));
            if (param != nb_param) { /* the grid's fits: on the carve's training ratings, K 500 */
                cb_neighbours_free(nb);
                assert_int_equal(cb_neighbours_fit(&nb, tc.ds, tc.carve.train, tc.carve.n_train,
                                                   (cb_neighbours_kind)kind, 500, (float)param, &err), CB_OK);
                nb_param = param;
            }
            uint32_t k = (uint32_t)json_integer_value(json_object_get(cell, "k"));
            bool one = !strcmp(json_string_value(json_object_get(cell, "divisor")), "one");
            float w = (float)json_real_value(json_object_get(cell, "weight"));
            double want_recall, want = reference_ndcg(&tc, nb, k, one, w, &want_recall, NULL);
            double got = json_real_value(json_object_get(cell, "ndcg10"));
            double got_recall = json_real_value(json_object_get(cell, "recall20"));
            assert_true(fabs(got - want) <= 1e-5 * (want > 1 ? want : 1));
            assert_true(fabs(got_recall - want_recall) <= 1e-5 * (want_recall > 1 ? want_recall : 1));
            checked++;
        }
        assert_true(checked > 20);
        cb_neighbours_free(nb);
        json_decref(doc);
        free(json);
    }
    tune_case_close(&tc);
}

/* Each cell's margin in the tuning JSON is one standard error of its mean
 * NDCG@10 difference from the grid's best cell, by batch means over blocks
 * of 16 measured users (neighbours.c's TUNE_BLOCK; or 0.001, whichever is more), made here from the slow
 * way's per-user values; and the blocks' estimate is within a factor 2 of
 * the one from the per-user differences themselves (the users independent). */
static void margins_are_paired_standard_errors(void **state) {
    (void)state;
    cb_error err;
    tune_case tc;
    tune_case_open(&tc);
    tune_case_lists(&tc);
    cb_neighbours_choice fixed = {.kind = CB_NEIGHBOURS_COSINE, .param = 10, .weight = -1}, ch;
    char *json = NULL;
    assert_int_equal(cb_neighbours_tune(&ch, &json, &fixed, tc.ds, &tc.carve, 3.0f, 0, hashed_row, &tc.ni, NULL, 1, &err),
                     CB_OK);
    json_error_t jerr;
    json_t *doc = json_loads(json, 0, &jerr), *grid = json_object_get(doc, "grid"), *cell, *top = NULL;
    size_t i, n = ch.n_users, wide = 0;
    json_array_foreach(grid, i, cell) /* the best: the first of equals */
        if (!top || json_real_value(json_object_get(cell, "ndcg10")) > json_real_value(json_object_get(top, "ndcg10")))
            top = cell;
    cb_neighbours *nb = NULL;
    assert_int_equal(cb_neighbours_fit(&nb, tc.ds, tc.carve.train, tc.carve.n_train, CB_NEIGHBOURS_COSINE, 500, 10, &err),
                     CB_OK);
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), r;
#define CELL_NDCG(c, out)                                                                                             \
    reference_ndcg(&tc, nb, (uint32_t)json_integer_value(json_object_get(c, "k")),                                   \
                   !strcmp(json_string_value(json_object_get(c, "divisor")), "one"),                                   \
                   (float)json_real_value(json_object_get(c, "weight")), &r, out)
    CELL_NDCG(top, a);
    json_array_foreach(grid, i, cell) {
        if (i % 5) continue;
        CELL_NDCG(cell, b);
        double mean = 0, ss_block = 0, ss_user = 0, nb_blocks = (double)((n + 15) / 16);
        for (size_t u = 0; u < n; u++) mean += a[u] - b[u];
        mean /= (double)n;
        for (size_t lo = 0; lo < n; lo += 16) {
            double s = 0, m = 0;
            for (size_t u = lo; u < n && u < lo + 16; u++) s += a[u] - b[u], m++;
            ss_block += (s - m * mean) * (s - m * mean);
        }
        for (size_t u = 0; u < n; u++) ss_user += (a[u] - b[u] - mean) * (a[u] - b[u] - mean);
        double se_block = sqrt(ss_block * nb_blocks / (nb_blocks - 1)) / (double)n;
        double se_user = sqrt(ss_user / (double)(n - 1) / (double)n);
        double got = json_real_value(json_object_get(cell, "margin"));
        assert_true(fabs(got - (se_block > 0.001 ? se_block : 0.001)) <= 1e-4 * got); /* 5 digits */
        if (se_user > 0.002) {
            assert_true(se_block > se_user / 2 && se_block < se_user * 2);
            wide++;
        }
    }
#undef CELL_NDCG
    assert_true(n > 5 * 16 && wide > 5); /* several blocks; several margins above the floor */
    free(a), free(b);
    cb_neighbours_free(nb);
    json_decref(doc);
    free(json);
    tune_case_close(&tc);
}

/* A tower that knows each user's relevant items (ctx: the tune_case, its
 * lists made), by a hair: every list blended in at w >= 0.5 outweighs it. */
static void oracle_row(void *ctx, uint32_t user, float *row) {
    const tune_case *tc = ctx;
    memset(row, 0, tc->ni * sizeof *row);
    for (size_t a = tc->roff[user]; a < tc->roff[user + 1] && tc->rel[a] != UINT32_MAX; a++) row[tc->rel[a]] = 1e-4f;
}

/* The grid's corners: no measured users (every rating below the threshold)
 * with a fixed weight, and towers that beat every cell with lists by far:
 * both choose the towers alone (w 0) with a real kind, and the second
 * reports the towers' NDCG@10 as the choice's. */
static void tuning_falls_back_to_the_towers(void **state) {
    (void)state;
    cb_error err;
    tune_case tc;
    tune_case_open(&tc);
    tune_case_lists(&tc);
    cb_neighbours_choice fixed = {.kind = CB_NEIGHBOURS_EASE, .param = -1, .weight = 2}, ch;
    assert_int_equal(cb_neighbours_tune(&ch, NULL, &fixed, tc.ds, &tc.carve, 99.0f, 0, hashed_row, &tc.ni, NULL, 1, &err),
                     CB_OK);
    assert_true(ch.n_users == 0 && ch.weight == 0);
    assert_true(ch.kind == CB_NEIGHBOURS_COSINE || ch.kind == CB_NEIGHBOURS_EASE);
    fixed = (cb_neighbours_choice){.kind = CB_NEIGHBOURS_COSINE, .param = 10, .weight = -1};
    assert_int_equal(cb_neighbours_tune(&ch, NULL, &fixed, tc.ds, &tc.carve, 3.0f, 0, oracle_row, &tc, NULL, 1, &err),
                     CB_OK);
    assert_true(ch.weight == 0 && ch.ndcg_towers > 0.99);
    assert_true(ch.ndcg == ch.ndcg_towers && ch.recall == ch.recall_towers);
    tune_case_close(&tc);
}

/* ---- R ranks in one process: threads and a barrier stand in for MPI (the
 * grid's work split across ranks needs only the all-gather) */

enum { MAX_RANKS = 5 };

typedef struct fake_world {
    pthread_barrier_t bar;
    float *slot[MAX_RANKS]; /* each rank's buffer while a call runs */
} fake_world;

typedef struct fake_rank {
    fake_world *w;
    cb_train_comm comm;
    const cb_dataset *ds;
    const cb_split *carve;
    cb_neighbours_choice fixed, choice;
    uint32_t ni;
    char *json;
    int rc;
} fake_rank;

static int fake_allgather(void *ctx, float *buf, const int *count, const int *offset) {
    fake_rank *r = ctx;
    r->w->slot[r->comm.rank] = buf;
    pthread_barrier_wait(&r->w->bar);
    for (int o = 0; o < r->comm.n_ranks; o++)
        if (o != r->comm.rank)
            memcpy(buf + offset[o], r->w->slot[o] + offset[o], (size_t)count[o] * sizeof(float));
    pthread_barrier_wait(&r->w->bar);
    return 0;
}

static int fake_allreduce(void *ctx, float *buf, size_t n) { /* not called by the tuning */
    (void)ctx, (void)buf, (void)n;
    return 1;
}

static void *tune_rank(void *arg) {
    fake_rank *r = arg;
    cb_error err;
    r->rc = cb_neighbours_tune(&r->choice, &r->json, &r->fixed, r->ds, r->carve, 3.0f, 0, hashed_row, &r->ni,
                               &r->comm, 1, &err);
    return NULL;
}

/* The tuning's choice and JSON are the same bits on 2 to 5 ranks as in one
 * process: fewer ranks than EASE's three points (one point shared: its lists
 * fitted in parts, its user blocks dealt in turn), as many, and more (each
 * point's blocks dealt across its group of ranks), and the cosine's. */
static void tuning_same_across_ranks(void **state) {
    (void)state;
    cb_error err;
    tune_case tc;
    tune_case_open(&tc);
    for (int kind = 0; kind < 2; kind++) {
        cb_neighbours_choice fixed = {.kind = kind, .param = -1, .weight = -1}, one;
        char *json1 = NULL;
        assert_int_equal(
            cb_neighbours_tune(&one, &json1, &fixed, tc.ds, &tc.carve, 3.0f, 0, hashed_row, &tc.ni, NULL, 1, &err),
            CB_OK);
        for (int R = 2; R <= MAX_RANKS; R++) {
            fake_world w;
            pthread_barrier_init(&w.bar, NULL, (unsigned)R);
            fake_rank r[MAX_RANKS];
            pthread_t t[MAX_RANKS];
            for (int k = 0; k < R; k++) {
                r[k] = (fake_rank){.w = &w, .ds = tc.ds, .carve = &tc.carve, .fixed = fixed, .ni = tc.ni};
                r[k].comm = (cb_train_comm){k, R, &r[k], fake_allgather, fake_allreduce};
                assert_int_equal(pthread_create(&t[k], NULL, tune_rank, &r[k]), 0);
            }
            for (int k = 0; k < R; k++) pthread_join(t[k], NULL);
            pthread_barrier_destroy(&w.bar);
            for (int k = 0; k < R; k++) {
                assert_int_equal(r[k].rc, CB_OK);
                assert_memory_equal(&r[k].choice, &one, sizeof one);
                assert_string_equal(r[k].json, json1);
                free(r[k].json);
            }
        }
        free(json1);
    }
    tune_case_close(&tc);
}

/* "auto": the carve prefers the component here (the towers cannot see the
 * pairs), EASE as its inverse fits, and the model file keeps what the carve
 * measured (NDCG@10 and recall@20 per setting). "0": none. */
static void tuned_on_the_carve(void **state) {
    (void)state;
    cb_error err;
    cb_dataset *ds = planted(&err);
    cb_config *cfg = train_config("auto", "auto");
    assert_int_equal(cb_config_set(cfg, "neighbour-shrink", "auto", &err), CB_OK);
    assert_int_equal(cb_config_set(cfg, "neighbour-kind", "auto", &err), CB_OK);
    cb_recommender *rec = NULL;
    assert_int_equal(cb_train(&rec, ds, cfg, NULL, NULL, NULL, &err), CB_OK);
    char *dir = tu_tmpdir(), *path = tu_path(dir, "m.cbrec");
    assert_int_equal(cb_recommender_save(rec, path, &err), CB_OK);
    cb_bundle *b = NULL;
    assert_int_equal(cb_bundle_load(&b, path, &err), CB_OK);
    assert_non_null(b->neighbours);
    assert_true(b->neighbours->weight > 0);
    assert_non_null(b->neighbours->tuning);
    assert_non_null(strstr(b->neighbours->tuning, "\"grid\""));
    assert_non_null(strstr(b->neighbours->tuning, "\"recall20\""));
    /* auto kind: EASE where its inverse fits (it does here), never the cosine */
    assert_int_equal(b->neighbours->kind, CB_NEIGHBOURS_EASE);
    assert_null(strstr(b->neighbours->tuning, "\"cosine\""));
    check_k_tie_break(b->neighbours);
    cb_bundle_free(b);
    cb_recommender_free(rec);
    assert_int_equal(cb_config_set(cfg, "neighbours", "0", &err), CB_OK);
    assert_int_equal(cb_train(&rec, ds, cfg, NULL, NULL, NULL, &err), CB_OK);
    assert_int_equal(cb_recommender_save(rec, path, &err), CB_OK);
    assert_int_equal(cb_bundle_load(&b, path, &err), CB_OK);
    assert_null(b->neighbours);
    cb_bundle_free(b);
    cb_recommender_free(rec);
    cb_config_free(cfg);
    tu_rmrf(dir);
    free(dir), free(path);
    cb_dataset_free(ds);
}

static int count_calls(const cb_progress *p, void *ctx) {
    (void)p;
    (*(int *)ctx)++;
    return 0;
}

/* K of at least the catalog: no list can be longer than n_items - 1, so K is
 * clamped to it (the model keeps that K); a K whose lists would overflow the
 * model file's int32 offsets is refused before training, not after it. */
static void k_beyond_the_catalog(void **state) {
    (void)state;
    cb_error err;
    cb_dataset *ds = planted(&err);
    cb_config *cfg = train_config("1000", "4");
    cb_recommender *rec = NULL;
    assert_int_equal(cb_train(&rec, ds, cfg, NULL, NULL, NULL, &err), CB_OK);
    const cb_neighbours *nb = rec->r->neighbours;
    assert_non_null(nb);
    assert_int_equal(nb->k, N_ITEMS - 1);
    check_partners_first(rec, true);
    cb_recommender_free(rec);
    cb_config_free(cfg);
    cb_dataset_free(ds);

    /* 46400 items x 46399 neighbours > INT32_MAX: refused with no epoch run */
    enum { NI = 46400, NU = 400 };
    cb_dataset_builder *b = NULL;
    assert_int_equal(cb_dataset_builder_create(&b, "wide", NULL, &err), CB_OK);
    char (*ub)[16] = malloc(NI * sizeof *ub), (*ib)[16] = malloc(NI * sizeof *ib);
    const char **users = malloc(NI * sizeof *users), **items = malloc(NI * sizeof *items);
    float *ys = malloc(NI * sizeof *ys);
    for (int i = 0; i < NI; i++) {
        snprintf(ub[i], sizeof ub[i], "u%d", i % NU);
        snprintf(ib[i], sizeof ib[i], "i%d", i);
        users[i] = ub[i], items[i] = ib[i], ys[i] = (float)(1 + i % 5);
    }
    assert_int_equal(cb_dataset_builder_add_ratings(b, users, items, ys, NULL, NI, &err), CB_OK);
    assert_int_equal(cb_dataset_builder_finish(b, &ds, &err), CB_OK);
    cb_dataset_builder_free(b);
    cfg = train_config("50000", "4");
    int calls = 0;
    int rc = cb_train(&rec, ds, cfg, count_calls, &calls, NULL, &err);
    if (rc != CB_EINVAL) fprintf(stderr, "train: rc %d, '%s'\n", rc, err.msg);
    assert_int_equal(rc, CB_EINVAL);
    assert_null(rec);
    assert_non_null(strstr(err.msg, "int32"));
    assert_int_equal(calls, 0); /* before training */
    free(ub), free(ib), free(users), free(items), free(ys);
    cb_config_free(cfg);
    cb_dataset_free(ds);
}

/* LAPACK's own (libopenblas), the reference for the tiled inverse */
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
extern void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);

/* The tiled inverse (model/ridge_inverse.c) of a random Gram matrix plus a
 * ridge, on sides around its tile (128): the same bits on 1, 2 and 3
 * threads, symmetric, within 1e-10 (relative to the largest entry) of
 * LAPACK's dpotrf + dpotri, and its product with the matrix within 1e-9 of
 * the identity; a matrix that is not positive definite is CB_ENUMERIC. */
static void ridge_inverse_matches_lapack(void **state) {
    (void)state;
    const size_t sides[] = {1, 5, 127, 128, 129, 300, 520};
    uint64_t s = 99;
    for (size_t t = 0; t < sizeof sides / sizeof *sides; t++) {
        size_t n = sides[t], m = n + 3;
        double *x = malloc(m * n * sizeof *x), *g = calloc(n * n, sizeof *g), *by[4], *ref = malloc(n * n * sizeof *ref);
        for (size_t i = 0; i < m * n; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            x[i] = (double)((s >> 40) % 3 == 0); /* 0/1 interactions, as EASE's */
        }
        for (size_t r = 0; r < m; r++) /* G = X^T X */
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++) g[i * n + j] += x[r * n + i] * x[r * n + j];
        cb_error err;
        for (int th = 1; th <= 3; th++) {
            by[th] = malloc(n * n * sizeof *by[th]);
            memcpy(by[th], g, n * n * sizeof *g);
            assert_int_equal(cb_neighbours_ridge_inverse(by[th], n, 10.0, th, NULL, &err), CB_OK);
        }
        assert_memory_equal(by[1], by[2], n * n * sizeof(double));
        assert_memory_equal(by[1], by[3], n * n * sizeof(double));
        memcpy(ref, g, n * n * sizeof *g);
        for (size_t i = 0; i < n; i++) ref[i * n + i] += 10.0;
        int dim = (int)n, info = 0;
        dpotrf_("L", &dim, ref, &dim, &info, 1);
        assert_int_equal(info, 0);
        dpotri_("L", &dim, ref, &dim, &info, 1);
        assert_int_equal(info, 0);
        double worst = 0, big = 0, eye = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                assert_memory_equal(&by[1][i * n + j], &by[1][j * n + i], sizeof(double));
                if (j >= i) /* LAPACK's result: column-major lower = row-major upper */
                    worst = fmax(worst, fabs(by[1][i * n + j] - ref[i * n + j])), big = fmax(big, fabs(ref[i * n + j]));
                double p = 0; /* (G + 10 I) times the inverse, entry (i, j) */
                for (size_t k = 0; k < n; k++) p += (g[i * n + k] + (i == k ? 10.0 : 0.0)) * by[1][k * n + j];
                eye = fmax(eye, fabs(p - (i == j)));
            }
        print_message("ridge inverse, side %zu: %.1e of the largest entry from LAPACK's, %.1e from the identity\n", n,
                      worst / big, eye);
        assert_true(worst <= 1e-10 * big);
        assert_true(eye <= 1e-9);
        for (int th = 1; th <= 3; th++) free(by[th]);
        free(x), free(g), free(ref);
    }
    double bad[4] = {1, 2, 2, 1}; /* eigenvalues 3 and -1 */
    cb_error err;
    assert_int_equal(cb_neighbours_ridge_inverse(bad, 2, 0.0, 2, NULL, &err), CB_ENUMERIC);
    size_t n = 300; /* a negative pivot in the second tile, on 2 threads */
    double *late = calloc(n * n, sizeof *late);
    for (size_t i = 0; i < n; i++) late[i * n + i] = i == 200 ? -1.0 : 1.0;
    assert_int_equal(cb_neighbours_ridge_inverse(late, n, 0.0, 2, NULL, &err), CB_ENUMERIC);
    free(late);
}

/* R ranks of the inverse (threads standing in for MPI, as above): each on
 * its own copy of the matrix, ranks on 1 or 2 threads. */
typedef struct inv_rank {
    fake_rank base; /* the all-gather's context: its world and comm */
    double *a;
    size_t n;
    double ridge;
    int rc;
} inv_rank;

static void *inverse_rank(void *arg) {
    inv_rank *r = arg;
    cb_error err;
    r->rc = cb_neighbours_ridge_inverse(r->a, r->n, r->ridge, 1 + r->base.comm.rank % 2, &r->base.comm, &err);
    return NULL;
}

static void *agree_rank(void *arg) { /* rank 1 could not allocate */
    inv_rank *r = arg;
    cb_error err;
    r->rc = cb_comm_all_ok(&r->base.comm, r->base.comm.rank != 1, &err);
    return NULL;
}

/* R copies of g (n x n) inverted across R ranks into out[0..R). */
static void inverse_on_ranks(const double *g, size_t n, double ridge, int R, double **out, int *rc) {
    fake_world w;
    pthread_barrier_init(&w.bar, NULL, (unsigned)R);
    inv_rank r[MAX_RANKS];
    pthread_t t[MAX_RANKS];
    for (int k = 0; k < R; k++) {
        out[k] = malloc(n * n * sizeof *out[k]);
        memcpy(out[k], g, n * n * sizeof *g);
        r[k] = (inv_rank){.base = {.w = &w}, .a = out[k], .n = n, .ridge = ridge};
        r[k].base.comm = (cb_train_comm){k, R, &r[k].base, fake_allgather, fake_allreduce};
        assert_int_equal(pthread_create(&t[k], NULL, inverse_rank, &r[k]), 0);
    }
    for (int k = 0; k < R; k++) pthread_join(t[k], NULL), rc[k] = r[k].rc;
    pthread_barrier_destroy(&w.bar);
}

/* The inverse's later stages split across 2 to 5 ranks give every rank the
 * bits of one process, also with more ranks than tiles; a matrix that is
 * not positive definite fails on every rank. */
static void ridge_inverse_same_across_ranks(void **state) {
    (void)state;
    const size_t sides[] = {5, 129, 520};
    uint64_t s = 7;
    for (size_t c = 0; c < sizeof sides / sizeof *sides; c++) {
        size_t n = sides[c];
        double *g = calloc(n * n, sizeof *g), *one = malloc(n * n * sizeof *one), *out[MAX_RANKS];
        for (size_t u = 0; u < n + 40; u++) { /* G = X^T X of random 0/1 rows */
            bool on[n];
            for (size_t i = 0; i < n; i++) s = s * 6364136223846793005ULL + 1442695040888963407ULL, on[i] = (s >> 40) % 3 == 0;
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; on[i] && j < n; j++) g[i * n + j] += on[j];
        }
        memcpy(one, g, n * n * sizeof *g);
        cb_error err;
        assert_int_equal(cb_neighbours_ridge_inverse(one, n, 10.0, 1, NULL, &err), CB_OK);
        for (int R = 2; R <= MAX_RANKS; R++) {
            int rc[MAX_RANKS];
            inverse_on_ranks(g, n, 10.0, R, out, rc);
            for (int k = 0; k < R; k++) {
                assert_int_equal(rc[k], CB_OK);
                assert_memory_equal(out[k], one, n * n * sizeof *one);
                free(out[k]);
            }
        }
        free(g), free(one);
    }
    size_t n = 300; /* a negative pivot in the second tile */
    double *late = calloc(n * n, sizeof *late), *out[MAX_RANKS];
    for (size_t i = 0; i < n; i++) late[i * n + i] = i == 200 ? -1.0 : 1.0;
    int rc[MAX_RANKS];
    inverse_on_ranks(late, n, 0.0, 3, out, rc);
    for (int k = 0; k < 3; k++) assert_int_equal(rc[k], CB_ENUMERIC), free(out[k]);
    free(late);
    fake_world w; /* one rank out of memory before a collective: every rank is told, none waits */
    pthread_barrier_init(&w.bar, NULL, 3);
    inv_rank r[3];
    pthread_t t[3];
    for (int k = 0; k < 3; k++) {
        r[k] = (inv_rank){.base = {.w = &w}};
        r[k].base.comm = (cb_train_comm){k, 3, &r[k].base, fake_allgather, fake_allreduce};
        assert_int_equal(pthread_create(&t[k], NULL, agree_rank, &r[k]), 0);
    }
    for (int k = 0; k < 3; k++) pthread_join(t[k], NULL), assert_int_equal(r[k].rc, CB_ENOMEM);
    pthread_barrier_destroy(&w.bar);
}

int main(int argc, char **argv) {
    self_path = argv[0];
    if (argc == 2 && strcmp(argv[1], "--plain") == 0) {
        const struct CMUnitTest plain[] = {cmocka_unit_test(fast_paths_match_plain_loops),
                                           cmocka_unit_test(lists_match_reference)};
        return cmocka_run_group_tests_name("neighbours, plain path", plain, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(fast_paths_match_plain_loops),
                                       cmocka_unit_test(plain_path_agrees),
                                       cmocka_unit_test(lists_match_reference),
                                       cmocka_unit_test(lists_match_reference_skewed),
                                       cmocka_unit_test(recommender_uses_and_saves_it),
                                       cmocka_unit_test(lists_same_on_threads),
                                       cmocka_unit_test(ease_lists_match_a_dense_reference),
                                       cmocka_unit_test(ridge_inverse_matches_lapack),
                                       cmocka_unit_test(ridge_inverse_same_across_ranks),
                                       cmocka_unit_test(tuning_same_on_threads),
                                       cmocka_unit_test(margins_are_paired_standard_errors),
                                       cmocka_unit_test(tuning_falls_back_to_the_towers),
                                       cmocka_unit_test(tuning_same_across_ranks),
                                       cmocka_unit_test(tuned_on_the_carve),
                                       cmocka_unit_test(grid_cells_match_a_full_sort),
                                       cmocka_unit_test(k_beyond_the_catalog)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
