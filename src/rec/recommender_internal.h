/* recommender_internal — what the library's own layers (training: rec/api_train.c)
 * need of the public cb_recommender beyond include/cbrec.h: making one over a
 * freshly trained bundle, and reaching that bundle to continue training it. */
#ifndef CB_RECOMMENDER_INTERNAL_H
#define CB_RECOMMENDER_INTERNAL_H

#include "model/bundle.h"

/* A new recommender over b. Takes ownership of b, also on failure (then b is
 * freed and *out is NULL). */
int cb_recommender_from_bundle(cb_recommender **out, cb_bundle *b, cb_error *err);
/* The bundle rec serves (owned by rec), to be changed in place [exclusive];
 * call cb_recommender_bundle_changed afterwards. */
cb_bundle *cb_recommender_bundle(cb_recommender *rec);
/* Rebuild what rec derived from its bundle after the bundle's vectors changed
 * (training resumed): the search context; a similar-items table built from the
 * old vectors is dropped, and so are items added with cb_recommender_add_item
 * (their vectors came from the old item tower: add them again). */
int cb_recommender_bundle_changed(cb_recommender *rec, cb_error *err);

#endif
