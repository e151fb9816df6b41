/* cbrec similar / precompute / recommend / add-item — the front end of the
 * recommend module: parse options, load the model (and table), call the
 * library, print for people or as JSON lines. */
#include "cli.h"
#include "rec/recommend.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static bool parse_count(const char *s, uint32_t lo, uint32_t hi, uint32_t *out) {
    int64_t v;
    if (!cb_parse_i64(s, strlen(s), &v) || v < lo || v > hi) return false;
    *out = (uint32_t)v;
    return true;
}

static void print_json_line(json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    if (s) puts(s);
    free(s);
    json_decref(o);
}

/* Load the model, the optional table, and make a context. */
typedef struct session {
    cb_bundle *rec;
    cb_recommend_table table;
    bool has_table;
    cb_recommend_ctx *ctx;
} session;

static int session_open(session *s, const char *model, const char *table, cb_error *err) {
    memset(s, 0, sizeof *s);
    int rc = cb_bundle_load(&s->rec, model, err);
    if (!rc && table) {
        rc = cb_recommend_table_load(&s->table, s->rec, table, err);
        s->has_table = rc == CB_OK;
    }
    if (!rc) rc = cb_recommend_ctx_create(&s->ctx, s->rec, s->has_table ? &s->table : NULL, err);
    return rc;
}

static void session_close(session *s) {
    cb_recommend_ctx_free(s->ctx);
    cb_recommend_table_free(&s->table);
    cb_bundle_free(s->rec);
}

/* ---- similar */

static const char *similar_usage =
    "usage: cbrec similar --model FILE --item ID|TITLE [-k 10] [--table TABLE] [--json]\n"
    "the k items nearest to an item by squared distance of the item vectors (the item itself\n"
    "excluded). --item takes an id, else a case-insensitive title (\"Toy Story\"); when several\n"
    "titles match, the candidates are listed and the status is 1. --table looks the answer up\n"
    "in a table from `cbrec precompute` (the same answer as the exact search).\n"
    "  --json    one JSON object per line: rank, item, title, distance\n";

int cmd_similar(int argc, char **argv) {
    const char *cmd = "similar", *model = NULL, *item = NULL, *table = NULL;
    uint32_t k = 10;
    bool json = false;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"item", required_argument, 0, 'i'},
                                         {"table", required_argument, 0, 't'}, {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:k:t:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'i': item = optarg; break;
        case 't': table = optarg; break;
        case 'j': json = true; break;
        case 'k':
            if (!parse_count(optarg, 1, 1u << 30, &k)) return cli_fail(CLI_USAGE, cmd, "-k must be a positive integer");
            break;
        case 'h': fputs(similar_usage, stdout); return CLI_OK;
        default: fputs(similar_usage, stderr); return CLI_USAGE;
        }
    }
    if (optind < argc) return cli_fail(CLI_USAGE, cmd, "unexpected argument '%s'", argv[optind]);
    if (!model || !item) return fputs(similar_usage, stderr), CLI_USAGE;
    cb_error err;
    cb_error_clear(&err);
    session s;
    int status = CLI_ERROR;
    cb_neighbor *out = NULL;
    if (session_open(&s, model, table, &err)) {
        cli_error(cmd, &err);
        goto done;
    }
    uint32_t idx, cands[10];
    size_t n_cands = 0;
    if (cb_recommend_find_item(s.ctx, item, &idx, cands, 10, &n_cands, &err)) {
        cli_error(cmd, &err);
        if (n_cands) {
            fprintf(stderr, "candidates (most rated first); choose one with --item ID:\n");
            for (size_t i = 0; i < n_cands; i++)
                fprintf(stderr, "  %-8s %s\n", cb_recommend_item_id(s.ctx, cands[i]),
                        cb_recommend_item_title(s.ctx, cands[i]));
        }
        goto done;
    }
    out = malloc((size_t)k * sizeof *out);
    size_t n = 0;
    char note[256];
    if (!out) {
        status = cli_fail(CLI_ERROR, cmd, "out of memory");
        goto done;
    }
    if (cb_recommend_similar(s.ctx, idx, k, out, &n, note, sizeof note, &err)) {
        cli_error(cmd, &err);
        goto done;
    }
    if (note[0]) fprintf(stderr, "note: %s\n", note);
    if (!json)
        printf("items similar to %s (%s), by squared distance:\n", cb_recommend_item_title(s.ctx, idx),
               cb_recommend_item_id(s.ctx, idx));
    for (size_t i = 0; i < n; i++) {
        const char *id = cb_recommend_item_id(s.ctx, out[i].item), *title = cb_recommend_item_title(s.ctx, out[i].item);
        if (json)
            print_json_line(json_pack("{s:i,s:s,s:s,s:f}", "rank", (int)(i + 1), "item", id, "title", title, "distance",
                                      (double)out[i].distance));
        else printf("%3zu  %-8s %.4f  %s\n", i + 1, id, (double)out[i].distance, title);
    }
    status = CLI_OK;
