/* test_train_api — the public datasets and training calls (rec/api_train.c)
 * through include/cbrec.h: a synthetic folder written by the test, its
 * description, training with a config (never modified), the report, the
 * progress callback stopping training, resume, and refusals. */
#include "testutil.h"

#include "cbrec.h"
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <sys/stat.h>

typedef struct fixture {
    char *dir, *data;
    cb_dataset *ds;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    f->data = tu_path(f->dir, "data");
    cb_config *s;
    cb_error err = {0};
    assert_int_equal(cb_config_create(&s, CB_CONFIG_SYNTH, &err), CB_OK);
    assert_int_equal(cb_config_set(s, "users", "80", &err), CB_OK);
    assert_int_equal(cb_config_set(s, "items", "100", &err), CB_OK);
    assert_int_equal(cb_config_set(s, "ratings", "3000", &err), CB_OK);
    assert_int_equal(cb_synth_write_folder(f->data, s, &err), CB_OK);
    cb_config_free(s);
    assert_int_equal(cb_dataset_open(&f->ds, f->data, NULL, &err), CB_OK);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    cb_dataset_close(f->ds);
    tu_rmrf(f->dir);
    free(f->dir);
    free(f->data);
    free(f);
    return 0;
}

static cb_config *small_config(void) {
    cb_config *c;
    cb_error err = {0};
    assert_int_equal(cb_config_create(&c, CB_CONFIG_TRAIN, &err), CB_OK);
    const char *kv[] = {"user-layers", "8", "item-layers", "8", "dim", "4", "epochs", "2", "top-k-popular", "10", NULL};
    for (const char **p = kv; *p; p += 2) assert_int_equal(cb_config_set(c, p[0], p[1], &err), CB_OK);
    return c;
}

static void counts_and_describe(void **state) {
    fixture *f = *state;
    assert_int_equal(cb_dataset_user_count(f->ds), 80);
    assert_int_equal(cb_dataset_item_count(f->ds), 100);
    assert_int_equal(cb_dataset_rating_count(f->ds), 3000);
    assert_int_equal(cb_dataset_skipped_count(f->ds), 0);
    cb_config *c = small_config();
    char *doc = NULL;
    cb_error err = {0};
    assert_int_equal(cb_dataset_describe(f->ds, c, &doc, &err), CB_OK);
    json_t *o = json_loads(doc, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "layout")), cb_dataset_layout(f->ds));
    assert_int_equal(json_integer_value(json_object_get(o, "ratings")), 3000);
    assert_true(json_array_size(json_object_get(o, "user_columns")) >= 3); /* age, gender, occupation, ... */
    assert_true(json_array_size(json_object_get(o, "item_features")) > 0);
    json_decref(o);
    free(doc);
    /* no config: no features */
    assert_int_equal(cb_dataset_describe(f->ds, NULL, &doc, &err), CB_OK);
    assert_null(strstr(doc, "user_features"));
    free(doc);
    cb_config_free(c);
}

/* the version string is the three numbers joined */
static void version_string(void **state) {
    (void)state;
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", CB_VERSION_MAJOR, CB_VERSION_MINOR, CB_VERSION_PATCH);
    assert_string_equal(cb_version(), v);
    assert_string_equal(CB_VERSION_STRING, v);
}

static int count_epochs(const cb_progress *p, void *ctx) {
    if (p->end_of_epoch) ++*(int *)ctx;
    assert_true(p->size == sizeof *p);
    return 0;
}

static int stop_after_first(const cb_progress *p, void *ctx) {
    (void)ctx;
    return p->end_of_epoch; /* stop at the end of epoch 1 */
}

