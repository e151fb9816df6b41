/* mpi — cbrec under mpirun: the driver's MPI, joined to the library through
 * its hook (cb_train_comm, include/cbrec.h; train and eval), and the share
 * and gather of the commands that split rows (batch recommend, precompute);
 * libcbrec has no MPI.
 * Built with MPI when the Makefile finds mpicc (CBREC_MPI); without it, a
 * cbrec started by mpirun says so instead of training K separate models.
 *
 * Every rank reads the same dataset (shared storage, or the same copy on each
 * machine) and fits the same features from it (fitting is deterministic; the
 * library checks that the ranks' tables agree before the first step). Each
 * step's batch is split across ranks: a rank runs the towers on its part, the
 * ranks all-gather the tower outputs (the in-batch softmax) and the loss's
 * buffers, and all-reduce the gradients (MPI_Allreduce: the dense part and
 * the item-id embedding rows the step reached, packed with the head, in one
 * call; train.c packs each collective's pieces into one). Rank 0 prints
 * and writes the model (or the batch lists, table, report); a failure every
 * rank has alike is told once and every rank exits with it (cli_mpi_told,
 * cli_mpi_failed); a rank that fails alone stops every rank (MPI_Abort). */
#include "cli.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef CBREC_MPI
#include <limits.h>
#include <mpi.h>
#include <sys/prctl.h>
#include <time.h>

/* Wait for every rank to arrive (a non-blocking barrier, tested, sleeping
 * between tests once it is not done at once), then run the collective
 * itself blocking. Open MPI's blocking calls poll the shared memory without
 * sleeping, so a rank waiting there for a slower one burns a core the others
 * need (measured: 3.5x the CPU of one process on a loaded machine); its
 * non-blocking collectives (libnbc) are slow instead: an MPI_Iallreduce of
 * the default model's 452,226 floats on 2 ranks took 430 us tested with
 * naps and 325 us with MPI_Wait, against 170 us for MPI_Allreduce, which
 * after the barrier costs the same 170 us; a 256 KB all-gather 20 us
 * against 8 (bench: a 2-rank loop of each, 500 calls, quiet cores). Each
 * nap is a quarter of the time waited so far (5 us to 1 ms): a wake-up
 * comes at most ~25 % after the last rank arrives, and a long wait (the
 * other rank descheduled on a loaded machine) costs a test a millisecond
 * (measured at load 42, two mpirun -np 2 trainings side by side: 0.79x the
 * CPU seconds of naps capped at 100 us). The thread's timer slack is cut to
 * 1 us (cli_mpi_begin), or each short nap would last the default 50 us
 * more. */
static int arrived(void) {
    MPI_Request req;
    if (MPI_Ibarrier(MPI_COMM_WORLD, &req) != MPI_SUCCESS) return 1;
    struct timespec t0 = {0, 0}, now;
    for (int tests = 0;; tests++) {
        int done = 0;
        if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return 1;
        if (done) return 0;
        if (tests < 64) continue;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!t0.tv_sec && !t0.tv_nsec) t0 = now;
        long waited = (now.tv_sec - t0.tv_sec) * 1000000000L + (now.tv_nsec - t0.tv_nsec);
        long ns = waited / 4 < 5000 ? 5000 : waited / 4 > 1000000 ? 1000000 : waited / 4;
        struct timespec nap = {0, ns};
        nanosleep(&nap, NULL);
    }
}

static int allgather(void *ctx, float *buf, const int *count, const int *offset) {
    (void)ctx;
    return arrived() || MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, count, offset, MPI_FLOAT,
                                       MPI_COMM_WORLD) != MPI_SUCCESS;
}

