/* test_content — any catalog's content (issue 12), on the planted data of
 * `cbrec synth --layout generic` written by the test: never-rated items are
 * placed among their class by content, a new user stating one class's tags
 * gets that class, known users get their favourite classes; the
 * "preferences" form, unknown values (remarks, or errors under strict),
 * "genre_ratings" taking genres only, a brand given to add-item as a list,
 * add-item keeping every value it is given, taking a number for a content
 * column as its text and refusing values holding its kept content's
 * separators, the schema's vocabulary control, text columns, Unicode
 * case folding, and a genre cap refused where there are no genres. */
#include "testutil.h"

#include "cbrec.h"
#include "data/dataset.h"
#include "data/textutil.h"
#include "features/featurize.h"
#include "model/bundle.h"
#include "rec/recommend.h"
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#define MAX_ITEMS 400
#define MAX_USERS 300
#define N_CLASSES 5

typedef struct truth {
    char item_id[MAX_ITEMS][32];
    int item_class[MAX_ITEMS];
    size_t n_items;
    char user_id[MAX_USERS][32];
    unsigned user_fav[MAX_USERS]; /* bit per favourite class */
    size_t n_users;
    char class_tags[N_CLASSES][256]; /* "t0;t1;..." */
} truth;

typedef struct fixture {
    char *dir, *data;
    cb_dataset *ds;
    cb_recommender *rec;
    truth t;
} fixture;

static void read_truth(truth *t, const char *dir) {
    char *path = tu_path(dir, "truth.csv");
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[512], kind[16], id[32], val[256];
    memset(t, 0, sizeof *t);
    while (fgets(line, sizeof line, fp)) {
        if (sscanf(line, "%15[^,],%31[^,],%255[^\n]", kind, id, val) != 3) continue;
        if (!strcmp(kind, "class") && atoi(id) < N_CLASSES) memcpy(t->class_tags[atoi(id)], val, sizeof val);
        if (!strcmp(kind, "item") && t->n_items < MAX_ITEMS) {
            memcpy(t->item_id[t->n_items], id, sizeof id);
            t->item_class[t->n_items++] = atoi(val);
        }
        if (!strcmp(kind, "user") && t->n_users < MAX_USERS) {
            memcpy(t->user_id[t->n_users], id, sizeof id);
            for (char *p = val; *p; p++)
                if (*p >= '0' && *p <= '9') t->user_fav[t->n_users] |= 1u << (*p - '0');
            t->n_users++;
        }
    }
    fclose(fp);
    free(path);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    f->data = tu_path(f->dir, "data");
    cb_config *s, *tc;
    cb_error err = {0};
    assert_int_equal(cb_config_create(&s, CB_CONFIG_SYNTH, &err), CB_OK);
    assert_int_equal(cb_config_set(s, "layout", "generic", &err), CB_OK);
    assert_int_equal(cb_config_set(s, "users", "200", &err), CB_OK);
    assert_int_equal(cb_config_set(s, "items", "300", &err), CB_OK);
    assert_int_equal(cb_config_set(s, "ratings", "6000", &err), CB_OK);
    assert_int_equal(cb_config_set(s, "genres", "5", &err), CB_OK);
    assert_int_equal(cb_synth_write_folder(f->data, s, &err), CB_OK);
    cb_config_free(s);
    read_truth(&f->t, f->data);
    assert_int_equal(f->t.n_items, 300);
    assert_int_equal(cb_dataset_open(&f->ds, f->data, NULL, &err), CB_OK);
    assert_int_equal(cb_config_create(&tc, CB_CONFIG_TRAIN, &err), CB_OK);
    assert_int_equal(cb_config_set(tc, "user-layers", "64", &err), CB_OK);
    assert_int_equal(cb_config_set(tc, "item-layers", "64", &err), CB_OK);
    assert_int_equal(cb_config_set(tc, "threads", "1", &err), CB_OK);
    assert_int_equal(cb_config_set(tc, "item-dropout", "0.2", &err), CB_OK);
    if (cb_train(&f->rec, f->ds, tc, NULL, NULL, NULL, &err)) fail_msg("train: %s", err.msg);
    cb_config_free(tc);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    cb_recommender_free(f->rec);
    cb_dataset_close(f->ds);
    tu_rmrf(f->dir);
    free(f->dir);
    free(f->data);
    free(f);
    return 0;
}

static int class_of(const fixture *f, const char *id) {
    for (size_t i = 0; i < f->t.n_items; i++)
        if (!strcmp(f->t.item_id[i], id)) return f->t.item_class[i];
    fail_msg("item %s not in truth.csv", id);
    return -1;
}

/* Every 10th item is never rated (synth_generic.c). */
static void similar_purity(void **state) {
    fixture *f = *state;
    cb_error err = {0};
    double same[2] = {0, 0}, total[2] = {0, 0};
    for (size_t i = 0; i < f->t.n_items; i += 3) {
        size_t item;
        assert_int_equal(cb_recommender_find_item(f->rec, f->t.item_id[i], &item, NULL, 0, NULL, &err), CB_OK);
        cb_list *l = NULL;
        assert_int_equal(cb_recommender_similar(f->rec, item, 10, &l, &err), CB_OK);
        int rated = i % 10 != 9;
        for (size_t k = 0; k < cb_list_size(l); k++) {
            same[rated] += class_of(f, cb_list_item_id(l, k)) == f->t.item_class[i];
            total[rated]++;
        }
        cb_list_free(l);
    }
    double p_rated = same[1] / total[1], p_never = same[0] / total[0];
    print_message("similar items sharing the planted class: rated %.3f, never rated %.3f (ratio %.3f)\n", p_rated,
                  p_never, p_never / p_rated);
    assert_true(p_rated >= 0.95);
    assert_true(p_never >= 0.9 * p_rated);
}

/* A new user stating one class's tags (the "preferences" form) gets that class; reasons name the column. */
static void new_user_preferences(void **state) {
    fixture *f = *state;
    cb_error err = {0};
    for (int k = 0; k < N_CLASSES; k++) {
        char json[600], tags[256];
        snprintf(tags, sizeof tags, "%s", f->t.class_tags[k]);
        char *t1 = strtok(tags, ";"), *t2 = strtok(NULL, ";"), *t3 = strtok(NULL, ";");
        snprintf(json, sizeof json, "{\"preferences\": {\"tags\": {\"%s\": 5, \"%s\": 5, \"%s\": 5}}}", t1, t2, t3);
        cb_list *l = NULL;
        if (cb_recommender_recommend(f->rec, NULL, json, NULL, &l, &err)) fail_msg("%s", err.msg);
        size_t hits = 0;
        for (size_t i = 0; i < cb_list_size(l); i++) hits += class_of(f, cb_list_item_id(l, i)) == k;
        assert_int_equal(cb_list_size(l), 10);
        print_message("new user stating class %d's tags: %zu of 10 from that class\n", k, hits);
        assert_true(hits >= 8);
        bool named = false;
        for (size_t j = 0; j < cb_list_n_reasons(l, 0); j++) named |= strstr(cb_list_reason(l, 0, j), "favourite tag '") != NULL;
        assert_true(named);
        cb_list_free(l);
    }
}

static void known_users_favourites(void **state) {
    fixture *f = *state;
    cb_error err = {0};
    size_t hits = 0, total = 0;
    for (size_t u = 0; u < f->t.n_users; u += 4) {
        if (u % 20 == 19) continue; /* never rated */
        cb_list *l = NULL;
        if (cb_recommender_recommend(f->rec, f->t.user_id[u], NULL, NULL, &l, &err)) fail_msg("%s", err.msg);
        for (size_t i = 0; i < cb_list_size(l); i++, total++)
            hits += (f->t.user_fav[u] >> class_of(f, cb_list_item_id(l, i))) & 1u;
        cb_list_free(l);
    }
    print_message("known users: %.3f of %zu recommendations from their favourite classes\n", (double)hits / total, total);
    assert_true(total > 100);
    assert_true(hits >= 0.9 * total);
}

/* Title lookup folds case beyond ASCII: "product \"été\" ..." finds "Product \"ÉTÉ\" ..." */
static void title_lookup_folds(void **state) {
    fixture *f = *state;
    cb_error err = {0};
    size_t item, want;
    assert_int_equal(cb_recommender_find_item(f->rec, f->t.item_id[2], &want, NULL, 0, NULL, &err), CB_OK);
    char q[128];
    snprintf(q, sizeof q, "%s", cb_recommender_item_title(f->rec, want));
    cb_utf8_fold(q);
    assert_string_not_equal(q, cb_recommender_item_title(f->rec, want)); /* the title has capitals to fold */
    assert_int_equal(cb_recommender_find_item(f->rec, q, &item, NULL, 0, NULL, &err), CB_OK);
    assert_int_equal(item, want);
}