done:
    free(out);
    session_close(&s);
    return status;
}

/* ---- precompute */

static const char *precompute_usage =
    "usage: cbrec precompute --model FILE --out TABLE [-k 20] [--threads N]\n"
    "the similar-items table of the whole catalog (k nearest per item), written atomically;\n"
    "use it with `cbrec similar --table` and `cbrec recommend --table`.\n";

int cmd_precompute(int argc, char **argv) {
    const char *cmd = "precompute", *model = NULL, *out = NULL;
    uint32_t k = 20, threads = 0;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"out", required_argument, 0, 'o'},
                                         {"threads", required_argument, 0, 'T'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'o': out = optarg; break;
        case 'k':
            if (!parse_count(optarg, 1, 1u << 20, &k)) return cli_fail(CLI_USAGE, cmd, "-k must be 1..2^20");
            break;
        case 'T':
            if (!parse_count(optarg, 1, 256, &threads)) return cli_fail(CLI_USAGE, cmd, "--threads must be 1..256");
            break;
        case 'h': fputs(precompute_usage, stdout); return CLI_OK;
        default: fputs(precompute_usage, stderr); return CLI_USAGE;
        }
    }
    if (optind < argc) return cli_fail(CLI_USAGE, cmd, "unexpected argument '%s'", argv[optind]);
    if (!model || !out) return fputs(precompute_usage, stderr), CLI_USAGE;
    cb_error err;
    cb_error_clear(&err);
    cb_bundle *r = NULL;
    cb_recommend_table t = {0};
    bool clamped;
    int status = CLI_ERROR;
    double t0 = cb_now();
    if (cb_bundle_load(&r, model, &err) || cb_recommend_table_build(&t, r, k, (int)threads, &clamped, &err)) {
        cli_error(cmd, &err);
        goto done;
    }
    if (clamped) fprintf(stderr, "note: k = %u is more than the other items in the catalog; using %zu\n", k, t.knn.k);
    double t1 = cb_now();
    if (cb_recommend_table_save(&t, out, r->fingerprint, &err)) {
        cli_error(cmd, &err);
        goto done;
    }
    fprintf(stderr, "wrote %s: %zu items x %zu neighbours (search %.2fs)\n", out, t.knn.n_items, t.knn.k, t1 - t0);
    status = CLI_OK;
done:
    cb_recommend_table_free(&t);
    cb_bundle_free(r);
    return status;
}

/* ---- add-item */

static const char *add_item_usage =
    "usage: cbrec add-item --model FILE --table TABLE --item-json FILE --out TABLE2\n"
    "embed a new item from its features (no retraining) and insert it into a similar-items\n"
    "table; TABLE2 carries the new item's id, title and vector, so `cbrec similar --table TABLE2`\n"
    "shows it. FILE: {\"id\": \"x1\", \"title\": \"T (2024)\", \"genres\": [\"Adventure\"], ...}\n";

