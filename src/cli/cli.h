/* cli — the `cbrec` front end: argument parsing, printing and exit codes.
 * No recommender logic lives here; each command parses its options, calls
 * the library, prints, and returns an exit status. */
#ifndef CB_CLI_H
#define CB_CLI_H

#include "cbrec.h"
#include <stdbool.h>
#include <stdio.h>

/* Exit statuses shared by all commands. */
enum { CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2 };

/* Print "cbrec <cmd>: <message>" to stderr and return CLI_ERROR. */
int cli_error(const char *cmd, const cb_error *err);
/* Print a formatted error to stderr and return `status`. */
int cli_fail(int status, const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The model (and table, may be NULL) of a command that does without the
 * known users' histories (similar, precompute, index, add-item, predict,
 * embed): a history file of another model beside it (an interrupted save)
 * is left out with a note, as an absent one is. NULL after printing why. */
cb_recommender *cli_load_model(const char *cmd, const char *model, const char *table);
/* Its note, when a history was left out (rank 0 under mpirun). */
void cli_history_note(const char *cmd, const cb_recommender *rec);
/* Whether rec holds no users' histories (cb_recommender_describe's "history": "absent"). */
bool cli_history_absent(const cb_recommender *rec);

/* Text for one line of the output for people (an id, a title, a reason, a
 * note): s itself, or, when s holds control characters (a line break or a
 * tab of a quoted field), a copy in buf[size] with each one a space, cut at
 * a character's start and ended by "..." when it does not fit; so that an
 * item stays on its line and predict's columns stay apart. The JSON outputs
 * keep the text as it is. NULL: "". */
const char *cli_line(const char *s, char *buf, size_t size);
#define CLI_LINE_MAX 1024
/* The printf field width ("%-*s") that pads s to `columns` terminal
 * columns: a CJK or emoji character takes two, a combining mark none, any
 * other character one (a width by bytes misaligned the lists' non-ASCII ids). */
int cli_pad(const char *s, int columns);

/* Key i of kind `kind` into *k; its value in cfg when set away from its
 * default, else NULL (also when i is past the keys). */
const char *cli_changed_key(const cb_config *cfg, cb_config_kind kind, size_t i, cb_config_key_info *k);
/* Whether `keys` (",a,b,") names `name`. */
bool cli_key_listed(const char *keys, const char *name);
/* The first key that `keys` (",a,b,") names and the command line gave
 * (cb_config_given: its default written out too): the command (or its mode)
 * does not read it, and it would be taken and ignored. NULL: none. */
const char *cli_ignored_key(const cb_config *cfg, cb_config_kind kind, const char *keys);

/* Wall-clock seconds (monotonic), for the timings commands print. */
double cli_now(void);

/* ---- options: a command's own options plus the keys of its configuration
 * kind, so every `--key VALUE` goes to cb_config_set and --help is generated
 * from the key table (options.c). */
/* The values of a repeatable option (predict's --item A --item B), in the
 * caller's array values[cap]: n of them given; one more is a usage error. */
typedef struct cli_list {
    const char **values;
    size_t n, cap;
} cli_list;

typedef struct cli_opt {
    const char *name;   /* long name without "--"; NULL ends a list */
    char short_name;    /* e.g. 'q' for -q; 0: none */
    const char *hint;   /* value hint ("PATH"); NULL: a flag */
    const char *help;
    const char **value; /* receives the value (hint != NULL; the last one given) */
    bool *flag;         /* set to true (hint == NULL) */
    cli_list *list;     /* instead of value: receives every value given */
} cli_opt;

typedef struct cli_command {
    const char *name;     /* "train" */
    const char *usage;    /* the first lines of --help */
    const cli_opt *opts;  /* the command's own options */
    cb_config_kind kind;  /* the kind of its keys; 0: none */
    const char *sections; /* comma-separated key sections it takes; NULL: all */
} cli_command;

/* Parse argv[1..argc): the command's options (--name VALUE, --name=VALUE, -x
 * VALUE) and cfg's keys (--key VALUE, --key=VALUE, and for boolean keys --key
 * / --no-key). Returns -1 to go on, CLI_OK after printing --help, or
 * CLI_USAGE after printing what was wrong (the key and what it accepts). */
int cli_parse(const cli_command *c, cb_config *cfg, int argc, char **argv);
/* cli_parse over two configs: a key goes to cfg when c->kind has it, else to
 * cfg2 (of kind2, keys of sections2; NULL: all); --help lists both, but for
 * the keys of c->kind in refused (",key,...": the command refuses them). */
