/* libFuzzer target for block files (cb_recommender_set_block_file: the
 * "block-file" option of recommend, similar and serve): any byte string
 * written as a block file of the model $CBREC_FUZZ_MODEL is either taken or
 * refused with a message naming the file, never a crash or a hang. A list
 * that is taken is used: one user's list and one item's similar items must
 * hold no item the list blocks. Seeds: fuzz/corpus/block. */
#include "fuzz_file.h"

#include <string.h>

static cb_recommender *rec;
static cb_config *opts; /* recommend: n 10 */

static void check(const cb_list *l) {
    for (size_t i = 0; i < cb_list_size(l); i++)
        if (cb_recommender_item_blocked(rec, cb_list_item(l, i))) abort(); /* a blocked item shown */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cb_error err;
    rec = fuzz_model(&opts, "10");
    char path[64];
    if (!fuzz_write_file(path, "block", data, size)) return 0;
    if (cb_recommender_set_block_file(rec, path, &err) == CB_OK) {
        cb_list *l = NULL;
        if (cb_recommender_recommend(rec, cb_recommender_user_id(rec, 0), NULL, opts, &l, &err) == CB_OK) check(l);
        else if (!err.msg[0]) abort();
        cb_list_free(l), l = NULL;
        if (cb_recommender_similar(rec, 0, 5, &l, &err) == CB_OK) check(l);
        else if (!err.msg[0]) abort();
        cb_list_free(l);
    } else if (!strstr(err.msg, path)) {
        abort(); /* a refusal names the file */
    }
    remove(path);
    return 0;
}
