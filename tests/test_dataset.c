/* Tests of the dataset module: every loader (MovieLens latest-small, 100K and
 * 1M, the course lab, the generic schema, a bare ratings.csv) on fixtures the
 * test writes and, when present, on the shared MovieLens data; the splits;
 * and the exact reproduction of sklearn's train_test_split against numpy. */
#include "testutil.h"

#include "data/dataset.h"
#include "data/loader.h"
#include "data/loaders.h"
#include "features/featurize.h"

#include <math.h>

static cb_dataset *load_ok(const char *dir, const cb_load_options *opt) {
    cb_dataset *ds = NULL;
    cb_error err = {0};
    int rc = cb_dataset_load(&ds, dir, opt, &err);
    if (rc) fprintf(stderr, "load failed: %s\n", err.msg);
    assert_int_equal(rc, CB_OK);
    assert_non_null(ds);
    return ds;
}

static uint32_t item_of(const cb_dataset *ds, const char *id) {
    int64_t k = cb_vocab_find(ds->items, id, strlen(id));
    assert_true(k >= 0);
    return (uint32_t)k;
}

static uint32_t user_of(const cb_dataset *ds, const char *id) {
    int64_t k = cb_vocab_find(ds->users, id, strlen(id));
    assert_true(k >= 0);
    return (uint32_t)k;
}

/* True when MULTI column `col` of row `row` holds level `name`. */
static bool multi_has(const cb_table *t, int col, uint32_t row, const char *name) {
    const cb_column *c = &t->cols[col];
    for (uint32_t k = c->off[row]; k < c->off[row + 1]; k++)
        if (!strcmp(cb_vocab_name(c->levels, c->val[k]), name)) return true;
    return false;
}

static uint32_t multi_count(const cb_table *t, int col, uint32_t row) {
    return t->cols[col].off[row + 1] - t->cols[col].off[row];
}

static const char *cat_of(const cb_table *t, int col, uint32_t row) {
    uint32_t l = t->cols[col].cat[row];
    return l == CB_MISSING ? NULL : cb_vocab_name(t->cols[col].levels, l);
}

/* ------------------------------------------------------------ fixtures */

static void test_ml_small_fixture(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    /* BOM, CRLF, quoted titles with commas and doubled quotes, a movie nobody rated. */
    free(tu_write(d, "movies.csv",
                  "\xEF\xBB\xBFmovieId,title,genres\r\n"
                  "1,Toy Story (1995),Adventure|Animation|Children\r\n"
                  "2,\"American President, The (1995)\",Comedy|Drama|Romance\r\n"
                  "3,\"Say \"\"Hi\"\" (2006\xE2\x80\x93" "2007)\",(no genres listed)\r\n"
                  "4,Unrated Film,Drama\r\n"));
    free(tu_write(d, "ratings.csv",
                  "userId,movieId,rating,timestamp\r\n"
                  "10,1,4.0,1100000001\r\n"
                  "10,2,3.5,1100000002\r\n"
                  "u7,1,0.5,1100000003\r\n"
                  "u7,3,5,1100000004\r\n"));
    free(tu_write(d, "tags.csv",
                  "userId,movieId,tag,timestamp\n"
                  "10,1,Pixar,1\n"
                  "99,1,pixar,2\n"
                  "10,2,  Politics ,3\n"
                  "10,1,Toys,4\n"));
    cb_dataset *ds = load_ok(d, NULL);
    assert_string_equal(ds->name, "movielens-latest");
    assert_int_equal(cb_dataset_n_users(ds), 2);
    assert_int_equal(cb_dataset_n_items(ds), 4); /* movie 4 is in the catalog */
    assert_int_equal(ds->n_ratings, 4);
    assert_true(ds->has_timestamps);
    assert_false(ds->binary);
    assert_true(ds->y_min == 0.5f && ds->y_max == 5.0f);
    /* File order is kept. */
    assert_int_equal(ds->ratings[0].user, user_of(ds, "10"));
    assert_int_equal(ds->ratings[0].item, item_of(ds, "1"));
    assert_true(ds->ratings[1].y == 3.5f);
    assert_int_equal(ds->ratings[3].ts, 1100000004u);
    assert_int_equal(ds->ratings[3].user, user_of(ds, "u7"));
    /* Titles unquoted, UTF-8 kept, year parsed from "(2006–2007)". */
    assert_string_equal(ds->titles[item_of(ds, "2")], "American President, The (1995)");
    assert_string_equal(ds->titles[item_of(ds, "3")], "Say \"Hi\" (2006\xE2\x80\x93" "2007)");
    int g = cb_table_find(&ds->item_attr, "genres"), y = cb_table_find(&ds->item_attr, "year");
    int t = cb_table_find(&ds->item_attr, "tags");
    assert_true(g >= 0 && y >= 0 && t >= 0);
    assert_int_equal(ds->roles.item_genres, g);
    assert_int_equal(ds->roles.item_year, y);
    assert_int_equal(ds->roles.user_age, -1);
    assert_true(ds->item_attr.cols[y].num[item_of(ds, "1")] == 1995.0f);
    assert_true(ds->item_attr.cols[y].num[item_of(ds, "3")] == 2006.0f);
    assert_true(isnan(ds->item_attr.cols[y].num[item_of(ds, "4")]));
    assert_int_equal(multi_count(&ds->item_attr, g, item_of(ds, "1")), 3);
    assert_true(multi_has(&ds->item_attr, g, item_of(ds, "1"), "Animation"));
    assert_int_equal(multi_count(&ds->item_attr, g, item_of(ds, "3")), 0);
    /* Tags: lower-cased, trimmed, one per item even when two users gave them. */
    assert_int_equal(multi_count(&ds->item_attr, t, item_of(ds, "1")), 2);
    assert_true(multi_has(&ds->item_attr, t, item_of(ds, "1"), "pixar"));
    assert_true(multi_has(&ds->item_attr, t, item_of(ds, "1"), "toys"));
    assert_true(multi_has(&ds->item_attr, t, item_of(ds, "2"), "politics"));
    assert_int_equal(ds->user_attr.n_rows, 2);
    assert_int_equal(ds->item_attr.n_rows, 4);
    /* 16 bytes per rating: the ratings array is exactly n_ratings long. */
    assert_int_equal(sizeof(cb_rating), 16);
    assert_int_equal(ds->cap_ratings, ds->n_ratings);
    assert_true(cb_dataset_bytes(ds) >= 16 * ds->n_ratings);
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d);
}