int cli_parse2(const cli_command *c, cb_config *cfg, cb_config_kind kind2, const char *sections2, cb_config *cfg2,
               const char *refused, int argc, char **argv);
/* The usage, the command's options and its keys grouped by section. */
void cli_help(FILE *f, const cli_command *c);
/* Print the message, then the usage line; returns CLI_USAGE. */
int cli_usage_error(const cli_command *c, const char *msg);
/* An output path checked before the work, so that an output never replaces
 * an input: not the model file, its default history (MODEL.history; model
 * may be NULL) or any of inputs[0..n_inputs) (NULL entries skipped), and
 * writable. -1 = go on, else the exit status (the error printed, naming both
 * paths). CLI_INPUTS(a, b, ...) spells inputs and n_inputs. Under mpirun
 * rank 0 alone checks (it alone writes; the others go on to stop with it). */
int cli_check_output(const char *cmd, const char *out, const char *model, const char *const *inputs, size_t n_inputs);
#define CLI_INPUTS(...) (const char *const[]){__VA_ARGS__}, sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)

/* ---- approximate search options, shared by similar, recommend and
 * precompute (cmd_index.c): --index FILE attaches an index from `cbrec
 * index`, --exact turns it off, --ef N sets the search beam. */
typedef struct cli_search {
    const char *index, *ef;
    bool exact;
} cli_search;
#define CLI_SEARCH_OPTS(s)                                                                                        \
    {"index", 0, "FILE", "an approximate index from `cbrec index` (used from " CLI_STR(CB_ANN_AUTO_MIN_ITEMS)     \
                         " items on)", &(s).index, NULL, NULL},                                                   \
        {"exact", 0, NULL, "exact search even with --index", NULL, &(s).exact, NULL},                             \
        {"ef", 0, "N", "approximate search beam (default 64; larger = higher recall, slower)", &(s).ef, NULL, NULL}
#define CLI_STR(x) CLI_STR2(x)
#define CLI_STR2(x) #x
typedef struct cli_mpi cli_mpi;
/* Load s->index into rec and set the search mode; prints and returns
 * CLI_ERROR / CLI_USAGE on failure, CLI_OK otherwise. Under mpirun (mp; NULL
 * for a command rank 0 runs alone) every rank must call it: a failure that
 * every rank has alike is told once (cli_mpi_told). */
int cli_search_apply(const char *cmd, cb_recommender *rec, const cli_search *s, cli_mpi *mp);

/* ---- mpirun (mpi.c): work across processes. cli_mpi_begin starts MPI
 * when mpirun launched this process and hands the library its hook (cfg's
 * train comm; threads 0 becomes this rank's share of its machine's cores);
 * -1 to go on, or an exit status (e.g. a cbrec built without MPI). Rank 0
 * alone prints and writes. cli_mpi_end returns status, after stopping every
 * rank when this one failed. */
struct cli_mpi {
    int rank, size;
    bool active;
    bool settled; /* every rank stopped together (cli_mpi_told, cli_mpi_agree, a usage error):
                   * cli_mpi_end need not stop them */
    size_t cores; /* this rank's share of its machine's cores (its ranks there share them out), >= 1 */
    cb_train_comm comm;
};
int cli_mpi_begin(cli_mpi *mp, const char *cmd, cb_config *cfg);
/* A thread count after cli_mpi_begin: 0 (every core) under mpirun is this
 * rank's share of its machine's cores (mp->cores), so the ranks on one
 * machine do not each start a thread per core. */
size_t cli_mpi_threads(const cli_mpi *mp, size_t threads);
/* The same for cfg's "threads" (cli_mpi_begin does it for the cfg it is given). */
void cli_mpi_config_threads(const cli_mpi *mp, cb_config *cfg);
/* This process's rank as mpirun's environment says, before cli_mpi_begin
 * (0 when not started by mpirun): for messages rank 0 alone prints. */
int cli_mpi_launched_rank(void);
/* Tell a usage error: head ("cbrec train") and the rest (": what was wrong\n"
 * and the usage lines); returns CLI_USAGE. Under mpirun, in a command the
 * ranks share (or an unknown one), every rank's error reaches rank 0 (this
 * rank starts MPI to send it; cli_mpi_begin brings the ranks without one),
 * which prints each distinct one once: one every rank has alike, once; the
 * error of another command line (an MPMD `mpirun -np 1 A : -np 1 B`) marked
 * "(rank N's command line)". Elsewhere rank 0 alone prints. */
