/* filter — what one call must never return: the block list file (items and
 * content values), the recommender's own block list (for every call), the
 * exclude and allow lists of item ids, and the items the user already rated
 * (unless include-seen); all as one bitmap over the recommender's items,
 * model items then items added after training. */
#include "rec/recommend.h"
#include "base/csv.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cb_recommend_block_free(cb_blocklist *bl) {
    if (!bl) return;
    free(bl->items);
    free(bl->flagged);
    memset(bl, 0, sizeof *bl);
}

/* The value a block line "COLUMN VALUE" names (s at COLUMN) into *g; -1
 * when COLUMN is no content column of the model. */
static int block_value(const cb_features *f, const char *s, int64_t *g, cb_error *err) {
    size_t n = strcspn(s, " \t");
    const char *v = s + n;
    while (isspace((unsigned char)*v)) v++;
    int facet = f && *v ? cb_features_facet_find_n(f, s, n) : -1;
    uint32_t found = 0;
    int rc = facet < 0 ? CB_OK : cb_features_value_named(f, (uint32_t)facet, v, strlen(v), &found, err);
    *g = facet < 0 || rc ? -1 : (int64_t)found;
    return rc;
}

/* Does line s start with keyword kw and a blank? Then s past them. */
static const char *block_keyword(const char *s, const char *kw) {
    size_t n = strlen(kw);
    if (strncmp(s, kw, n) || (s[n] != ' ' && s[n] != '\t')) return NULL;
    for (s += n; isspace((unsigned char)*s);) s++;
    return s;
}

/* The id of a block line, s, in place: one in quotes is read as one CSV
 * field (its blanks kept, "" a quote: cb_id_list_field's quoting, as the
 * exclude and allow lists read it), for the loader keeps a quoted field's
 * blanks in an id (" sku-1 "); else s as it stands (the line's outer
 * blanks are not part of an id). */
static int block_id(char *s, const char *where, cb_error *err) {
    if (*s != '"') return CB_OK;
    cb_csv_options o;
    cb_csv_options_default(&o);
    cb_csv *c = NULL;
    char **fields;
    size_t *lens, n = 0;
    int rc = cb_csv_open_mem(&c, where, s, strlen(s), &o, err);
    int got = rc ? rc : cb_csv_next(c, &fields, &lens, &n, err);
    if (!rc && got < 0) rc = got;
    if (!rc && (got != 1 || n != 1 || cb_csv_next(c, &fields, &lens, &n, err) != 0))
        rc = cb_fail(err, CB_EPARSE, "%s: an id in quotes must be the rest of the line (a quote in it doubled: \"\")",
                     where);
    if (!rc) memmove(s, fields[0], lens[0] + 1); /* never longer than the quoted text */
    cb_csv_close(c);
    return rc;
}

/* One block line (trimmed, no comment): "item ID", "genre NAME", a plain
 * id, else "COLUMN VALUE" (an id in quotes: block_id); flags the value
 * (*g) or the item (*item, *g = -1). where is "path:line" for messages. */
static int block_line(const cb_recommender *rec, char *s, const char *where, int64_t *g, uint32_t *item,
                      cb_error *err) {
    const cb_features *f = rec->r->features;
    const char *rest;
    *g = -1;
    if ((rest = block_keyword(s, "genre"))) { /* the genre column's, else a content column named "genre" */
        *g = f ? cb_features_genre_find(f, rest) : -1;
        if (*g < 0 && f && cb_features_facet_find(f, "genre") >= 0)
            return cb_rec_with_source(block_value(f, s, g, err), where, err);
        return *g >= 0 ? CB_OK : cb_fail(err, CB_ENOTFOUND, "%s: unknown genre '%s'", where, rest);
    }
    char *id = (rest = block_keyword(s, "item")) ? s + (rest - s) : s;
    int rc = block_id(id, where, err);
    if (rc) return rc;
    bool known = cb_rec_item_index(rec, id, item);
    if (rest) return known ? CB_OK : cb_fail(err, CB_ENOTFOUND, "%s: unknown item id '%s'", where, id);
    if (known) return CB_OK; /* a plain line that is an item id is that item */
    rc = block_value(f, s, g, err);
    if (rc) return cb_rec_with_source(rc, where, err);
    return *g >= 0 ? CB_OK : cb_fail(err, CB_ENOTFOUND, "%s: unknown item id '%s'", where, s);
}

/* Has an item one of the flagged values? (block_expand's scan) */
typedef struct flag_scan {
    const bool *flagged;
    bool hit;
} flag_scan;