static void test_ml_1m_fixture(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    /* latin-1 title ("Caf\xE9"), occupation codes, zip codes US / ZIP+4 / foreign. */
    free(tu_write(d, "movies.dat",
                  "1::Toy Story (1995)::Animation|Children's|Comedy\n"
                  "2::Caf\xE9 au lait (1993)::Comedy\n"
                  "3::Never Rated (1990)::Drama\n"));
    free(tu_write(d, "users.dat",
                  "1::F::1::10::48067\n"
                  "2::M::56::16::70072-1234\n"
                  "3::M::25::0::T8H1N\n"));
    free(tu_write(d, "ratings.dat",
                  "1::1::5::1200000001\n"
                  "1::2::3::1200000002\n"
                  "2::1::4::1200000003\n"));
    cb_dataset *ds = load_ok(d, NULL);
    assert_string_equal(ds->name, "movielens-1m");
    assert_int_equal(cb_dataset_n_users(ds), 3); /* user 3 has no ratings but exists */
    assert_int_equal(cb_dataset_n_items(ds), 3);
    assert_int_equal(ds->n_ratings, 3);
    assert_string_equal(ds->titles[item_of(ds, "2")], "Caf\xC3\xA9 au lait (1993)");
    const cb_table *u = &ds->user_attr;
    assert_int_equal(ds->roles.user_occupation, cb_table_find(u, "occupation"));
    assert_int_equal(ds->roles.user_location, cb_table_find(u, "region"));
    assert_string_equal(cat_of(u, ds->roles.user_occupation, user_of(ds, "1")), "K-12 student");
    assert_string_equal(cat_of(u, ds->roles.user_occupation, user_of(ds, "2")), "self-employed");
    assert_string_equal(cat_of(u, ds->roles.user_occupation, user_of(ds, "3")), "other");
    assert_string_equal(cat_of(u, ds->roles.user_gender, user_of(ds, "1")), "F");
    assert_string_equal(cat_of(u, ds->roles.user_location, user_of(ds, "1")), "4");
    assert_string_equal(cat_of(u, ds->roles.user_location, user_of(ds, "2")), "7");
    assert_string_equal(cat_of(u, ds->roles.user_location, user_of(ds, "3")), "other");
    assert_true(u->cols[ds->roles.user_age].num[user_of(ds, "2")] == 56.0f);
    assert_true(multi_has(&ds->item_attr, ds->roles.item_genres, item_of(ds, "1"), "Children's"));
    assert_true(ds->item_attr.cols[ds->roles.item_year].num[item_of(ds, "2")] == 1993.0f);
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d);
}

static void test_ml_100k_fixture(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    free(tu_write(d, "u.genre", "unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\n"
                                "Crime|6\nDocumentary|7\nDrama|8\nFantasy|9\nFilm-Noir|10\nHorror|11\n"
                                "Musical|12\nMystery|13\nRomance|14\nSci-Fi|15\nThriller|16\nWar|17\nWestern|18\n\n"));
    free(tu_write(d, "u.item",
                  "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
                  "2|Mis\xE9rables, Les|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|1|0\n"
                  "3|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"));
    free(tu_write(d, "u.user", "1|27|M|technician|85123\n2|53|F|other|V3N4P\n"));
    free(tu_write(d, "u.data", "1\t1\t5\t1300000001\n2\t2\t3\t1300000002\n1\t3\t1\t1300000003\n"));
    cb_dataset *ds = load_ok(d, NULL);
    assert_string_equal(ds->name, "movielens-100k");
    assert_int_equal(ds->n_ratings, 3);
    assert_string_equal(ds->titles[item_of(ds, "2")], "Mis\xC3\xA9rables, Les");
    const cb_table *it = &ds->item_attr;
    /* Year from the release date when the title has none; none at all -> NAN. */
    assert_true(it->cols[ds->roles.item_year].num[item_of(ds, "2")] == 1995.0f);
    assert_true(isnan(it->cols[ds->roles.item_year].num[item_of(ds, "3")]));
    assert_true(multi_has(it, ds->roles.item_genres, item_of(ds, "2"), "War"));
    assert_int_equal(multi_count(it, ds->roles.item_genres, item_of(ds, "3")), 0); /* "unknown" is no genre */
    assert_string_equal(cat_of(&ds->user_attr, ds->roles.user_location, user_of(ds, "1")), "8");
    assert_string_equal(cat_of(&ds->user_attr, ds->roles.user_location, user_of(ds, "2")), "other");
    assert_true(ds->y_min == 1.0f && ds->y_max == 5.0f);
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d);
}

