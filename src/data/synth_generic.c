/* synth_generic — `cbrec synth --layout generic`: a shop-like catalog shaped
 * unlike MovieLens, with a planted ground truth, so tests can check purity
 * and cold start on it (the MovieLens-style generator is synth.c).
 *
 * Planted structure: K classes; each has 6 tags ("café-3"), 2 brands and a
 * few words of its own. An item belongs to one class: 2-3 of its class's
 * tags plus one of 8 "common" tags every class shares, one of its class's
 * brands, and a description mixing its class's words with common words.
 * Users have 1-2 favourite classes; about 85% of a user's ratings are items
 * of a favourite class (4-5 stars), the rest other items (1-2 stars), plus
 * noise. Every 10th item and every 20th user is never rated. Fields carry
 * commas, quotes, accents, CJK and emoji; ids are strings. */
#include "data/dataset.h"
#include "data/textutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const class_words[] = {"jazz",  "café",    "東京",   "🎸rock", "naïve",  "ÉTÉ",
                                          "Ångström", "音楽", "smörgås", "Ωmega", "привет", "fiesta",
                                          "Zürich", "北京",    "🌶spice", "façade"};
#define MAX_CLASSES (sizeof class_words / sizeof class_words[0])
#define TAGS_PER_CLASS 6
#define N_COMMON_TAGS 8
static const char *const common_words[] = {"great", "value", "new", "classic", "gift", "fast", "soft", "smart"};
static const char *const countries[] = {"DE", "FR", "JP", "CN", "BR"};

typedef struct gen {
    const cb_synth_config *c;
    uint32_t K;
    uint32_t *item_class;          /* [n_items] */
    uint32_t *fav;                 /* [n_users * 2], fav[2u+1] == fav[2u] when one favourite */
    uint32_t **class_items;        /* rated items per class */
    uint32_t *n_class_items;
    cb_rng rng;
} gen;

static bool item_rated(uint32_t i) { return i % 10 != 9; }
static bool user_rated(uint32_t u) { return u % 20 != 19; }

static void item_id(char *buf, size_t n, uint32_t i) {
    snprintf(buf, n, "sku-%06x", (unsigned)((i * 2654435761u) & 0xffffffu));
}
static void user_id(char *buf, size_t n, uint32_t u) { snprintf(buf, n, "usér-%05u", u); }

static FILE *open_out(cb_atomic_file *af, const char *dir, const char *name, cb_error *err) {
    char *path = cb_path_join(dir, name, err);
    if (!path) return NULL;
    int rc = cb_atomic_open(af, path, err);
    free(path);
    return rc ? NULL : af->fp;
}

static int write_items(gen *g, const char *dir, cb_atomic_file *af, cb_error *err) {
    FILE *fp = open_out(af, dir, "items.csv", err);
    if (!fp) return err ? err->code : CB_EIO;
    fputs("item_id,title,tags,brand,description\n", fp);
    char id[32], buf[512], tags[256];
    for (uint32_t i = 0; i < g->c->n_items; i++) {
        uint32_t k = g->item_class[i];
        const char *w = class_words[k];
        item_id(id, sizeof id, i);
        fprintf(fp, "%s,", id);
        snprintf(buf, sizeof buf, "Product \"%s\" #%u, édition %s", w, i, i % 2 ? "spéciale" : "std");
        cb_csv_put_field(fp, buf);
        /* 2-3 distinct tags of the class, then one common tag */
        uint32_t n_tags = 2 + (uint32_t)cb_rng_below(&g->rng, 2), first = (uint32_t)cb_rng_below(&g->rng, TAGS_PER_CLASS);
        size_t l = 0;
        for (uint32_t t = 0; t < n_tags; t++)
            l += (size_t)snprintf(tags + l, sizeof tags - l, "%s-%u;", w, (first + t * 2) % TAGS_PER_CLASS);
        snprintf(tags + l, sizeof tags - l, "%s", common_words[cb_rng_below(&g->rng, N_COMMON_TAGS)]);
        fputc(',', fp);
        cb_csv_put_field(fp, tags);
        snprintf(buf, sizeof buf, "%s \"%s\", Ltd %u", k % 2 ? "Maison" : "Brand", w, (unsigned)cb_rng_below(&g->rng, 2));
        fputc(',', fp);
        cb_csv_put_field(fp, buf);
        snprintf(buf, sizeof buf, "A %s, %s item: %s-sound with %s-style; \"%s\" and %s.", common_words[i % 8],
                 common_words[(i / 8) % 8], w, w, w, common_words[cb_rng_below(&g->rng, 8)]);
        fputc(',', fp);
        cb_csv_put_field(fp, buf);
        fputc('\n', fp);
    }
    return cb_atomic_stage(af, err);
}

