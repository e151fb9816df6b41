/* config — parsing, range checks, formatting and enumeration of key tables
 * (see config.h); the public cb_config_free / _set / _get / _given. */
#include "base/config.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LIST_MAX 64 /* largest U32_LIST capacity a table may declare */

/* A parsed value before it is stored. */
typedef struct parsed {
    double num;           /* F64, F32 */
    int64_t i;            /* integers, ENUM, BOOL */
    const char *s;        /* STRING */
    uint32_t list[LIST_MAX];
    uint32_t n_list;
    float lo, hi;         /* F32_RANGE */
} parsed;

static bool is_integer_type(cb_key_type t) {
    return t == CB_KEY_U32 || t == CB_KEY_U64 || t == CB_KEY_SIZE || t == CB_KEY_INT;
}

/* "one of a, b, c" / "an integer in [1, 64]" ... into buf. */
static const char *accepted(const cb_config_key_def *k, char *buf, size_t size) {
    size_t n = 0;
    buf[0] = 0;
    switch (k->type) {
    case CB_KEY_BOOL: snprintf(buf, size, "true or false"); return buf;
    case CB_KEY_STRING: snprintf(buf, size, "any text"); return buf;
    case CB_KEY_F32_RANGE: snprintf(buf, size, "MIN,MAX with MIN < MAX, or none"); return buf;
    case CB_KEY_U32_LIST:
        snprintf(buf, size, "up to %zu comma-separated integers in [%.15g, %.15g], or none", k->max_count, k->min,
                 k->max);
        return buf;
    case CB_KEY_ENUM:
        n += (size_t)snprintf(buf, size, "one of ");
        for (const cb_config_choice *c = k->choices; c && c->name && n < size; c++)
            n += (size_t)snprintf(buf + n, size - n, "%s%s", c == k->choices ? "" : ", ", c->name);
        return buf;
    default:
        n += (size_t)snprintf(buf, size, "%s in [%.15g, %.15g]", is_integer_type(k->type) ? "an integer" : "a number",
                              k->min, k->max);
        for (const cb_config_choice *c = k->choices; c && c->name && n < size; c++)
            n += (size_t)snprintf(buf + n, size - n, " or %s", c->name);
        return buf;
    }
}

static int bad_value(const cb_config_key_def *k, const char *text, cb_error *err) {
    char buf[400];
    return cb_fail(err, CB_EINVAL, "%s: '%s' is not accepted (%s)", k->name, text, accepted(k, buf, sizeof buf));
}

static bool parse_bool(const char *s, bool *out) {
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) return *out = true, true;
        if (!strcasecmp(s, no[i])) return *out = false, true;
    }
    return false;
}

static const cb_config_choice *choice_named(const cb_config_choice *c, const char *name) {
    for (; c && c->name; c++)
        if (!strcmp(c->name, name)) return c;
    return NULL;
}

static bool parse_num(const cb_config_key_def *k, const char *s, size_t len, double *out) {
    if (is_integer_type(k->type) || k->type == CB_KEY_U32_LIST) {
        int64_t v;
        if (!cb_parse_i64(s, len, &v)) return false;
        *out = (double)v;
    } else if (!cb_parse_double(s, len, out) || !isfinite(*out)) {
        return false;
    }
    return *out >= k->min && *out <= k->max;
}

static bool parse_list(const cb_config_key_def *k, const char *s, parsed *p) {
    p->n_list = 0;
    if (!*s || !strcmp(s, "none")) return true;
    for (;;) {
        size_t len = strcspn(s, ",");
        double v;
        if (p->n_list == k->max_count || !parse_num(k, s, len, &v)) return false;
        p->list[p->n_list++] = (uint32_t)v;
        if (!s[len]) return true;
        s += len + 1;
    }
}

static bool parse_range(const char *s, parsed *p) {
    if (!strcmp(s, "none")) return p->lo = p->hi = 0, true;
    const char *comma = strchr(s, ',');
    double lo, hi;
    return comma && cb_parse_double(s, (size_t)(comma - s), &lo) && cb_parse_double(comma + 1, strlen(comma + 1), &hi) &&
           lo < hi && (p->lo = (float)lo, p->hi = (float)hi, true);
}

