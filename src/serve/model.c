/* model — one loaded model as the server holds it: the recommender and what
 * the routes derive from it once at load (item interaction counts and means,
 * the items by popularity, the 2-D map, the describe and vocabulary JSON,
 * each item's genres and other content values as JSON text, spliced into
 * every list answer).
 * A reload builds a new one beside the old (server.c swaps them). */
#include "serve/serve.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sv_model_free(sv_model *m) {
    if (!m) return;
    sv_answers_free(m->answers);
    cb_recommender_free(m->rec);
    free(m->version);
    free(m->describe_json);
    free(m->vocab_json);
    free(m->counts);
    free(m->means);
    free(m->by_popularity);
    free(m->xy);
    for (size_t i = 0; m->content_json && i < m->n_items; i++) free(m->content_json[i]);
    free(m->content_json);
    for (size_t i = 0; m->folded_titles && i < m->n_items; i++) free(m->folded_titles[i]);
    free(m->folded_titles);
    free(m->map_column);
    free(m);
}

static json_t *clean_string(const char *s) {
    char *c = sv_utf8_clean(s);
    json_t *j = c ? json_string(c) : NULL;
    free(c);
    return j;
}

json_t *sv_item_content(const sv_model *m, size_t item) {
    size_t n_genres = cb_recommender_item_genres(m->rec, item, NULL, 0);
    size_t n_other = cb_recommender_item_content(m->rec, item, NULL, NULL, 0);
    const char **names = calloc(n_genres + 2 * n_other + 1, sizeof *names), **values = names + n_genres + n_other;
    json_t *o = json_object(), *genres = json_array(), *content = n_other ? json_object() : NULL;
    bool ok = names && o && !json_object_set(o, "genres", genres) && (!n_other || !json_object_set(o, "content", content));
    json_decref(genres); /* o holds them */
    json_decref(content);
    if (!ok) {
        json_decref(o);
        free(names);
        return NULL;
    }
    cb_recommender_item_genres(m->rec, item, names, n_genres);
    for (size_t g = 0; g < n_genres; g++) json_array_append_new(genres, clean_string(names[g]));
    cb_recommender_item_content(m->rec, item, names, values, n_other);
    for (size_t k = 0; k < n_other; k++) { /* a column's values in the item's order */
        json_t *list = json_object_get(content, names[k]);
        if (!list && json_object_set_new(content, names[k], json_array())) continue; /* (it freed the array) */
        if (!list) list = json_object_get(content, names[k]);
        json_array_append_new(list, clean_string(values[k]));
    }
    free(names);
    return o;
}

/* m->content_json: sv_item_content's members as text per item,
 * "genres":[...],"content":{...} (no braces). */
static int content_texts(sv_model *m) {
    if (!(m->content_json = calloc(m->n_items + 1, sizeof *m->content_json))) return CB_ENOMEM;
    for (size_t i = 0; i < m->n_items; i++) {
        json_t *o = sv_item_content(m, i);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!text) return CB_ENOMEM;
        size_t len = strlen(text); /* "{...}": the members between the braces */
        memmove(text, text + 1, len - 2);
        text[len - 2] = '\0';
        m->content_json[i] = text;
    }
    return CB_OK;
}

/* m->map_column: the genre column ("genres") when the model has genres,
 * else its first multi-valued content column (a catalog of tags alone was
 * all grey), else none; the one choice of what colours the map (its points'
 * "colour", /v1/meta's "map_column"). */
static int choose_map_column(sv_model *m) {
    json_t *v = json_loads(m->vocab_json, 0, NULL);
    if (!v) return CB_ENOMEM;
    const char *name = json_array_size(json_object_get(v, "genres"))
                           ? "genres"
                           : json_string_value(json_array_get(json_object_get(v, "multi_valued"), 0));
    int rc = name && !(m->map_column = strdup(name)) ? CB_ENOMEM : CB_OK;
    json_decref(v);
    return rc;
}

/* m->folded_titles: each title folded once, not at every search. */
static int fold_titles(sv_model *m) {
    if (!(m->folded_titles = calloc(m->n_items + 1, sizeof *m->folded_titles))) return CB_ENOMEM;
    for (size_t i = 0; i < m->n_items; i++) {
        if (!(m->folded_titles[i] = strdup(cb_recommender_item_title(m->rec, i)))) return CB_ENOMEM;
        cb_utf8_fold(m->folded_titles[i]);
    }
    return CB_OK;
}

static const size_t *sort_counts; /* qsort has no context; set under sort_mu */
static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;