static int write_users(gen *g, const char *dir, cb_atomic_file *af, cb_error *err) {
    FILE *fp = open_out(af, dir, "users.csv", err);
    if (!fp) return err ? err->code : CB_EIO;
    fputs("user_id,country\n", fp);
    char id[32];
    for (uint32_t u = 0; u < g->c->n_users; u++) {
        user_id(id, sizeof id, u);
        fprintf(fp, "%s,%s\n", id, countries[cb_rng_below(&g->rng, 5)]);
    }
    return cb_atomic_stage(af, err);
}

/* One rating of user u: an unrated item of a favourite class (high) or of any class (low). */
static void draw_rating(gen *g, uint32_t u, uint32_t *item, int *stars) {
    bool fav = cb_rng_uniform(&g->rng) < 0.85;
    uint32_t k = fav ? g->fav[2 * u + cb_rng_below(&g->rng, 2)] : (uint32_t)cb_rng_below(&g->rng, g->K);
    if (!fav && (k == g->fav[2 * u] || k == g->fav[2 * u + 1])) k = (k + 1 + (uint32_t)cb_rng_below(&g->rng, g->K - 1)) % g->K;
    if (!fav && (k == g->fav[2 * u] || k == g->fav[2 * u + 1])) fav = true; /* K so small every class is a favourite */
    if (!g->n_class_items[k]) { /* a tiny catalog leaves classes without rated items: any class's */
        for (k = (uint32_t)cb_rng_below(&g->rng, g->K); !g->n_class_items[k];) k = (k + 1) % g->K;
        fav = false;
    }
    *item = g->class_items[k][cb_rng_below(&g->rng, g->n_class_items[k])];
    double y = (fav ? 4.5 : 1.5) + g->c->noise * cb_rng_normal(&g->rng);
    int s = (int)lround(y);
    *stars = s < 1 ? 1 : s > 5 ? 5 : s;
}

static int write_ratings(gen *g, const char *dir, cb_atomic_file *af, cb_error *err) {
    FILE *fp = open_out(af, dir, "ratings.csv", err);
    if (!fp) return err ? err->code : CB_EIO;
    fputs("user_id,item_id,stars,ts\n", fp);
    uint32_t n_rated_users = 0;
    for (uint32_t u = 0; u < g->c->n_users; u++) n_rated_users += user_rated(u);
    /* --ratings N shared out: each rated user base ratings, the first extra ones one more (N / users
     * alone had dropped the remainder: 5 ratings over 3 users wrote 3) */
    size_t base = n_rated_users ? g->c->n_ratings / n_rated_users : 0, extra = n_rated_users ? g->c->n_ratings % n_rated_users : 0;
    size_t per_user = base + (extra > 0);
    uint32_t *seen = cb_malloc((per_user + 1) * sizeof *seen, err);
    if (!seen) {
        cb_atomic_abort(af);
        return CB_ENOMEM;
    }
    char uid[32], iid[32];
    for (uint32_t u = 0, rated = 0; u < g->c->n_users; u++) {
        if (!user_rated(u)) continue;
        user_id(uid, sizeof uid, u);
        size_t n = 0, quota = base + (rated++ < extra);
        for (size_t tries = 0; n < quota && tries < 20 * quota; tries++) {
            uint32_t item;
            int stars;
            draw_rating(g, u, &item, &stars);
            bool dup = false;
            for (size_t k = 0; k < n && !dup; k++) dup = seen[k] == item;
            if (dup) continue;
            seen[n++] = item;
            item_id(iid, sizeof iid, item);
            fprintf(fp, "%s,%s,%d,%u\n", uid, iid, stars, 1600000000u + (unsigned)(u * 1000 + n));
        }
    }
    free(seen);
    return cb_atomic_stage(af, err);
}

