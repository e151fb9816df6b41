/* libFuzzer target for the index-file loader (cb_recommender_load_index over
 * cb_hnsw_load): any byte string written as an index file of the model
 * $CBREC_FUZZ_MODEL is either attached or refused with a message, never a
 * crash, a hang or an out-of-range link. An index that loads is searched:
 * similar items of a few items and one user's list, approximately (the walk
 * follows every link the file holds). Built with CB_FUZZ_NO_CHECKSUM so
 * mutated files reach the validators behind the checksum. Seeds are real
 * index files of that model (scripts/fuzz-model.sh writes them). */
#include "fuzz_file.h"

static cb_recommender *rec;
static cb_config *opts; /* recommend: n 5, the embedding source on (the catalog search) */

static void search(void) {
    cb_error err;
    cb_list *l = NULL;
    size_t n = cb_recommender_item_count(rec);
    for (size_t i = 0; i < n && i < 3; i++) {
        if (cb_recommender_similar(rec, i, n > 5 ? 5 : n - 1, &l, &err) == CB_OK) cb_list_free(l);
        else if (!err.msg[0]) abort();
        l = NULL;
    }
    if (cb_recommender_recommend(rec, cb_recommender_user_id(rec, 0), NULL, opts, &l, &err) == CB_OK) cb_list_free(l);
    else if (!err.msg[0]) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cb_error err;
    rec = fuzz_model(&opts, "5");
    char path[64];
    if (!fuzz_write_file(path, "index", data, size)) return 0;
    if (cb_recommender_load_index(rec, path, &err) == CB_OK) {
        if (cb_recommender_set_search(rec, CB_SEARCH_APPROX, 0, &err)) abort(); /* an index is attached */
        search();
    } else if (!err.msg[0]) {
        abort(); /* a refusal must say why */
    }
    remove(path);
    return 0;
}
