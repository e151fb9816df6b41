/* events — the live events of cbrec serve: a durable store and the events in
 * memory by user. The store is SQLite in WAL mode with synchronous=FULL:
 * every event is its own transaction, and the WAL is fsync'd at each commit,
 * so an event acknowledged (sv_events_append returned 0) survives kill -9 and
 * a power cut alike (NORMAL would survive kill -9 only: a WAL commit without
 * fsync can be lost with the OS). One event costs one fsync: at a few hundred
 * events per second that is fine for a profile-update API. At start the store
 * is replayed into memory; `cbrec events export` turns it into rating rows,
 * laid out as the served model's data's ratings file (recorded in the
 * store's meta table when a model loads). */
#include "serve/serve.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct live_event {
    char *item;
    double rating; /* NAN: a click */
} live_event;

typedef struct user_events {
    char *user;
    live_event *ev;
    size_t n, cap;
    struct user_events *next;
} user_events;

#define N_BUCKETS 65536

struct sv_events {
    sqlite3 *db;
    sqlite3_stmt *insert;
    pthread_mutex_t db_mu; /* the database handle: one append (one fsync) at a time */
    pthread_mutex_t mu;    /* the map and total: held for microseconds, never across an fsync,
                              so a recommend reading a profile never waits for a commit */
    user_events *buckets[N_BUCKETS];
    int64_t total;
};

static size_t hash(const char *s) {
    size_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h % N_BUCKETS;
}

static user_events *find(sv_events *e, const char *user, bool create) {
    size_t b = hash(user);
    for (user_events *u = e->buckets[b]; u; u = u->next)
        if (!strcmp(u->user, user)) return u;
    if (!create) return NULL;
    user_events *u = calloc(1, sizeof *u);
    if (u && !(u->user = strdup(user))) {
        free(u);
        return NULL;
    }
    if (u) {
        u->next = e->buckets[b];
        e->buckets[b] = u;
    }
    return u;
}

/* Add to the in-memory map (under e->mu). */
static int remember(sv_events *e, const char *user, const char *item, double rating) {
    user_events *u = find(e, user, true);
    if (!u) return -1;
    if (u->n == u->cap) {
        size_t cap = u->cap ? 2 * u->cap : 8;
        live_event *g = realloc(u->ev, cap * sizeof *g);
        if (!g) return -1;
        u->ev = g;
        u->cap = cap;
    }
    if (!(u->ev[u->n].item = strdup(item))) return -1;
    u->ev[u->n++].rating = rating;
    e->total++;
    return 0;
}

static int db_fail(sqlite3 *db, const char *what, char *msg, size_t msg_size) {
    snprintf(msg, msg_size, "event store: %s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
    return -1;
}

static int exec(sqlite3 *db, const char *sql, char *msg, size_t msg_size) {
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : db_fail(db, sql, msg, msg_size);
}

static int replay(sv_events *e, char *msg, size_t msg_size) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(e->db, "SELECT user, item, rating FROM events ORDER BY seq", -1, &st, NULL) != SQLITE_OK)
        return db_fail(e->db, "reading the events", msg, msg_size);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *user = (const char *)sqlite3_column_text(st, 0), *item = (const char *)sqlite3_column_text(st, 1);
        double rating = sqlite3_column_type(st, 2) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 2);
        if (user && item && remember(e, user, item, rating)) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_fail(e->db, "reading the events", msg, msg_size);
}

int sv_events_open(sv_events **out, const char *path, char *msg, size_t msg_size) {
    sv_events *e = calloc(1, sizeof *e);
    *out = NULL;
    if (!e) return db_fail(NULL, path, msg, msg_size);
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->db_mu, NULL);
    int rc = sqlite3_open_v2(path, &e->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) rc = db_fail(e->db, path, msg, msg_size);
    sqlite3_stmt *st = NULL;
    if (!rc && sqlite3_prepare_v2(e->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "wal"))
        rc = db_fail(e->db, "cannot switch to WAL mode", msg, msg_size);
    sqlite3_finalize(st);
    if (!rc) rc = exec(e->db, "PRAGMA synchronous=FULL", msg, msg_size);
    if (!rc) sqlite3_busy_timeout(e->db, 5000);
    if (!rc) rc = exec(e->db,
                       "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL, "
                       "item TEXT NOT NULL, rating REAL, time INTEGER NOT NULL, received INTEGER NOT NULL)",
                       msg, msg_size);
    if (!rc) rc = exec(e->db, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)", msg, msg_size);
    if (!rc && sqlite3_prepare_v2(e->db, "INSERT INTO events (user, item, rating, time, received) VALUES (?, ?, ?, ?, strftime('%s','now'))",
                                  -1, &e->insert, NULL) != SQLITE_OK)
        rc = db_fail(e->db, "preparing the insert", msg, msg_size);
    if (!rc) rc = replay(e, msg, msg_size);
    if (rc) {
        sv_events_close(e);
        return -1;
    }
    *out = e;
    return 0;
}

