/* fuzz_file — what the targets that fuzz a file reader share: the input
 * written as a file, and the model $CBREC_FUZZ_MODEL loaded once with a
 * recommend config of n items (the scripts train a tiny one). */
#ifndef CB_FUZZ_FILE_H
#define CB_FUZZ_FILE_H

#include "cbrec.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* data written to /tmp/cbrec-fuzz-<what>-<pid> (path, 64 bytes); false if it cannot be. */
static inline bool fuzz_write_file(char *path, const char *what, const uint8_t *data, size_t size) {
    snprintf(path, 64, "/tmp/cbrec-fuzz-%s-%d", what, (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    fwrite(data, 1, size, f);
    fclose(f);
    return true;
}

/* The model, loaded at the first call, and a recommend config asking for n items. */
static inline cb_recommender *fuzz_model(cb_config **opts, const char *n) {
    static cb_recommender *rec;
    static cb_config *cfg;
    cb_error err;
    if (!rec && (!getenv("CBREC_FUZZ_MODEL") || cb_recommender_load(&rec, getenv("CBREC_FUZZ_MODEL"), NULL, &err) ||
                 cb_config_create(&cfg, CB_CONFIG_RECOMMEND, &err) || cb_config_set(cfg, "n", n, &err)))
        abort(); /* the script's setup is broken */
    *opts = cfg;
    return rec;
}

#endif