/* Unknown values: a remark (list note / add-item note), an error under strict; unknown columns are errors. */
/* A genre cap in a catalog without genres is an error: it capped nothing, the
 * list came back as if it had not been asked for (tags and brands are not capped). */
static void genre_cap_needs_genres(void **state) {
    fixture *f = *state;
    cb_error err = {0};
    cb_config *opts = NULL;
    cb_list *l = NULL;
    assert_int_equal(cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err), CB_OK);
    assert_int_equal(cb_config_set(opts, "genre-cap", "1", &err), CB_OK);
    assert_int_equal(cb_recommender_recommend(f->rec, f->t.user_id[0], NULL, opts, &l, &err), CB_EINVAL);
    assert_null(l);
    assert_non_null(strstr(err.msg, "no genre column"));
    assert_int_equal(cb_config_set(opts, "genre-cap", "0", &err), CB_OK);
    assert_int_equal(cb_recommender_recommend(f->rec, f->t.user_id[0], NULL, opts, &l, &err), CB_OK);
    cb_list_free(l);
    cb_config_free(opts);
}

static void unknown_values(void **state) {
    fixture *f = *state;
    cb_error err = {0};
    char json[400];
    char tags[256];
    snprintf(tags, sizeof tags, "%s", f->t.class_tags[0]);
    char *t1 = strtok(tags, ";");
    cb_list *l = NULL;
    snprintf(json, sizeof json, "{\"preferences\": {\"tags\": {\"%s;no-such-tag\": 5}}}", t1);
    assert_int_equal(cb_recommender_recommend(f->rec, NULL, json, NULL, &l, &err), CB_OK);
    bool noted = false;
    for (size_t j = 0; j < cb_list_n_notes(l); j++) noted |= strstr(cb_list_note(l, j), "no-such-tag") != NULL;
    assert_true(noted);
    cb_list_free(l);
    l = NULL;
    /* a catalog without genres: genre_ratings names a tag (the one content column's value) */
    snprintf(json, sizeof json, "{\"genre_ratings\": {\"%s\": 5}}", t1);
    if (cb_recommender_recommend(f->rec, NULL, json, NULL, &l, &err)) fail_msg("%s", err.msg);
    size_t hits = 0;
    for (size_t i = 0; i < cb_list_size(l); i++) hits += class_of(f, cb_list_item_id(l, i)) == 0;
    assert_true(hits >= 8);
    cb_list_free(l);
    l = NULL;
    snprintf(json, sizeof json, "{\"strict\": true, \"preferences\": {\"tags\": {\"no-such-tag\": 5}}}");
    assert_int_not_equal(cb_recommender_recommend(f->rec, NULL, json, NULL, &l, &err), CB_OK);
    assert_non_null(strstr(err.msg, "no-such-tag"));
    assert_int_not_equal(cb_recommender_recommend(f->rec, NULL, "{\"preferences\": {\"colour\": {\"red\": 5}}}", NULL,
                                                  &l, &err),
                         CB_OK);
    assert_non_null(strstr(err.msg, "colour"));
    /* add-item: the file's separator splits, unknown tags are remarks */
    size_t item;
    snprintf(json, sizeof json, "{\"id\": \"new-1\", \"tags\": \"%s;mystery-tag\"}", t1);
    assert_int_equal(cb_recommender_add_item(f->rec, json, &item, &err), CB_OK);
    assert_non_null(strstr(cb_recommender_add_item_note(f->rec), "mystery-tag"));
    assert_null(strstr(cb_recommender_add_item_note(f->rec), t1));
    snprintf(json, sizeof json, "{\"id\": \"new-2\", \"strict\": true, \"tags\": \"%s;mystery-tag\"}", t1);
    assert_int_not_equal(cb_recommender_add_item(f->rec, json, &item, &err), CB_OK);
    assert_non_null(strstr(err.msg, "mystery-tag"));
    /* null is a missing value, as an empty cell of the file is (it was "must be a string, a number or ..."); an
     * unknown column stays an error */
    if (cb_recommender_add_item(f->rec, "{\"id\": \"new-3\", \"tags\": null}", &item, &err)) fail_msg("%s", err.msg);
    /* the fixed keys too (a DataFrame row's NaN: "\"year\" must be a number") */
    if (cb_recommender_add_item(f->rec, "{\"id\": \"new-5\", \"title\": null, \"year\": null, \"genres\": null, "
                                        "\"rating_count\": null, \"rating_mean\": null}", &item, &err))
        fail_msg("%s", err.msg);
    assert_string_equal(cb_recommender_item_title(f->rec, item), "");
    assert_int_not_equal(cb_recommender_add_item(f->rec, "{\"id\": \"new-4\", \"colour\": null}", &item, &err), CB_OK);
    assert_non_null(strstr(err.msg, "colour"));
}

/* Does any note of l, or any reason of its items, contain `text`? */
static bool list_says(const cb_list *l, const char *text, bool in_notes) {
    for (size_t j = 0; in_notes && j < cb_list_n_notes(l); j++)
        if (strstr(cb_list_note(l, j), text)) return true;
    for (size_t i = 0; !in_notes && i < cb_list_size(l); i++)
        for (size_t j = 0; j < cb_list_n_reasons(l, i); j++)
            if (strstr(cb_list_reason(l, i, j), text)) return true;
    return false;
}