static int write_truth(gen *g, const char *dir, cb_atomic_file *af, cb_error *err) {
    FILE *fp = open_out(af, dir, "truth.csv", err);
    if (!fp) return err ? err->code : CB_EIO;
    fputs("kind,id,class\n", fp);
    char id[32];
    for (uint32_t k = 0; k < g->K; k++) {
        fprintf(fp, "class,%u,", k);
        for (uint32_t t = 0; t < TAGS_PER_CLASS; t++) fprintf(fp, "%s%s-%u", t ? ";" : "", class_words[k], t);
        fputc('\n', fp);
    }
    for (uint32_t i = 0; i < g->c->n_items; i++) {
        item_id(id, sizeof id, i);
        fprintf(fp, "item,%s,%u\n", id, g->item_class[i]);
    }
    for (uint32_t u = 0; u < g->c->n_users; u++) {
        user_id(id, sizeof id, u);
        if (g->fav[2 * u] == g->fav[2 * u + 1]) fprintf(fp, "user,%s,%u\n", id, g->fav[2 * u]);
        else fprintf(fp, "user,%s,%u;%u\n", id, g->fav[2 * u], g->fav[2 * u + 1]);
    }
    return cb_atomic_stage(af, err);
}

static int write_schema(const char *dir, cb_atomic_file *af, cb_error *err) {
    FILE *fp = open_out(af, dir, "cbrec.schema", err);
    if (!fp) return err ? err->code : CB_EIO;
    fputs("# written by cbrec synth --layout generic (planted classes in truth.csv)\n"
          "name = synthetic-generic\n"
          "ratings = ratings.csv\n"
          "ratings.columns = user_id:user, item_id:item, stars:rating, ts:timestamp\n"
          "rating.range = 1,5\n"
          "items = items.csv\n"
          "items.columns = item_id:id, title:title, tags:multi(;), brand:categorical, description:text\n"
          "items.year_from_title = no\n"
          "users = users.csv\n"
          "users.columns = user_id:id, country:categorical\n",
          fp);
    return cb_atomic_stage(af, err);
}

static int plant(gen *g, cb_error *err) {
    const cb_synth_config *c = g->c;
    g->item_class = cb_malloc(((size_t)c->n_items + 1) * sizeof *g->item_class, err);
    g->fav = cb_malloc(((size_t)c->n_users + 1) * 2 * sizeof *g->fav, err);
    g->class_items = cb_calloc(g->K, sizeof *g->class_items, err);
    g->n_class_items = cb_calloc(g->K, sizeof *g->n_class_items, err);
    if (!g->item_class || !g->fav || !g->class_items || !g->n_class_items) return CB_ENOMEM;
    for (uint32_t k = 0; k < g->K; k++)
        if (!(g->class_items[k] = cb_malloc(((size_t)c->n_items + 1) * sizeof **g->class_items, err))) return CB_ENOMEM;
    for (uint32_t i = 0; i < c->n_items; i++) {
        uint32_t k = (uint32_t)cb_rng_below(&g->rng, g->K);
        g->item_class[i] = k;
        if (item_rated(i)) g->class_items[k][g->n_class_items[k]++] = i;
    }
    for (uint32_t u = 0; u < c->n_users; u++) {
        g->fav[2 * u] = (uint32_t)cb_rng_below(&g->rng, g->K);
        g->fav[2 * u + 1] = cb_rng_uniform(&g->rng) < 0.5 ? g->fav[2 * u] : (uint32_t)cb_rng_below(&g->rng, g->K);
    }
    return CB_OK;
}

int cb_synth_write_generic(const cb_synth_config *c, const char *dir, cb_error *err) {
    if (!c || !dir || !*dir) return cb_fail(err, CB_EINVAL, "cb_synth_write_generic: no configuration or folder");
    if (c->n_genres < 2) return cb_fail(err, CB_EINVAL, "the generic layout needs at least 2 classes (--genres)");
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return cb_fail(err, CB_EIO, "%s: cannot create folder: %s", dir, strerror(errno));
    gen g = {.c = c, .K = c->n_genres < MAX_CLASSES ? c->n_genres : (uint32_t)MAX_CLASSES};
    cb_rng_seed(&g.rng, c->seed);
    int rc = plant(&g, err);
    cb_atomic_file files[5] = {{0}}; /* renamed into place together: the old set or the new one */
    if (!rc) rc = write_items(&g, dir, &files[0], err);
    if (!rc) rc = write_users(&g, dir, &files[1], err);
    if (!rc) rc = write_ratings(&g, dir, &files[2], err);
    if (!rc) rc = write_truth(&g, dir, &files[3], err);
    if (!rc) rc = write_schema(dir, &files[4], err);
    rc = cb_atomic_publish(files, 5, rc, err);
    for (uint32_t k = 0; g.class_items && k < g.K; k++) free(g.class_items[k]);
    free(g.class_items);
    free(g.n_class_items);
    free(g.item_class);
    free(g.fav);
    return rc;
}