static int allreduce_sum(void *ctx, float *buf, size_t n) {
    (void)ctx;
    for (size_t off = 0; off < n; off += INT_MAX / 2) { /* MPI counts are int */
        int part = (int)(n - off < INT_MAX / 2 ? n - off : INT_MAX / 2);
        if (arrived() || MPI_Allreduce(MPI_IN_PLACE, buf + off, part, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
            return 1;
    }
    return 0;
}
#endif

#define USAGE_TEXT 3072 /* the longest usage error told (unknown command: the command list) */

static int g_argc;      /* the command line (cli_mpi_args), which every rank must share */
static char **g_argv;
static bool g_shared;   /* its command shares its work across the ranks (or is unknown) */

void cli_mpi_args(int argc, char **argv, bool shared) { g_argc = argc, g_argv = argv, g_shared = shared; }

#ifdef CBREC_MPI
/* FNV-1a over n bytes, from h. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ULL;
    return h;
}
#endif

int cli_mpi_agree(cli_mpi *mp, const char *cmd, const char *what, const void *bytes, size_t n) {
    if (mp->size <= 1) return -1;
#ifdef CBREC_MPI
    uint64_t mine = fnv(0xCBF29CE484222325ULL, bytes, n), *all = malloc((size_t)mp->size * sizeof *all);
    if (!all) return cli_fail(CLI_ERROR, cmd, "out of memory");
    if (MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD) != MPI_SUCCESS) {
        free(all);
        return cli_fail(CLI_ERROR, cmd, "MPI_Allgather failed");
    }
    int differs = -1;
    for (int r = 1; r < mp->size && differs < 0; r++)
        if (all[r] != all[0]) differs = r;
    free(all);
    if (differs < 0) return -1;
    mp->settled = true; /* every rank is here and stops: no rank waits in a collective */
    if (mp->rank == 0)
        cli_fail(CLI_ERROR, cmd, "rank %d's %s differs from rank 0's: every rank must run the same command on the "
                                 "same files", differs, what);
    return CLI_ERROR; /* on every rank: none goes on alone */
#else
    (void)cmd, (void)what, (void)bytes, (void)n;
    return -1;
#endif
}

#ifdef CBREC_MPI
/* How a rank's step went, for cli_mpi_told: failed, and the hash of its error. */
typedef struct told_state {
    uint64_t failed, message;
} told_state;

/* cli_mpi_failed's own communicator (a copy of the world's): its calls never
 * match a call of the work's that other ranks wait in. */
static MPI_Comm g_failed = MPI_COMM_NULL;

/* cli_mpi_told over comm, which every rank calls. */
static int told_over(cli_mpi *mp, MPI_Comm comm, const char *cmd, int rc, const cb_error *err) {
    told_state mine = {rc != 0, rc ? fnv(0xCBF29CE484222325ULL, err->msg, strlen(err->msg)) : 0};
    told_state *all = malloc((size_t)mp->size * sizeof *all);
    if (!all || MPI_Allgather(&mine, 2, MPI_UINT64_T, all, 2, MPI_UINT64_T, comm) != MPI_SUCCESS) {
        free(all);
        return rc ? cli_error(cmd, err) : cli_fail(CLI_ERROR, cmd, "out of memory");
    }
    bool any = false, alike = true;
    for (int r = 0; r < mp->size; r++) {
        any |= all[r].failed != 0;
        alike &= all[r].failed && all[r].message == all[0].message;
    }
    free(all);
    if (!any) return -1;
    mp->settled = true; /* every rank is here and stops: no rank waits in a collective */
    if (rc && (!alike || mp->rank == 0)) cli_error(cmd, err); /* the same on every rank: told once, by rank 0 */
    return CLI_ERROR;
}
#endif

int cli_mpi_told(cli_mpi *mp, const char *cmd, int rc, const cb_error *err) {
    if (mp->size <= 1) return rc ? cli_error(cmd, err) : -1;
#ifdef CBREC_MPI
    return told_over(mp, MPI_COMM_WORLD, cmd, rc, err);
#else
    (void)cmd;
    return rc ? cli_error(cmd, err) : -1;
#endif
}

/* How long a failed rank waits for the others to fail too (cli_mpi_failed). */
#define FAILED_WAIT_NS 3000000000L

int cli_mpi_failed(cli_mpi *mp, const char *cmd, int rc, const cb_error *err) {
    if (!rc) return -1;
#ifdef CBREC_MPI
    MPI_Request req;
    int done = 0;
    if (mp->active && mp->size > 1 && g_failed != MPI_COMM_NULL && MPI_Ibarrier(g_failed, &req) == MPI_SUCCESS) {
        struct timespec t0, now, nap = {0, 1000000};
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long waited = 0; !done && waited < FAILED_WAIT_NS; nanosleep(&nap, NULL)) {
            if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) break;
            clock_gettime(CLOCK_MONOTONIC, &now);
            waited = (now.tv_sec - t0.tv_sec) * 1000000000L + (now.tv_nsec - t0.tv_nsec);
        }
    }
    if (done) return told_over(mp, g_failed, cmd, rc, err); /* every rank failed: told once when alike */