int sv_events_note_layout(sv_events *e, const char *layout, char *msg, size_t msg_size) {
    sqlite3_stmt *st = NULL;
    const char *sql = layout ? "INSERT OR REPLACE INTO meta (key, value) VALUES ('ratings_layout', ?)"
                             : "DELETE FROM meta WHERE key = 'ratings_layout'";
    pthread_mutex_lock(&e->db_mu);
    int rc = sqlite3_prepare_v2(e->db, sql, -1, &st, NULL) == SQLITE_OK &&
                     (!layout || sqlite3_bind_text(st, 1, layout, -1, SQLITE_TRANSIENT) == SQLITE_OK) &&
                     sqlite3_step(st) == SQLITE_DONE
                 ? 0
                 : db_fail(e->db, "recording the ratings layout", msg, msg_size);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&e->db_mu);
    return rc;
}

void sv_events_close(sv_events *e) {
    if (!e) return;
    sqlite3_finalize(e->insert);
    sqlite3_close(e->db);
    for (size_t b = 0; b < N_BUCKETS; b++)
        for (user_events *u = e->buckets[b], *next; u; u = next) {
            next = u->next;
            for (size_t i = 0; i < u->n; i++) free(u->ev[i].item);
            free(u->ev);
            free(u->user);
            free(u);
        }
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->db_mu);
    free(e);
}

int sv_events_append(sv_events *e, const char *user, const char *item, double rating, int64_t time, int64_t *seq,
                     char *msg, size_t msg_size) {
    pthread_mutex_lock(&e->db_mu);
    sqlite3_reset(e->insert);
    sqlite3_bind_text(e->insert, 1, user, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(e->insert, 2, item, -1, SQLITE_TRANSIENT);
    if (isnan(rating)) sqlite3_bind_null(e->insert, 3);
    else sqlite3_bind_double(e->insert, 3, rating);
    sqlite3_bind_int64(e->insert, 4, time);
    int rc = sqlite3_step(e->insert) == SQLITE_DONE ? 0 : db_fail(e->db, "storing an event", msg, msg_size);
    if (!rc) {
        *seq = sqlite3_last_insert_rowid(e->db);
        pthread_mutex_lock(&e->mu); /* in commit order: db_mu is still held */
        remember(e, user, item, rating); /* durable already: a failure here only delays it to the next start */
        pthread_mutex_unlock(&e->mu);
    }
    sqlite3_reset(e->insert);
    pthread_mutex_unlock(&e->db_mu);
    return rc;
}

size_t sv_events_count(sv_events *e, const char *user) {
    pthread_mutex_lock(&e->mu);
    user_events *u = find(e, user, false);
    size_t n = u ? u->n : 0;
    pthread_mutex_unlock(&e->mu);
    return n;
}

int64_t sv_events_total(sv_events *e) {
    pthread_mutex_lock(&e->mu);
    int64_t n = e->total;
    pthread_mutex_unlock(&e->mu);
    return n;
}

char *sv_events_profile_json(sv_events *e, const char *user, double click_rating,
                             bool (*keep)(const char *item, void *ctx), void *ctx) {
    json_t *ratings = json_object();
    pthread_mutex_lock(&e->mu);
    user_events *u = find(e, user, false);
    for (size_t i = 0; ratings && u && i < u->n; i++) {
        if (!keep(u->ev[i].item, ctx)) continue; /* an item the current model does not know */
        json_object_del(ratings, u->ev[i].item); /* re-added last: the newest */
        json_object_set_new(ratings, u->ev[i].item, json_real(isnan(u->ev[i].rating) ? click_rating : u->ev[i].rating));
    }
    pthread_mutex_unlock(&e->mu);
    char *s = NULL;
    if (json_object_size(ratings)) {
        json_t *doc = json_pack("{s:O}", "ratings", ratings);
        s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
    }
    json_decref(ratings);
    return s;
}

/* ---- export */

/* The layout rows are written in: cb_recommender_ratings_layout's JSON, by
 * default MovieLens latest-small's ratings.csv. */
static const char *const MOVIELENS_LAYOUT =
    "{\"fields\":[{\"name\":\"userId\",\"role\":\"user\"},{\"name\":\"movieId\",\"role\":\"item\"},"
    "{\"name\":\"rating\",\"role\":\"rating\"},{\"name\":\"timestamp\",\"role\":\"timestamp\"}],"
    "\"delimiter\":\",\",\"header\":true,\"quoting\":true}";

typedef struct row_layout {
    json_t *doc, *fields;
    const char *delim;
    bool header, quoting;
} row_layout;

/* s as one field: in quotes (its quotes doubled) when it holds the
 * delimiter, a quote, a line break or outer blanks, as the reader keeps a
 * quoted field whole; false when it would need quotes the file does not
 * take. */
static bool put_field(FILE *f, const row_layout *l, const char *s) {
    size_t n = strlen(s);
    bool quote = strstr(s, l->delim) || strpbrk(s, "\"\n\r") ||
                 (n && (isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1])));
    if (!quote) return fputs(s, f), true;
    if (!l->quoting) return false;
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
    return true;
}

