/* libFuzzer target for the model-file loader: any byte string written as a
 * model file must load cleanly or be refused with a message, never crash.
 * Seeds are real model files (scripts/fuzz-model.sh trains a tiny one). The
 * mutator mostly breaks the checksum, so most inputs stop there; the
 * validation behind it (shapes, indices, feature widths) is also covered by
 * tests that write inconsistent files with a valid checksum. A model that
 * loads is used: a prediction and a cold-start user vector (feature
 * transform -> user tower). */
#include "model/bundle.h"
#include "base/st.h"
#include "fuzz_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void load(const char *path) {
    cb_error err;
    cb_bundle *r = NULL;
    if (cb_bundle_load(&r, path, &err) == CB_OK) {
        /* touch what a loaded model exposes */
        volatile float s = 0;
        for (uint32_t i = 0; i < r->n_items && i < 4; i++) s += cb_bundle_predict_vec(r, r->user_vecs, i);
        (void)s;
        float *x = calloc(cb_features_user_dim(r->features) + 1, sizeof *x), *v = calloc(r->dim + 1, sizeof *v);
        cb_user_input in = {0};
        if (x && v && cb_features_new_user(r->features, &in, x, &err) == CB_OK)
            cb_model_user_vectors(r->model, x, 1, v, &err);
        free(x);
        free(v);
        cb_bundle_free(r);
    } else if (err.msg[0] == '\0') {
        abort(); /* a refusal must say why */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    if (!fuzz_write_file(path, "model", data, size)) return 0;
    load(path);
    remove(path);
    return 0;
}
