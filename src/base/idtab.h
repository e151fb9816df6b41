/* idtab — a read-only table of n strings (user ids, item ids, titles) as
 * two flat arrays, the way a model file stores them: `offsets` [n + 1]
 * (int32, offsets[0] = 0) and `bytes` (every string followed by its NUL), so
 * string i is bytes + offsets[i]; and, for ids, a hash index `index`
 * [n_slots] (uint32 stored as int32; a power of two >= 2n; slot = the string's
 * cb_hash64 (seed 0) masked, linear probing, entry = index + 1, 0 empty).
 *
 * A table either owns its arrays (built from a vocabulary or a list of
 * names) or points into a mapped st file (cb_idtab_from_st): loading one
 * is three pointer look-ups, one pass over the offsets and, for ids, one
 * check of the stored index (each string hashed once and found from its home
 * slot: this is what refuses a file holding the same id twice), with no
 * allocation per string; a look-up hashes only the string asked for.
 * Read-only after creation: may be shared between threads. */
#ifndef CB_IDTAB_H
#define CB_IDTAB_H

#include "base/st.h"
#include "base/util.h"

typedef struct cb_idtab cb_idtab;

/* From a vocabulary (ids, indexed) or from n names (names may be NULL: all
 * empty), each of which may be NULL (stored as ""; `indexed` false: no look-ups, e.g. titles). With `indexed`, a
 * duplicate name is CB_EFORMAT naming `what` and the name. */
int cb_idtab_from_vocab(cb_idtab **out, const cb_vocab *v, cb_error *err);
int cb_idtab_from_names(cb_idtab **out, const char *const *names, uint32_t n, bool indexed, const char *what,
                        cb_error *err);
/* The tensors `<prefix>.offsets`, `<prefix>.bytes` and (indexed)
 * `<prefix>.index` of st, which must hold n strings: checked (shapes,
 * monotone offsets inside the bytes, every string NUL-terminated, index size;
 * indexed: the index finds every string, holds each entry once, and no id is
 * there twice) and pointed into, not copied: st must outlive the table.
 * CB_EFORMAT naming the file and tensor (or the duplicate id) otherwise. */
int cb_idtab_from_st(cb_idtab **out, const cb_st *st, const char *prefix, uint32_t n, bool indexed, cb_error *err);
/* Add the table's tensors to w under `prefix` (its arrays must stay alive
 * until cb_st_write). */
int cb_idtab_save(const cb_idtab *t, cb_st_writer *w, const char *prefix, cb_error *err);
void cb_idtab_free(cb_idtab *t); /* NULL is a no-op */

uint32_t cb_idtab_size(const cb_idtab *t); /* NULL: 0 */
/* String i (NUL-terminated, "" for a NULL name), or NULL when i >= size. */
const char *cb_idtab_name(const cb_idtab *t, uint32_t i);
/* Index of the string s[0..len), or -1 (also for a table without index). */
int64_t cb_idtab_find(const cb_idtab *t, const char *s, size_t len);

#endif