int cmd_add_item(int argc, char **argv) {
    const char *cmd = "add-item", *model = NULL, *table = NULL, *item_json = NULL, *out = NULL;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"table", required_argument, 0, 't'},
                                         {"item-json", required_argument, 0, 'i'}, {"out", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:i:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 't': table = optarg; break;
        case 'i': item_json = optarg; break;
        case 'o': out = optarg; break;
        case 'h': fputs(add_item_usage, stdout); return CLI_OK;
        default: fputs(add_item_usage, stderr); return CLI_USAGE;
        }
    }
    if (optind < argc) return cli_fail(CLI_USAGE, cmd, "unexpected argument '%s'", argv[optind]);
    if (!model || !table || !item_json || !out) return fputs(add_item_usage, stderr), CLI_USAGE;
    cb_error err;
    cb_error_clear(&err);
    session s;
    json_t *j = NULL;
    float *vec = NULL;
    char *id = NULL, *title = NULL;
    int status = CLI_ERROR;
    if (session_open(&s, model, table, &err)) {
        cli_error(cmd, &err);
        goto done;
    }
    json_error_t je;
    if (!(j = json_load_file(item_json, JSON_REJECT_DUPLICATES, &je))) {
        status = cli_fail(CLI_ERROR, cmd, "%s:%d:%d: %s", item_json, je.line, je.column, je.text);
        goto done;
    }
    if (!(vec = calloc(s.rec->dim, sizeof *vec))) goto done;
    /* the context borrows the table: drop it while the table grows */
    cb_recommend_ctx_free(s.ctx);
    s.ctx = NULL;
    if (cb_recommend_embed_item(s.rec, j, item_json, vec, &id, &title, &err) ||
        cb_recommend_table_add(&s.table, s.rec, id, title, vec, &err) ||
        cb_recommend_table_save(&s.table, out, s.rec->fingerprint, &err) ||
        cb_recommend_ctx_create(&s.ctx, s.rec, &s.table, &err)) {
        cli_error(cmd, &err);
        goto done;
    }
    uint32_t idx = cb_recommend_n_items(s.ctx) - 1;
    cb_neighbor nb[10];
    size_t n = 0;
    size_t k = s.table.knn.k < 10 ? s.table.knn.k : 10;
    if (cb_recommend_similar(s.ctx, idx, k, nb, &n, NULL, 0, &err)) {
        cli_error(cmd, &err);
        goto done;
    }
    fprintf(stderr, "wrote %s: added item %s%s%s%s; its nearest items:\n", out, id, title ? " (" : "", title ? title : "",
            title ? ")" : "");
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%3zu  %-8s %.4f  %s\n", i + 1, cb_recommend_item_id(s.ctx, nb[i].item), (double)nb[i].distance,
                cb_recommend_item_title(s.ctx, nb[i].item));
    status = CLI_OK;
done:
    json_decref(j);
    free(vec);
    free(id);
    free(title);
    session_close(&s);
    return status;
}

/* ---- recommend */

static const char *recommend_usage =
    "usage: cbrec recommend --model FILE (--user ID | --new-user FILE.json) [-n 10] [options]\n"
    "retrieval from several sources, filtering, ranking by the model's predicted rating\n"
    "(v_u . v_m mapped to the rating scale), with the reasons for every item.\n"
    "  --explain              print the reasons (for people)\n"
    "  --json                 one JSON object per line: rank, item, title, score, reasons, sources\n"
    "  --new-user FILE        a new user: {\"genre_ratings\": {\"Adventure\": 5}, \"ratings\": {\"260\": 5},\n"
    "                         \"<user column>\": value} (all optional)\n"
    "  --table TABLE          similar-items table from `cbrec precompute` (else exact search)\n"
    "  --block FILE           never recommend these: lines \"item ID\", \"genre NAME\" or an id\n"
    "sources (0 turns one off):\n"
    "  --recent N             (1) similar items of the user's last N liked ratings (10)\n"
    "  --similar-per-item M   ... M nearest items each (10)   --all-anchors  use every rating, not\n"
    "                         only those at or above the user's mean\n"
    "  --top-genres N         (2) the user's top N genres (3)   --per-genre N items each (10)\n"
    "  --min-genre-ratings N  ratings a genre needs to count as a favourite (3)\n"
    "  --group-items N        (3) popular among users like them (20)\n"
    "  --group-by COLUMN      the attribute defining \"like them\" (default region when present;\n"
    "                         else overall popularity)\n"
    "  --embedding N          (4) top N by v_u . v_m over the whole catalog (50)\n"
    "  --no-similar --no-genre --no-group --no-embedding\n"
    "diversity (optional):\n"
    "  --diversity mmr:LAMBDA maximal marginal relevance re-rank, LAMBDA in [0,1] (relevance weight)\n"
    "  --genre-cap N          at most N items per genre\n"
    "  --threads N            threads of the exact searches (1)\n";

static json_t *str_array(char **s, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_string(s[i]));
    return a;
}

