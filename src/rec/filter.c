/* filter — what one call must never return: the block list file (items and
 * whole genres), the exclude and allow lists of item ids, and the items the
 * user already rated (unless include-seen); all as one bitmap over model items. */
#include "rec/recommend.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cb_recommend_block_free(cb_blocklist *bl) {
    if (!bl) return;
    free(bl->items);
    memset(bl, 0, sizeof *bl);
}

int cb_recommend_block_load(cb_blocklist *bl, const cb_bundle *r, const char *path, cb_error *err) {
    memset(bl, 0, sizeof *bl);
    FILE *f = fopen(path, "rb");
    if (!f) return cb_fail(err, CB_EIO, "%s: cannot open the block list", path);
    uint32_t ng = r->features ? cb_features_n_genres(r->features) : 0;
    bool *genre = cb_calloc(ng + 1, sizeof *genre, err);
    bl->n_items = r->n_items;
    bl->items = cb_calloc(((size_t)r->n_items + 63) / 64 + 1, sizeof *bl->items, err);
    int rc = (genre && bl->items) ? CB_OK : CB_ENOMEM;
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *s = line, *e = line + len;
        while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
        while (isspace((unsigned char)*s)) s++;
        if (!*s || *s == '#') continue;
        bool is_genre = false;
        if (!strncmp(s, "item ", 5) || !strncmp(s, "item\t", 5)) s += 5;
        else if (!strncmp(s, "genre ", 6) || !strncmp(s, "genre\t", 6)) s += 6, is_genre = true;
        while (isspace((unsigned char)*s)) s++;
        if (is_genre) {
            int g = r->features ? cb_features_genre_find(r->features, s) : -1;
            if (g < 0) rc = cb_fail(err, CB_ENOTFOUND, "%s:%zu: unknown genre '%s'", path, lineno, s);
            else if (!genre[g]) genre[g] = true, bl->n_blocked_genres++;
        } else {
            int64_t item = cb_bundle_item(r, s);
            if (item < 0) rc = cb_fail(err, CB_ENOTFOUND, "%s:%zu: unknown item id '%s'", path, lineno, s);
            else if (!cb_bit_get(bl->items, (size_t)item)) cb_bit_set(bl->items, (size_t)item), bl->n_blocked_items++;
        }
    }
    if (!rc && ferror(f)) rc = cb_fail(err, CB_EIO, "%s: read error", path);
    for (uint32_t i = 0; !rc && bl->n_blocked_genres && i < r->n_items; i++) {
        const uint32_t *gl;
        uint32_t n = 0;
        if (cb_features_item_genres(r->features, i, &gl, &n)) continue;
        for (uint32_t k = 0; k < n; k++)
            if (genre[gl[k]]) cb_bit_set(bl->items, i);
    }
    free(line);
    free(genre);
    fclose(f);
    if (rc) cb_recommend_block_free(bl);
    return rc;
}


/* Set the bit of every item of a comma-separated id list; `what` names the
 * option in messages. */
static int id_list_bits(const cb_bundle *r, const char *list, uint64_t *bits, const char *what, cb_error *err) {
    const char *s = list;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        while (len && isspace((unsigned char)*s)) s++, len--;
        while (len && isspace((unsigned char)s[len - 1])) len--;
        if (len) {
            char id[256];
            if (len >= sizeof id) return cb_fail(err, CB_EINVAL, "%s: item id '%.40s...' is too long", what, s);
            memcpy(id, s, len);
            id[len] = 0;
            int64_t item = cb_bundle_item(r, id);
            if (item < 0) return cb_fail(err, CB_ENOTFOUND, "%s: unknown item id '%s'", what, id);
            cb_bit_set(bits, (size_t)item);
        }
        if (!e) break;
        s = e + 1;
    }
    return CB_OK;
}

int cb_recommend_exclusions(const cb_recommender *rec, const cb_recommend_config *cfg, const cb_blocklist *bl,
                            const uint32_t *rated, size_t n_rated, uint64_t **out, cb_error *err) {
    const cb_bundle *r = rec->r;
    size_t words = ((size_t)r->n_items + 63) / 64;
    *out = NULL;
    if (bl && bl->n_items != r->n_items) return cb_fail(err, CB_EINVAL, "the block list belongs to another model");
    uint64_t *excl = cb_calloc(words + 1, sizeof *excl, err), *allow = NULL;
    if (!excl) return CB_ENOMEM;
    cb_blocklist own = {0};
    int rc = CB_OK;
    if (!bl && cfg->block_file && *cfg->block_file) {
        rc = cb_recommend_block_load(&own, r, cfg->block_file, err);
        bl = &own;
    }
    if (!rc && bl) memcpy(excl, bl->items, words * sizeof *excl);
    if (!rc && cfg->exclude) rc = id_list_bits(r, cfg->exclude, excl, "exclude", err);
    if (!rc && cfg->allow) {
        if (!(allow = cb_calloc(words + 1, sizeof *allow, err))) rc = CB_ENOMEM;
        else rc = id_list_bits(r, cfg->allow, allow, "allow", err);
        for (size_t w = 0; !rc && w < words; w++) excl[w] |= ~allow[w];
        if (!rc && r->n_items % 64) excl[words - 1] &= (1ULL << (r->n_items % 64)) - 1; /* keep bits past n clear */
    }
    for (size_t i = 0; !rc && !cfg->include_seen && i < n_rated; i++)
        if (rated[i] < r->n_items) cb_bit_set(excl, rated[i]);
    cb_recommend_block_free(&own);
    free(allow);
    if (rc) {
        free(excl);
        return rc;
    }
    *out = excl;
    return CB_OK;
}
