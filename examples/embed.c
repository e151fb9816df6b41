/* embed — using libcbrec from another program through include/cbrec.h only:
 * load a model (and optionally a similar-items table), print the items
 * similar to one item and the recommendations, with reasons, for a known
 * user and for a new user described by JSON.
 *
 *   make examples      (build/examples/embed, against include/ and the static
 *                       libcbrec.a: runs from the build tree, no install needed)
 *   build/examples/embed MODEL USER_ID ITEM_ID ['{"genre_ratings": {"Adventure": 5}}']
 *
 * Against the shared library of the build tree (make puts the soname link
 * libcbrec.so.1 beside libcbrec.so):
 *   cc -Iinclude -o embed examples/embed.c -L. -lcbrec -Wl,-rpath,"$PWD"
 * or after `make install`: cc -o embed examples/embed.c $(pkg-config --cflags --libs cbrec)
 *
 * tests/test_recommend.c compiles this file (as embed_main) and runs it. */
#include "cbrec.h"

#include <stdio.h>
#include <stdlib.h>

static void print_list(const char *what, const cb_list *l) {
    printf("%s (score: %s):\n", what, cb_list_criterion(l));
    for (size_t i = 0; i < cb_list_n_notes(l); i++) printf("  note: %s\n", cb_list_note(l, i));
    for (size_t i = 0; i < cb_list_size(l); i++) {
        printf("  %2zu %-8s %7.4f  %s\n", i + 1, cb_list_item_id(l, i), (double)cb_list_score(l, i), cb_list_title(l, i));
        for (size_t k = 0; k < cb_list_n_reasons(l, i); k++) printf("       - %s\n", cb_list_reason(l, i, k));
    }
}

#ifndef EMBED_MAIN
#define EMBED_MAIN main
#endif

int EMBED_MAIN(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL USER_ID ITEM_ID [NEW_USER_JSON]\n", argv[0]);
        return 2;
    }
    cb_error err;
    cb_recommender *rec = NULL;
    cb_config *opts = NULL;
    cb_list *list = NULL;
    size_t item;
    int status = 1;
    if (cb_recommender_load(&rec, argv[1], NULL, &err)) goto fail;
    printf("cbrec %s, %zu items, vectors of %zu\n", cb_version(), cb_recommender_item_count(rec),
           cb_recommender_dim(rec));
    if (cb_recommender_find_item(rec, argv[3], &item, NULL, 0, NULL, &err)) goto fail;
    if (cb_recommender_similar(rec, item, 5, &list, &err)) goto fail;
    print_list("similar items", list);
    cb_list_free(list);
    list = NULL;
    /* per-call options: 5 items, diversified by MMR */
    if (cb_config_create(&opts, CB_CONFIG_RECOMMEND, &err) || cb_config_set(opts, "n", "5", &err) ||
        cb_config_set(opts, "diversity", "mmr", &err))
        goto fail;
    if (cb_recommender_recommend(rec, argv[2], NULL, opts, &list, &err)) goto fail;
    print_list("recommended for the user", list);
    cb_list_free(list);
    list = NULL;
    if (argc > 4) {
        float v[4096];
        if (cb_recommender_dim(rec) <= 4096 && cb_recommender_new_user_vector(rec, argv[4], v, &err)) goto fail;
        if (cb_recommender_recommend(rec, NULL, argv[4], opts, &list, &err)) goto fail;
        print_list("recommended for the new user", list);
        char *json = NULL;
        if (cb_list_to_json(list, &json, &err)) goto fail;
        printf("as JSON: %.60s...\n", json);
        free(json);
    }
    status = 0;
    goto done;
fail:
    fprintf(stderr, "embed: %s (%s)\n", err.msg, cb_strstatus(err.code));
done:
    cb_list_free(list);
    cb_config_free(opts);
    cb_recommender_free(rec);
    return status;
}