/* The fields of a layout as "role:name" joined by ' ', then the delimiter and header. */
static void assert_layout(const cb_ratings_layout *l, const char *fields, const char *delim, bool header) {
    static const char *const roles[] = {"other", "user", "item", "rating", "timestamp", "weight"};
    char text[512] = "";
    for (size_t i = 0; i < l->n_fields; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s%s:%s", i ? " " : "", roles[l->roles[i]], l->names[i]);
    assert_string_equal(text, fields);
    assert_string_equal(l->delim, delim);
    assert_int_equal(l->header, header);
}

/* The dataset records its ratings file's row layout (what `cbrec events
 * export --model` writes back): the header's names in its order, or the
 * schema's, or MovieLens's; the delimiter; whether a header comes first. */
static void test_ratings_layout(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    free(tu_write(d, "ratings.csv", "ts,uid,extra,Movie,score\n5,u1,x,i1,4\n6,u2,y,i1,3\n"));
    cb_dataset *ds = load_ok(d, NULL);
    assert_layout(&ds->ratings_layout, "timestamp:ts user:uid other:extra item:Movie rating:score", ",", true);
    cb_dataset_free(ds);
    free(tu_write(d, "cbrec.schema", "ratings = r.tsv\nratings.delim = tab\nratings.header = no\n"
                                     "ratings.columns = who:user, what:item, stars:rating\n"));
    free(tu_write(d, "r.tsv", "u1\ti1\t4\nu2\ti1\t3\n"));
    ds = load_ok(d, NULL);
    assert_layout(&ds->ratings_layout, "user:who item:what rating:stars", "\t", false);
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d);
    d = tu_tmpdir();
    free(tu_write(d, "u.data", "1\t1\t5\t1300000001\n"));
    free(tu_write(d, "u.item", "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"));
    free(tu_write(d, "u.user", "1|27|M|technician|85123\n"));
    free(tu_write(d, "u.genre", "unknown|0\nAction|1\n\n"));
    ds = load_ok(d, NULL);
    assert_layout(&ds->ratings_layout, "user:userId item:movieId rating:rating timestamp:timestamp", "\t", false);
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d);
}

/* Timestamps written as ISO 8601 times or fractional seconds, mixed with
 * integer seconds in one file, read as the same instants (expected values:
 * Python's datetime.fromisoformat(...).timestamp()); a file with them is
 * read by the general path from its first such line on. */
static void test_iso_timestamps(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    free(tu_write(d, "ratings.csv",
                  "user,item,rating,timestamp\n"
                  "u1,a,5,1714557600\n"
                  "u1,b,3,2024-05-02\n"
                  "u2,a,4,2024-05-01 12:00:00+02:00\n"
                  "u2,c,2,1714557600.75\n"
                  "u3,b,5,\"2024-05-03T00:00\"\n"
                  "u3,c,4,2024-05-04T01:02:03.456-05:00\n"));
    cb_dataset *ds = load_ok(d, NULL);
    static const uint32_t want[] = {1714557600, 1714608000, 1714557600, 1714557600, 1714694400, 1714802523};
    assert_true(ds->has_timestamps);
    assert_int_equal(ds->n_ratings, 6);
    for (size_t i = 0; i < 6; i++) assert_int_equal(ds->ratings[i].ts, want[i]);
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d);
}