#else
    (void)mp;
#endif
    return cli_error(cmd, err); /* alone (or one process): cli_mpi_end stops the others */
}

int cli_mpi_settle(cli_mpi *mp, bool failed) {
    if (mp->size <= 1 || mp->settled) return failed ? CLI_ERROR : -1;
#ifdef CBREC_MPI
    int mine = failed, any = mine;
    if (MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS) any = mine;
    else if (any) mp->settled = true; /* every rank is here and stops: no rank waits in a collective */
    return any ? CLI_ERROR : -1;
#else
    return failed ? CLI_ERROR : -1;
#endif
}

int cli_mpi_agree_model(cli_mpi *mp, const char *cmd, const cb_recommender *rec) {
    if (mp->size <= 1) return -1;
    char *json = NULL;
    cb_error err = {0};
    int failed = cb_recommender_describe(rec, &json, &err) != CB_OK; /* a rank that fails still joins the check */
    int status = cli_mpi_agree(mp, cmd, "model (its fingerprint, counts or table)", failed ? "" : json,
                               failed ? 0 : strlen(json));
    free(json);
    return failed ? cli_error(cmd, &err) : status;
}

void cli_mpi_barrier(const cli_mpi *mp) {
#ifdef CBREC_MPI
    if (mp->active && mp->size > 1) MPI_Barrier(MPI_COMM_WORLD);
#else
    (void)mp;
#endif
}

/* The world size mpirun (Open MPI, or a PMI launcher) gave this process: 1 when not under mpirun. */
static int launched_size(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 1) return atoi(v);
    }
    return 1;
}

int cli_mpi_launched_rank(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"};
    for (size_t i = 0; launched_size() > 1 && i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v);
    }
    return 0;
}

/* One usage error, printed in one call (the ranks share stderr); marked
 * with the rank whose command line it is when that is not rank 0. */
static void usage_print(const char *head, int rank, const char *rest) {
    char text[USAGE_TEXT + 128], mark[48] = "";
    if (rank > 0) snprintf(mark, sizeof mark, " (rank %d's command line)", rank);
    snprintf(text, sizeof text, "%s%s%s", head, mark, rest);
    fputs(text, stderr);
}

#ifdef CBREC_MPI
/* MPI_Init with the transport settings every rank must share (a rank that
 * stops at a usage error starts MPI as the others do). Every rank on this
 * machine (Open MPI says so before MPI_Init): shared memory is the only
 * transport, and Open MPI's default UCX layer spends ~0.2 s of MPI_Init
 * probing devices (0.41 -> 0.21 s for mpirun -np 2 of an empty program
 * here). Its own ob1 layer then, with its shared memory transport (vader,
 * Open MPI 4.x's names; 5.x calls it sm and may ignore these) copying large
 * messages through its buffers in 128 KB pieces rather than by a
 * process_vm_readv system call per piece: the gradient all-reduce (350k
 * floats, 2 ranks) took 230 us a step instead of 450 in training (a loop of
 * it alone: 125 against 185 us), where system calls are dear (a virtual
 * machine). Each setting only unless the caller chose one in the environment
 * (kept; one named only in an MCA parameter file is overridden, as the
 * environment wins). */
static bool mpi_init(void) {
    const char *on_node = getenv("OMPI_COMM_WORLD_LOCAL_SIZE"), *world = getenv("OMPI_COMM_WORLD_SIZE");
    if (on_node && world && !strcmp(on_node, world)) {
        setenv("OMPI_MCA_pml", "ob1", 0);
        setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
        setenv("OMPI_MCA_btl_vader_max_send_size", "131072", 0);
    }
    return MPI_Init(NULL, NULL) == MPI_SUCCESS;
}

/* A rank's usage error ("" head: none), as every rank sends it. */
typedef struct usage_record {
    char head[64], rest[USAGE_TEXT];
} usage_record;

/* The ranks' usage errors, gathered: rank 0 prints each distinct one once
 * (one every rank has alike, once, unmarked; a later application context's
 * own, marked with its first rank). Returns whether any rank had one. Every
 * rank calls it first after MPI_Init (cli_mpi_begin, or cli_mpi_usage). */
