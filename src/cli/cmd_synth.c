/* cmd_synth — `cbrec synth --out DIR`: generate a synthetic dataset with
 * planted structure (cb_synth_write_folder; the generator is data/synth.c)
 * and write it as a MovieLens-style folder that `cbrec inspect --data DIR`
 * and every other command can load. The options are the SYNTH keys. */
#include "cli.h"

int cmd_synth(int argc, char **argv) {
    const char *out_dir = NULL;
    const cli_opt opts[] = {{"out", 'o', "DIR", "output folder (created if missing; files replaced atomically)", &out_dir, NULL, NULL},
                            {NULL, 0, NULL, NULL, NULL, NULL, NULL}};
    const cli_command c = {
        "synth",
        "usage: cbrec synth --out DIR [--users N] [--items N] [--ratings N] [--genres N] [--noise X] [--seed S]\n"
        "                   [--layout movielens|generic]\n\n"
        "Generate synthetic ratings with planted structure: users' hidden genre tastes\n"
        "depend on their age, gender, occupation and region; items have 1-3 genres, a year\n"
        "and Zipf-like popularity; rating = clip(round_half(3.3 + 0.8 taste.genres + quality\n"
        "+ user bias + noise), 0.5, 5). Writes DIR/ratings.csv, movies.csv, users.csv and a\n"
        "cbrec.schema declaring the three (so the demographics load too).\n",
        opts, CB_CONFIG_SYNTH, NULL};
    cb_error err = {0};
    cb_config *cfg = NULL;
    cb_dataset *ds = NULL;
    if (cb_config_create(&cfg, CB_CONFIG_SYNTH, &err)) return cli_error("synth", &err);
    int status = cli_parse(&c, cfg, argc, argv);
    if (status < 0 && !out_dir) status = cli_usage_error(&c, "--out DIR is required");
    double t0 = cli_now();
    if (status < 0 && cb_synth_write_folder(out_dir, cfg, &err)) status = cli_error("synth", &err);
    double t1 = cli_now();
    /* read it back: the counts are what a user of the folder will see */
    if (status < 0 && cb_dataset_open(&ds, out_dir, NULL, &err)) status = cli_error("synth", &err);
    if (status < 0) {
        printf("wrote %s: %zu users, %zu items, %zu ratings, %s genres (seed %s; generated and written in %.2f s)\n",
               out_dir, cb_dataset_user_count(ds), cb_dataset_item_count(ds), cb_dataset_rating_count(ds),
               cb_config_get(cfg, "genres"), cb_config_get(cfg, "seed"), t1 - t0);
        status = CLI_OK;
    }
    cb_dataset_close(ds);
    cb_config_free(cfg);
    return status;
}