int cmd_recommend(int argc, char **argv) {
    const char *cmd = "recommend", *model = NULL, *user = NULL, *new_user = NULL, *table = NULL, *block = NULL;
    bool json = false, explain = false;
    cb_recommend_config cfg;
    cb_recommend_config_default(&cfg);
    enum { O_EXPLAIN = 256, O_JSON, O_NEW, O_TABLE, O_BLOCK, O_RECENT, O_SPI, O_ALLA, O_TOPG, O_PERG, O_MING, O_GROUPN,
           O_GROUPBY, O_EMB, O_NOSIM, O_NOGEN, O_NOGRP, O_NOEMB, O_DIV, O_CAP, O_THREADS };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"user", required_argument, 0, 'u'},
        {"new-user", required_argument, 0, O_NEW}, {"explain", no_argument, 0, O_EXPLAIN},
        {"json", no_argument, 0, O_JSON}, {"table", required_argument, 0, O_TABLE},
        {"block", required_argument, 0, O_BLOCK}, {"recent", required_argument, 0, O_RECENT},
        {"similar-per-item", required_argument, 0, O_SPI}, {"all-anchors", no_argument, 0, O_ALLA},
        {"top-genres", required_argument, 0, O_TOPG}, {"per-genre", required_argument, 0, O_PERG},
        {"min-genre-ratings", required_argument, 0, O_MING}, {"group-items", required_argument, 0, O_GROUPN},
        {"group-by", required_argument, 0, O_GROUPBY}, {"embedding", required_argument, 0, O_EMB},
        {"no-similar", no_argument, 0, O_NOSIM}, {"no-genre", no_argument, 0, O_NOGEN},
        {"no-group", no_argument, 0, O_NOGRP}, {"no-embedding", no_argument, 0, O_NOEMB},
        {"diversity", required_argument, 0, O_DIV}, {"genre-cap", required_argument, 0, O_CAP},
        {"threads", required_argument, 0, O_THREADS}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    uint32_t v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:u:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'u': user = optarg; break;
        case 'n':
            if (!parse_count(optarg, 1, 1u << 30, &cfg.n)) return cli_fail(CLI_USAGE, cmd, "-n must be a positive integer");
            break;
        case O_NEW: new_user = optarg; break;
        case O_EXPLAIN: explain = true; break;
        case O_JSON: json = true; break;
        case O_TABLE: table = optarg; break;
        case O_BLOCK: block = optarg; break;
        case O_RECENT:
            if (!parse_count(optarg, 0, 1u << 20, &cfg.recent_items)) return cli_fail(CLI_USAGE, cmd, "bad --recent");
            break;
        case O_SPI:
            if (!parse_count(optarg, 1, 1u << 20, &cfg.similar_per_item))
                return cli_fail(CLI_USAGE, cmd, "bad --similar-per-item");
            break;
        case O_ALLA: cfg.anchors_all = true; break;
        case O_TOPG:
            if (!parse_count(optarg, 0, 32, &cfg.top_genres)) return cli_fail(CLI_USAGE, cmd, "--top-genres must be 0..32");
            break;
        case O_PERG:
            if (!parse_count(optarg, 1, CB_BUNDLE_TOP_LIST, &cfg.per_genre))
                return cli_fail(CLI_USAGE, cmd, "--per-genre must be 1..%d", CB_BUNDLE_TOP_LIST);
            break;
        case O_MING:
            if (!parse_count(optarg, 0, 1u << 30, &cfg.min_genre_ratings))
                return cli_fail(CLI_USAGE, cmd, "bad --min-genre-ratings");
            break;
        case O_GROUPN:
            if (!parse_count(optarg, 0, CB_BUNDLE_TOP_LIST, &cfg.group_items))
                return cli_fail(CLI_USAGE, cmd, "--group-items must be 0..%d", CB_BUNDLE_TOP_LIST);
            break;
        case O_GROUPBY: cfg.group_by = optarg; break;
        case O_EMB:
            if (!parse_count(optarg, 0, 1u << 30, &cfg.embedding_items)) return cli_fail(CLI_USAGE, cmd, "bad --embedding");
            break;
        case O_NOSIM: cfg.recent_items = 0; break;
        case O_NOGEN: cfg.top_genres = 0; break;
        case O_NOGRP: cfg.group_items = 0; break;
        case O_NOEMB: cfg.embedding_items = 0; break;
        case O_DIV: {
            double lambda;
            if (strncmp(optarg, "mmr:", 4) || !cb_parse_double(optarg + 4, strlen(optarg + 4), &lambda) || lambda < 0 ||
                lambda > 1)
                return cli_fail(CLI_USAGE, cmd, "--diversity takes mmr:LAMBDA with LAMBDA in [0, 1]");
            cfg.diversity = CB_DIV_MMR;
            cfg.mmr_lambda = (float)lambda;
            break;
        }
        case O_CAP:
            if (!parse_count(optarg, 1, 1u << 30, &v)) return cli_fail(CLI_USAGE, cmd, "--genre-cap must be >= 1");
            cfg.diversity = CB_DIV_GENRE_CAP;
            cfg.genre_cap = v;
            break;
        case O_THREADS:
            if (!parse_count(optarg, 1, 256, &v)) return cli_fail(CLI_USAGE, cmd, "--threads must be 1..256");
            cfg.threads = (int)v;
            break;
        case 'h': fputs(recommend_usage, stdout); return CLI_OK;
        default: fputs(recommend_usage, stderr); return CLI_USAGE;
        }
    }
    if (optind < argc) return cli_fail(CLI_USAGE, cmd, "unexpected argument '%s'", argv[optind]);
    if (!model || !!user == !!new_user) {
        fputs(recommend_usage, stderr);
        return cli_fail(CLI_USAGE, cmd, "give --model and exactly one of --user ID or --new-user FILE");
    }
    const char *why = cb_recommend_config_check(&cfg);
    if (why) return cli_fail(CLI_USAGE, cmd, "%s", why);

    cb_error err;
    cb_error_clear(&err);
    session s;
    cb_profile p = {0};
    cb_blocklist bl = {0};
    cb_recommend_result res = {0};
    int status = CLI_ERROR;
    if (session_open(&s, model, table, &err)) goto fail;
    if (block && cb_recommend_block_load(&bl, s.rec, block, &err)) goto fail;
    if (user) {
        int64_t u = cb_bundle_user(s.rec, user);
        if (u < 0) {
            status = cli_fail(CLI_ERROR, cmd,
                              "unknown user '%s' (the model knows %u users); for a new user pass --new-user FILE.json",
                              user, s.rec->n_users);
            goto done;
        }
        if (cb_recommend_profile_user(&p, s.rec, (uint32_t)u, &err)) goto fail;
    } else if (cb_recommend_profile_file(&p, s.rec, new_user, &err)) {
        goto fail;
    }
    if (cb_recommend(s.ctx, &p, &cfg, block ? &bl : NULL, &res, &err)) goto fail;
    for (size_t i = 0; i < res.n_notes; i++) fprintf(stderr, "note: %s\n", res.notes[i]);
    for (size_t i = 0; i < res.n; i++) {
        const cb_recommend_item *it = &res.items[i];
        const char *id = cb_recommend_item_id(s.ctx, it->item), *title = cb_recommend_item_title(s.ctx, it->item);
        if (json) {
            char *names[CB_SRC_COUNT];
            size_t ns = 0;
            for (int k = 0; k < CB_SRC_COUNT; k++)
                if (it->sources & (1u << k)) names[ns++] = (char *)cb_recommend_source_name((cb_source)k);
            print_json_line(json_pack("{s:i,s:s,s:s,s:f,s:o,s:o}", "rank", (int)(i + 1), "item", id, "title", title,
                                      "score", (double)it->score, "reasons", str_array(it->reasons, it->n_reasons),
                                      "sources", str_array(names, ns)));
        } else {
            printf("%3zu  %-8s %6.3f  %s\n", i + 1, id, (double)it->score, title);
            for (size_t k = 0; explain && k < it->n_reasons; k++) printf("       - %s\n", it->reasons[k]);
        }
    }
    if (explain && !json)
        printf("ranked by the model's predicted %s (v_u . v_m mapped to the %s); %zu candidates retrieved\n",
               s.rec->binary ? "probability" : "rating", s.rec->binary ? "probability scale" : "rating scale",
               res.n_candidates);
    status = CLI_OK;
    goto done;
fail:
    cli_error(cmd, &err);
done:
    cb_recommend_result_free(&res);
    cb_recommend_profile_free(&p);
    cb_recommend_block_free(&bl);
    session_close(&s);
    return status;
}
