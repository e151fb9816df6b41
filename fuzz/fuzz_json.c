/* libFuzzer target for the user-given JSON of a loaded model: the first byte
 * picks the new-user JSON (cb_recommender_new_user_vector, the recommend
 * pipeline) or the add-item JSON (cb_recommend_embed_item: parse, range
 * check, feature row, item tower); the rest is the JSON text. Either it is
 * accepted with a finite vector, or refused with a message, never a crash.
 * The model is $CBREC_FUZZ_MODEL (scripts/fuzz-targets.sh trains a tiny one). */
#include "rec/recommend.h"
#include <jansson.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cb_recommender *rec;

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    cb_error err;
    if (!rec && (!getenv("CBREC_FUZZ_MODEL") || cb_recommender_load(&rec, getenv("CBREC_FUZZ_MODEL"), NULL, &err)))
        return 0;
    if (size < 1) return 0;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    size_t dim = cb_recommender_dim(rec);
    float *v = calloc(dim + 1, sizeof *v);
    if (data[0] & 1) {
        if (cb_recommender_new_user_vector(rec, text, v, &err) == CB_OK) {
            for (size_t d = 0; d < dim; d++)
                if (!isfinite(v[d])) abort();
        } else if (!err.msg[0]) abort();
    } else {
        json_error_t je;
        json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
        char *id = NULL, *title = NULL, notes[512];
        if (j && cb_recommend_embed_item(rec->r, j, "fuzz", v, &id, &title, notes, sizeof notes, &err) == CB_OK) {
            for (size_t d = 0; d < dim; d++)
                if (!isfinite(v[d])) abort();
        }
        free(id);
        free(title);
        json_decref(j);
    }
    free(v);
    free(text);
    return 0;
}