static bool usage_gathered(int rank, int size, const char *head, const char *rest) {
    usage_record mine = {{0}, {0}}, *all = calloc((size_t)size, sizeof *all);
    snprintf(mine.head, sizeof mine.head, "%s", head ? head : "");
    snprintf(mine.rest, sizeof mine.rest, "%s", rest ? rest : "");
    if (!all || MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all, sizeof mine, MPI_BYTE, MPI_COMM_WORLD) != MPI_SUCCESS) {
        free(all);
        if (head) usage_print(head, rank, rest); /* untold otherwise */
        return true;
    }
    bool any = false;
    for (int r = 0; r < size; r++) {
        if (!all[r].head[0]) continue;
        any = true;
        bool told = false;
        for (int q = 0; q < r && !told; q++) told = !strcmp(all[q].head, all[r].head) && !strcmp(all[q].rest, all[r].rest);
        if (rank == 0 && !told) usage_print(all[r].head, r, all[r].rest);
    }
    free(all);
    return any;
}
#endif

int cli_mpi_usage(const char *head, const char *rest) {
#ifdef CBREC_MPI
    if (launched_size() > 1 && g_shared && mpi_init()) {
        int rank = 0, size = 1;
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        usage_gathered(rank, size, head, rest);
        MPI_Finalize();
        return CLI_USAGE;
    }
#endif
    if (cli_mpi_launched_rank() == 0) usage_print(head, 0, rest);
    return CLI_USAGE;
}

int cli_mpi_alone(const char *cmd) {
    if (launched_size() <= 1) return -1;
#ifdef CBREC_MPI
    cli_mpi mp; /* the ranks meet as a command that shares its work does: a command line that differs is told */
    int begun = cli_mpi_begin(&mp, cmd, NULL), status = cli_mpi_end(&mp, cmd, begun < 0 ? CLI_OK : begun);
    if (status) return status;
#else
    (void)cmd;
#endif
    return cli_mpi_launched_rank() == 0 ? -1 : CLI_OK;
}

int cli_mpi_help(const char *cmd) {
    if (g_shared) return cli_mpi_alone(cmd);
    return cli_mpi_launched_rank() == 0 ? -1 : CLI_OK; /* a command rank 0 runs alone: the ranks met in main */
}

int cli_mpi_begin(cli_mpi *mp, const char *cmd, cb_config *cfg) {
    memset(mp, 0, sizeof *mp);
    mp->size = 1;
    int launched = launched_size();
    if (launched <= 1) return -1;
#ifndef CBREC_MPI
    (void)cfg;
    if (cli_mpi_launched_rank() > 0) return CLI_ERROR; /* rank 0 tells it (each rank printed it) */
    return cli_fail(CLI_ERROR, cmd,
                    "started by mpirun as one of %d processes, but this cbrec was built without MPI: each would "
                    "do all the work alone. Install libopenmpi-dev (scripts/install-deps.sh) and rebuild (make finds "
                    "mpicc), or run without mpirun",
                    launched);
#else
    if (!mpi_init()) return cli_fail(CLI_ERROR, cmd, "MPI_Init failed");
    mp->active = true;
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0); /* arrived()'s naps: this thread waits in the collectives */
    MPI_Comm_rank(MPI_COMM_WORLD, &mp->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mp->size);
    if (usage_gathered(mp->rank, mp->size, NULL, NULL)) return mp->settled = true, CLI_USAGE; /* rank 0 told it */
    uint64_t line = 0xCBF29CE484222325ULL; /* the command line, each argument ended by a zero byte */
    for (int i = 1; i < g_argc; i++) line = fnv(line, g_argv[i], strlen(g_argv[i]) + 1); /* not argv[0]: ./cbrec or a full path */
    int agreed = cli_mpi_agree(mp, cmd, "command line (its options)", &line, sizeof line);
    if (agreed >= 0) return agreed;
    if (mp->size <= 1) return -1;
    MPI_Comm_dup(MPI_COMM_WORLD, &g_failed);
    MPI_Comm local; /* threads 0 (every core) means this rank's share of its machine's cores */
    int local_size = 1;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, mp->rank, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &local_size);
    MPI_Comm_free(&local);
    long cores = sysconf(_SC_NPROCESSORS_ONLN) / (local_size > 0 ? local_size : 1);
    mp->cores = cores > 1 ? (size_t)cores : 1;
    if (!cfg) return -1;
    cli_mpi_config_threads(mp, cfg);
    mp->comm = (cb_train_comm){mp->rank, mp->size, NULL, allgather, allreduce_sum};
    cb_error err = {0};
    if (cb_config_set_train_comm(cfg, &mp->comm, &err)) return cli_error(cmd, &err);
    return -1;