static int by_count_desc(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (sort_counts[x] != sort_counts[y]) return sort_counts[x] > sort_counts[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* The fields of the describe JSON the routes need. */
static int read_describe(sv_model *m, char *msg, size_t msg_size) {
    json_error_t je;
    json_t *d = json_loads(m->describe_json, 0, &je);
    json_t *scale = json_object_get(d, "rating_scale");
    const char *fp = json_string_value(json_object_get(d, "fingerprint"));
    int rc = d && json_array_size(scale) == 2 ? 0 : -1;
    if (!rc) {
        m->y_min = json_number_value(json_array_get(scale, 0));
        m->y_max = json_number_value(json_array_get(scale, 1));
        m->binary = json_is_true(json_object_get(d, "binary"));
        m->n_added = (size_t)json_integer_value(json_object_get(d, "added_items"));
        m->version = strdup(fp && *fp ? fp : "unknown");
        if (!m->version) rc = -1;
    }
    if (rc) snprintf(msg, msg_size, "cannot read the model's description");
    json_decref(d);
    return rc;
}

sv_model *sv_model_load(const sv_options *o, char *msg, size_t msg_size) {
    cb_error err = {0};
    sv_model *m = calloc(1, sizeof *m);
    if (!m) return snprintf(msg, msg_size, "out of memory"), NULL;
    int rc = cb_recommender_load(&m->rec, o->model_path, o->table_path, &err);
    if (!rc && o->block_path) rc = cb_recommender_set_block_file(m->rec, o->block_path, &err);
    if (!rc) rc = cb_recommender_describe(m->rec, &m->describe_json, &err);
    if (!rc) rc = cb_recommender_vocabulary_json(m->rec, &m->vocab_json, &err);
    if (rc) {
        snprintf(msg, msg_size, "%s", err.msg[0] ? err.msg : cb_strstatus(rc));
        sv_model_free(m);
        return NULL;
    }
    m->n_items = cb_recommender_item_count(m->rec);
    m->n_users = cb_recommender_user_count(m->rec);
    m->counts = calloc(m->n_items + 1, sizeof *m->counts);
    m->means = calloc(m->n_items + 1, sizeof *m->means);
    m->by_popularity = calloc(m->n_items + 1, sizeof *m->by_popularity);
    m->xy = calloc(2 * m->n_items + 2, sizeof *m->xy);
    rc = (m->counts && m->means && m->by_popularity && m->xy) ? CB_OK : CB_ENOMEM;
    if (!rc) rc = cb_recommender_item_rating_stats(m->rec, m->counts, m->means, &err);
    if (!rc) rc = cb_recommender_project_2d(m->rec, m->xy, &err);
    if (!rc && ((rc = content_texts(m)) || (rc = fold_titles(m)) || (rc = choose_map_column(m))))
        snprintf(err.msg, sizeof err.msg, "out of memory");
    if (!rc && read_describe(m, msg, msg_size)) rc = CB_EFORMAT;
    else if (rc) snprintf(msg, msg_size, "%s", err.msg[0] ? err.msg : cb_strstatus(rc));
    if (rc) {
        sv_model_free(m);
        return NULL;
    }
    for (size_t i = 0; i < m->n_items; i++) m->by_popularity[i] = (uint32_t)i;
    pthread_mutex_lock(&sort_mu);
    sort_counts = m->counts;
    qsort(m->by_popularity, m->n_items, sizeof *m->by_popularity, by_count_desc);
    sort_counts = NULL;
    pthread_mutex_unlock(&sort_mu);
    snprintf(m->criterion, sizeof m->criterion, "predicted rating");
    cb_list *l = NULL; /* the criterion is the lists' own: ask one */
    if (m->n_users && cb_recommender_recommend(m->rec, cb_recommender_user_id(m->rec, 0), NULL, NULL, &l, NULL) == CB_OK)
        snprintf(m->criterion, sizeof m->criterion, "%s", cb_list_criterion(l));
    cb_list_free(l);
    m->loaded_at = (double)time(NULL);
    return m;
}

int64_t sv_model_item(const sv_model *m, const char *id) {
    size_t item = 0;
    if (!id || !*id || cb_recommender_find_item(m->rec, id, &item, NULL, 0, NULL, NULL) != CB_OK) return -1;
    const char *found = cb_recommender_item_id(m->rec, item);
    return found && !strcmp(found, id) ? (int64_t)item : -1; /* an id, not a title */
}

bool sv_model_trained_item(const sv_model *m, int64_t item) { return item >= 0 && (size_t)item < m->n_items - m->n_added; }
