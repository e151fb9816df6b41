/* live — the profile of a user with live events: a known user's training
 * ratings plus ratings that arrived after training (a server's events), or
 * a user the model has never seen, known only from such events. The user
 * tower embeds the merged profile at once: no retraining. */
#include "rec/recommend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* j (a new-user JSON object, changed in place) gains the known user u's
 * training ratings (ratings j already holds win: they are newer) and its
 * categorical attribute levels (unless j sets that attribute). */
static int merge_known_user(json_t *j, const cb_bundle *r, uint32_t u, cb_error *err) {
    json_t *extra = json_object_get(j, "ratings");
    if (extra && !json_is_object(extra))
        return cb_fail(err, CB_EPARSE, "live events: \"ratings\" must be an object {\"<item id>\": rating}");
    int rc = cb_bundle_history_rows(r, u, err);
    if (rc) return rc;
    json_t *merged = json_object();
    if (!merged) return cb_fail(err, CB_ENOMEM, "out of memory");
    for (int32_t k = r->seen_off[u]; k < r->seen_off[u + 1]; k++)
        json_object_set_new(merged, cb_bundle_item_id(r, (uint32_t)r->seen_item[k]), json_real(r->seen_y[k]));
    const char *key;
    json_t *v;
    json_object_foreach(extra, key, v) {
        json_object_del(merged, key); /* re-inserted last: the newest rating is the most recent anchor */
        json_object_set(merged, key, v);
    }
    json_object_set_new(j, "ratings", merged);
    for (uint32_t g = 0; g < r->n_groups; g++) {
        int32_t level = r->groups[g].user_level[u];
        if (level >= 0 && !json_object_get(j, r->groups[g].column))
            json_object_set_new(j, r->groups[g].column, json_string(r->groups[g].levels[level]));
    }
    return CB_OK;
}

int cb_rec_profile_live(cb_profile *p, const cb_recommender *h, const char *user_id, const char *user_json,
                        cb_error *err) {
    memset(p, 0, sizeof *p);
    json_error_t je;
    json_t *j = json_loads(user_json, JSON_REJECT_DUPLICATES, &je);
    if (!j) return cb_fail(err, CB_EPARSE, "live events JSON:%d:%d: %s", je.line, je.column, je.text);
    int64_t u = cb_bundle_user(h->r, user_id);
    int rc = json_is_object(j) ? CB_OK : cb_fail(err, CB_EPARSE, "live events JSON: must be an object");
    if (!rc && u >= 0) rc = merge_known_user(j, h->r, (uint32_t)u, err);
    if (!rc) rc = cb_recommend_profile_json(p, h->r, j, "live events JSON", err);
    if (!rc) {
        p->user = u;
        if (u < 0)
            snprintf(p->note, sizeof p->note, "user %.64s is not in the model: a profile from its live events only",
                     user_id);
    }
    json_decref(j);
    return rc;
}