/* One row of the layout: the user and item ids, the rating (or weight) y,
 * the time; a field of another role empty. false: an id it cannot hold. */
static bool put_row(FILE *f, const row_layout *l, const char *user, const char *item, double y, long long time) {
    bool ok = true;
    for (size_t i = 0; i < json_array_size(l->fields); i++) {
        const char *role = json_string_value(json_object_get(json_array_get(l->fields, i), "role"));
        if (i) fputs(l->delim, f);
        if (!strcmp(role, "user")) ok &= put_field(f, l, user);
        else if (!strcmp(role, "item")) ok &= put_field(f, l, item);
        else if (!strcmp(role, "rating") || !strcmp(role, "weight")) fprintf(f, "%.15g", y); /* %g kept 6 digits: a weight 1234567 was 1.23457e+06 */
        else if (!strcmp(role, "timestamp")) fprintf(f, "%lld", time);
    }
    fputc('\n', f);
    return ok;
}

/* Whether every row of the layout is a pick: no rating or weight column
 * (user_id,item_id,timestamp), so a row cannot say "not picked". */
static bool rows_are_picks(const row_layout *l) {
    for (size_t i = 0; i < json_array_size(l->fields); i++) {
        const char *role = json_string_value(json_object_get(json_array_get(l->fields, i), "role"));
        if (!strcmp(role, "rating") || !strcmp(role, "weight")) return false;
    }
    return true;
}

/* The layout's header line, when its file has one. */
static void put_header(FILE *f, const row_layout *l) {
    for (size_t i = 0; l->header && i < json_array_size(l->fields); i++) {
        if (i) fputs(l->delim, f);
        put_field(f, l, json_string_value(json_object_get(json_array_get(l->fields, i), "name")));
    }
    if (l->header) fputc('\n', f);
}

/* One row per (user, item): its newest event that has a rating (a click
 * counts as click_rating; NAN: clicks left out), as a profile takes the newest
 * (sv_events_profile). SQLite gives an aggregate's bare columns from the row
 * MAX() picks. Rows in the order of those newest events. */
static const char *const EXPORT_SQL[2] = {
    "SELECT user, item, rating, time, MAX(seq) FROM events WHERE rating IS NOT NULL GROUP BY user, item ORDER BY 5",
    "SELECT user, item, rating, time, MAX(seq) FROM events GROUP BY user, item ORDER BY 5"};

/* The events counted by `sql` (a one-number query) into *n. */
static int count_events(sqlite3 *db, const char *sql, size_t *n, char *msg, size_t size) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW ? 0 : -1;
    if (!rc) *n = (size_t)sqlite3_column_int64(st, 0);
    else db_fail(db, "reading the events (is it an event store of cbrec serve?)", msg, size);
    sqlite3_finalize(st);
    return rc;
}

/* The layout the server recorded in the store (sv_events_note_layout), as
 * JSON; NULL when none (a store of an earlier cbrec, a model recording
 * none) or not one to trust (a layout is checked when its model loads). */
