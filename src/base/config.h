/* config — the generic key table behind the public cb_config (include/cbrec.h).
 *
 * A kind of configuration (train, recommend, synth, ...) is a plain C struct
 * plus a table of keys; each key has a name ("valid-frac"), a value hint, a
 * default as text, one line of help, a section, a type and where its value
 * lives in the struct (offsetof). The module that a kind configures owns its
 * table (model/train_config.c, data/synth_config.c, rec/...); this file only
 * knows the types. rec/api_config.c maps the public cb_config_kind numbers to
 * the tables.
 *
 * One home: a value is parsed and range-checked once, here, by
 * cb_config_set; the kind's code then reads the typed struct
 * (cb_config_values). The defaults are the table's default strings, applied
 * with the same parser when a config is created (after the table's `init`,
 * which sets the fields no key reaches). The current value of every key is
 * also kept as text, so cb_config_get only reads.
 *
 * Types and their storage (the C type of the field at `offset`):
 *   F64 double · F32 float · U32 uint32_t · U64 uint64_t · SIZE size_t · INT int
 *   BOOL bool, or — with two choices — an int/enum field holding choices[0].value
 *        for false and choices[1].value for true
 *   ENUM int/enum field, one of `choices` (by name)
 *   STRING const char * owned by the config ("" is stored as NULL)
 *   U32_LIST uint32_t[max_count] at offset, its length (uint32_t) at offset2;
 *        "" or "none" is the empty list; each element in [min, max]
 *   F32_RANGE two floats MIN,MAX at offset and offset2 (MIN < MAX); "none" = 0,0
 * Numbers accept [min, max]; numeric keys may also name special values in
 * `choices` (e.g. "auto" for UINT32_MAX). */
#ifndef CB_CONFIG_H
#define CB_CONFIG_H

#include "base/util.h"
#include <stddef.h>

typedef enum cb_key_type {
    CB_KEY_F64,
    CB_KEY_F32,
    CB_KEY_U32,
    CB_KEY_U64,
    CB_KEY_SIZE,
    CB_KEY_INT,
    CB_KEY_BOOL,
    CB_KEY_ENUM,
    CB_KEY_STRING,
    CB_KEY_U32_LIST,
    CB_KEY_F32_RANGE
} cb_key_type;

typedef struct cb_config_choice {
    const char *name;    /* NULL ends a list */
    int64_t value;
} cb_config_choice;

typedef struct cb_config_key_def {
    const char *name, *value_hint, *default_value, *help, *section;
    cb_key_type type;
    size_t offset;                   /* of the value in the kind's struct */
    size_t offset2;                  /* U32_LIST: the count; F32_RANGE: the max */
    double min, max;                 /* accepted numbers (list elements too) */
    size_t max_count;                /* U32_LIST capacity */
    const cb_config_choice *choices; /* ENUM names; BOOL as enum; numeric special values */
} cb_config_key_def;

typedef struct cb_config_table {
    cb_config_kind kind;
    const char *name;                /* "train", "synth", ... (for messages) */
    const cb_config_key_def *keys;
    size_t n_keys;
    size_t size;                     /* sizeof the kind's struct */
    void (*init)(void *values);      /* fields no key sets; NULL: zeroed */
} cb_config_table;

struct cb_config {
    const cb_config_table *table;
    void *values;                    /* the kind's struct */
    char **text;                     /* [n_keys] current values as text */
    bool *given;                     /* [n_keys] set by cb_config_set after creation */
};

/* A new config of table t: init, then every key's default (a bad default is a
 * CB_EINVAL naming the key: a bug in the table, caught by the tests). */
int cb_config_create_from_table(cb_config **out, const cb_config_table *t, cb_error *err);
/* Fill `values` (a struct of table t) with init and every key's default,
 * without a cb_config: STRING fields point at the table's static default
 * text (NULL for ""). Fails only on a bad default (a bug in the table, caught
 * by tests/test_config.c). */
int cb_config_table_defaults(const cb_config_table *t, void *values, cb_error *err);
/* The typed values of c if it is of `kind`, else NULL. */
const void *cb_config_values(const cb_config *c, cb_config_kind kind);
/* Key of table t by name, or NULL. */
const cb_config_key_def *cb_config_table_find(const cb_config_table *t, const char *name);
/* Parse `text` as key k and store it into `values` (a struct of k's table).
 * STRING keys store `text` itself (not a copy): this is for callers that
 * hold their own structs (cmd_eval's options); cb_config_set copies. */
int cb_config_key_parse(const cb_config_key_def *k, const char *text, void *values, cb_error *err);
/* Public key info of key i of t (CB_ENOTFOUND past the end). */
int cb_config_table_key(const cb_config_table *t, size_t i, cb_config_key_info *out);

#endif /* CB_CONFIG_H */