static void test_generic_schema(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    free(tu_write(d, "cbrec.schema",
                  "# a generic dataset\n"
                  "name = shop\n"
                  "ratings = events.tsv\n"
                  "ratings.delim = tab\n"
                  "ratings.header = no\n"
                  "ratings.columns = user, item, ignore, label, timestamp\n"
                  "rating.binary = yes\n"
                  "items = products.csv   # the catalog\n"
                  "items.columns = sku:id, name:title, price:numeric, brand:categorical, tags:multi(;), notes:ignore\n"
                  "items.year_from_title = yes\n"
                  "users = people.csv\n"
                  "users.delim = ;\n"
                  "users.columns = id, age:numeric, country:categorical, gender:categorical\n"));
    free(tu_write(d, "events.tsv", "alice\tA1\tview\t1\t100\nbob\tA1\tview\t0\t200\nalice\tB2\tbuy\t1\t300\n"));
    free(tu_write(d, "products.csv",
                  "sku,name,price,brand,tags,notes\n"
                  "A1,\"Lamp, desk (2019)\",19.5,Acme,home;light; home ,\"said \"\"bright\"\"\"\n"
                  "B2,Chair,NA,,home,\n"
                  "C3,Unsold Thing,3,Acme,,\n"));
    free(tu_write(d, "people.csv", "id;age;country;gender\nalice;31;FR;F\nbob;;DE;M\ncarol;40;FR;\n"));
    cb_dataset *ds = load_ok(d, NULL);
    assert_string_equal(ds->name, "shop");
    assert_int_equal(cb_dataset_n_users(ds), 3); /* carol: users file only */
    assert_int_equal(cb_dataset_n_items(ds), 3); /* C3: catalog only */
    assert_int_equal(ds->n_ratings, 3);
    assert_true(ds->binary);
    assert_true(ds->has_timestamps);
    assert_true(ds->y_min == 0.0f && ds->y_max == 1.0f);
    assert_true(ds->ratings[1].y == 0.0f && ds->ratings[2].ts == 300);
    const cb_table *it = &ds->item_attr;
    int price = cb_table_find(it, "price"), brand = cb_table_find(it, "brand"), tags = cb_table_find(it, "tags");
    assert_true(price >= 0 && brand >= 0 && tags >= 0);
    assert_int_equal(cb_table_find(it, "notes"), -1);
    assert_int_equal(ds->roles.item_year, cb_table_find(it, "year")); /* derived from the title */
    assert_true(it->cols[ds->roles.item_year].num[item_of(ds, "A1")] == 2019.0f);
    assert_true(it->cols[price].num[item_of(ds, "A1")] == 19.5f);
    assert_true(isnan(it->cols[price].num[item_of(ds, "B2")]));
    assert_null(cat_of(it, brand, item_of(ds, "B2")));
    assert_string_equal(cat_of(it, brand, item_of(ds, "C3")), "Acme");
    assert_int_equal(multi_count(it, tags, item_of(ds, "A1")), 2);
    assert_true(multi_has(it, tags, item_of(ds, "A1"), "light"));
    assert_string_equal(ds->titles[item_of(ds, "A1")], "Lamp, desk (2019)");
    assert_string_equal(ds->titles[item_of(ds, "C3")], "Unsold Thing");
    const cb_table *u = &ds->user_attr;
    assert_int_equal(ds->roles.user_location, cb_table_find(u, "country"));
    assert_int_equal(ds->roles.user_gender, cb_table_find(u, "gender"));
    assert_true(isnan(u->cols[ds->roles.user_age].num[user_of(ds, "bob")]));
    assert_null(cat_of(u, ds->roles.user_gender, user_of(ds, "carol")));
    assert_string_equal(cat_of(u, ds->roles.user_location, user_of(ds, "carol")), "FR");
    cb_dataset_free(ds);

    /* The same schema given explicitly, from another file name. */
    char *moved = tu_path(d, "other.schema");
    char *orig = tu_path(d, "cbrec.schema");
    assert_int_equal(rename(orig, moved), 0);
    cb_load_options opt;
    cb_load_options_default(&opt);
    opt.schema = moved;
    ds = load_ok(d, &opt);
    assert_int_equal(ds->n_ratings, 3);
    cb_dataset_free(ds);
    free(moved);
    free(orig);
    tu_rmrf(d);
    free(d);
}

/* items.year_from_title = no: no year column from the titles, and no year
 * feature parsed from them later either. */
static void test_schema_no_title_years(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    free(tu_write(d, "cbrec.schema",
                  "ratings = r.csv\nratings.columns = user,item,rating\n"
                  "items = i.csv\nitems.columns = id,name:title\nitems.year_from_title = no\n"));
    free(tu_write(d, "r.csv", "user,item,rating\nu1,a,4\nu2,a,3\nu1,b,5\n"));
    free(tu_write(d, "i.csv", "id,name\na,Alpha (1999)\nb,Beta (2004)\n"));
    cb_dataset *ds = load_ok(d, NULL);
    assert_true(ds->no_title_years);
    assert_int_equal(cb_table_find(&ds->item_attr, "year"), -1);
    assert_string_equal(ds->titles[item_of(ds, "a")], "Alpha (1999)");
    uint32_t train[3] = {0, 1, 2};
    cb_features *f = NULL;
    cb_error err = {0};
    assert_int_equal(cb_features_fit(&f, ds, train, 3, NULL, &err), CB_OK);
    for (uint32_t j = 0; j < cb_features_item_dim(f); j++)
        assert_null(strstr(cb_features_item_name(f, j), "year"));
    cb_features_free(f);
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d);
}

static void test_ratings_only(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    free(tu_write(d, "ratings.csv", "Time,Score,ItemId,UserId\n5,2.5,x,a\n6,4,y,a\n7,1,x,b\n"));
    cb_dataset *ds = load_ok(d, NULL);
    assert_int_equal(cb_dataset_n_users(ds), 2);
    assert_int_equal(cb_dataset_n_items(ds), 2);
    assert_true(ds->ratings[0].y == 2.5f && ds->ratings[0].ts == 5);
    assert_int_equal(ds->ratings[2].user, user_of(ds, "b"));
    assert_true(ds->y_min == 1.0f && ds->y_max == 4.0f); /* observed */
    assert_null(ds->titles);
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d);
}