static bool parse_text(const cb_config_key_def *k, const char *text, parsed *p) {
    const cb_config_choice *c;
    bool b;
    switch (k->type) {
    case CB_KEY_STRING: p->s = text; return true;
    case CB_KEY_U32_LIST: return parse_list(k, text, p);
    case CB_KEY_F32_RANGE: return parse_range(text, p);
    case CB_KEY_BOOL:
        if (!parse_bool(text, &b)) return false;
        p->i = k->choices ? k->choices[b].value : b;
        return true;
    case CB_KEY_ENUM:
        if (!(c = choice_named(k->choices, text))) return false;
        p->i = c->value;
        return true;
    default:
        if ((c = choice_named(k->choices, text))) {
            p->i = c->value;
            p->num = (double)c->value;
            return true;
        }
        if (!parse_num(k, text, strlen(text), &p->num)) return false;
        p->i = (int64_t)p->num;
        return true;
    }
}

static void store(const cb_config_key_def *k, const parsed *p, void *values) {
    char *base = values;
    void *dst = base + k->offset;
    switch (k->type) {
    case CB_KEY_F64: *(double *)dst = p->num; break;
    case CB_KEY_F32: *(float *)dst = (float)p->num; break;
    case CB_KEY_U32: *(uint32_t *)dst = (uint32_t)p->i; break;
    case CB_KEY_U64: *(uint64_t *)dst = (uint64_t)p->i; break;
    case CB_KEY_SIZE: *(size_t *)dst = (size_t)p->i; break;
    case CB_KEY_INT: *(int *)dst = (int)p->i; break;
    case CB_KEY_BOOL:
        if (k->choices) *(int *)dst = (int)p->i;
        else *(bool *)dst = p->i != 0;
        break;
    case CB_KEY_ENUM: *(int *)dst = (int)p->i; break;
    case CB_KEY_STRING: *(const char **)dst = p->s && *p->s ? p->s : NULL; break;
    case CB_KEY_U32_LIST:
        memcpy(dst, p->list, p->n_list * sizeof *p->list);
        *(uint32_t *)(base + k->offset2) = p->n_list;
        break;
    case CB_KEY_F32_RANGE:
        *(float *)dst = p->lo;
        *(float *)(base + k->offset2) = p->hi;
        break;
    }
}

int cb_config_key_parse(const cb_config_key_def *k, const char *text, void *values, cb_error *err) {
    if (!k || !text || !values) return cb_fail(err, CB_EINVAL, "cb_config_key_parse: NULL argument");
    parsed p;
    memset(&p, 0, sizeof p);
    if (!parse_text(k, text, &p)) return bad_value(k, text, err);
    store(k, &p, values);
    return CB_OK;
}

static const char *choice_name(const cb_config_choice *c, int64_t value) {
    for (; c && c->name; c++)
        if (c->value == value) return c->name;
    return NULL;
}

/* The value of key k in `values` as text into buf. */
static void format(const cb_config_key_def *k, const void *values, char *buf, size_t size) {
    const char *base = values, *src = base + k->offset, *name;
    int64_t i = 0;
    switch (k->type) {
    case CB_KEY_F64: snprintf(buf, size, "%.15g", *(const double *)src); return;
    case CB_KEY_F32: /* a named value ("auto" = -1) reads back as its name */
        if (k->choices && (name = choice_name(k->choices, (int64_t)*(const float *)src)) &&
            (float)(int64_t)*(const float *)src == *(const float *)src)
            snprintf(buf, size, "%s", name);
        else
            snprintf(buf, size, "%.7g", (double)*(const float *)src);
        return;
    case CB_KEY_STRING: snprintf(buf, size, "%s", *(const char *const *)src ? *(const char *const *)src : ""); return;
    case CB_KEY_BOOL:
        if (k->choices) snprintf(buf, size, "%s", *(const int *)src == k->choices[1].value ? "true" : "false");
        else snprintf(buf, size, "%s", *(const bool *)src ? "true" : "false");
        return;
    case CB_KEY_ENUM:
        name = choice_name(k->choices, *(const int *)src);
        snprintf(buf, size, "%s", name ? name : "?");
        return;
    case CB_KEY_U32_LIST: {
        uint32_t n = *(const uint32_t *)(base + k->offset2);
        size_t used = 0;
        snprintf(buf, size, "none");
        for (uint32_t j = 0; j < n && used < size; j++)
            used += (size_t)snprintf(buf + used, size - used, "%s%u", j ? "," : "", ((const uint32_t *)src)[j]);
        return;
    }
    case CB_KEY_F32_RANGE: {
        float lo = *(const float *)src, hi = *(const float *)(base + k->offset2);
        if (lo == 0 && hi == 0) snprintf(buf, size, "none");
        else snprintf(buf, size, "%g,%g", (double)lo, (double)hi);
        return;
    }
    case CB_KEY_U32: i = *(const uint32_t *)src; break;
    case CB_KEY_U64: i = (int64_t) * (const uint64_t *)src; break;
    case CB_KEY_SIZE: i = (int64_t) * (const size_t *)src; break;
    case CB_KEY_INT: i = *(const int *)src; break;
    }
    name = choice_name(k->choices, i);
    if (name) snprintf(buf, size, "%s", name);
    else snprintf(buf, size, "%lld", (long long)i);
}