static json_t *recorded_layout(sqlite3 *db) {
    sqlite3_stmt *st = NULL;
    json_t *j = NULL;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'ratings_layout'", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        j = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
    sqlite3_finalize(st);
    const json_t *fields = json_object_get(j, "fields");
    bool ok = json_array_size(fields) && json_is_string(json_object_get(j, "delimiter"));
    for (size_t i = 0; ok && i < json_array_size(fields); i++)
        ok = json_is_string(json_object_get(json_array_get(fields, i), "role")) &&
             json_is_string(json_object_get(json_array_get(fields, i), "name"));
    if (!ok) json_decref(j);
    return ok ? j : NULL;
}

/* The layout rows are written in: the one given, else the store's, else MovieLens's. */
static void layout_of(row_layout *l, const char *given, sqlite3 *db) {
    l->doc = given ? json_loads(given, 0, NULL) : db ? recorded_layout(db) : NULL;
    if (!l->doc && !given) l->doc = json_loads(MOVIELENS_LAYOUT, 0, NULL);
    l->fields = json_object_get(l->doc, "fields");
    l->delim = json_string_value(json_object_get(l->doc, "delimiter"));
    l->header = json_is_true(json_object_get(l->doc, "header"));
    l->quoting = json_is_true(json_object_get(l->doc, "quoting"));
}

int sv_events_export(const char *events_path, const char *out_path, double click_rating, const char *layout,
                     sv_export_counts *n) {
    row_layout l = {0};
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char msg[4400] = "";
    *n = (sv_export_counts){0};
    cb_output *out = NULL; /* the library's atomic writer: the old file or the whole new one */
    cb_error err = {0};
    FILE *f = NULL;
    size_t total = 0;
    bool clicks = !isnan(click_rating);
    int rc = sqlite3_open_v2(events_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK ? 0
                                                                                        : db_fail(db, events_path, msg, sizeof msg);
    layout_of(&l, layout, rc ? NULL : db);
    if (!rc && (!l.delim || !json_array_size(l.fields))) rc = -1, snprintf(msg, sizeof msg, "out of memory");
    if (!rc) rc = count_events(db, "SELECT COUNT(*) FROM events", &total, msg, sizeof msg);
    if (!rc && !clicks) rc = count_events(db, "SELECT COUNT(*) FROM events WHERE rating IS NULL", &n->clicks, msg, sizeof msg);
    if (!rc && sqlite3_prepare_v2(db, EXPORT_SQL[clicks], -1, &st, NULL) != SQLITE_OK)
        rc = db_fail(db, "reading the events (is it an event store of cbrec serve?)", msg, sizeof msg);
    if (!rc && cb_output_open(&out, out_path, &err)) rc = -1, snprintf(msg, sizeof msg, "%s", err.msg);
    if (!rc) f = cb_output_file(out);
    if (!rc) put_header(f, &l);
    int step = SQLITE_DONE;
    bool picks = !rc && rows_are_picks(&l);
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        double y = sqlite3_column_type(st, 2) == SQLITE_NULL ? click_rating : sqlite3_column_double(st, 2);
        const char *user = (const char *)sqlite3_column_text(st, 0), *item = (const char *)sqlite3_column_text(st, 1);
        if (picks && !(y > 0)) { /* a 0 label: a row of a picks file would make it a pick */
            ++n->unpicked;
            continue;
        }
        if (!put_row(f, &l, user, item, y, (long long)sqlite3_column_int64(st, 3)))
            rc = -1, snprintf(msg, sizeof msg, "user '%.200s', item '%.200s': an id holding the delimiter, a quote or a "
                                               "line break cannot be written to a ratings file without quoting", user, item);
        ++n->rows;
    }
    if (!rc && step != SQLITE_DONE) rc = db_fail(db, "reading the events", msg, sizeof msg);
    if (rc) cb_output_abort(out);
    else if (cb_output_commit(out, &err)) rc = -1, snprintf(msg, sizeof msg, "%s", err.msg);
    n->older = rc ? 0 : total - n->clicks - n->rows - n->unpicked; /* events of a pair before its newest one */
    sqlite3_finalize(st);
    sqlite3_close(db);
    json_decref(l.doc);
    if (rc) fprintf(stderr, "cbrec events: %s\n", msg);
    return rc ? 1 : 0;
}