static void flag_hit(void *ctx, uint32_t g) {
    flag_scan *s = ctx;
    s->hit |= s->flagged[g];
}

/* Set the bit of every item from `first` on (model and added) that has a
 * flagged value; count the bits. */
static void block_expand(cb_blocklist *bl, const cb_recommender *rec, size_t first) {
    for (size_t i = first; bl->n_blocked_values && i < bl->n_items; i++) {
        flag_scan s = {bl->flagged, false};
        cb_rec_item_values_each(rec, i, flag_hit, &s);
        if (s.hit) cb_bit_set(bl->items, i);
    }
    bl->n_blocked = 0;
    for (size_t w = 0; w < ((size_t)bl->n_items + 63) / 64; w++) bl->n_blocked += (size_t)__builtin_popcountll(bl->items[w]);
}

int cb_recommend_block_reserve(cb_blocklist *bl, size_t n_items, cb_error *err) {
    size_t words = (n_items + 63) / 64 + 1, have = ((size_t)bl->n_items + 63) / 64 + 1;
    if (bl->n_cap >= n_items) return CB_OK;
    uint64_t *grown = realloc(bl->items, words * sizeof *grown);
    if (!grown) return cb_fail(err, CB_ENOMEM, "out of memory growing the block list");
    memset(grown + have, 0, (words - have) * sizeof *grown); /* the bits past n_items are clear already */
    bl->items = grown;
    bl->n_cap = n_items;
    return CB_OK;
}

void cb_recommend_block_extend(cb_blocklist *bl, const cb_recommender *rec) {
    size_t old = bl->n_items;
    bl->n_items = (uint32_t)cb_recommender_item_count(rec);
    block_expand(bl, rec, old);
}

int cb_rec_block_check(const cb_recommender *rec, cb_error *err) {
    if (!rec->block || (!rec->block->stale && rec->block->n_items == cb_recommender_item_count(rec))) return CB_OK;
    return cb_fail(err, CB_EINVAL, "the block list does not match the catalog (a table changed it and %s could not be "
                                   "read again): set it again", rec->block_path);
}

int cb_recommend_block_load(cb_blocklist *bl, const cb_recommender *rec, const char *path, cb_error *err) {
    memset(bl, 0, sizeof *bl);
    uint32_t n_all = (uint32_t)cb_recommender_item_count(rec);
    int fd, rc0 = cb_open_input(&fd, path, "block list", err);
    if (rc0) return rc0;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return cb_fail(err, CB_ENOMEM, "%s: cannot open the block list", path);
    }
    uint32_t nv = rec->r->features ? cb_features_n_genres(rec->r->features) : 0;
    bool *flagged = bl->flagged = cb_calloc(nv + 1, sizeof *flagged, err);
    bl->n_items = n_all, bl->n_cap = n_all;
    bl->items = cb_calloc(((size_t)n_all + 63) / 64 + 1, sizeof *bl->items, err);
    int rc = (flagged && bl->items) ? CB_OK : CB_ENOMEM;
    char *line = NULL, where[320];
    size_t cap = 0, lineno = 0;
    ssize_t len;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *s = line, *e = line + len;
        if (lineno == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) s += 3; /* a UTF-8 byte-order mark */
        while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
        while (isspace((unsigned char)*s)) s++;
        if (!*s || *s == '#') continue;
        snprintf(where, sizeof where, "%s:%zu", path, lineno);
        int64_t g;
        uint32_t item;
        if ((rc = block_line(rec, s, where, &g, &item, err))) break;
        if (g >= 0 && !flagged[g]) flagged[g] = true, bl->n_blocked_values++;
        else if (g < 0 && !cb_bit_get(bl->items, item)) cb_bit_set(bl->items, item), bl->n_blocked_items++;
    }
    if (!rc && ferror(f)) rc = cb_fail(err, CB_EIO, "%s: read error", path);
    if (!rc) block_expand(bl, rec, 0);
    free(line);
    fclose(f);
    if (rc) cb_recommend_block_free(bl);
    return rc;
}

/* The list without the blanks around its ids (outside quotes: a quoted id
 * keeps its own), so that `a, "sku,5" ` reads as two ids; malloc'd. */