/* A tiny model of the folder d's data, 16-wide towers trained for one epoch. */
static cb_recommender *train_folder(const char *d, cb_dataset **ds) {
    cb_error err = {0};
    cb_recommender *rec = NULL;
    cb_config *tc;
    if (cb_dataset_open(ds, d, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(cb_config_create(&tc, CB_CONFIG_TRAIN, &err), CB_OK);
    assert_int_equal(cb_config_set(tc, "user-layers", "16", &err), CB_OK);
    assert_int_equal(cb_config_set(tc, "item-layers", "16", &err), CB_OK);
    assert_int_equal(cb_config_set(tc, "epochs", "1", &err), CB_OK);
    assert_int_equal(cb_config_set(tc, "threads", "1", &err), CB_OK);
    if (cb_train(&rec, *ds, tc, NULL, NULL, NULL, &err)) fail_msg("train: %s", err.msg);
    cb_config_free(tc);
    return rec;
}

/* printf at the end of buf[cap]. */
static void appendf(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + strlen(buf), cap - strlen(buf), fmt, ap);
    va_end(ap);
}

/* train_folder on files[n] = {name, text} written into d first. */
static cb_recommender *train_written(const char *d, const char *const files[][2], size_t n, cb_dataset **ds) {
    for (size_t k = 0; k < n; k++) free(tu_write(d, files[k][0], files[k][1]));
    return train_folder(d, ds);
}

/* A tiny model of 30 items with genres (Action, Comedy, Drama) and a brand
 * (Acme, Zed), 40 users, trained for one epoch in dir d. */
static cb_recommender *train_genres_brand(const char *d, cb_dataset **ds) {
    const char *const genres[3] = {"Action", "Comedy", "Drama"};
    tu_write_content_catalog(d, genres, NULL);
    return train_folder(d, ds);
}

/* tu_write_many_tags_catalog's model, trained in dir d. */
static cb_recommender *train_many_tags(const char *d, cb_dataset **ds) {
    tu_write_many_tags_catalog(d);
    return train_folder(d, ds);
}

/* A model of train_many_tags in its own folder (the planted fixture's
 * fields but the data and truth; `teardown` frees it), per test: they add items. */
static int setup_many_tags(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_tmpdir();
    f->rec = train_many_tags(f->dir, &f->ds);
    *state = f;
    return 0;
}

/* "genre_ratings" takes the genre column's values only: a brand is not a
 * genre (a note pointing to "preferences"), an unknown name is a note as in
 * "preferences" (an error under strict), and the vocabulary's genres are the
 * genres alone. */
static void genre_ratings_takes_genres_only(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    cb_error err = {0};
    cb_dataset *ds = NULL;
    cb_recommender *rec = train_genres_brand(d, &ds);
    cb_list *l = NULL;
    if (cb_recommender_recommend(rec, NULL, "{\"genre_ratings\": {\"Acme\": 5}}", NULL, &l, &err)) fail_msg("%s", err.msg);
    assert_true(list_says(l, "'Acme' ignored: not a genre but a value of 'brand'", true));
    assert_true(list_says(l, "\"preferences\": {\"brand\"", true));
    assert_false(list_says(l, "Acme", false)); /* no "top in your favourite ... Acme" */
    cb_list_free(l);
    l = NULL;
    if (cb_recommender_recommend(rec, NULL, "{\"genre_ratings\": {\"Drama\": 5, \"Nope\": 4}}", NULL, &l, &err))
        fail_msg("%s", err.msg);
    assert_true(list_says(l, "'Nope' ignored: not a genre", true));
    assert_true(list_says(l, "genre Drama", false));
    cb_list_free(l);
    l = NULL;
    /* a name cut inside a character by the note's 80 bytes: the note stays valid UTF-8 */
    char json[400] = "{\"genre_ratings\": {\"x";
    for (int i = 0; i < 60; i++) strcat(json, "\xc3\xa9");
    strcat(json, "\": 5}}");
    if (cb_recommender_recommend(rec, NULL, json, NULL, &l, &err)) fail_msg("%s", err.msg);
    assert_true(cb_list_n_notes(l) > 0);
    for (size_t j = 0; j < cb_list_n_notes(l); j++) {
        char copy[1024];
        snprintf(copy, sizeof copy, "%s", cb_list_note(l, j));
        cb_utf8_repair(copy);
        assert_string_equal(copy, cb_list_note(l, j)); /* nothing to repair */
    }
    cb_list_free(l);
    l = NULL;
    assert_int_equal(cb_recommender_recommend(rec, NULL, "{\"strict\": true, \"genre_ratings\": {\"Acme\": 5}}", NULL,
                                              &l, &err),
                     CB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'Acme' is not a genre"));
    assert_non_null(strstr(err.msg, "genres: Action, Comedy, Drama"));
    assert_null(strstr(strstr(err.msg, "genres: "), "Zed"));
    char *vocab = NULL;
    assert_int_equal(cb_recommender_vocabulary_json(rec, &vocab, &err), CB_OK);
    json_t *v = json_loads(vocab, 0, NULL);
    assert_non_null(v);
    char *names = json_dumps(json_object_get(v, "genres"), JSON_COMPACT);
    assert_string_equal(names, "[\"Action\",\"Comedy\",\"Drama\"]");
    free(names);
    /* the brand is an item column with its values; the user columns are what a
     * profile gives, none here (no per-value tastes: "brand_avg": ["Acme](z"] was one) */
    names = json_dumps(json_object_get(v, "item_columns"), JSON_COMPACT);
    assert_string_equal(names, "{\"brand\":[\"Acme\",\"Zed\"]}");
    free(names);
    assert_true(json_is_array(json_object_get(v, "multi_valued"))); /* a brand is one value an item: not listed */
    assert_int_equal(json_array_size(json_object_get(v, "multi_valued")), 0);
    assert_int_equal(json_object_size(json_object_get(v, "user_columns")), 0);
    json_decref(v);
    free(vocab);
    /* an item's genres are the genre column's alone; its brand comes with its column */
    size_t item;
    const char *genres[8], *columns[8], *values[8];
    assert_int_equal(cb_recommender_find_item(rec, "i1", &item, NULL, 0, NULL, &err), CB_OK);
    assert_int_equal(cb_recommender_item_genres(rec, item, genres, 8), 1);
    assert_string_equal(genres[0], "Comedy");
    assert_int_equal(cb_recommender_item_content(rec, item, columns, values, 8), 1);
    assert_string_equal(columns[0], "brand");
    assert_string_equal(values[0], "Zed");
    assert_int_equal(cb_recommender_item_content(rec, cb_recommender_item_count(rec), columns, values, 8), 0);
    cb_recommender_free(rec);
    cb_dataset_close(ds);
    tu_rmrf(d);
    free(d);
}

/* add-item: a single-valued column (brand) given as a list takes its one
 * element as the value (the same vector as the string); a longer list is an
 * error naming the column, not a value joined, dropped and warned about.
 * The added items' brand is their content, kept in the table file. */
static void add_item_brand_list(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    cb_error err = {0};
    cb_dataset *ds = NULL;
    cb_recommender *rec = train_genres_brand(d, &ds);
    size_t as_string, as_list, none;
    const char *items[3] = {"{\"id\": \"s\", \"genres\": [\"Drama\"], \"brand\": \"Zed\"}",
                            "{\"id\": \"l\", \"genres\": [\"Drama\"], \"brand\": [\"Zed\"]}",
                            "{\"id\": \"n\", \"genres\": [\"Drama\"]}"};
    size_t *added[3] = {&as_string, &as_list, &none};
    for (int k = 0; k < 3; k++) {
        if (cb_recommender_add_item(rec, items[k], added[k], &err)) fail_msg("%s", err.msg);
        assert_string_equal(cb_recommender_add_item_note(rec), "");
    }
    cb_list *l = NULL;
    if (cb_recommender_similar(rec, as_string, 3, &l, &err)) fail_msg("%s", err.msg);
    assert_int_equal(cb_list_item(l, 0), as_list); /* the same vector: cosine 1 */
    assert_true(cb_list_score(l, 0) > 0.99999f);
    for (size_t i = 0; i < cb_list_size(l); i++)
        if (cb_list_item(l, i) == none) assert_true(cb_list_score(l, i) < cb_list_score(l, 0));
    cb_list_free(l);
    /* an added item's brand is its content, as a model item's, and stays with it in the table file
     * (added items had none: the server's "content" was empty for them) */
    const char *columns[4], *values[4];
    for (int k = 0; k < 2; k++) {
        assert_int_equal(cb_recommender_item_content(rec, *added[k], columns, values, 4), 1);
        assert_string_equal(columns[0], "brand");
        assert_string_equal(values[0], "Zed");
    }
    assert_int_equal(cb_recommender_item_content(rec, none, columns, values, 4), 0);
    char *model = tu_path(d, "m.cbrec"), *added_file = tu_path(d, "added.tab");
    cb_recommender *again = NULL;
    if (cb_recommender_save(rec, model, &err) || cb_recommender_save_table(rec, added_file, &err) ||
        cb_recommender_load(&again, model, added_file, &err))
        fail_msg("%s", err.msg);
    size_t s_again;
    assert_int_equal(cb_recommender_find_item(again, "s", &s_again, NULL, 0, NULL, &err), CB_OK);
    assert_int_equal(cb_recommender_item_content(again, s_again, columns, values, 4), 1);
    assert_string_equal(values[0], "Zed");
    cb_recommender_free(again);
    free(model), free(added_file);
    /* an unknown genre is a remark like an unknown tag or brand; an error under strict */
    if (cb_recommender_add_item(rec, "{\"id\": \"g\", \"genres\": [\"Nope\", \"Drama\"]}", NULL, &err))
        fail_msg("%s", err.msg);
    assert_string_equal(cb_recommender_add_item_note(rec), "unknown value 'Nope' of 'genres' ignored");
    assert_int_equal(cb_recommender_add_item(rec, "{\"id\": \"g2\", \"strict\": true, \"genres\": [\"Nope\"]}", NULL,
                                             &err),
                     CB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "unknown genre 'Nope'"));
    size_t before = cb_recommender_item_count(rec), item;
    assert_int_equal(cb_recommender_add_item(rec, "{\"id\": \"two\", \"brand\": [\"Acme\", \"Zed\"]}", &item, &err),
                     CB_EPARSE);
    assert_non_null(strstr(err.msg, "\"brand\" takes one value"));
    assert_null(strstr(err.msg, "new item JSON: new item JSON")); /* the source once */
    assert_int_equal(cb_recommender_item_count(rec), before);
    cb_recommender_free(rec);
    cb_dataset_close(ds);
    tu_rmrf(d);
    free(d);
}

/* items.tags.max_values / min_count / hash, and what describe says. */
static void vocabulary_control(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    cb_error err = {0};
    free(tu_write(d, "cbrec.schema",
                  "ratings = r.csv\nitems = i.csv\nitems.columns = id, tags:multi(;), brand:categorical, t:text\n"
                  "items.tags.max_values = 2\nitems.tags.hash = 4\nitems.brand.min_count = 2\n"));
    free(tu_write(d, "r.csv", "user,item,rating\nu1,a,5\nu1,b,3\nu2,c,4\n"));
    free(tu_write(d, "i.csv", "id,tags,brand,t\na,x;y;z,Acme,\"Großes Über, café\"\nb,x;y,Acme,ÜBER\nc,x;w,Zed,\n"));
    cb_dataset *ds = NULL;
    if (cb_dataset_load(&ds, d, NULL, &err)) fail_msg("%s", err.msg);
    const cb_table *it = &ds->item_attr;
    const cb_column *tags = &it->cols[cb_table_find(it, "tags")], *brand = &it->cols[cb_table_find(it, "brand")];
    assert_int_equal(tags->n_values_seen, 4);
    assert_int_equal(tags->n_dropped, 2);  /* z and w: into hash buckets */
    assert_int_equal(brand->n_dropped, 1); /* Zed: on one item only */
    assert_true(cb_vocab_find(tags->levels, "x", 1) >= 0 && cb_vocab_find(tags->levels, "z", 1) < 0);
    assert_int_equal(cb_vocab_size(brand->levels), 1);
    const cb_column *t = &it->cols[cb_table_find(it, "t")];
    assert_true(t->text);
    assert_true(cb_vocab_find(t->levels, "über", strlen("über")) >= 0); /* folded: Über and ÜBER are one token */
    assert_true(cb_vocab_find(t->levels, "großes", strlen("großes")) >= 0);
    /* the features: a dropped value of a new item finds its hash bucket; the text column is hashed TF-IDF */
    uint32_t train[3] = {0, 1, 2};
    cb_features *f = NULL;
    if (cb_features_fit(&f, ds, train, 3, NULL, &err)) fail_msg("%s", err.msg);
    int facet = cb_features_facet_find(f, "tags");
    assert_true(facet >= 0);
    char bucket[16];
    snprintf(bucket, sizeof bucket, "#%u", cb_value_bucket("z", 1, 4));
    int64_t zb = cb_features_value_find(f, (uint32_t)facet, "z", 1);
    assert_true(zb >= 0);
    assert_string_equal(cb_features_genre_name(f, (uint32_t)zb), bucket);
    assert_int_equal(cb_features_value_find(f, (uint32_t)facet, "x", 1) >= 0, 1);
    /* naming a value (a block list) takes a kept one only, never its bucket */
    uint32_t named;
    assert_int_equal(cb_features_value_named(f, (uint32_t)facet, "x", 1, &named, &err), CB_OK);
    assert_int_equal(named, cb_features_value_find(f, (uint32_t)facet, "x", 1));
    assert_int_equal(cb_features_value_named(f, (uint32_t)facet, "z", 1, &named, &err), CB_ENOTFOUND);
    if (!strstr(err.msg, "'z' of 'tags'") || !strstr(err.msg, "hash bucket") || !strstr(err.msg, "name its items"))
        fail_msg("message: %s", err.msg);
    int bf = cb_features_facet_find(f, "brand");
    assert_int_equal(cb_features_value_named(f, (uint32_t)bf, "Zed", 3, &named, &err), CB_ENOTFOUND);
    if (!strstr(err.msg, "unknown value 'Zed' of 'brand'")) fail_msg("message: %s", err.msg);
    uint32_t dim = cb_features_item_dim(f), n_text = 0;
    for (uint32_t j = 0; j < dim; j++) n_text += !strncmp(cb_features_item_name(f, j), "t[#", 3);
    assert_int_equal(n_text, 128);
    /* a model saved before Unicode punctuation separated tokens (no "token_rule" in its text block) reads a
     * new item's text as it was trained: "“über”—café" is one unknown token there, "über" and "café" now */
    cb_item_input in = {.year = NAN, .n_attrs = 1};
    float *x = calloc(2 * (size_t)dim, sizeof *x);
    cb_attr_value curly = {"t", "“über”—café", NAN}, plain = {"t", "über café", NAN};
    json_t *j = cb_features_to_json(f, &err), *blocks = json_object_get(json_object_get(j, "item"), "blocks");
    cb_features *old = NULL;
    for (size_t b = 0; b < json_array_size(blocks); b++) {
        json_t *jb = json_array_get(blocks, b);
        if (json_object_get(jb, "token_rule")) {
            assert_int_equal(json_integer_value(json_object_get(jb, "token_rule")), 2);
            json_object_del(jb, "token_rule");
        }
    }
    assert_int_equal(cb_features_from_json(&old, j, &err), CB_OK);
    /* ... but its training rows cannot be made again from data loaded now (--resume refuses it) */
    assert_int_equal(cb_features_check_token_rules(f, "", &err), CB_OK);
    assert_int_equal(cb_features_check_token_rules(old, "", &err), CB_EINVAL);
    if (!strstr(err.msg, "text column 't'") || !strstr(err.msg, "train anew")) fail_msg("message: %s", err.msg);
    in.attrs = &curly;
    assert_int_equal(cb_features_new_item(f, &in, x, &err), CB_OK);
    in.attrs = &plain;
    assert_int_equal(cb_features_new_item(f, &in, x + dim, &err), CB_OK);
    assert_memory_equal(x, x + dim, dim * sizeof *x); /* now: the same two tokens */
    in.attrs = &curly;
    assert_int_equal(cb_features_new_item(old, &in, x + dim, &err), CB_OK);
    assert_true(memcmp(x, x + dim, dim * sizeof *x) != 0); /* the old rule: one other token */
    json_decref(j);
    free(x);
    cb_features_free(old);
    cb_features_free(f);
    char *doc = NULL;
    assert_int_equal(cb_dataset_describe(ds, NULL, &doc, &err), CB_OK);
    assert_non_null(strstr(doc, "\"dropped\""));
    free(doc);
    cb_dataset_free(ds);
    free(tu_write(d, "cbrec.schema", "ratings = r.csv\nitems = i.csv\nitems.columns = id, tags:multi(;), brand:ignore, t:ignore\nitems.nope.hash = 4\n"));
    assert_int_equal(cb_dataset_load(&ds, d, NULL, &err), CB_EPARSE);
    if (!strstr(err.msg, "nope")) fail_msg("message: %s", err.msg);
    tu_rmrf(d);
    free(d);
}

static void unicode_folding(void **state) {
    (void)state;
    char s[64] = "Über ÉTÉ ΣΟΦΊΑ Москва İx Ÿ ŁÓDŹ";
    cb_utf8_fold(s);
    assert_string_equal(s, "über été σοφία москва ix ÿ łódź");
    const char *text = "Hello, WORLD-wide; 東京 a 🎸Rock!", *p = text;
    char tok[32];
    const char *want[] = {"hello", "world", "wide", "東京", "🎸rock"};
    for (int k = 0; k < 5; k++) {
        assert_true(cb_text_token(&p, text + strlen(text), tok, sizeof tok) > 0);
        assert_string_equal(tok, want[k]);
    }
    assert_int_equal(cb_text_token(&p, text + strlen(text), tok, sizeof tok), 0);
}
/* Unicode spaces and punctuation separate tokens as ASCII ones do: a
 * description typed with curly quotes, an em dash or an ellipsis, or in CJK
 * with its own punctuation, gave tokens such as "“robots”—aliens…" and
 * "東京、大阪。", which share no feature with "robots" or "東京". */
static void text_tokens_unicode_punctuation(void **state) {
    (void)state;
    const char *text = "“Robots”—aliens… «Über» ¿qué? 東京、大阪。「京都」\u00a0x\u00a0zz don’t ！ＡＢ！ 🎸rock n\u200dj",
               *p = text;
    char tok[64];
    const char *want[] = {"robots", "aliens", "über", "qué", "東京", "大阪", "京都", "zz", "don", "ＡＢ", "🎸rock",
                          "n\u200dj"};
    size_t n_want = sizeof want / sizeof *want;
    for (size_t k = 0; k < n_want; k++) {
        if (!cb_text_token(&p, text + strlen(text), tok, sizeof tok)) fail_msg("token %zu missing", k);
        assert_string_equal(tok, want[k]);
    }
    assert_int_equal(cb_text_token(&p, text + strlen(text), tok, sizeof tok), 0);
}
/* Items without interactions in a catalog without content columns have one
 * vector: the items similar to one of them all scored 1.0 in the catalog's
 * order, given as a ranking with nothing to say so. A note says which first
 * items have the same vector; an item with interactions gets none. */
static void similar_notes_tied_vectors(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    char items[512] = "id,title\n", ratings[4096] = "user,item,rating\n";
    for (int i = 0; i < 10; i++) appendf(items, sizeof items, "a%d,A %d\n", i, i);
    for (int i = 0; i < 4; i++) appendf(items, sizeof items, "z%d,Z %d\n", i, i);
    for (int u = 0; u < 12; u++)
        for (int i = 0; i < 10; i += 1 + u % 3) appendf(ratings, sizeof ratings, "u%d,a%d,%d\n", u, i, 1 + (u + i) % 5);
    const char *const files[][2] = {
        {"cbrec.schema", "ratings = r.csv\nitems = i.csv\nitems.columns = id, title\n"}, {"i.csv", items}, {"r.csv", ratings}};
    cb_dataset *ds = NULL;
    cb_recommender *rec = train_written(d, files, 3, &ds);
    cb_error err = {0};
    size_t z0;
    assert_int_equal(cb_recommender_find_item(rec, "z0", &z0, NULL, 0, NULL, &err), CB_OK);
    cb_list *l = NULL;
    for (size_t k = 2; k <= 6; k += 4) {
        assert_int_equal(cb_recommender_similar(rec, z0, k, &l, &err), CB_OK);
        assert_int_equal(cb_list_size(l), k);
        for (size_t i = 0; i < k && i < 3; i++) assert_int_equal(cb_list_item_id(l, i)[0], 'z');
        char want[64];
        snprintf(want, sizeof want, "the first %zu items have the same vector", k < 3 ? k : 3);
        if (!list_says(l, want, true) || !list_says(l, "'z0'", true)) fail_msg("no note '%s'", want);
        cb_list_free(l);
    }
    size_t a0;
    assert_int_equal(cb_recommender_find_item(rec, "a0", &a0, NULL, 0, NULL, &err), CB_OK);
    assert_int_equal(cb_recommender_similar(rec, a0, 3, &l, &err), CB_OK);
    assert_false(list_says(l, "the same vector", true));
    cb_list_free(l);
    cb_recommender_free(rec);
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d);
}