static void test_course_lab_fixture(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    free(tu_write(d, "content_user_train_header.txt", "user id,rating count,rating ave,Action,Drama"));
    free(tu_write(d, "content_item_train_header.txt", "movie id,year,ave rating,Action,Drama"));
    free(tu_write(d, "content_user_train.csv", "2,3,4.0,4.5,0.0\n2,3,4.0,4.5,0.0\n7,1,3.0,0.0,3.0\n2,3,4.0,4.5,0.0\n"));
    free(tu_write(d, "content_item_train.csv", "10,2003,3.9,1,0\n10,2003,3.9,1,0\n11,1999,3.1,0,1\n11,1999,3.1,0,1\n"));
    free(tu_write(d, "content_y_train.csv", "4.0\n4.0\n3.0\n2.5\n"));
    free(tu_write(d, "content_movie_list.csv", "movieId,title,genres\n11,\"Film, The (1999)\",Drama\n99,Other,Drama\n"));
    cb_dataset *ds = load_ok(d, NULL);
    assert_string_equal(ds->name, "course-lab");
    assert_true(ds->prejoined);
    assert_int_equal(ds->user_lead_cols, 3);
    assert_int_equal(ds->item_lead_cols, 1);
    assert_int_equal(cb_dataset_n_users(ds), 2);
    assert_int_equal(cb_dataset_n_items(ds), 2);
    assert_int_equal(ds->n_ratings, 4); /* repeated rows kept */
    assert_int_equal(ds->ratings[0].user, ds->ratings[1].user);
    assert_int_equal(ds->ratings[0].item, ds->ratings[1].item);
    assert_true(ds->ratings[3].y == 2.5f);
    assert_int_equal(ds->ratings[3].user, user_of(ds, "2"));
    assert_int_equal(ds->ratings[3].item, item_of(ds, "11"));
    assert_int_equal(ds->user_attr.n_cols, 5);
    assert_int_equal(ds->item_attr.n_cols, 5);
    assert_true(ds->user_attr.cols[cb_table_find(&ds->user_attr, "rating ave")].num[user_of(ds, "7")] == 3.0f);
    assert_true(ds->item_attr.cols[cb_table_find(&ds->item_attr, "year")].num[item_of(ds, "10")] == 2003.0f);
    assert_int_equal(ds->roles.item_year, 1);
    assert_string_equal(ds->titles[item_of(ds, "11")], "Film, The (1999)");
    assert_null(ds->titles[item_of(ds, "10")]);
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d);
}

/* ------------------------------------------------------------ shared data */

static void test_real_ml_100k(void **state) {
    (void)state;
    const char *p = tu_shared_data("ml-100k");
    if (!p) TU_SKIP("../shared/data/ml-100k not present");
    cb_dataset *ds = load_ok(p, NULL);
    assert_int_equal(cb_dataset_n_users(ds), 943);
    assert_int_equal(cb_dataset_n_items(ds), 1682);
    assert_int_equal(ds->n_ratings, 100000);
    assert_int_equal(ds->n_skipped, 0);
    assert_true(ds->has_timestamps);
    assert_string_equal(ds->titles[item_of(ds, "1")], "Toy Story (1995)");
    assert_string_equal(ds->titles[item_of(ds, "543")], "Mis\xC3\xA9rables, Les (1995)");
    assert_int_equal(cb_vocab_size(ds->user_attr.cols[ds->roles.user_occupation].levels), 21);
    assert_int_equal(cb_vocab_size(ds->user_attr.cols[ds->roles.user_gender].levels), 2);
    assert_int_equal(cb_vocab_size(ds->item_attr.cols[ds->roles.item_genres].levels), 18);
    assert_true(ds->item_attr.cols[ds->roles.item_year].num[item_of(ds, "1")] == 1995.0f);
    assert_string_equal(cat_of(&ds->user_attr, ds->roles.user_location, user_of(ds, "1")), "8");
    /* The first rating is the first line of u.data, read here independently. */
    char *data = tu_path(p, "u.data");
    FILE *fp = fopen(data, "r");
    assert_non_null(fp);
    char u0[32], i0[32];
    float y0;
    unsigned ts0;
    assert_int_equal(fscanf(fp, "%31s %31s %f %u", u0, i0, &y0, &ts0), 4);
    fclose(fp);
    free(data);
    assert_int_equal(ds->ratings[0].user, user_of(ds, u0));
    assert_int_equal(ds->ratings[0].item, item_of(ds, i0));
    assert_true(ds->ratings[0].y == y0 && ds->ratings[0].ts == ts0);
    assert_true(cb_dataset_bytes(ds) < 25 * ds->n_ratings);
    cb_dataset_free(ds);
}

static void test_real_ml_small(void **state) {
    (void)state;
    const char *p = tu_shared_data("ml-latest-small");
    if (!p) TU_SKIP("../shared/data/ml-latest-small not present");
    cb_dataset *ds = load_ok(p, NULL);
    assert_int_equal(cb_dataset_n_users(ds), 610);
    assert_int_equal(cb_dataset_n_items(ds), 9742);
    assert_int_equal(ds->n_ratings, 100836);
    assert_string_equal(ds->titles[item_of(ds, "11")], "American President, The (1995)");
    assert_string_equal(ds->titles[item_of(ds, "73")], "Mis\xC3\xA9rables, Les (1995)");
    assert_int_equal(multi_count(&ds->item_attr, ds->roles.item_genres, item_of(ds, "114335")), 0);
    assert_int_equal(cb_vocab_size(ds->item_attr.cols[ds->roles.item_genres].levels), 19);
    int tags = cb_table_find(&ds->item_attr, "tags");
    assert_true(tags >= 0);
    assert_true(multi_has(&ds->item_attr, tags, item_of(ds, "60756"), "will ferrell"));
    cb_dataset_free(ds);
}

static void test_real_course_lab(void **state) {
    (void)state;
    const char *p = tu_shared_data("course-lab");
    if (!p) TU_SKIP("../shared/data/course-lab not present");
    cb_dataset *ds = load_ok(p, NULL);
    assert_true(ds->prejoined);
    assert_int_equal(ds->n_ratings, 50884);
    assert_int_equal(cb_dataset_n_users(ds), 397);
    assert_int_equal(cb_dataset_n_items(ds), 847);
    assert_int_equal(ds->user_attr.n_cols, 17);
    assert_int_equal(ds->item_attr.n_cols, 17);
    /* Row 1 of each file: user 2, movie 6874, rating 4.0. */
    assert_int_equal(ds->ratings[0].user, user_of(ds, "2"));
    assert_int_equal(ds->ratings[0].item, item_of(ds, "6874"));
    assert_true(ds->ratings[0].y == 4.0f);
    assert_true(ds->ratings[1].y == 3.5f);
    cb_dataset_free(ds);
}