const cb_config_key_def *cb_config_table_find(const cb_config_table *t, const char *name) {
    for (size_t i = 0; t && name && i < t->n_keys; i++)
        if (!strcmp(t->keys[i].name, name)) return &t->keys[i];
    return NULL;
}

const void *cb_config_values(const cb_config *c, cb_config_kind kind) {
    return c && c->table->kind == kind ? c->values : NULL;
}

/* Edit distance of a and b, capped at 9 (names are short). */
static size_t distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), row[64];
    if (la > 60 || lb > 60) return 9;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb] < 9 ? row[lb] : 9;
}

/* Is `cand` close to `name`: edit distance <= 2, or sharing a prefix of 4
 * characters or containing it? Its distance, else SIZE_MAX. */
static size_t closeness(const char *name, const char *cand) {
    size_t d = distance(name, cand);
    if (d <= 2) return d;
    return strlen(name) >= 4 && (!strncmp(name, cand, 4) || strstr(cand, name)) ? d : SIZE_MAX;
}

CB_API size_t cb_config_near_names(const char *name, const char *const *names, size_t n_names, const char *prefix,
                                   char *out, size_t out_size) {
    size_t n = 0, used = 0;
    if (out_size) *out = 0;
    for (size_t d = 0; d <= 9 && n < 4; d++) /* closest first; at most 4, in list order within a distance */
        for (size_t i = 0; i < n_names && n < 4; i++) {
            if (!names[i] || closeness(name, names[i]) != d) continue;
            bool dup = false;
            for (size_t j = 0; j < i && !dup; j++) dup = names[j] && !strcmp(names[j], names[i]);
            if (dup) continue;
            if (out_size > used)
                used += (size_t)snprintf(out + used, out_size - used, "%s%s%s", n ? ", " : "", prefix ? prefix : "",
                                         names[i]);
            n++;
        }
    return n;
}

/* CB_ENOTFOUND naming the keys close to `name` (cb_config_near_names). */
static int unknown_key(const cb_config_table *t, const char *name, cb_error *err) {
    char close[300];
    const char *names[256];
    size_t nk = t->n_keys < 256 ? t->n_keys : 256;
    for (size_t i = 0; i < nk; i++) names[i] = t->keys[i].name;
    if (cb_config_near_names(name, names, nk, NULL, close, sizeof close))
        return cb_fail(err, CB_ENOTFOUND, "unknown %s key '%s' (did you mean %s?)", t->name, name, close);
    return cb_fail(err, CB_ENOTFOUND, "unknown %s key '%s'", t->name, name);
}

static void free_strings(cb_config *c) {
    for (size_t i = 0; i < c->table->n_keys; i++)
        if (c->table->keys[i].type == CB_KEY_STRING) free(*(char **)((char *)c->values + c->table->keys[i].offset));
}

CB_API void cb_config_free(cb_config *c) {
    if (!c) return;
    if (c->values) free_strings(c);
    for (size_t i = 0; c->text && i < c->table->n_keys; i++) free(c->text[i]);
    free(c->text);
    free(c->given);
    free(c->values);
    free(c);
}