/* A users file's "Country" (any case) has the location role, as the docs
 * say, but the group source's default looked for "country" exactly: no
 * user of such a file got "popular with users in your Country DE". */
static void group_source_location_any_case(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    char users[512] = "id,Country\n", ratings[4096] = "user,item,rating\n";
    for (int u = 0; u < 20; u++) {
        appendf(users, sizeof users, "u%d,%s\n", u, u % 2 ? "DE" : "FR");
        for (int i = u % 3; i < 16; i += 3) appendf(ratings, sizeof ratings, "u%d,i%d,%d\n", u, i, 1 + (u + i) % 5);
    }
    const char *const files[][2] = {
        {"cbrec.schema", "ratings = r.csv\nusers = u.csv\nusers.columns = id, Country:categorical\n"}, {"u.csv", users},
        {"r.csv", ratings}};
    cb_dataset *ds = NULL;
    cb_recommender *rec = train_written(d, files, 3, &ds);
    cb_error err = {0};
    cb_config *c = NULL;
    cb_list *l = NULL;
    if (cb_config_create(&c, CB_CONFIG_RECOMMEND, &err) || cb_config_set(c, "n", "10", &err) ||
        cb_config_set(c, "embedding", "0", &err) || cb_config_set(c, "recent", "0", &err) ||
        cb_config_set(c, "top-genres", "0", &err) || cb_recommender_recommend(rec, "u1", NULL, c, &l, &err))
        fail_msg("%s", err.msg);
    assert_true(cb_list_size(l) > 0);
    if (!list_says(l, "popular with users in your Country DE", false)) fail_msg("no group reason: %s", cb_list_reason(l, 0, 0));
    cb_list_free(l);
    cb_config_free(c);
    cb_recommender_free(rec);
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d);
}