#endif
}

size_t cli_mpi_threads(const cli_mpi *mp, size_t threads) { return !threads && mp->size > 1 ? mp->cores : threads; }

void cli_mpi_config_threads(const cli_mpi *mp, cb_config *cfg) {
    const char *threads = cb_config_get(cfg, "threads");
    if (mp->size > 1 && threads && !strcmp(threads, "0")) {
        char text[32];
        snprintf(text, sizeof text, "%zu", mp->cores);
        cb_config_set(cfg, "threads", text, NULL);
    }
}

void cli_mpi_share(const cli_mpi *mp, size_t n, size_t align, size_t *lo, size_t *hi) {
    size_t size = mp->size > 1 ? (size_t)mp->size : 1, rank = mp->size > 1 ? (size_t)mp->rank : 0;
    size_t blocks = (n + align - 1) / align;
    *lo = blocks * rank / size * align;
    *hi = rank + 1 == size ? n : blocks * (rank + 1) / size * align;
    if (*lo > n) *lo = n;
    if (*hi > n) *hi = n;
}

int cli_mpi_gather(const cli_mpi *mp, const char *cmd, const void *mine, size_t bytes, char **all, size_t *all_bytes) {
    *all = NULL;
    *all_bytes = 0;
    if (mp->size <= 1) {
        if (!(*all = malloc(bytes + 1))) return cli_fail(CLI_ERROR, cmd, "out of memory");
        if (bytes) memcpy(*all, mine, bytes);
        *all_bytes = bytes;
        return CLI_OK;
    }
#ifdef CBREC_MPI
    if (bytes > INT_MAX) return cli_fail(CLI_ERROR, cmd, "rank %d's part is %zu bytes: at most 2 GB a rank", mp->rank, bytes);
    int n = (int)bytes, *count = mp->rank ? NULL : calloc(2 * (size_t)mp->size, sizeof *count);
    if (!mp->rank && !count) return cli_fail(CLI_ERROR, cmd, "out of memory");
    int status = MPI_Gather(&n, 1, MPI_INT, count, 1, MPI_INT, 0, MPI_COMM_WORLD) == MPI_SUCCESS
                     ? CLI_OK
                     : cli_fail(CLI_ERROR, cmd, "MPI_Gather failed");
    size_t total = 0;
    for (int r = 0; !mp->rank && r < mp->size; r++) {
        count[mp->size + r] = (int)total;
        total += (size_t)count[r];
        if (total > INT_MAX) status = cli_fail(CLI_ERROR, cmd, "the gathered parts exceed 2 GB");
    }
    if (!status && !mp->rank && !(*all = malloc(total + 1))) status = cli_fail(CLI_ERROR, cmd, "out of memory");
    if (status) { /* the other ranks wait in the gather: cli_mpi_end stops them */
        free(count);
        return status;
    }
    if (MPI_Gatherv(mine, n, MPI_BYTE, *all, count, count ? count + mp->size : NULL, MPI_BYTE, 0, MPI_COMM_WORLD) !=
        MPI_SUCCESS)
        status = cli_fail(CLI_ERROR, cmd, "MPI_Gatherv failed");
    *all_bytes = total;
    free(count);
    return status;
#else
    return cli_fail(CLI_ERROR, cmd, "several ranks without MPI");
#endif
}

int cli_mpi_end(cli_mpi *mp, const char *cmd, int status) {
#ifdef CBREC_MPI
    if (!mp->active) return status;
    if (status != CLI_OK && mp->size > 1 && !mp->settled) { /* the other ranks may wait in a collective call */
        fprintf(stderr, "cbrec %s: rank %d of %d failed; stopping every rank\n", cmd, mp->rank, mp->size);
        MPI_Abort(MPI_COMM_WORLD, status);
    }
    if (g_failed != MPI_COMM_NULL) MPI_Comm_free(&g_failed);
    MPI_Finalize();
#else
    (void)mp, (void)cmd;
#endif
    return status;
}
