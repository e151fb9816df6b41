/* Tests for `mpirun -np 2 cbrec train` (src/cli/mpi.c over the library's
 * cb_train_comm): on a synthetic dataset, two processes with one thread each
 * train the model one process trains with the same global batch, within
 * float tolerance (compared tensor by tensor from the two model files), and
 * the neighbour component the ranks tune and fit together is the bits of one
 * process's (its lists with 2 and 3 ranks, its tuning grid with 2); batch
 * recommend, precompute and eval's folds under mpirun write what one process
 * writes (byte for byte; eval's timings aside);
 * ranks given different data stop with an error naming the rank instead of
 * training apart; a cbrec built without MPI says so under mpirun, once. Skipped,
 * saying why, when mpirun is not installed. */
#include "cliutil.h"
#include "rec/recommender_internal.h"

#include <math.h>

static char *dir;

/* ASan's leak check would report Open MPI's own allocations at exit. */
#define MPIRUN "ASAN_OPTIONS=detect_leaks=0 mpirun --allow-run-as-root --oversubscribe -np"

static int have_mpirun(void) { return run(NULL, "command -v mpirun") == 0; }

static int setup(void **state) {
    (void)state;
    dir = tu_tmpdir();
    if (run(NULL, "%s synth --out %s/data --users 300 --items 400 --ratings 12000 --seed 5", cbrec(), dir)) {
        fprintf(stderr, "cbrec synth failed\n");
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tu_rmrf(dir);
    free(dir);
    return 0;
}

static cb_model *load_model(const char *name, cb_recommender **rec) {
    cb_error err = {0};
    char *path = tu_path(dir, name);
    if (cb_recommender_load(rec, path, NULL, &err)) fail_msg("load %s: %s", path, err.msg);
    free(path);
    return cb_recommender_bundle(*rec)->model;
}

/* max |a - b| over every parameter, relative to max |a|. */
static double param_diff(const cb_model *a, const cb_model *b) {
    double worst = 0.0, scale = 0.0;
    assert_int_equal(cb_model_n_params(a), cb_model_n_params(b));
    for (size_t i = 0; i < cb_model_n_tensors(a); i++) {
        cb_tensor x, y;
        cb_model_tensor(a, i, &x), cb_model_tensor(b, i, &y);
        size_t n = x.ndim == 2 ? (size_t)x.shape[0] * x.shape[1] : x.shape[0];
        for (size_t j = 0; j < n; j++) {
            worst = fmax(worst, fabs((double)x.data[j] - y.data[j]));
            scale = fmax(scale, fabs(x.data[j]));
        }
    }
    return worst / (scale > 0 ? scale : 1.0);
}

/* The neighbour components of a and b are the same bits: kind, settings,
 * lists and the tuning grid's JSON. */
static void assert_same_neighbours(const cb_recommender *a, const cb_recommender *b) {
    const cb_neighbours *x = cb_recommender_bundle((cb_recommender *)a)->neighbours,
                        *y = cb_recommender_bundle((cb_recommender *)b)->neighbours;
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(x->kind, y->kind);
    assert_int_equal(x->k, y->k);
    assert_true(x->weight == y->weight && x->shrink == y->shrink && x->lambda == y->lambda && x->raw == y->raw);
    assert_int_equal(x->n_items, y->n_items);
    assert_memory_equal(x->off, y->off, ((size_t)x->n_items + 1) * sizeof *x->off);
    assert_true(x->off[x->n_items] > 0);
    assert_memory_equal(x->item, y->item, (size_t)x->off[x->n_items] * sizeof *x->item);
    assert_memory_equal(x->sim, y->sim, (size_t)x->off[x->n_items] * sizeof *x->sim);
    assert_true(!x->tuning == !y->tuning);
    if (x->tuning) assert_string_equal(x->tuning, y->tuning);
}

/* The train_loss=... figure of a `cbrec train` output (NAN when absent). */
static double train_loss_of(const char *out) {
    const char *p = strstr(out, "train_loss=");
    return p ? atof(p + strlen("train_loss=")) : NAN;
}

/* Train with mpirun -np 2 (1 thread each) or one process, options `opts`,
 * into dir/name; returns the output (malloc'd), NULL when this cbrec has no MPI. */
static char *train(int ranks, const char *name, const char *opts) {
    char *out = NULL;
    int rc = ranks > 1 ? run(&out, "%s 2 %s train --data %s/data --model %s/%s %s", MPIRUN, cbrec(), dir, dir, name, opts)
                       : run(&out, "%s train --data %s/data --model %s/%s %s", cbrec(), dir, dir, name, opts);
    if (ranks > 1 && strstr(out, "built without MPI")) { /* the driver refuses to train K separate models */
        assert_int_not_equal(rc, 0);
        free(out);
        return NULL;
    }
    if (rc) fail_msg("%s train (%d process(es)): exit %d\n%s", ranks > 1 ? "mpirun" : "cbrec", ranks, rc, out);
    return out;
}

/* Two processes with one thread each split every batch as one process with
 * two threads does, and sum the two gradients in the same order: the same
 * bits. Against one thread the sums run in another order: with SGD the
 * models agree to float precision; with Adam (the default) its per-weight
 * normalisation amplifies the rounding differences of near-cancelling
 * gradient sums (up to ~4e-2 of the largest weight after 150 steps here, as
 * between 1 and 2 threads), so there the loss is compared. */
static void two_ranks_match_one_process(void **state) {
    (void)state;
    if (!have_mpirun()) TU_SKIP("mpirun is not installed (scripts/install-deps.sh installs openmpi-bin)");
    /* a fixed neighbour weight: the kind and K are still tuned across the ranks, but on
     * this small set the weight's choice (towers alone vs with neighbours) is a near tie
     * that float rounding of the towers (sparse vs dense first layer) tips either way */
    const char *opts = "--epochs 2 --batch 128 --split random --seed 3 --neighbour-weight 0.5 -q";
    char o1[256], o2[256], sgd1[256];
    snprintf(o1, sizeof o1, "%s --threads 1", opts);
    snprintf(o2, sizeof o2, "%s --threads 2", opts);
    snprintf(sgd1, sizeof sgd1, "%s --threads 1 --optimizer sgd --lr 0.05", opts);
    char *mpi = train(2, "two.model", o1);
    if (!mpi) TU_SKIP("this cbrec was built without MPI (no mpicc at build time); it said so under mpirun");
    char *t2 = train(1, "t2.model", o2), *t1 = train(1, "t1.model", o1);
    cb_recommender *r_mpi, *r_t2, *r_t1;
    cb_model *m_mpi = load_model("two.model", &r_mpi), *m_t2 = load_model("t2.model", &r_t2),
             *m_t1 = load_model("t1.model", &r_t1);
    assert_true(param_diff(m_t2, m_mpi) == 0.0);
    assert_same_neighbours(r_mpi, r_t2); /* the tuning grid split across the ranks: the same choice and lists */
    double l1 = train_loss_of(t1), l_mpi = train_loss_of(mpi);
    print_message("Adam: mpirun -np 2 vs 1 thread: train_loss %.6f vs %.6f, worst parameter difference %.2e\n", l_mpi, l1,
                  param_diff(m_t1, m_mpi));
    assert_true(fabs(l_mpi - l1) < 1e-3 * fabs(l1));
    free(mpi), free(t2), free(t1);
    cb_recommender_free(r_mpi), cb_recommender_free(r_t2), cb_recommender_free(r_t1);

    free(train(2, "sgd2.model", sgd1));
    free(train(1, "sgd1.model", sgd1));
    cb_recommender *r_s2, *r_s1, *r_seed;
    cb_model *s2 = load_model("sgd2.model", &r_s2), *s1 = load_model("sgd1.model", &r_s1);
    double d = param_diff(s1, s2);
    print_message("SGD: mpirun -np 2 vs 1 thread: worst parameter difference %.2e of the largest\n", d);
    /* Float tolerance, not bits: the loss is summed in fixed chunks, but the
     * towers' sgemm rounds differently for 128 rows than for 64, and a ReLU
     * unit that flips on a rounding-level difference moves its weights by a
     * step: 1.6e-6 to 7.3e-4 of the largest weight across seeds and defaults
     * (also between 1 and 2 threads in one process), 2.0e-3 with the sparse
     * first layer (nn_sparse.h), against > 1e-2 for another seed below. */
    assert_true(d < 5e-3);
    /* the comparison can fail: another seed's model is far off */
    char seed_opts[320];
    snprintf(seed_opts, sizeof seed_opts, "%s --seed 4", sgd1);
    free(train(1, "seed.model", seed_opts));
    cb_model *other = load_model("seed.model", &r_seed);
    assert_true(param_diff(s1, other) > 1e-2);
    cb_recommender_free(r_s2), cb_recommender_free(r_s1), cb_recommender_free(r_seed);
}

/* Sampled negatives, half-weight low ratings and lr decay: every rank draws
 * the same negatives and forwards its part of them, as one process's two
 * workers do: the same bits. */
static void negatives_two_ranks_match_two_threads(void **state) {
    (void)state;
    if (!have_mpirun()) TU_SKIP("mpirun is not installed (scripts/install-deps.sh installs openmpi-bin)");
    const char *opts = "--epochs 2 --batch 128 --split random --seed 3 -q --negatives 40 --below-weight 0.5 --lr-decay 0.5";
    char o1[320], o2[320];
    snprintf(o1, sizeof o1, "%s --threads 1", opts);
    snprintf(o2, sizeof o2, "%s --threads 2", opts);
    char *mpi = train(2, "neg2.model", o1);
    if (!mpi) TU_SKIP("this cbrec was built without MPI (no mpicc at build time); it said so under mpirun");
    char *t2 = train(1, "negt2.model", o2);
    cb_recommender *r_mpi, *r_t2;
    cb_model *m_mpi = load_model("neg2.model", &r_mpi), *m_t2 = load_model("negt2.model", &r_t2);
    print_message("negatives: mpirun -np 2 vs 2 threads: worst parameter difference %.2e\n", param_diff(m_t2, m_mpi));
    assert_true(param_diff(m_t2, m_mpi) == 0.0);
    free(mpi), free(t2);
    cb_recommender_free(r_mpi), cb_recommender_free(r_t2);
}

/* With the neighbour settings given (no tuning), the lists depend on the
 * ratings alone: three ranks, each fitting a third of the items' lists,
 * give the lists of one process, for both kinds. */
static void neighbour_lists_split_across_ranks(void **state) {
    (void)state;
    if (!have_mpirun()) TU_SKIP("mpirun is not installed (scripts/install-deps.sh installs openmpi-bin)");
    const char *kinds[] = {"--neighbour-kind cosine --neighbour-shrink 10", "--neighbour-kind ease --neighbour-lambda 300"};
    for (size_t i = 0; i < 2; i++) {
        char opts[320];
        snprintf(opts, sizeof opts, "--epochs 1 --batch 128 --seed 3 -q --threads 1 --neighbours 30 --neighbour-weight 1 %s",
                 kinds[i]);
        char *out = NULL;
        int rc = run(&out, "%s 3 %s train --data %s/data --model %s/nb3.model %s", MPIRUN, cbrec(), dir, dir, opts);
        if (strstr(out, "built without MPI")) {
            free(out);
            TU_SKIP("this cbrec was built without MPI");
        }
        if (rc) fail_msg("mpirun -np 3: exit %d\n%s", rc, out);
        free(out);
        free(train(1, "nb1.model", opts));
        cb_recommender *r3, *r1;
        load_model("nb3.model", &r3), load_model("nb1.model", &r1);
        assert_same_neighbours(r3, r1);
        cb_recommender_free(r3), cb_recommender_free(r1);
    }
}

/* `cmp A B` succeeds and A has `lines` lines. */
static void assert_same_file(const char *a, const char *b, long lines) {
    if (run(NULL, "cmp %s %s", a, b)) fail_msg("%s and %s differ", a, b);
    if (lines >= 0) {
        char *out = NULL;
        run(&out, "wc -l < %s", a);
        assert_int_equal(atol(out), lines);
        free(out);
    }
}

/* Batch recommend and precompute under mpirun: each rank its share of the
 * users (at the batch's block boundaries) or of the items' rows, rank 0
 * writes; the output is the bytes of one process with the same BLAS thread
 * count (one here: mpirun -x OPENBLAS_NUM_THREADS). 4,000 items make the
 * batch's blocks 262 users, so 600 users are split across blocks. */
static void batch_and_precompute_shard_across_ranks(void **state) {
    (void)state;
    if (!have_mpirun()) TU_SKIP("mpirun is not installed (scripts/install-deps.sh installs openmpi-bin)");
    char *out = NULL;
    if (run(&out, "%s synth --out %s/wide --users 600 --items 4000 --ratings 12000 --seed 6 && %s train --data %s/wide "
                  "--model %s/wide.model --epochs 1 --threads 1 -q",
            cbrec(), dir, cbrec(), dir, dir))
        fail_msg("synth + train failed:\n%s", out);
    free(out);
    const char *one = "OPENBLAS_NUM_THREADS=1", *ranks = "OPENBLAS_NUM_THREADS=1 " MPIRUN;
    const char *blas = "-x OPENBLAS_NUM_THREADS";
    out = NULL;
    int rc = run(&out, "%s 2 %s %s recommend --model %s/wide.model --users all -n 7 --out %s/b2.jsonl", ranks, blas, cbrec(),
                 dir, dir);
    if (strstr(out, "built without MPI")) {
        free(out);
        TU_SKIP("this cbrec was built without MPI");
    }
    if (rc) fail_msg("mpirun recommend: exit %d\n%s", rc, out);
    free(out);
    assert_int_equal(run(NULL, "%s %s recommend --model %s/wide.model --users all -n 7 --out %s/b1.jsonl", one, cbrec(), dir,
                         dir), 0);
    assert_int_equal(run(NULL, "%s 3 %s %s recommend --model %s/wide.model --users all -n 7 --out %s/b3.jsonl", ranks, blas,
                         cbrec(), dir, dir), 0);
    char *b1 = tu_path(dir, "b1.jsonl"), *b2 = tu_path(dir, "b2.jsonl"), *b3 = tu_path(dir, "b3.jsonl");
    assert_same_file(b1, b2, 600);
    assert_same_file(b1, b3, 600);
    assert_int_equal(run(NULL, "%s 3 %s %s precompute --model %s/wide.model -k 12 --out %s/t3.table", ranks, blas, cbrec(),
                         dir, dir), 0);
    assert_int_equal(run(NULL, "%s %s precompute --model %s/wide.model -k 12 --out %s/t1.table", one, cbrec(), dir, dir), 0);
    char *t1 = tu_path(dir, "t1.table"), *t3 = tu_path(dir, "t3.table");
    assert_same_file(t1, t3, -1);
    free(b1), free(b2), free(b3), free(t1), free(t3);
}

/* `cbrec eval` over three folds under mpirun -np 2: rank 0 runs folds 1 and
 * 3, rank 1 fold 2, rank 0 prints the report of one process (timings aside). */
static void eval_folds_shard_across_ranks(void **state) {
    (void)state;
    if (!have_mpirun()) TU_SKIP("mpirun is not installed (scripts/install-deps.sh installs openmpi-bin)");
    /* the folds: every third rating of the synthetic set held out, as u1..u5 files are */
    for (int k = 1; k <= 3; k++)
        assert_int_equal(run(NULL, "awk -F, 'NR > 1 { l = $1 \"\\t\" $2 \"\\t\" $3 \"\\t\" $4; "
                                   "if (NR %% 3 == %d) print l > \"%s/data/f%d.test\"; else print l > \"%s/data/f%d.base\" }' "
                                   "%s/data/ratings.csv",
                             k - 1, dir, k, dir, k, dir),
                         0);
    const char *opts = "--folds f1,f2,f3 --models bias,popularity,twotower --epochs 1 --threads 1 -q --json";
    char *out = NULL;
    int rc = run(&out, "OPENBLAS_NUM_THREADS=1 %s 2 -x OPENBLAS_NUM_THREADS %s eval --data %s/data %s > %s/e2.json", MPIRUN,
                 cbrec(), dir, opts, dir);
    if (strstr(out, "built without MPI")) {
        free(out);
        TU_SKIP("this cbrec was built without MPI");
    }
    if (rc) fail_msg("mpirun eval: exit %d\n%s", rc, out);
    free(out);
    assert_int_equal(run(NULL, "OPENBLAS_NUM_THREADS=1 %s eval --data %s/data %s > %s/e1.json", cbrec(), dir, opts, dir), 0);
    const char *timings = "grep -v '\"\\(fit_\\|eval_\\)\\?seconds\"'";
    assert_int_equal(run(NULL, "%s %s/e1.json > %s/e1.txt && %s %s/e2.json > %s/e2.txt", timings, dir, dir, timings, dir, dir), 0);
    char *e1 = tu_path(dir, "e1.txt"), *e2 = tu_path(dir, "e2.txt");
    assert_same_file(e1, e2, -1);
    out = NULL;
    run(&out, "grep -c '\"fold\": [123]' %s", e2);
    assert_int_equal(atol(out), 9); /* three models x three folds */
    free(out), free(e1), free(e2);
}

/* Ranks that split the data differently (another seed) must not train apart. */
/* The output of a run of `cmd` (a printf format over the remaining args)
 * that must fail, saying `want`; skips without MPI. NULL: skipped. */
static char *run_fails(const char *want, const char *fmt, const char *a1, const char *a2) {
    char cmd[16384 + 64], *out = NULL;
    snprintf(cmd, sizeof cmd, fmt, a1, a2);
    int rc = run(&out, "%s", cmd);
    if (strstr(out, "built without MPI")) {
        free(out);
        return NULL;
    }
    assert_int_not_equal(rc, 0);
    if (!strstr(out, want)) fail_msg("no message '%s':\n%s", want, out);
    return out;
}

/* cmd = mpirun of `cbrec line` on two ranks, rank 0 in dir/r0 and rank 1 in
 * dir/r1: the same command line, other files (cbrec: an absolute path). */
static void in_two_folders(char *cmd, size_t size, const char *cbrec_abs, const char *line) {
    snprintf(cmd, size, "%s 1 sh -c 'cd %s/r0 && %s %s' : -np 1 sh -c 'cd %s/r1 && %s %s'", MPIRUN, dir, cbrec_abs,
             line, dir, cbrec_abs, line);
}

/* Ranks given other options stop before any work with a message naming the
 * rank (an option that sizes the buffers had crashed in MPI_Allgatherv, the
 * others trained apart silently; a precompute with --exact on one rank only
 * hung); ranks given other data under the same command line, or another
 * model file under --resume, stop as well; nothing is written. */
static void ranks_with_different_data_stop(void **state) {
    (void)state;
    if (!have_mpirun()) TU_SKIP("mpirun is not installed (scripts/install-deps.sh installs openmpi-bin)");
    char cmd[16384], *bad = tu_path(dir, "bad.model"), *out;
    snprintf(cmd, sizeof cmd, "%s 1 %s train --data %s/data --model %s/bad.model --threads 1 --epochs 1 -q : -np 1 "
             "%s train --data %s/data --model %s/bad.model --threads 1 --epochs 1 -q --batch 128",
             MPIRUN, cbrec(), dir, dir, cbrec(), dir, dir);
    if (!(out = run_fails("rank 1's command line", "%s%s", cmd, ""))) TU_SKIP("this cbrec was built without MPI");
    free(out);
    assert_int_not_equal(access(bad, F_OK), 0);
    /* the same command line in two folders whose data differ */
    assert_int_equal(run(NULL, "mkdir -p %s/r0 %s/r1 && cp -r %s/data %s/r0/ && %s synth --out %s/r1/data --users 300 "
                               "--items 400 --ratings 12000 --seed 6 >/dev/null", dir, dir, dir, dir, cbrec(), dir), 0);
    char abs[4096];
    if (!realpath(cbrec(), abs)) fail_msg("realpath %s", cbrec());
    const char *line = "train --data data --model ../bad.model --threads 1 --epochs 1 -q";
    in_two_folders(cmd, sizeof cmd, abs, line);
    free(run_fails("differ from rank 0's", "%s%s", cmd, ""));
    assert_int_not_equal(access(bad, F_OK), 0);
    /* --resume from two model files of the same name and other contents */
    assert_int_equal(run(NULL, "cd %s && %s train --data r0/data --model r0/m.cbrec --epochs 1 -q --neighbours 0 >/dev/null"
                               " && cp r0/m.cbrec r0/m.cbrec.history r1/ && %s train --data r0/data --model r1/m.cbrec "
                               "--epochs 1 -q --neighbours 0 --seed 9 >/dev/null", dir, abs, abs), 0);
    line = "train --data ../r0/data --model m.cbrec --resume --threads 1 --epochs 1 -q";
    in_two_folders(cmd, sizeof cmd, abs, line);
    free(run_fails("starting parameters", "%s%s", cmd, ""));
    /* precompute with --exact on one rank only (on a large catalog the other took the approximate path: it hung) */
    snprintf(cmd, sizeof cmd, "timeout 120 env %s 1 %s precompute --model %s/r0/m.cbrec --out %s/t.tab : -np 1 "
             "%s precompute --model %s/r0/m.cbrec --out %s/t.tab --exact", MPIRUN, cbrec(), dir, dir, cbrec(), dir, dir);
    free(run_fails("rank 1's command line", "%s%s", cmd, ""));
    free(bad);
}

/* A training that diverges stops every rank together, and rank 0 saves the
 * last good parameters before the ranks stop (a follower's abort had
 * raced rank 0's save): the model is rewritten, no temporary is left, and
 * no rank aborts the others (each follower stopped the job after the save). */
static void diverging_ranks_save_first(void **state) {
    (void)state;
    if (!have_mpirun()) TU_SKIP("mpirun is not installed (scripts/install-deps.sh installs openmpi-bin)");
    const char *a = "--optimizer sgd --lr-decay 1 --no-l2norm --objective rating --no-scale-targets --neighbours 0";
    assert_int_equal(run(NULL, "mkdir -p %s/dv && %s train --data %s/data --model %s/dv/m.cbrec %s --lr 0.001 --epochs 1 "
                               "-q >/dev/null && cp %s/dv/m.cbrec %s/base.cbrec", dir, cbrec(), dir, dir, a, dir, dir), 0);
    char *out = NULL;
    int rc = run(&out, "timeout 120 env %s 2 %s train --data %s/data --model %s/dv/m.cbrec %s --resume --lr 50 --epochs 2 "
                       "--threads 1", MPIRUN, cbrec(), dir, dir, a);
    if (strstr(out, "built without MPI")) {
        free(out);
        TU_SKIP("this cbrec was built without MPI");
    }
    assert_int_not_equal(rc, 0);
    if (!strstr(out, "wrote the last good parameters")) fail_msg("no divergence:\n%s", out);
    const char *first = strstr(out, "training diverged");
    if (first && strstr(first + 1, "training diverged")) fail_msg("the divergence told more than once:\n%s", out);
    if (strstr(out, "stopping every rank") || strstr(out, "MPI_ABORT")) /* the followers aborted the job */
        fail_msg("the ranks were stopped, not told together:\n%s", out);
    free(out);
    assert_int_not_equal(run(NULL, "cmp -s %s/dv/m.cbrec %s/base.cbrec", dir, dir), 0); /* rewritten */
    assert_int_equal(run(&out, "ls %s/dv | grep -c tmp", dir), 1);                        /* grep: no match */
    free(out);
}

/* A batch's lines onto a full disk under mpirun (a file-size limit on the
 * ranks, not on mpirun): the error names the file and the reason (it said
 * "writing the lines failed" alone), and no file is left; every rank stops
 * with rank 0, none aborting the job (rank 0 did, after the others had
 * finished). The same for precompute's table and eval's --json-out. */
static void batch_out_disk_full_named(void **state) {
    (void)state;
    if (!have_mpirun()) TU_SKIP("mpirun is not installed (scripts/install-deps.sh installs openmpi-bin)");
    assert_int_equal(run(NULL, "%s train --data %s/data --model %s/full.cbrec --epochs 1 --neighbours 0 -q", cbrec(), dir,
                         dir), 0);
    /* the command (model or data folder, then the output), the output's name, the error */
    const char *cases[][3] = {
        {"recommend --model %s/full.cbrec --users all -n 50 --out %s/full.jsonl", "full.jsonl",
         "full.jsonl: writing the lines failed: File too large"},
        {"precompute --model %s/full.cbrec -k 50 --out %s/full.table", "full.table",
         "full.table: write failed: File too large"},
        {"eval --data %s/data --models bias,popularity -q --json-out %s/full.json", "full.json", /* "write error" alone */
         "full.json: write error: File too large"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL, cmd[8192];
        snprintf(cmd, sizeof cmd, cases[i][0], dir, dir);
        int rc = run(&out, "%s 2 sh -c \"trap '' XFSZ; ulimit -f 4; exec %s %s\"", MPIRUN, cbrec(), cmd);
        if (strstr(out, "built without MPI")) {
            free(out);
            TU_SKIP("this cbrec was built without MPI");
        }
        if (!rc || !strstr(out, cases[i][2])) fail_msg("cbrec %s: exit %d, no file or reason:\n%s", cmd, rc, out);
        if (strstr(out, "stopping every rank") || strstr(out, "MPI_ABORT")) fail_msg("rank 0 aborted the job:\n%s", out);
        free(out);
        assert_int_not_equal(run(NULL, "ls %s | grep -q %s", dir, cases[i][1]), 0);
    }
}

/* How many times `needle` occurs in `hay`. */
static int occurrences(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

/* Errors every rank has alike (a bad option, the same missing model or
 * data) are printed once, by rank 0 (each rank printed its own copy); an
 * error one rank alone has is still printed, by that rank, a usage error
 * of its own command line too. */
static void errors_told_once(void **state) {
    (void)state;
    if (!have_mpirun()) TU_SKIP("mpirun is not installed (scripts/install-deps.sh installs openmpi-bin)");
    char *out = NULL, cmd[16384], abs[4096];
    const char *alike[][2] = {{"recommend --model %s/none.cbrec --users all -n abc", "'abc' is not accepted"},
                              {"recommend --model %s/none.cbrec --users all", "none.cbrec: cannot open"},
                              {"train --data %s/none --model %s/none.cbrec -q", "none: cannot open"},
                              {"train --data %s/data --model %s/none.cbrec --batch 100000", "batch_size must be <= 8192"},
                              {"eval --data %s/data --models bias --folds nofold%.0s", "nofold.base: cannot open"}};
    for (size_t i = 0; i < sizeof alike / sizeof alike[0]; i++) {
        snprintf(cmd, sizeof cmd, alike[i][0], dir, dir);
        int rc = run(&out, "%s 2 %s %s", MPIRUN, cbrec(), cmd);
        if (strstr(out, "built without MPI")) {
            free(out);
            TU_SKIP("this cbrec was built without MPI");
        }
        if (!rc || occurrences(out, alike[i][1]) != 1) fail_msg("cbrec %s: exit %d, not told once:\n%s", cmd, rc, out);
        free(out);
    }
    /* a refusal every rank meets alike in its share of the work (the table
     * of a one-item catalog: each rank had printed it and its abort) */
    assert_int_equal(run(NULL, "%s synth --out %s/one --users 5 --items 1 --ratings 1 && %s train --data %s/one "
                               "--model %s/one.cbrec --epochs 1 -q", cbrec(), dir, cbrec(), dir, dir), 0);
    assert_int_not_equal(run(&out, "%s 2 %s precompute --model %s/one.cbrec --out %s/one.table", MPIRUN, cbrec(), dir,
                             dir), 0);
    if (occurrences(out, "needs at least 2") != 1 || strstr(out, "stopping every rank"))
        fail_msg("precompute's refusal not told once:\n%s", out);
    free(out);
    /* so is a refusal every rank meets alike inside the shared work: cb_train's
     * split leaving no training rating, a bad line of a fold every rank reads
     * (each rank printed it and its abort) */
    assert_int_equal(run(NULL, "printf 'bad line\\n' > %s/one/u1.base && printf '1\\t1\\t4\\n' > %s/one/u1.test", dir,
                         dir), 0);
    const char *inside[][2] = {{"train --data %s/one --model %s/one-x.cbrec --epochs 1 -q --test-frac 0.9",
                                "no training ratings"},
                               {"eval --data %s/one --folds u1 --models bias -q%.0s", "u1.base:1: "}};
    for (size_t i = 0; i < sizeof inside / sizeof inside[0]; i++) {
        snprintf(cmd, sizeof cmd, inside[i][0], dir, dir);
        int rc = run(&out, "%s 2 %s %s", MPIRUN, cbrec(), cmd);
        if (!rc || occurrences(out, inside[i][1]) != 1 || strstr(out, "stopping every rank") || strstr(out, "MPI_ABORT"))
            fail_msg("cbrec %s: exit %d, not told once, by rank 0 alone:\n%s", cmd, rc, out);
        free(out);
    }
    /* so are a bad --users file, index, exclude list or block file (each rank
     * printed its copy and its abort) */
    assert_int_equal(run(NULL, "printf '1\\nnobody\\n' > %s/one/users.txt", dir), 0);
    const char *files[][2] = {{"recommend --users %s/one/users.txt", "users.txt:2: unknown user 'nobody'"},
                              {"recommend --users %s/none.txt", "none.txt: cannot open"},
                              {"recommend --users all --index %s/none.hnsw", "none.hnsw: cannot open"},
                              {"recommend --users all --block-file %s/none.block", "none.block: cannot open"},
                              {"recommend --users all --exclude zzz%.0s", "unknown item id 'zzz'"},
                              {"precompute --out %s/one.table --index %s/none.hnsw", "none.hnsw: cannot open"}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(cmd, sizeof cmd, files[i][0], dir, dir);
        int rc = run(&out, "%s 2 %s %s --model %s/one.cbrec", MPIRUN, cbrec(), cmd, dir);
        if (!rc || occurrences(out, files[i][1]) != 1 || strstr(out, "stopping every rank"))
            fail_msg("cbrec %s: exit %d, not told once:\n%s", cmd, rc, out);
        free(out);
    }
    if (!realpath(cbrec(), abs)) fail_msg("realpath %s", cbrec());
    assert_int_equal(run(NULL, "mkdir -p %s/r0 %s/r1 && %s train --data %s/data --model %s/r0/once.cbrec --epochs 1 "
                               "--neighbours 0 -q && rm -f %s/r1/once.cbrec*", dir, dir, cbrec(), dir, dir, dir), 0);
    in_two_folders(cmd, sizeof cmd, abs, "recommend --model once.cbrec --users all -n 3 --out ../once.jsonl");
    assert_int_not_equal(run(&out, "%s", cmd), 0);
    if (occurrences(out, "once.cbrec: cannot open") != 1) fail_msg("rank 1's own error not told:\n%s", out);
    free(out);
    /* a usage error in rank 1's own command line (mpirun's MPMD form) is
     * told, by rank 0 (mpirun said only that rank 1 exited with 2) */
    assert_int_not_equal(run(&out, "%s 1 %s train --data %s/data --model %s/r0/u.cbrec --epochs 1 -q : -np 1 %s train "
                                   "--data %s/data --model %s/r0/u.cbrec --epochs 1 -q --bogus", MPIRUN, cbrec(), dir, dir,
                             cbrec(), dir, dir), 0);
    if (occurrences(out, "rank 1's command line): unknown option '--bogus'") != 1)
        fail_msg("rank 1's usage error not told once:\n%s", out);
    free(out);
    /* the same usage error in both command lines, an unknown command on
     * every rank, command lines that differ: each told once */
    const char *mpmd[][2] = {
        {"%s 1 %s train --data %s/data --model %s/r0/u.cbrec -q --bogus : -np 1 %s train --data %s/data --model "
         "%s/r0/u.cbrec -q --bogus", "unknown option '--bogus'"},
        {"%s 2 %s traim --data %s/data --model %s/r0/u.cbrec%.0s%.0s%.0s", "unknown command 'traim'"},
        {"%s 1 %s train --data %s/data --model %s/r0/u.cbrec -q : -np 1 %s train --data %s/data --model "
         "%s/r0/u.cbrec -q --epochs 2", "differs from rank 0's"},
        /* --help on one rank alone: rank 1 hung in MPI_Init (rank 0 printed and left) */
        {"timeout 60 env %s 1 %s train --help%.0s%.0s : -np 1 %s train --data %s/data --model %s/r0/u.cbrec -q",
         "differs from rank 0's"},
        /* a command rank 0 runs alone beside one the ranks share, in either order (the sharing rank hung in MPI_Init) */
        {"timeout 60 env %s 1 %s predict --model %s/r0/u.cbrec --user 1 --item 1%.0s : -np 1 %s train --data %s/data "
         "--model %s/r0/u.cbrec -q", "differs from rank 0's"},
        {"timeout 60 env %s 1 %s train --data %s/data --model %s/r0/u.cbrec -q : -np 1 %s similar --model "
         "%s/r0/u.cbrec --item 1%.0s", "differs from rank 0's"}};
    for (size_t i = 0; i < sizeof mpmd / sizeof mpmd[0]; i++) {
        assert_int_not_equal(run(&out, mpmd[i][0], MPIRUN, cbrec(), dir, dir, cbrec(), dir, dir), 0);
        if (occurrences(out, mpmd[i][1]) != 1 || strstr(out, "failed; stopping every rank") || strstr(out, "MPI_ABORT"))
            fail_msg("not told once, by rank 0 alone:\n%s", out);
        free(out);
    }
}

/* A cbrec built without MPI (make builds one for this test, BUILD/cbrec-nompi)
 * under mpirun says once that it cannot share the work, and every rank
 * exits non-zero (each rank printed it); alone it trains. Its ranks are
 * also run by hand, as mpirun's environment names them, so this runs
 * without mpirun too. */
static void built_without_mpi_says_so_once(void **state) {
    (void)state;
    const char *build = getenv("BUILD");
    char bin[4096], args[8192];
    snprintf(bin, sizeof bin, "%s/cbrec-nompi", build && *build ? build : "build");
    if (access(bin, X_OK)) TU_SKIP("no cbrec built without MPI here (make build/cbrec-nompi builds it)");
    snprintf(args, sizeof args, "train --data %s/data --model %s/nompi.cbrec --epochs 1 --neighbours 0 -q", dir, dir);
    char *out = NULL;
    for (int rank = 0; rank < 2; rank++) {
        assert_int_not_equal(run(&out, "OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=%d %s %s", rank, bin, args), 0);
        if (occurrences(out, "built without MPI") != (rank == 0)) fail_msg("rank %d of 2 printed:\n%s", rank, out);
        free(out);
    }
    if (have_mpirun()) {
        assert_int_not_equal(run(&out, "%s 2 %s %s", MPIRUN, bin, args), 0);
        if (occurrences(out, "built without MPI") != 1) fail_msg("not told once under mpirun -np 2:\n%s", out);
        free(out);
    }
    assert_int_equal(run(NULL, "test ! -e %s/nompi.cbrec && %s %s && test -s %s/nompi.cbrec", dir, bin, args, dir), 0);
}

/* Commands that do not share their work (predict, similar, synth, ...) run
 * on rank 0 alone under mpirun: what they print is printed once and what
 * they write is written by one process (every rank ran the whole command,
 * so a prediction came twice and a server bound its port twice). */
static void other_commands_on_rank_0_alone(void **state) {
    (void)state;
    if (!have_mpirun()) TU_SKIP("mpirun is not installed (scripts/install-deps.sh installs openmpi-bin)");
    char *out = NULL;
    assert_int_equal(run(NULL, "%s train --data %s/data --model %s/alone.cbrec --epochs 1 --neighbours 0 -q", cbrec(), dir,
                         dir), 0);
    assert_int_equal(run(&out, "%s 2 %s predict --model %s/alone.cbrec --user 1 --item 1", MPIRUN, cbrec(), dir), 0);
    if (occurrences(out, "1\t1\t") != 1) fail_msg("predict not printed once:\n%s", out);
    free(out);
    assert_int_equal(run(&out, "%s 2 %s similar --model %s/alone.cbrec --item 1 -k 3", MPIRUN, cbrec(), dir), 0);
    if (occurrences(out, "similar to") != 1) fail_msg("similar not printed once:\n%s", out);
    free(out);
    assert_int_equal(run(&out, "%s 2 %s synth --out %s/alone-data --users 50 --items 60 --ratings 500", MPIRUN, cbrec(),
                         dir), 0);
    if (occurrences(out, "wrote") > 1) fail_msg("synth told twice:\n%s", out);
    free(out);
    assert_int_equal(run(NULL, "test -s %s/alone-data/ratings.csv", dir), 0);
    /* so are --help and --version, of a command the ranks share too (each rank printed them) */
    const char *help[][2] = {{"train --help", "usage: cbrec train"}, {"eval -h", "usage: cbrec eval"},
                             {"recommend --help", "usage: cbrec recommend"}, {"--help", "usage: cbrec <command>"},
                             {"--version", "cbrec 0."}, {"predict --help", "usage: cbrec predict"}};
    for (size_t i = 0; i < sizeof help / sizeof help[0]; i++) {
        assert_int_equal(run(&out, "timeout 60 env %s 2 %s %s", MPIRUN, cbrec(), help[i][0]), 0);
        if (occurrences(out, help[i][1]) != 1) fail_msg("cbrec %s not printed once:\n%s", help[i][0], out);
        free(out);
    }
    /* an option error is told by rank 0, once, with a non-zero exit */
    assert_int_not_equal(run(&out, "%s 2 %s predict --model %s/alone.cbrec --user 1", MPIRUN, cbrec(), dir), 0);
    if (occurrences(out, "usage: cbrec predict") != 1) fail_msg("usage error not told once:\n%s", out);
    free(out);
    /* eval shares its splits, but what it prints comes once (every rank printed the data's line) */
    assert_int_equal(run(&out, "%s 2 %s eval --data %s/alone-data --models bias,popularity", MPIRUN, cbrec(), dir), 0);
    if (occurrences(out, "synthetic: 50 users") != 1) fail_msg("eval's data line not printed once:\n%s", out);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_ranks_match_one_process),
        cmocka_unit_test(negatives_two_ranks_match_two_threads),
        cmocka_unit_test(neighbour_lists_split_across_ranks),
        cmocka_unit_test(batch_and_precompute_shard_across_ranks),
        cmocka_unit_test(eval_folds_shard_across_ranks),
        cmocka_unit_test(ranks_with_different_data_stop),
        cmocka_unit_test(diverging_ranks_save_first),
        cmocka_unit_test(batch_out_disk_full_named),
        cmocka_unit_test(errors_told_once),
        cmocka_unit_test(other_commands_on_rank_0_alone),
        cmocka_unit_test(built_without_mpi_says_so_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
