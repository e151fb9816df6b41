/* libFuzzer target for the generic layout's schema parser: any byte string as
 * a cbrec.schema must load (with the tiny files the script writes beside it)
 * or be refused with a message, never crash or hang. The folder is
 * $CBREC_FUZZ_DIR (scripts/fuzz-targets.sh makes it: ratings.csv, items.csv,
 * users.csv). */
#include "data/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    static char path[4096];
    const char *dir = getenv("CBREC_FUZZ_DIR");
    if (!dir) return 0;
    snprintf(path, sizeof path, "%s/fuzz.schema", dir);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    cb_load_options opt;
    cb_load_options_default(&opt);
    opt.schema = path;
    cb_dataset *ds = NULL;
    cb_error err;
    if (cb_dataset_load(&ds, dir, &opt, &err) == CB_OK) cb_dataset_free(ds);
    else if (!err.msg[0]) abort(); /* an error always says why */
    return 0;
}