CB_API int cb_config_set(cb_config *c, const char *key, const char *value, cb_error *err) {
    if (!c || !key) return cb_fail(err, CB_EINVAL, "cb_config_set: NULL argument");
    const cb_config_key_def *k = cb_config_table_find(c->table, key);
    if (!k) return unknown_key(c->table, key, err);
    bool reset = !value; /* NULL: back to the default, not given */
    if (reset) value = k->default_value;
    parsed p;
    memset(&p, 0, sizeof p);
    if (!parse_text(k, value, &p)) return bad_value(k, value, err);
    char buf[1024], *copy = NULL, *text;
    if (k->type == CB_KEY_STRING && *value && !(p.s = copy = cb_strdup(value, err))) return CB_ENOMEM;
    /* format the new value from a scratch copy, so a failure leaves c unchanged */
    void *scratch = cb_malloc(c->table->size, err);
    if (!scratch) return free(copy), CB_ENOMEM;
    memcpy(scratch, c->values, c->table->size);
    store(k, &p, scratch);
    format(k, scratch, buf, sizeof buf);
    free(scratch);
    if (!(text = cb_strdup(buf, err))) return free(copy), CB_ENOMEM;
    if (k->type == CB_KEY_STRING) free(*(char **)((char *)c->values + k->offset));
    store(k, &p, c->values);
    size_t i = (size_t)(k - c->table->keys);
    free(c->text[i]);
    c->text[i] = text;
    c->given[i] = !reset;
    return CB_OK;
}

CB_API const char *cb_config_get(const cb_config *c, const char *key) {
    const cb_config_key_def *k = c ? cb_config_table_find(c->table, key) : NULL;
    return k ? c->text[k - c->table->keys] : NULL;
}

CB_API int cb_config_given(const cb_config *c, const char *key) {
    const cb_config_key_def *k = c && key ? cb_config_table_find(c->table, key) : NULL;
    return k && c->given[k - c->table->keys];
}

int cb_config_create_from_table(cb_config **out, const cb_config_table *t, cb_error *err) {
    if (!out || !t) return cb_fail(err, CB_EINVAL, "cb_config_create: NULL argument");
    *out = NULL;
    cb_config *c = cb_calloc(1, sizeof *c, err);
    if (!c) return CB_ENOMEM;
    c->table = t;
    c->values = cb_calloc(1, t->size, err);
    c->text = c->values ? cb_calloc(t->n_keys + 1, sizeof *c->text, err) : NULL;
    c->given = c->text ? cb_calloc(t->n_keys + 1, sizeof *c->given, err) : NULL;
    if (!c->given) return cb_config_free(c), CB_ENOMEM;
    if (t->init) t->init(c->values);
    /* init may have left pointers in STRING fields that the config does not own */
    for (size_t i = 0; i < t->n_keys; i++)
        if (t->keys[i].type == CB_KEY_STRING) *(char **)((char *)c->values + t->keys[i].offset) = NULL;
    for (size_t i = 0; i < t->n_keys; i++) {
        const cb_config_key_def *k = &t->keys[i];
        if (k->type == CB_KEY_U32_LIST && k->max_count > LIST_MAX) {
            cb_config_free(c);
            return cb_fail(err, CB_EINVAL, "%s key '%s': list capacity over %d", t->name, k->name, LIST_MAX);
        }
        int rc = cb_config_set(c, k->name, k->default_value, err);
        if (rc) {
            cb_config_free(c);
            return rc;
        }
    }
    memset(c->given, 0, t->n_keys * sizeof *c->given); /* the defaults are not given */
    *out = c;
    return CB_OK;
}

int cb_config_table_defaults(const cb_config_table *t, void *values, cb_error *err) {
    if (t->init) t->init(values);
    else memset(values, 0, t->size);
    for (size_t i = 0; i < t->n_keys; i++) {
        int rc = cb_config_key_parse(&t->keys[i], t->keys[i].default_value, values, err);
        if (rc) return rc;
    }
    return CB_OK;
}

int cb_config_table_key(const cb_config_table *t, size_t i, cb_config_key_info *out) {
    if (!t || !out || i >= t->n_keys) return CB_ENOTFOUND;
    const cb_config_key_def *k = &t->keys[i];
    out->name = k->name;
    out->value_hint = k->value_hint;
    out->default_value = k->default_value;
    out->help = k->help;
    out->section = k->section;
    out->is_bool = k->type == CB_KEY_BOOL;
    return CB_OK;
}