/* add-item: "genres" as a string is the genre column's values split as in its
 * file ("Drama|Comedy"), the same vector as the list; an unknown one is a
 * remark (an error under strict), as in a list. */
static void add_item_genres_string(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    cb_error err = {0};
    cb_dataset *ds = NULL;
    cb_recommender *rec = train_genres_brand(d, &ds);
    size_t as_string, as_list;
    if (cb_recommender_add_item(rec, "{\"id\": \"s\", \"genres\": \"Drama|Comedy|Nope\"}", &as_string, &err))
        fail_msg("%s", err.msg);
    assert_string_equal(cb_recommender_add_item_note(rec), "unknown value 'Nope' of 'genres' ignored");
    if (cb_recommender_add_item(rec, "{\"id\": \"l\", \"genres\": [\"Drama\", \"Comedy\"]}", &as_list, &err))
        fail_msg("%s", err.msg);
    const char *gs[4], *gl[4]; /* the string's genres are kept as the list's (the string kept none) */
    assert_int_equal(cb_recommender_item_genres(rec, as_string, gs, 4), 2);
    assert_int_equal(cb_recommender_item_genres(rec, as_list, gl, 4), 2);
    assert_string_equal(gs[0], gl[0]);
    assert_string_equal(gs[1], gl[1]);
    cb_list *l = NULL;
    if (cb_recommender_similar(rec, as_string, 1, &l, &err)) fail_msg("%s", err.msg);
    assert_int_equal(cb_list_item(l, 0), as_list);
    assert_true(cb_list_score(l, 0) > 0.99999f);
    cb_list_free(l);
    assert_int_equal(cb_recommender_add_item(rec, "{\"id\": \"x\", \"strict\": true, \"genres\": \"Nope\"}", NULL, &err),
                     CB_ENOTFOUND);
    assert_int_equal(cb_recommender_add_item(rec, "{\"id\": \"y\", \"genres\": 3}", NULL, &err), CB_EPARSE);
    assert_non_null(strstr(err.msg, "\"genres\" must be a list"));
    /* a list of any length (64 and more were refused): 3 known names among 70 */
    char many[2048] = "{\"id\": \"m\", \"genres\": [\"Action\", \"Comedy\", \"Drama\"";
    for (int k = 0; k < 67; k++) snprintf(many + strlen(many), sizeof many - strlen(many), ", \"g%d\"", k);
    strcat(many, "]}");
    size_t m;
    if (cb_recommender_add_item(rec, many, &m, &err)) fail_msg("%s", err.msg);
    assert_int_equal(cb_recommender_item_genres(rec, m, gl, 4), 3);
    assert_non_null(strstr(cb_recommender_add_item_note(rec), "unknown value 'g0' of 'genres'"));
    cb_recommender_free(rec);
    cb_dataset_close(ds);
    tu_rmrf(d);
    free(d);
}

/* Item `item`'s value of content column `column` (its only one; fails unless exactly one). */
static const char *content_value(const cb_recommender *rec, size_t item, const char *column) {
    const char *columns[8], *values[8], *found = NULL;
    size_t n = cb_recommender_item_content(rec, item, columns, values, 8);
    for (size_t k = 0; k < n && k < 8; k++)
        if (!strcmp(columns[k], column)) {
            if (found) fail_msg("item %zu: two values of '%s'", item, column);
            found = values[k];
        }
    if (!found) fail_msg("item %zu: no value of '%s' (%zu content values)", item, column, n);
    return found;
}

/* Item `item`'s content is tags t0..t199, each once. */
static void assert_all_tags(const cb_recommender *rec, size_t item) {
    const char *columns[256], *values[256];
    bool seen[200] = {false};
    size_t n = cb_recommender_item_content(rec, item, columns, values, 256);
    assert_int_equal(n, 200);
    for (size_t k = 0; k < n; k++) {
        assert_string_equal(columns[k], "tags");
        int t = atoi(values[k] + 1);
        assert_true(values[k][0] == 't' && t >= 0 && t < 200 && !seen[t]);
        seen[t] = true;
    }
}

/* add-item keeps every value given of a content column (it kept 64 while the
 * vector used all 200), from a string or a list, and so does the table file. */
static void add_item_keeps_every_value(void **state) {
    fixture *f = *state;
    cb_recommender *rec = f->rec;
    cb_error err = {0};
    char as_string[2048] = "{\"id\": \"s\", \"tags\": \"", as_list[2560] = "{\"id\": \"l\", \"tags\": [";
    for (int t = 0; t < 200; t++) {
        snprintf(as_string + strlen(as_string), sizeof as_string - strlen(as_string), "%st%d", t ? ";" : "", t);
        snprintf(as_list + strlen(as_list), sizeof as_list - strlen(as_list), "%s\"t%d\"", t ? ", " : "", t);
    }
    strcat(as_string, "\"}");
    strcat(as_list, "]}");
    size_t s, l;
    if (cb_recommender_add_item(rec, as_string, &s, &err) || cb_recommender_add_item(rec, as_list, &l, &err))
        fail_msg("%s", err.msg);
    assert_all_tags(rec, s);
    assert_all_tags(rec, l);
    char *model = tu_path(f->dir, "m.cbrec"), *added = tu_path(f->dir, "added.tab");
    cb_recommender *again = NULL;
    if (cb_recommender_save(rec, model, &err) || cb_recommender_save_table(rec, added, &err) ||
        cb_recommender_load(&again, model, added, &err))
        fail_msg("%s", err.msg);
    assert_all_tags(again, s);
    assert_all_tags(again, l);
    cb_recommender_free(again);
    free(model), free(added);
}

/* add-item: a number given for a categorical content column ("brand": 7,
 * "year": 1992: a year column of categories) is that value's text, as in the
 * column's file: the item's content reads it back (it kept none), and its
 * vector is the strings' (a string "year" was refused as not a number). */