int cli_mpi_usage(const char *head, const char *rest);
/* A command rank 0 runs alone (predict, similar, serve, ...; --help and
 * --version): -1 when this process runs it, else its exit status. Under
 * mpirun the ranks first meet as cli_mpi_begin has them meet, so a rank
 * whose command line differs (an MPMD `mpirun -np 1 A : -np 1 B`, where B
 * shares its work and hung in MPI_Init) stops, told; then the others leave. */
int cli_mpi_alone(const char *cmd);
/* --help of command cmd: -1 when this process prints it, else its exit
 * status: in a command the ranks share, cli_mpi_alone; in one rank 0 runs
 * alone (main met the ranks), rank 0 prints. */
int cli_mpi_help(const char *cmd);
/* The command line cli_mpi_begin checks every rank shares (main sets it),
 * and whether its command shares its work across the ranks. */
void cli_mpi_args(int argc, char **argv, bool shared);
/* Whether every rank holds the same bytes (what: named in the error): -1
 * when they do (or one process), else CLI_ERROR on every rank, rank 0
 * saying which rank differs first. Every rank must call it. */
int cli_mpi_agree(cli_mpi *mp, const char *cmd, const char *what, const void *bytes, size_t n);
/* After a step every rank takes alike (loading the same model or data), rc
 * and err its outcome: -1 when it succeeded on every rank, else CLI_ERROR
 * on every rank, the error printed once (by rank 0) when every rank failed
 * with the same message, else by each rank that failed. Every rank must
 * call it; one process: prints err when rc != 0. */
int cli_mpi_told(cli_mpi *mp, const char *cmd, int rc, const cb_error *err);
/* After a step that may fail on every rank alike or on one alone (training,
 * an evaluation: rc, err its outcome, called only when it returns): -1
 * when rc is 0, else CLI_ERROR. The ranks that fail wait a few seconds for
 * one another (on a communicator of their own, so a rank waiting in a call
 * of the work is not met): when every rank failed, the error is told as
 * cli_mpi_told tells it and none is stopped; else this rank tells its own,
 * and cli_mpi_end stops the others. */
int cli_mpi_failed(cli_mpi *mp, const char *cmd, int rc, const cb_error *err);
/* After a step every rank passed together (a gather), failed this rank's
 * outcome since (rank 0's write of what it gathered), told by it: -1 when
 * no rank failed, else CLI_ERROR on every rank, which stop together
 * (cli_mpi_end stops none: rank 0's failed write had aborted the job). Every
 * rank that passed the step must call it; one process: CLI_ERROR if failed. */
int cli_mpi_settle(cli_mpi *mp, bool failed);
/* The same for the model every rank loaded (cb_recommender_describe). */
int cli_mpi_agree_model(cli_mpi *mp, const char *cmd, const cb_recommender *rec);
/* Every rank waits here (nothing under one process). */
void cli_mpi_barrier(const cli_mpi *mp);
int cli_mpi_end(cli_mpi *mp, const char *cmd, int status);
/* Commands other than train shard their rows (batch recommend: users;
 * precompute: items) with cli_mpi_begin(mp, cmd, NULL): this rank's share
 * [*lo, *hi) of n rows (consecutive, in rank order, starting at multiples of
 * align >= 1; everything for one process), and the ranks' parts gathered to rank 0 in rank order (*all
 * malloc'd on rank 0, NULL elsewhere; one process: a copy). Every rank must
 * call cli_mpi_gather; on failure the caller returns through cli_mpi_end,
 * which stops the others. */
void cli_mpi_share(const cli_mpi *mp, size_t n, size_t align, size_t *lo, size_t *hi);
int cli_mpi_gather(const cli_mpi *mp, const char *cmd, const void *mine, size_t bytes, char **all, size_t *all_bytes);

/* Commands: int cmd_<name>(int argc, char **argv), argv[0] is the command name. */
int cmd_inspect(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_similar(int argc, char **argv);
int cmd_precompute(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_recommend(int argc, char **argv);
int cmd_add_item(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_experiment(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_serve(int argc, char **argv);  /* src/serve/cmd_serve.c (linked into cbrec with the server) */
int cmd_events(int argc, char **argv);

#endif