static char *list_tidy(const char *list, cb_error *err) {
    size_t n = strlen(list), m = 0;
    char *o = cb_malloc(n + 1, err);
    if (!o) return NULL;
    bool quoted = false;
    for (size_t i = 0; i < n; i++) {
        char c = list[i];
        if (!quoted && isspace((unsigned char)c)) {
            size_t j = i;
            while (j < n && isspace((unsigned char)list[j])) j++;
            char before = m ? o[m - 1] : ',', after = j < n ? list[j] : ',';
            if (before == ',' || before == '"' || after == ',' || after == '"') { /* at an id's edge */
                i = j - 1;
                continue;
            }
        }
        if (c == '"') quoted = !quoted; /* "" inside quotes toggles twice */
        o[m++] = c;
    }
    o[m] = 0;
    return o;
}

CB_API size_t cb_id_list_field(char *out, const char *id) {
    size_t n = strlen(id), at = 0;
    bool quote = strpbrk(id, ",\"\r\n") || (n && (isspace((unsigned char)id[0]) || isspace((unsigned char)id[n - 1])));
    if (quote) out[at++] = '"';
    for (; *id; id++) {
        if (quote && *id == '"') out[at++] = '"';
        out[at++] = *id;
    }
    if (quote) out[at++] = '"';
    out[at] = 0;
    return at;
}

/* Set the bit of every item of a comma-separated id list, read as one CSV
 * record (an id with a comma in quotes: "sku,5"; blanks around an id
 * dropped); `what` names the option in messages. */
static int id_list_bits(const cb_recommender *rec, const char *list, uint64_t *bits, const char *what, cb_error *err) {
    cb_csv_options o;
    cb_csv_options_default(&o);
    cb_csv *c = NULL;
    char **fields;
    size_t *lens, n = 0;
    char *tidy = list_tidy(list, err);
    if (!tidy) return CB_ENOMEM;
    int rc = cb_csv_open_mem(&c, what, tidy, strlen(tidy), &o, err);
    int got = rc ? rc : cb_csv_next(c, &fields, &lens, &n, err);
    if (got < 0) rc = got;
    for (size_t k = 0; !rc && got == 1 && k < n; k++) {
        const char *id = fields[k]; /* NUL-terminated by the reader */
        if (!lens[k]) continue;
        uint32_t item;
        if (!cb_rec_item_index(rec, id, &item))
            rc = cb_fail(err, CB_ENOTFOUND, "%s: unknown item id '%.200s%s'", what, id, lens[k] > 200 ? "..." : "");
        else cb_bit_set(bits, item);
    }
    if (!rc && got == 1 && cb_csv_next(c, &fields, &lens, &n, err) != 0) /* a second record: a newline in the list */
        rc = cb_fail(err, CB_EINVAL, "%s: one line of comma-separated ids expected", what);
    cb_csv_close(c);
    free(tidy);
    return rc;
}

int cb_recommend_exclusions(const cb_recommender *rec, const cb_recommend_config *cfg, const cb_blocklist *bl,
                            const uint32_t *rated, size_t n_rated, uint64_t **out, cb_error *err) {
    size_t n_all = cb_recommender_item_count(rec), words = (n_all + 63) / 64;
    *out = NULL;
    if (bl && bl->n_items != n_all)
        return cb_fail(err, CB_EINVAL, "the block list belongs to another model or predates an added item: reload it");
    uint64_t *excl = cb_calloc(words + 1, sizeof *excl, err), *allow = NULL;
    if (!excl) return CB_ENOMEM;
    cb_blocklist own = {0};
    int rc = CB_OK;
    if (!bl && cfg->block_file && *cfg->block_file) {
        rc = cb_recommend_block_load(&own, rec, cfg->block_file, err);
        bl = &own;
    }
    if (!rc && bl) memcpy(excl, bl->items, words * sizeof *excl);
    if (!rc) rc = cb_rec_block_check(rec, err);
    for (size_t w = 0; !rc && rec->block && w < words; w++) excl[w] |= rec->block->items[w];
    if (!rc && cfg->exclude) rc = id_list_bits(rec, cfg->exclude, excl, "exclude", err);
    if (!rc && cfg->allow) {
        if (!(allow = cb_calloc(words + 1, sizeof *allow, err))) rc = CB_ENOMEM;
        else rc = id_list_bits(rec, cfg->allow, allow, "allow", err);
        for (size_t w = 0; !rc && w < words; w++) excl[w] |= ~allow[w];
        if (!rc && n_all % 64) excl[words - 1] &= (1ULL << (n_all % 64)) - 1; /* keep bits past n clear */
    }
    for (size_t i = 0; !rc && !cfg->include_seen && i < n_rated; i++)
        if (rated[i] < n_all) cb_bit_set(excl, rated[i]);
    cb_recommend_block_free(&own);
    free(allow);
    if (rc) {
        free(excl);
        return rc;
    }
    *out = excl;
    return CB_OK;
}
