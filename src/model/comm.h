/* comm — the library's use of a cb_train_comm (include/cbrec.h) beyond the
 * training steps: which rank does which share of a piece of work that is not
 * a batch (the neighbour component's tuning grid, its lists), and handing
 * every rank the others' results. Results travel as bit patterns through the
 * communicator's float all-gather (a double is two floats, an int32 one), so
 * every rank assembles the bits one process doing all the work would have.
 * A NULL communicator, or one of one rank, is one process doing everything. */
#ifndef CB_COMM_H
#define CB_COMM_H

#include "base/util.h"

#include <stdbool.h>
#include <stddef.h>

/* The number of ranks (1 for NULL) and this process's rank (0 for NULL). */
int cb_comm_ranks(const cb_train_comm *comm);
int cb_comm_rank(const cb_train_comm *comm);

/* The share [*lo, *hi) of n things of rank `rank` of n_ranks: consecutive,
 * sizes differing by at most one. */
void cb_split_range(size_t n, int n_ranks, int rank, size_t *lo, size_t *hi);

/* All-gather of byte blocks: rank r's block is bytes[r] bytes at buf +
 * offset[r] (each a multiple of 4, buf 4-byte aligned); this rank's block is
 * filled, the call fills the others. One process: nothing to do. CB_EIO when
 * the communicator fails, CB_EINVAL for sizes it cannot carry. */
int cb_comm_allgather_bytes(const cb_train_comm *comm, void *buf, const size_t *bytes, const size_t *offset,
                            cb_error *err);

/* Whether every rank's `ok` holds (one int each, all-gathered): a rank
 * that could not allocate what a collective needs says so before it, where
 * the others would otherwise wait for it forever. CB_OK when all hold, else
 * CB_ENOMEM on every rank (naming the first rank that failed). */
int cb_comm_all_ok(const cb_train_comm *comm, bool ok, cb_error *err);

#endif /* CB_COMM_H */