static void train_report_resume(void **state) {
    fixture *f = *state;
    cb_config *c = small_config();
    assert_int_equal(cb_config_set(c, "valid-frac", "0.1", &(cb_error){0}), CB_OK); /* default 0 */
    char *before = strdup(cb_config_get(c, "epochs"));
    cb_recommender *rec = NULL;
    cb_train_report rep = {.size = sizeof rep};
    cb_error err = {0};
    int epochs = 0;
    assert_int_equal(cb_train(&rec, f->ds, c, count_epochs, &epochs, &rep, &err), CB_OK);
    assert_non_null(rec);
    assert_int_equal(epochs, 2);
    assert_int_equal(rep.epochs_run, 2);
    assert_true(rep.n_train + rep.n_valid + rep.n_test == 3000);
    assert_true(rep.n_valid > 0 && rep.n_test > 0);
    assert_true(isfinite(rep.test_rmse) && rep.test_rmse > 0 && rep.test_rmse < 3);
    assert_int_equal(rep.n_params > 0, 1);
    /* where the steps went: the towers take time, nothing is negative (9 steps an epoch: one sampled) */
    assert_true(rep.threads >= 1);
    assert_true(rep.step_towers > 0 && rep.step_loss > 0 && rep.step_update > 0 && rep.step_waits >= 0);
    assert_true(rep.step_towers + rep.step_loss + rep.step_update + rep.step_waits < 60);
    assert_string_equal(cb_config_get(c, "epochs"), before); /* never modified */
    /* the same seed gives the same model */
    cb_recommender *again = NULL;
    cb_train_report rep2 = {.size = sizeof rep2};
    assert_int_equal(cb_train(&again, f->ds, c, NULL, NULL, &rep2, &err), CB_OK);
    assert_true(rep.test_rmse == rep2.test_rmse);
    cb_recommender_free(again);
    /* a progress callback can stop training */
    cb_train_report rep3 = {.size = sizeof rep3};
    assert_int_equal(cb_train(&again, f->ds, c, stop_after_first, NULL, &rep3, &err), CB_OK);
    assert_int_equal(rep3.epochs_run, 1);
    cb_recommender_free(again);
    /* resume continues the same recommender, which still serves */
    assert_int_equal(cb_config_set(c, "epochs", "1", &err), CB_OK);
    assert_int_equal(cb_train_resume(rec, f->ds, c, NULL, NULL, &rep, &err), CB_OK);
    assert_int_equal(rep.epochs_run, 1);
    assert_true(rep.tune_users == 0 && isnan(rep.tune_ndcg) && rep.tune_seconds == 0); /* nothing tuned */
    char *doc = NULL;
    assert_int_equal(cb_recommender_describe(rec, &doc, &err), CB_OK);
    json_t *o = json_loads(doc, 0, NULL), *nb = json_object_get(o, "neighbours");
    if (json_is_null(nb)) assert_null(rep.neighbours); /* the component the model carries, resumed or not */
    else assert_string_equal(rep.neighbours, json_string_value(json_object_get(nb, "kind")));
    json_decref(o);
    free(doc);
    cb_list *l = NULL;
    cb_config *opts = NULL;
    assert_int_equal(cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err), CB_OK);
    assert_int_equal(cb_config_set(opts, "n", "3", &err), CB_OK);
    assert_int_equal(cb_recommender_recommend(rec, "1", NULL, opts, &l, &err), CB_OK);
    assert_int_equal(cb_list_size(l), 3);
    cb_list_free(l);
    cb_config_free(opts);
    cb_recommender_free(rec);
    free(before);
    cb_config_free(c);
}

/* The stages a training reports, in order, and what was counted. */
typedef struct stages {
    int seen[3];       /* ticks per stage */
    int order_broken;  /* a stage came after a later one */
    int last;          /* the last stage seen */
    int epoch_ends;    /* end_of_epoch reports (of the model only) */
    unsigned tower_epochs;
    int stop_at_grid;  /* return 1 at the grid's tick, and from then on (as a Ctrl-C) */
    int stopped;
    double elapsed;    /* the last report's */
} stages;

static int record_stages(const cb_progress *p, void *ctx) {
    stages *st = ctx;
    assert_true(p->stage >= CB_STAGE_TRAIN && p->stage <= CB_STAGE_TUNE_GRID);
    int rank = p->stage == CB_STAGE_TRAIN ? 2 : p->stage - 1, last = st->last == CB_STAGE_TRAIN ? 2 : st->last - 1;
    if (st->seen[0] + st->seen[1] + st->seen[2] && rank < last) st->order_broken = 1;
    st->seen[rank]++;
    st->last = p->stage;
    assert_true(p->elapsed >= st->elapsed); /* seconds since cb_train began: never back */
    st->elapsed = p->elapsed;
    if (p->end_of_epoch) {
        assert_int_equal(p->stage, CB_STAGE_TRAIN); /* only the model's epochs end */
        st->epoch_ends++;
    }
    if (p->stage == CB_STAGE_TUNE_TOWERS) {
        assert_true(p->epoch >= 1 && p->epoch <= p->epochs && p->batch <= p->n_batches);
        st->tower_epochs = p->epochs;
    }
    st->stopped |= p->stage == CB_STAGE_TUNE_GRID && st->stop_at_grid;
    return st->stopped;
}