/* ------------------------------------------------------------ splits */

static cb_dataset *split_fixture(char **dir) {
    /* 30 users x up to 20 items with distinct timestamps, some users tiny. */
    *dir = tu_tmpdir();
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    len += (size_t)snprintf(buf + len, cap - len, "user,item,rating,timestamp\n");
    for (int u = 0; u < 30; u++) {
        int n = u < 3 ? u + 1 : 20;
        for (int k = 0; k < n; k++) {
            int item = (u * 7 + k) % 45;
            unsigned ts = 1000u + (unsigned)((k * 37 + u * 11) % 97) * 10u + (unsigned)u;
            len += (size_t)snprintf(buf + len, cap - len, "u%d,i%d,%d,%u\n", u, item, 1 + (u + k) % 5, ts);
        }
    }
    free(tu_write(*dir, "ratings.csv", buf));
    free(buf);
    return load_ok(*dir, NULL);
}

static void check_partition(const cb_dataset *ds, const cb_split *s) {
    assert_int_equal(s->n_train + s->n_test, ds->n_ratings);
    uint8_t *seen = calloc(ds->n_ratings, 1);
    for (size_t i = 0; i < s->n_train; i++) {
        assert_true(s->train[i] < ds->n_ratings);
        assert_int_equal(seen[s->train[i]]++, 0);
    }
    for (size_t i = 0; i < s->n_test; i++) {
        assert_true(s->test[i] < ds->n_ratings);
        assert_int_equal(seen[s->test[i]]++, 0);
    }
    free(seen);
}

static void test_split_random(void **state) {
    (void)state;
    char *d;
    cb_dataset *ds = split_fixture(&d);
    cb_split a, b, c;
    cb_error err;
    assert_int_equal(cb_split_make(&a, ds, CB_SPLIT_RANDOM, 0.25, 42, &err), CB_OK);
    assert_int_equal(cb_split_make(&b, ds, CB_SPLIT_RANDOM, 0.25, 42, &err), CB_OK);
    assert_int_equal(cb_split_make(&c, ds, CB_SPLIT_RANDOM, 0.25, 43, &err), CB_OK);
    check_partition(ds, &a);
    assert_int_equal(a.n_test, b.n_test);
    assert_memory_equal(a.test, b.test, a.n_test * sizeof *a.test);
    assert_true(a.n_test != c.n_test || memcmp(a.test, c.test, a.n_test * sizeof *a.test) != 0);
    assert_true(a.n_test > ds->n_ratings / 8 && a.n_test < ds->n_ratings / 2);
    cb_split_free(&c);
    assert_int_equal(cb_split_make(&c, ds, CB_SPLIT_RANDOM, 1.5, 1, &err), CB_EINVAL);
    assert_null(c.train);
    /* test fraction 0 (`--split none`): everything is training data */
    for (int kind = CB_SPLIT_RANDOM; kind <= CB_SPLIT_COLD_ITEMS; kind++) {
        assert_int_equal(cb_split_make(&c, ds, (cb_split_kind)kind, 0.0, 1, &err), CB_OK);
        assert_int_equal(c.n_test, 0);
        assert_int_equal(c.n_train, ds->n_ratings);
        cb_split_free(&c);
    }
    cb_split_free(&a);
    cb_split_free(&b);
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d);
}

/* Pre-joined rows repeat (user, item) pairs (the course lab up to 20 times):
 * no split or carve puts a pair on both sides (a held-out rating that was
 * also a training one), and the per-user and temporal splits still leave
 * every user a training row, one user with a single pair repeated among them. */
static void split_keeps_repeated_pairs_whole(void **state) {
    (void)state;
    cb_dataset *ds = tu_ds_new();
    ds->prejoined = true;
    ds->has_timestamps = true;
    char u[16], it[16];
    for (int rep = 0; rep < 4; rep++)
        for (int user = 0; user < 12; user++)
            for (int k = 0; k < 6; k++) {
                snprintf(u, sizeof u, "u%d", user);
                snprintf(it, sizeof it, "i%d", user == 0 ? 0 : (user + k * 5) % 17); /* u0: one pair, 24 rows */
                if (rep <= k % 4) tu_ds_add(ds, u, it, 1 + (user + k) % 5, 100 + (uint32_t)k);
            }
    cb_error err;
    for (int kind = 0; kind < 5; kind++) {
        cb_split_kind sk = kind < 3 ? (cb_split_kind)(kind == 2 ? CB_SPLIT_PER_USER : kind) : CB_SPLIT_RANDOM;
        cb_split s, carve;
        assert_int_equal(cb_split_make(&s, ds, sk, 0.3, 7, &err), CB_OK);
        if (kind >= 3) { /* the carves of the training part */
            cb_split_kind ck = kind == 3 ? CB_SPLIT_RANDOM : CB_SPLIT_PER_USER;
            assert_int_equal(cb_split_carve(&carve, ds, s.train, s.n_train, ck, 0.3, 7, &err), CB_OK);
            cb_split_free(&s);
            s = carve;
        } else {
            check_partition(ds, &s);
        }
        assert_true(s.n_test > 0);
        uint8_t side[12][17] = {{0}}; /* bit 1: train, bit 2: test */
        bool trains[12] = {false};
        for (size_t j = 0; j < s.n_train; j++) {
            const cb_rating *r = &ds->ratings[s.train[j]];
            side[r->user][r->item] |= 1;
            trains[r->user] = true;
        }
        for (size_t j = 0; j < s.n_test; j++) side[ds->ratings[s.test[j]].user][ds->ratings[s.test[j]].item] |= 2;
        for (int a = 0; a < 12; a++) {
            for (int b = 0; b < 17; b++) assert_true(side[a][b] != 3);
            if (sk != CB_SPLIT_RANDOM) assert_true(trains[a]);
        }
        cb_split_free(&s);
    }
    cb_dataset_free(ds);
}