static void add_item_number_as_text(void **state) {
    fixture *f = *state;
    cb_recommender *rec = f->rec;
    cb_error err = {0};
    const char *json[3] = {"{\"id\": \"n\", \"brand\": 7, \"year\": 1992}",
                           "{\"id\": \"s\", \"brand\": \"7\", \"year\": \"1992\"}",
                           "{\"id\": \"r\", \"brand\": 7.0, \"year\": [1992]}"};
    size_t item[3];
    for (int k = 0; k < 3; k++) {
        if (cb_recommender_add_item(rec, json[k], &item[k], &err)) fail_msg("%s: %s", json[k], err.msg);
        assert_string_equal(cb_recommender_add_item_note(rec), "");
        assert_int_equal(cb_recommender_item_content(rec, item[k], NULL, NULL, 0), 2);
        assert_string_equal(content_value(rec, item[k], "brand"), "7");
        assert_string_equal(content_value(rec, item[k], "year"), "1992");
    }
    cb_list *l = NULL;
    if (cb_recommender_similar(rec, item[0], 2, &l, &err)) fail_msg("%s", err.msg);
    for (size_t i = 0; i < 2; i++) {
        assert_true(cb_list_item(l, i) == item[1] || cb_list_item(l, i) == item[2]);
        assert_true(cb_list_score(l, i) > 0.99999f); /* the same vector */
    }
    cb_list_free(l);
}

/* add-item refuses a content value holding a separator of the stored content
 * (0x1E, 0x1F: "brand" US "Ac" RS "me" read back as no brand), naming the
 * column and why; nothing is added. The model knows that value: its file had it. */
static void add_item_refuses_separators(void **state) {
    fixture *f = *state;
    cb_recommender *rec = f->rec;
    cb_error err = {0};
    size_t before = cb_recommender_item_count(rec), item;
    assert_int_equal(cb_recommender_add_item(rec, "{\"id\": \"x\", \"brand\": \"Ac\\u001eme\"}", &item, &err),
                     CB_EINVAL);
    if (!strstr(err.msg, "\"brand\"") || !strstr(err.msg, "byte 0x1E")) fail_msg("message: %s", err.msg);
    assert_int_equal(cb_recommender_add_item(rec, "{\"id\": \"x\", \"tags\": [\"t1\", \"a\\u001fb\"]}", &item, &err),
                     CB_EINVAL);
    if (!strstr(err.msg, "\"tags\"") || !strstr(err.msg, "byte 0x1F")) fail_msg("message: %s", err.msg);
    assert_int_equal(cb_recommender_item_count(rec), before);
    if (cb_recommender_add_item(rec, "{\"id\": \"x\", \"brand\": \"Acme\"}", &item, &err)) fail_msg("%s", err.msg);
    assert_string_equal(content_value(rec, item, "brand"), "Acme");
}

/* A new user's "preferences" keep every value of a key ("t0;t1;...;t99":
 * the profile read at most 64 of them). */
static void preferences_every_value(void **state) {
    fixture *f = *state;
    cb_error err = {0};
    char json[1024] = "{\"preferences\": {\"tags\": {\"";
    for (int t = 0; t < 100; t++) snprintf(json + strlen(json), sizeof json - strlen(json), "%st%d", t ? ";" : "", t);
    strcat(json, "\": 5}}}");
    char *model = tu_path(f->dir, "m.cbrec");
    cb_bundle *b = NULL;
    if (cb_recommender_save(f->rec, model, &err) || cb_bundle_load(&b, model, &err)) fail_msg("%s", err.msg);
    cb_profile p;
    if (cb_recommend_profile_string(&p, b, json, &err)) fail_msg("%s", err.msg);
    assert_int_equal(p.n_prefs, 100);
    cb_recommend_profile_free(&p);
    cb_bundle_free(b);
    free(model);
}

/* Has item `item` the value `value` of content column `column`? */
static bool has_content(const cb_recommender *rec, size_t item, const char *column, const char *value) {
    const char *columns[256], *values[256];
    size_t n = cb_recommender_item_content(rec, item, columns, values, 256);
    for (size_t k = 0; k < n && k < 256; k++)
        if (!strcmp(columns[k], column) && !strcmp(values[k], value)) return true;
    return false;
}

/* A block file blocks by any content column's value ("tags t5", "brand
 * Acme"), not only the genre column's: the items having it, added ones too,
 * and only those; plain ids stay items; an unknown value is an error naming
 * the line, and a recommendation never shows a blocked item. */