/* With the neighbour component tuned (objective both, "auto"), the progress
 * function sees the carve's towers, then the grid, then the model's epochs;
 * the report says what was chosen, as the description does, and what the
 * tuning measured. A stop at the grid's tick stops the training, with no
 * component. A rating model tunes nothing. */
static void tuning_reported(void **state) {
    fixture *f = *state;
    cb_config *c = small_config();
    cb_error err = {0};
    assert_int_equal(cb_config_set(c, "neighbour-weight", "0.5", &err), CB_OK); /* a component whatever the grid says */
    cb_recommender *rec = NULL;
    cb_train_report rep = {.size = sizeof rep};
    stages st = {.last = CB_STAGE_TUNE_TOWERS};
    assert_int_equal(cb_train(&rec, f->ds, c, record_stages, &st, &rep, &err), CB_OK);
    assert_true(st.seen[0] >= 2 && st.seen[1] == 1 && st.seen[2] >= 2); /* an epoch's end each at least */
    assert_false(st.order_broken);
    assert_int_equal(st.epoch_ends, 2);
    assert_int_equal(st.tower_epochs, 2);
    assert_non_null(rep.neighbours);
    assert_true(rep.neighbours_k > 0 && rep.neighbours_weight == 0.5);
    assert_true(rep.tune_users > 0 && rep.tune_seconds > 0);
    assert_true(rep.tune_ndcg >= 0 && rep.tune_ndcg <= 1);
    assert_true(isnan(rep.tune_ndcg_towers)); /* a weight given: the towers alone are not in the grid */
    char *doc = NULL;
    assert_int_equal(cb_recommender_describe(rec, &doc, &err), CB_OK);
    json_t *o = json_loads(doc, 0, NULL), *nb = json_object_get(o, "neighbours");
    assert_string_equal(json_string_value(json_object_get(nb, "kind")), rep.neighbours);
    assert_int_equal(json_integer_value(json_object_get(nb, "k")), rep.neighbours_k);
    const char *param = strcmp(rep.neighbours, "ease") ? "shrink" : "lambda";
    assert_true(fabs(json_real_value(json_object_get(nb, param)) - rep.neighbours_param) < 1e-6);
    json_decref(o);
    free(doc);
    cb_recommender_free(rec);

    /* every setting tuned: the towers alone are measured, and the choice is never worse */
    assert_int_equal(cb_config_set(c, "neighbour-weight", "auto", &err), CB_OK);
    cb_train_report rep1 = {.size = sizeof rep1};
    assert_int_equal(cb_train(&rec, f->ds, c, NULL, NULL, &rep1, &err), CB_OK);
    assert_true(rep1.tune_users > 0 && rep1.tune_ndcg_towers >= 0 && rep1.tune_ndcg_towers <= 1);
    assert_true(rep1.tune_ndcg >= rep1.tune_ndcg_towers);
    assert_true(rep1.neighbours ? rep1.neighbours_weight > 0 : rep1.tune_ndcg == rep1.tune_ndcg_towers);
    cb_recommender_free(rec);

    stages stop = {.last = CB_STAGE_TUNE_TOWERS, .stop_at_grid = 1};
    cb_train_report rep2 = {.size = sizeof rep2};
    assert_int_equal(cb_train(&rec, f->ds, c, record_stages, &stop, &rep2, &err), CB_OK);
    assert_int_equal(stop.seen[1], 1);
    assert_true(rep2.epochs_run <= 1);
    assert_null(rep2.neighbours);
    assert_int_equal(rep2.tune_users, 0);
    cb_recommender_free(rec);

    assert_int_equal(cb_config_set(c, "objective", "rating", &err), CB_OK);
    stages rating = {.last = CB_STAGE_TUNE_TOWERS};
    cb_train_report rep3 = {.size = sizeof rep3};
    assert_int_equal(cb_train(&rec, f->ds, c, record_stages, &rating, &rep3, &err), CB_OK);
    assert_true(rating.seen[0] == 0 && rating.seen[1] == 0 && rating.epoch_ends == 2);
    assert_null(rep3.neighbours);
    assert_true(isnan(rep3.tune_ndcg) && rep3.tune_users == 0 && rep3.tune_seconds == 0);
    cb_recommender_free(rec);
    cb_config_free(c);
}

/* A caller built against an older header (a smaller report) gets the
 * fields it knows and nothing written past them. */