static void test_split_temporal(void **state) {
    (void)state;
    char *d;
    cb_dataset *ds = split_fixture(&d);
    cb_split s;
    cb_error err;
    assert_int_equal(cb_split_make(&s, ds, CB_SPLIT_TEMPORAL, 0.2, 0, &err), CB_OK);
    check_partition(ds, &s);
    uint32_t nu = cb_dataset_n_users(ds);
    for (uint32_t u = 0; u < nu; u++) {
        size_t n_u = 0, n_test = 0;
        uint32_t max_train = 0, min_test = UINT32_MAX;
        for (size_t i = 0; i < s.n_train; i++)
            if (ds->ratings[s.train[i]].user == u) {
                n_u++;
                if (ds->ratings[s.train[i]].ts > max_train) max_train = ds->ratings[s.train[i]].ts;
            }
        for (size_t i = 0; i < s.n_test; i++)
            if (ds->ratings[s.test[i]].user == u) {
                n_u++, n_test++;
                if (ds->ratings[s.test[i]].ts < min_test) min_test = ds->ratings[s.test[i]].ts;
            }
        size_t want = (size_t)ceil(0.2 * (double)n_u);
        if (want > n_u - 1) want = n_u - 1;
        assert_int_equal(n_test, want);
        if (n_test) assert_true(min_test >= max_train); /* the latest are held out */
    }
    cb_split_free(&s);
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d);
}

static void test_split_cold(void **state) {
    (void)state;
    char *d;
    cb_dataset *ds = split_fixture(&d);
    for (int kind = CB_SPLIT_COLD_USERS; kind <= CB_SPLIT_COLD_ITEMS; kind++) {
        bool users = kind == CB_SPLIT_COLD_USERS;
        cb_split s, s2;
        cb_error err;
        assert_int_equal(cb_split_make(&s, ds, (cb_split_kind)kind, 0.2, 7, &err), CB_OK);
        assert_int_equal(cb_split_make(&s2, ds, (cb_split_kind)kind, 0.2, 7, &err), CB_OK);
        check_partition(ds, &s);
        assert_true(s.n_test > 0 && s.n_train > 0);
        assert_int_equal(s.n_test, s2.n_test);
        assert_memory_equal(s.test, s2.test, s.n_test * sizeof *s.test);
        uint32_t n = users ? cb_dataset_n_users(ds) : cb_dataset_n_items(ds);
        uint8_t *in_train = calloc(n, 1);
        for (size_t i = 0; i < s.n_train; i++) {
            const cb_rating *r = &ds->ratings[s.train[i]];
            in_train[users ? r->user : r->item] = 1;
        }
        for (size_t i = 0; i < s.n_test; i++) {
            const cb_rating *r = &ds->ratings[s.test[i]];
            assert_int_equal(in_train[users ? r->user : r->item], 0);
        }
        free(in_train);
        cb_split_free(&s);
        cb_split_free(&s2);
    }
    cb_dataset_free(ds);
    tu_rmrf(d);
    free(d);
}

/* numpy's RandomState(seed).permutation(n)[:k], or false when numpy is absent. */
static bool numpy_perm(size_t n, size_t k, uint32_t seed, uint32_t *out) {
    if (access("/usr/bin/python3", X_OK) != 0) return false;
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import numpy as np; "
             "print(' '.join(map(str, np.random.RandomState(%u).permutation(%zu)[:%zu])))\" 2>/dev/null",
             seed, n, k);
    FILE *p = popen(cmd, "r");
    if (!p) return false;
    size_t got = 0;
    unsigned v;
    while (got < k && fscanf(p, "%u", &v) == 1) out[got++] = v;
    int st = pclose(p);
    return st == 0 && got == k;
}

static void test_sklearn_split(void **state) {
    (void)state;
    cb_split s;
    cb_error err;
    /* Sizes as sklearn computes them: ceil(0.2 n) test, floor(0.8 n) train. */
    assert_int_equal(cb_split_sklearn(&s, 50884, 0.8, 1, &err), CB_OK);
    assert_int_equal(s.n_test, 10177);
    assert_int_equal(s.n_train, 40707);
    uint32_t *perm = malloc(50884 * sizeof *perm);
    cb_numpy_permutation(perm, 50884, 1);
    assert_memory_equal(s.test, perm, s.n_test * sizeof *perm);
    assert_memory_equal(s.train, perm + s.n_test, s.n_train * sizeof *perm);
    uint8_t *seen = calloc(50884, 1);
    for (size_t i = 0; i < 50884; i++) assert_int_equal(seen[perm[i]]++, 0);
    free(seen);
    cb_split_free(&s);

    uint32_t ref[1000];
    if (!numpy_perm(50884, 1000, 1, ref)) {
        free(perm);
        TU_SKIP("numpy (/usr/bin/python3) not available: cannot compare with RandomState");
    }
    assert_memory_equal(perm, ref, sizeof ref);
    uint32_t small[10];
    cb_numpy_permutation(small, 10, 1);
    assert_true(numpy_perm(10, 10, 1, ref));
    assert_memory_equal(small, ref, sizeof small);
    /* Another seed and a size that needs many rejections (n = 2^k + 1). */
    cb_numpy_permutation(perm, 1025, 12345);
    assert_true(numpy_perm(1025, 1000, 12345, ref));
    assert_memory_equal(perm, ref, sizeof ref);
    free(perm);
    assert_int_equal(cb_split_sklearn(&s, 10, 0.8, 1, &err), CB_OK);
    assert_int_equal(s.n_test, 2);
    assert_int_equal(s.n_train, 8);
    assert_int_equal(s.test[0], small[0]);
    cb_split_free(&s);
}