static void block_by_content_value(void **state) {
    fixture *f = *state;
    cb_recommender *rec = f->rec;
    cb_error err = {0};
    const char *columns[256], *values[256], *tag = NULL;
    size_t n = cb_recommender_item_content(rec, 0, columns, values, 256);
    for (size_t k = 0; k < n && !tag; k++)
        if (!strcmp(columns[k], "tags")) tag = values[k];
    assert_non_null(tag);
    char json[64];
    snprintf(json, sizeof json, "{\"id\": \"new\", \"tags\": [\"%s\"]}", tag);
    size_t added, plain;
    if (cb_recommender_add_item(rec, json, &added, &err) ||
        cb_recommender_add_item(rec, "{\"id\": \"plain\", \"brand\": \"Zed\"}", &plain, &err))
        fail_msg("%s", err.msg);
    char text[128];
    snprintf(text, sizeof text, "# by content\ntags %s\nbrand   Acme\ni1\n", tag);
    char *path = tu_write(f->dir, "block.txt", text);
    cb_blocklist bl;
    if (cb_recommend_block_load(&bl, rec, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(bl.n_blocked_values, 2);
    assert_int_equal(bl.n_blocked_items, 1);
    size_t n_blocked = 0;
    for (size_t i = 0; i < cb_recommender_item_count(rec); i++) {
        bool want = has_content(rec, i, "tags", tag) || has_content(rec, i, "brand", "Acme") || i == 1;
        assert_int_equal(cb_bit_get(bl.items, i), want);
        n_blocked += want;
    }
    assert_true(cb_bit_get(bl.items, added) && !cb_bit_get(bl.items, plain));
    assert_true(n_blocked > 15 && n_blocked < 30); /* the even items, every third, i1 and the added one */
    cb_recommend_block_free(&bl);
    cb_config *c = NULL;
    cb_list *l = NULL;
    if (cb_config_create(&c, CB_CONFIG_RECOMMEND, &err) || cb_config_set(c, "n", "40", &err) ||
        cb_config_set(c, "block-file", path, &err) || cb_recommender_recommend(rec, "u1", NULL, c, &l, &err))
        fail_msg("%s", err.msg);
    assert_true(cb_list_size(l) > 0);
    for (size_t i = 0; i < cb_list_size(l); i++) {
        size_t item = cb_list_item(l, i);
        assert_false(has_content(rec, item, "tags", tag) || has_content(rec, item, "brand", "Acme") || item == 1);
    }
    cb_list_free(l);
    cb_config_free(c);
    free(path);
    const char *bad[2][2] = {{"\n\ntags nosuch\n", "block2.txt:3: unknown value 'nosuch' of 'tags'"},
                             {"brand Acme\nnosuch thing\n", "block2.txt:2: unknown item id 'nosuch thing'"}};
    for (int k = 0; k < 2; k++) {
        path = tu_write(f->dir, "block2.txt", bad[k][0]);
        assert_int_equal(cb_recommend_block_load(&bl, rec, path, &err), CB_ENOTFOUND);
        if (!strstr(err.msg, bad[k][1]) || strstr(err.msg, "name its items instead")) /* every value kept: a typo */
            fail_msg("message: %s", err.msg);
        free(path);
    }
}

/* The vocabulary names the multi-valued content columns (what colours the
 * server's map without genres): tags, not the brand. */
static void vocabulary_multi_valued(void **state) {
    fixture *f = *state;
    char *vocab = NULL;
    cb_error err = {0};
    if (cb_recommender_vocabulary_json(f->rec, &vocab, &err)) fail_msg("%s", err.msg);
    json_t *v = json_loads(vocab, 0, NULL);
    char *names = json_dumps(json_object_get(v, "multi_valued"), JSON_COMPACT);
    assert_string_equal(names, "[\"tags\"]");
    free(names);
    json_decref(v);
    free(vocab);
}

/* An id with outer blanks (the loader keeps a quoted field's: " sku-1 ")
 * is blocked by naming it in quotes, as the exclude and allow lists read
 * ids; unquoted, the line's outer blanks are no part of an id. */
static void block_ids_in_quotes(void **state) {
    fixture *f = *state;
    cb_recommender *rec = f->rec;
    cb_error err = {0};
    size_t padded, quote;
    if (cb_recommender_add_item(rec, "{\"id\": \" pad \", \"brand\": \"Zed\"}", &padded, &err) ||
        cb_recommender_add_item(rec, "{\"id\": \"q\\\"t \", \"brand\": \"Zed\"}", &quote, &err))
        fail_msg("%s", err.msg);
    char *path = tu_write(f->dir, "block-quoted.txt", "item \" pad \"\n  \"q\"\"t \"  \n");
    cb_blocklist bl;
    if (cb_recommend_block_load(&bl, rec, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(bl.n_blocked_items, 2);
    assert_true(cb_bit_get(bl.items, padded) && cb_bit_get(bl.items, quote));
    cb_recommend_block_free(&bl);
    free(path);
    const char *bad[2][2] = {{"item pad\n", "block-quoted.txt:1: unknown item id 'pad'"},
                             {"item \" pad \" x\n", "block-quoted.txt:1"}};
    for (int k = 0; k < 2; k++) {
        path = tu_write(f->dir, "block-quoted.txt", bad[k][0]);
        assert_int_not_equal(cb_recommend_block_load(&bl, rec, path, &err), CB_OK);
        if (!strstr(err.msg, bad[k][1])) fail_msg("message: %s", err.msg);
        free(path);
    }
}

/* Does a list hold an item having the tag or the brand? */
static bool list_has_blocked(const cb_recommender *rec, const cb_list *l, const char *tag, const char *brand) {
    for (size_t i = 0; i < cb_list_size(l); i++)
        if (has_content(rec, cb_list_item(l, i), "tags", tag) || has_content(rec, cb_list_item(l, i), "brand", brand))
            return true;
    return false;
}

/* The recommender's own block list (cb_recommender_set_block_file): no
 * recommendation, batch row or similar list shows a blocked item, an item
 * added later with a blocked value is blocked, a bad file leaves the list
 * as it was, and clearing it shows the items again. */
static void recommender_block_list(void **state) {
    fixture *f = *state;
    cb_recommender *rec = f->rec;
    cb_error err = {0};
    const char *columns[256], *values[256], *tag = NULL;
    size_t n = cb_recommender_item_content(rec, 1, columns, values, 256);
    for (size_t k = 0; k < n && !tag; k++)
        if (!strcmp(columns[k], "tags")) tag = values[k]; /* an odd item's: t100..t199 */
    assert_non_null(tag);
    char text[64], json[96];
    snprintf(text, sizeof text, "tags %s\nbrand Acme\n", tag);
    char *path = tu_write(f->dir, "block.txt", text), *bad = tu_write(f->dir, "bad.txt", "tags nosuch\n");
    if (cb_recommender_set_block_file(rec, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(cb_recommender_set_block_file(rec, bad, &err), CB_ENOTFOUND); /* the list stays */
    snprintf(json, sizeof json, "{\"id\": \"late\", \"brand\": \"Zed\", \"tags\": [\"%s\"]}", tag);
    size_t late;
    if (cb_recommender_add_item(rec, json, &late, &err)) fail_msg("%s", err.msg);
    assert_true(has_content(rec, late, "tags", tag));
    cb_config *c = NULL;
    cb_list *l = NULL;
    if (cb_config_create(&c, CB_CONFIG_RECOMMEND, &err) || cb_config_set(c, "n", "40", &err)) fail_msg("%s", err.msg);
    for (int pass = 0; pass < 2; pass++) { /* blocked, then cleared */
        bool blocked_shown = false;
        for (size_t u = 0; u < 5; u++) {
            char uid[8];
            snprintf(uid, sizeof uid, "u%zu", u);
            if (cb_recommender_recommend(rec, uid, NULL, c, &l, &err)) fail_msg("%s", err.msg);
            blocked_shown |= list_has_blocked(rec, l, tag, "Acme");
            cb_list_free(l);
        }
        if (cb_recommender_similar(rec, 0, 29, &l, &err)) fail_msg("%s", err.msg); /* item 0: an Acme one */
        blocked_shown |= list_has_blocked(rec, l, tag, "Acme");
        /* 31 items: the 15 odd ones (the tag), the 10 Acme ones (5 odd) and the added one blocked, i0 too: 10 left */
        assert_int_equal(cb_list_size(l), pass == 0 ? 10 : 29);
        cb_list_free(l);
        int64_t items[40];
        float scores[40];
        size_t users[3] = {0, 1, 2};
        if (cb_recommender_recommend_batch(rec, users, 3, 10, NULL, items, scores, &err)) fail_msg("%s", err.msg);
        for (size_t k = 0; k < 30; k++)
            if (items[k] >= 0)
                blocked_shown |= has_content(rec, (size_t)items[k], "tags", tag) ||
                                 has_content(rec, (size_t)items[k], "brand", "Acme");
        assert_int_equal(blocked_shown, pass == 1);
        if (pass == 0 && cb_recommender_set_block_file(rec, NULL, &err)) fail_msg("%s", err.msg);
    }
    cb_config_free(c);
    free(path), free(bad);
}

/* The recommender's block list across tables: a table's rows leave the
 * blocked items out, an added-items file loaded beside a table is blocked
 * by value too (the list was left stale: every call refused), and a block
 * file that no longer reads when a table is built refuses every call (the
 * old list went on being used) until it is set again. */
static void block_list_and_tables(void **state) {
    fixture *f = *state;
    cb_recommender *rec = f->rec;
    cb_error err = {0};
    char *model = tu_path(f->dir, "m.cbrec"), *added = tu_path(f->dir, "added.tab");
    cb_recommender *other = NULL;
    size_t late;
    if (cb_recommender_save(rec, model, &err) || cb_recommender_load(&other, model, NULL, &err) ||
        cb_recommender_add_item(other, "{\"id\": \"late\", \"brand\": \"Acme\"}", &late, &err) ||
        cb_recommender_save_table(other, added, &err))
        fail_msg("%s", err.msg);
    cb_recommender_free(other);
    char *path = tu_write(f->dir, "block.txt", "brand Acme\n");
    if (cb_recommender_build_table(rec, 12, 1, &err) || cb_recommender_set_block_file(rec, path, &err) ||
        cb_recommender_load_table(rec, added, &err))
        fail_msg("%s", err.msg);
    assert_true(cb_recommender_item_blocked(rec, cb_recommender_item_count(rec) - 1)); /* "late", an Acme one */
    cb_list *l = NULL;
    for (size_t k = 3; k <= 12; k += 9) { /* from the table's rows, and past them */
        if (cb_recommender_similar(rec, 1, k, &l, &err)) fail_msg("%s", err.msg);
        assert_int_equal(cb_list_size(l), k);
        for (size_t i = 0; i < k; i++) assert_false(has_content(rec, cb_list_item(l, i), "brand", "Acme"));
        cb_list_free(l);
    }
    if (cb_recommender_recommend(rec, "u1", NULL, NULL, &l, &err)) fail_msg("%s", err.msg);
    cb_list_free(l);
    free(tu_write(f->dir, "block.txt", "brand nosuch\n"));
    assert_int_equal(cb_recommender_build_table(rec, 5, 1, &err), CB_ENOTFOUND);
    assert_int_equal(cb_recommender_recommend(rec, "u1", NULL, NULL, &l, &err), CB_EINVAL);
    if (!strstr(err.msg, "set it again")) fail_msg("message: %s", err.msg);
    assert_int_equal(cb_recommender_similar(rec, 1, 3, &l, &err), CB_EINVAL);
    free(tu_write(f->dir, "block.txt", "brand 7\n"));
    if (cb_recommender_set_block_file(rec, path, &err) || cb_recommender_recommend(rec, "u1", NULL, NULL, &l, &err))
        fail_msg("%s", err.msg);
    cb_list_free(l);
    free(model), free(added), free(path);
}

/* exclude / allow take ids of any length (ids of 256 bytes or more were
 * refused as too long, though add-item and the catalog take them). */
static void id_lists_long_ids(void **state) {
    fixture *f = *state;
    cb_error err = {0};
    char id[301], json[400];
    memset(id, 'x', 300);
    id[300] = 0;
    size_t item;
    snprintf(json, sizeof json, "{\"id\": \"%s\", \"brand\": \"Zed\"}", id);
    if (cb_recommender_add_item(f->rec, json, &item, &err)) fail_msg("%s", err.msg);
    const char *keys[2] = {"allow", "exclude"};
    for (int k = 0; k < 2; k++) {
        cb_config *c = NULL;
        cb_list *l = NULL;
        if (cb_config_create(&c, CB_CONFIG_RECOMMEND, &err) || cb_config_set(c, keys[k], id, &err) ||
            cb_recommender_recommend(f->rec, "u1", NULL, c, &l, &err))
            fail_msg("%s: %s", keys[k], err.msg);
        bool found = false;
        for (size_t i = 0; i < cb_list_size(l); i++) found |= cb_list_item(l, i) == item;
        assert_int_equal(found, k == 0);
        if (k == 0) assert_int_equal(cb_list_size(l), 1);
        cb_list_free(l);
        cb_config_free(c);
    }
}

/* A new user's categorical attribute given as a JSON number reads as the
 * text a file holds: {"tier": 0.1} is the level "0.1" ("%.17g" made it
 * "0.10000000000000001", unknown, so strict refused it and the vector lost it). */
static void categorical_number_attribute(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    cb_error err = {0};
    free(tu_write(d, "cbrec.schema", "ratings = r.csv\nitems = i.csv\nitems.columns = id, tags:multi(;)\n"
                                     "users = u.csv\nusers.columns = id, tier:categorical\n"));
    char ratings[4096] = "user,item,rating\n", users[512] = "id,tier\n";
    for (int u = 0; u < 20; u++) {
        snprintf(users + strlen(users), sizeof users - strlen(users), "u%d,%s\n", u, u % 2 ? "0.1" : "2.5");
        for (int k = 0; k < 5; k++)
            snprintf(ratings + strlen(ratings), sizeof ratings - strlen(ratings), "u%d,i%d,%d\n", u, (u + 3 * k) % 10,
                     1 + (u + k) % 5);
    }
    free(tu_write(d, "r.csv", ratings));
    free(tu_write(d, "u.csv", users));
    free(tu_write(d, "i.csv", "id,tags\ni0,a\ni1,b\ni2,a;b\ni3,c\ni4,a\ni5,b\ni6,c\ni7,a\ni8,b\ni9,c\n"));
    cb_dataset *ds = NULL;
    cb_recommender *rec = train_folder(d, &ds);
    size_t dim = cb_recommender_dim(rec);
    float *as_number = malloc(dim * sizeof *as_number), *as_text = malloc(dim * sizeof *as_text),
          *other = malloc(dim * sizeof *other);
    if (cb_recommender_new_user_vector(rec, "{\"tier\": 0.1, \"strict\": true}", as_number, &err) ||
        cb_recommender_new_user_vector(rec, "{\"tier\": \"0.1\", \"strict\": true}", as_text, &err) ||
        cb_recommender_new_user_vector(rec, "{\"tier\": 2.5, \"strict\": true}", other, &err))
        fail_msg("%s", err.msg);
    assert_memory_equal(as_number, as_text, dim * sizeof *as_number);
    assert_memory_not_equal(as_number, other, dim * sizeof *as_number);
    free(as_number), free(as_text), free(other);
    cb_recommender_free(rec);
    cb_dataset_close(ds);
    tu_rmrf(d);
    free(d);
}

/* An added item's genre and content names of more than 255 bytes read back
 * whole (they were cut to 255 and then not found: the item showed neither). */
static void add_item_long_names(void **state) {
    (void)state;
    char genre[301], tag[301];
    memset(genre, 'g', 300), memset(tag, 't', 300);
    genre[300] = tag[300] = '\0';
    const char *const genres[3] = {genre, "Comedy", "Drama"}, *const tags[2] = {tag, "short"};
    char *d = tu_tmpdir();
    tu_write_content_catalog(d, genres, tags);
    cb_dataset *ds = NULL;
    cb_recommender *rec = train_folder(d, &ds);
    cb_error err = {0};
    char json[800];
    snprintf(json, sizeof json, "{\"id\": \"new\", \"genres\": [\"%s\"], \"tags\": [\"%s\"]}", genre, tag);
    size_t item;
    if (cb_recommender_add_item(rec, json, &item, &err)) fail_msg("%s", err.msg);
    const char *names[4];
    assert_int_equal(cb_recommender_item_genres(rec, item, names, 4), 1);
    assert_string_equal(names[0], genre);
    assert_string_equal(content_value(rec, item, "tags"), tag);
    cb_recommender_free(rec);
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d);
}

/* A reason names a content column's value by the column as one of its
 * values' kind, the brand column renamed `column`: the reasons hold
 * "favourite <kind> 'Acme'" and never "favourite <wrong> '". */
static void reason_names(const char *column, const char *kind, const char *wrong) {
    const char *const genres[3] = {"Action", "Comedy", "Drama"};
    char *d = tu_tmpdir(), *path = tu_path(d, "i.csv"), items[16384];
    tu_write_content_catalog(d, genres, NULL);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t n = fread(items, 1, sizeof items - 1, fp);
    fclose(fp);
    items[n] = '\0';
    assert_memory_equal(items, "id,name,genres,brand\n", 21);
    char renamed[16400], schema[256], prefs[128], want[64], bad[64];
    snprintf(renamed, sizeof renamed, "id,name,genres,%s\n%s", column, items + 21);
    free(tu_write(d, "i.csv", renamed));
    snprintf(schema, sizeof schema, "ratings = r.csv\nitems = i.csv\nitems.columns = id, name:title, "
             "genres:multi(|), %s:categorical\n", column);
    free(tu_write(d, "cbrec.schema", schema));
    snprintf(prefs, sizeof prefs, "{\"preferences\": {\"%s\": {\"Acme\": 5}}}", column);
    snprintf(want, sizeof want, "favourite %s 'Acme'", kind);
    snprintf(bad, sizeof bad, "favourite %s '", wrong);
    cb_dataset *ds = NULL;
    cb_recommender *rec = train_folder(d, &ds);
    cb_error err = {0};
    cb_list *l = NULL;
    if (cb_recommender_recommend(rec, NULL, prefs, NULL, &l, &err)) fail_msg("%s", err.msg);
    bool named = false;
    for (size_t i = 0; i < cb_list_size(l); i++)
        for (size_t k = 0; k < cb_list_n_reasons(l, i); k++) {
            const char *why = cb_list_reason(l, i, k);
            named |= strstr(why, want) != NULL;
            if (strstr(why, bad)) fail_msg("column %s, reason: %s", column, why);
        }
    if (!named) fail_msg("column %s: no reason names '%s'", column, want);
    cb_list_free(l);
    cb_recommender_free(rec);
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d), free(path);
}

/* "status" whole (it read "statu"), "languages" as "language" (a rule
 * keeping every "-es" whole read "favourite languages"), "tags" as "tag",
 * "categories" and "boxes" whole. */
static void reason_names_the_column(void **state) {
    (void)state;
    reason_names("status", "status", "statu");
    reason_names("languages", "language", "languages");
    reason_names("tags", "tag", "tags");
    reason_names("categories", "categories", "categorie");
    reason_names("boxes", "boxes", "boxe");
}

int main(void) {
    const struct CMUnitTest planted[] = {
        cmocka_unit_test(similar_purity),
        cmocka_unit_test(new_user_preferences),
        cmocka_unit_test(known_users_favourites),
        cmocka_unit_test(title_lookup_folds),
        cmocka_unit_test(genre_cap_needs_genres),
        cmocka_unit_test(unknown_values),
    };
    const struct CMUnitTest units[] = {cmocka_unit_test(vocabulary_control), cmocka_unit_test(unicode_folding),
        cmocka_unit_test(text_tokens_unicode_punctuation),
        cmocka_unit_test(similar_notes_tied_vectors),
        cmocka_unit_test(group_source_location_any_case),
                                       cmocka_unit_test(genre_ratings_takes_genres_only),
                                       cmocka_unit_test(add_item_brand_list), cmocka_unit_test(add_item_genres_string),
                                       cmocka_unit_test_setup_teardown(add_item_keeps_every_value, setup_many_tags,
                                                                       teardown),
                                       cmocka_unit_test_setup_teardown(add_item_number_as_text, setup_many_tags,
                                                                       teardown),
                                       cmocka_unit_test_setup_teardown(add_item_refuses_separators, setup_many_tags,
                                                                       teardown),
                                       cmocka_unit_test_setup_teardown(preferences_every_value, setup_many_tags,
                                                                       teardown),
                                       cmocka_unit_test_setup_teardown(block_by_content_value, setup_many_tags, teardown),
                                       cmocka_unit_test_setup_teardown(block_ids_in_quotes, setup_many_tags, teardown),
                                       cmocka_unit_test_setup_teardown(vocabulary_multi_valued, setup_many_tags, teardown),
                                       cmocka_unit_test_setup_teardown(id_lists_long_ids, setup_many_tags, teardown),
                                       cmocka_unit_test_setup_teardown(recommender_block_list, setup_many_tags, teardown),
                                       cmocka_unit_test_setup_teardown(block_list_and_tables, setup_many_tags, teardown),
                                       cmocka_unit_test(add_item_long_names), cmocka_unit_test(categorical_number_attribute),
                                       cmocka_unit_test(reason_names_the_column)};
    int failed = cmocka_run_group_tests_name("content-units", units, NULL, NULL);
    return failed + cmocka_run_group_tests_name("planted-generic", planted, setup, teardown);
}