static void old_report_size(void **state) {
    fixture *f = *state;
    cb_config *c = small_config();
    cb_error err = {0};
    union {
        cb_train_report r;
        unsigned char bytes[sizeof(cb_train_report) + 16];
    } u;
    memset(&u, 0xAB, sizeof u);
    size_t old = offsetof(cb_train_report, neighbours);
    u.r.size = old;
    cb_recommender *rec = NULL;
    assert_int_equal(cb_train(&rec, f->ds, c, NULL, NULL, &u.r, &err), CB_OK);
    assert_int_equal(u.r.epochs_run, 2);
    for (size_t i = old; i < sizeof u; i++) assert_int_equal(u.bytes[i], 0xAB);
    cb_recommender_free(rec);
    cb_config_free(c);
}

static void refusals(void **state) {
    fixture *f = *state;
    cb_recommender *rec = (cb_recommender *)1;
    cb_error err = {0};
    cb_config *s;
    assert_int_equal(cb_config_create(&s, CB_CONFIG_SYNTH, &err), CB_OK);
    assert_int_equal(cb_train(&rec, f->ds, s, NULL, NULL, NULL, &err), CB_EINVAL); /* wrong kind */
    assert_null(rec);
    assert_non_null(strstr(err.msg, "TRAIN"));
    cb_dataset *ds = (cb_dataset *)1;
    assert_int_equal(cb_dataset_open(&ds, f->data, s, &err), CB_EINVAL);
    assert_null(ds);
    cb_config_free(s);
    assert_int_equal(cb_dataset_open(&ds, "/nonexistent/place", NULL, &err), CB_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/place"));
    cb_train_report bad = {0}; /* size not set */
    assert_int_equal(cb_train(&rec, f->ds, NULL, NULL, NULL, &bad, &err), CB_EINVAL);
    /* epochs 0 cannot make a model: refused by the config check and by every
     * call that trains (it once returned an untrained model and CB_OK) */
    cb_config *t, *e;
    assert_int_equal(cb_config_create(&t, CB_CONFIG_TRAIN, &err), CB_OK);
    assert_int_equal(cb_config_set(t, "epochs", "0", &err), CB_OK);
    assert_int_equal(cb_config_check(t, &err), CB_EINVAL);
    assert_non_null(strstr(err.msg, "epochs 0"));
    err.msg[0] = '\0';
    assert_int_equal(cb_train(&rec, f->ds, t, NULL, NULL, NULL, &err), CB_EINVAL);
    assert_null(rec);
    assert_non_null(strstr(err.msg, "epochs 0"));
    char *report = NULL;
    assert_int_equal(cb_config_create(&e, CB_CONFIG_EVAL, &err), CB_OK);
    assert_int_equal(cb_evaluate(f->ds, e, t, NULL, NULL, &report, &err), CB_EINVAL);
    assert_null(report);
    cb_config_free(e);
    cb_config_free(t);
    cb_dataset_close(NULL);
    cb_config_free(NULL);
}

/* Every rating the same value (a generic ratings file, 4 everywhere): the
 * model predicts that value (the targets were left unscaled and training
 * ended at a loss of 37, every prediction 1.88, for a file of 5s). */
static void constant_ratings(void **state) {
    fixture *f = *state;
    char *dir = tu_path(f->dir, "const");
    assert_int_equal(mkdir(dir, 0755), 0);
    size_t cap = 40 * 10 * 16 + 32, len = 0;
    char *text = malloc(cap);
    len += (size_t)snprintf(text + len, cap - len, "user,item,rating\n");
    for (int u = 0; u < 40; u++)
        for (int i = 0; i < 10; i++)
            if ((u + i) % 3) len += (size_t)snprintf(text + len, cap - len, "u%d,i%d,4\n", u, i);
    free(tu_write(dir, "ratings.csv", text));
    cb_dataset *ds = NULL;
    cb_error err = {0};
    assert_int_equal(cb_dataset_open(&ds, dir, NULL, &err), CB_OK);
    cb_config *c = small_config();
    assert_int_equal(cb_config_set(c, "objective", "rating", &err), CB_OK);
    assert_int_equal(cb_config_set(c, "epochs", "20", &err), CB_OK);
    assert_int_equal(cb_config_set(c, "batch", "16", &err), CB_OK);
    cb_recommender *rec = NULL;
    cb_train_report rep = {.size = sizeof rep};
    assert_int_equal(cb_train(&rec, ds, c, NULL, NULL, &rep, &err), CB_OK);
    print_message("constant ratings: test RMSE %g (objective %s)\n", rep.test_rmse, rep.objective);
    assert_true(rep.test_rmse < 0.25);
    cb_recommender_free(rec);
    cb_config_free(c);
    cb_dataset_close(ds);
    free(text);
    free(dir);
}

/* Divergence is CB_ENUMERIC, never a crash; a fresh model without a finite
 * epoch has no vectors, so no recommender comes back (main's cbrec train
 * crashed saving it). */
static void divergence_reported(void **state) {
    fixture *f = *state;
    cb_config *c = small_config();
    cb_error err = {0};
    const char *kv[] = {"optimizer", "sgd", "lr", "100", "scale-targets", "false", "l2norm", "false", NULL};
    for (const char **p = kv; *p; p += 2) assert_int_equal(cb_config_set(c, p[0], p[1], &err), CB_OK);
    cb_recommender *rec = NULL;
    cb_train_report rep = {.size = sizeof rep};
    assert_int_equal(cb_train(&rec, f->ds, c, NULL, NULL, &rep, &err), CB_ENUMERIC);
    assert_non_null(strstr(err.msg, "diverged"));
    cb_recommender_free(rec);
    cb_config_free(c);
}

/* An events file (no rating column, string ids) trains the retrieval
 * objective whatever the default says, ranks by it, and predicts no rating:
 * user u picks 7 of the 10 items of group u % 4; its top item is from its group. */
static void implicit_events_train_retrieval(void **state) {
    fixture *f = *state;
    char *dir = tu_path(f->dir, "events"), line[64];
    assert_int_equal(mkdir(dir, 0700), 0);
    size_t cap = 1 << 16, len = 0;
    char *csv = malloc(cap);
    len += (size_t)snprintf(csv + len, cap - len, "who,what,when\n");
    uint64_t x = 7;
    for (int u = 0; u < 60; u++)
        for (int i = 0; i < 10; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            if ((x >> 33) % 10 < 3) continue;
            snprintf(line, sizeof line, "\"user %d\",item-%d,%d\n", u, (u % 4) * 10 + i, 1000 + i);
            len += (size_t)snprintf(csv + len, cap - len, "%s", line);
        }
    char *schema_text = "ratings = events.csv\nratings.columns = user,item,timestamp\n";
    free(tu_write(dir, "events.csv", csv));
    free(tu_write(dir, "cbrec.schema", schema_text));
    free(csv);
    cb_error err = {0};
    cb_dataset *ds = NULL;
    assert_int_equal(cb_dataset_open(&ds, dir, NULL, &err), CB_OK);
    cb_config *c = small_config();
    /* trained to convergence (60 steps at lr 0.002 left the group structure to
     * chance: the check is about the objective, not the budget) */
    assert_int_equal(cb_config_set(c, "epochs", "100", &err), CB_OK);
    assert_int_equal(cb_config_set(c, "lr", "0.01", &err), CB_OK);
    assert_int_equal(cb_config_set(c, "top-k-popular", "40", &err), CB_OK); /* the whole history */
    assert_int_equal(cb_config_set(c, "split", "none", &err), CB_OK);
    assert_string_equal(cb_config_get(c, "objective"), "both");
    cb_recommender *rec = NULL;
    assert_int_equal(cb_train(&rec, ds, c, NULL, NULL, NULL, &err), CB_OK);
    cb_list *l = NULL;
    assert_int_equal(cb_recommender_recommend(rec, "user 5", NULL, NULL, &l, &err), CB_OK);
    assert_string_equal(cb_list_criterion(l), "retrieval score");
    assert_true(cb_list_size(l) >= 3);
    assert_true(cb_list_score(l, 0) > cb_list_score(l, cb_list_size(l) - 1)); /* not a constant */
    for (size_t k = 0; k < 2; k++) /* the user's group first: its two unseen items */
        assert_int_equal(atoi(cb_list_item_id(l, k) + 5) / 10, 5 % 4);
    float rating;
    assert_int_equal(cb_recommender_predict(rec, "user 5", "item-3", &rating, &err), CB_EINVAL);
    cb_list_free(l);
    cb_recommender_free(rec);
    cb_config_free(c);
    cb_dataset_close(ds);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_string),
        cmocka_unit_test(counts_and_describe),
        cmocka_unit_test(train_report_resume),
        cmocka_unit_test(tuning_reported),
        cmocka_unit_test(old_report_size),
        cmocka_unit_test(refusals),
        cmocka_unit_test(divergence_reported),
        cmocka_unit_test(constant_ratings),
        cmocka_unit_test(implicit_events_train_retrieval),
    };
    return cmocka_run_group_tests_name("train_api", tests, setup, teardown);
}