/* ------------------------------------------------------------ helpers */

static void test_fast_float_matches_strict(void **state) {
    (void)state;
    static const char *const cases[] = {"4.0", "3.5", "0.5", "5", "-1", "+2.25", ".5", "5.", "0.1",
                                        "0.30000000000000004", "123456789012345", "1234567890123456",
                                        "1e3", "1E-2", " 4", "4 ", "nan", "inf", "-inf", "", ".", "-",
                                        "4.5.1", "0x10", "1e39", "3.4028235e38", "007", "-0"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float a = -7, b = -7;
        bool ok_a = cb_fast_float(cases[i], strlen(cases[i]), &a);
        bool ok_b = cb_parse_float(cases[i], strlen(cases[i]), &b);
        assert_int_equal(ok_a, ok_b);
        if (ok_a) assert_memory_equal(&a, &b, sizeof a);
    }
    /* Many random decimals: bit-identical to the strtod path. */
    cb_rng rng;
    cb_rng_seed(&rng, 5);
    char buf[64];
    for (int k = 0; k < 20000; k++) {
        int ip = (int)cb_rng_below(&rng, 100000), fd = (int)cb_rng_below(&rng, 9);
        uint64_t frac = cb_rng_below(&rng, 1000000000);
        int n = snprintf(buf, sizeof buf, "%d.%0*llu", ip, fd + 1, (unsigned long long)(frac % 1000000000ULL));
        if (n > 30) n = 30;
        float a, b;
        assert_true(cb_fast_float(buf, (size_t)n, &a));
        assert_true(cb_parse_float(buf, (size_t)n, &b));
        assert_memory_equal(&a, &b, sizeof a);
    }
    uint32_t u;
    assert_true(cb_fast_u32("4294967295", 10, &u) && u == 4294967295u);
    assert_false(cb_fast_u32("4294967296", 10, &u));
    assert_false(cb_fast_u32("-1", 2, &u));
    assert_false(cb_fast_u32("12a", 3, &u));
    assert_false(cb_fast_u32("", 0, &u));
}

static void test_year_and_zip(void **state) {
    (void)state;
    assert_true(cb_year_from_title("Toy Story (1995)", 16) == 1995.0f);
    assert_true(cb_year_from_title("Toy Story (1995) ", 17) == 1995.0f);
    assert_true(cb_year_from_title("Babylon 5 (1994-1998)", 21) == 1994.0f);
    assert_true(isnan(cb_year_from_title("Babylon 5", 9)));
    assert_true(isnan(cb_year_from_title("1984 (19845)", 12)));
    assert_true(isnan(cb_year_from_title("Film (abc)", 10)));
    assert_true(cb_year_from_date("01-Jan-1995", 11) == 1995.0f);
    assert_true(isnan(cb_year_from_date("", 0)));
    assert_string_equal(cb_zip_region("85123", 5), "8");
    assert_string_equal(cb_zip_region("02139-4307", 10), "0");
    assert_string_equal(cb_zip_region("T8H1N", 5), "other");
    assert_string_equal(cb_zip_region("1234", 4), "other");
}

static void test_missing_options_and_free_null(void **state) {
    (void)state;
    cb_dataset_free(NULL);
    cb_split_free(NULL);
    cb_load_options o;
    cb_load_options_default(&o);
    assert_false(o.skip_bad_rows);
    assert_null(o.schema);
    assert_true(o.y_min == 0 && o.y_max == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ml_small_fixture),
        cmocka_unit_test(test_ml_1m_fixture),
        cmocka_unit_test(test_ml_100k_fixture),
        cmocka_unit_test(test_ratings_layout),
        cmocka_unit_test(test_generic_schema),
        cmocka_unit_test(test_iso_timestamps),
        cmocka_unit_test(test_schema_no_title_years),
        cmocka_unit_test(test_ratings_only),
        cmocka_unit_test(test_course_lab_fixture),
        cmocka_unit_test(test_real_ml_100k),
        cmocka_unit_test(test_real_ml_small),
        cmocka_unit_test(test_real_course_lab),
        cmocka_unit_test(test_split_random),
        cmocka_unit_test(test_split_temporal),
        cmocka_unit_test(split_keeps_repeated_pairs_whole),
        cmocka_unit_test(test_split_cold),
        cmocka_unit_test(test_sklearn_split),
        cmocka_unit_test(test_fast_float_matches_strict),
        cmocka_unit_test(test_year_and_zip),
        cmocka_unit_test(test_missing_options_and_free_null),
    };
    return cmocka_run_group_tests_name("dataset", tests, NULL, NULL);
}
