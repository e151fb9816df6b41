/* comm — splitting work that is not a batch across a cb_train_comm's ranks
 * and gathering the results as bits. See comm.h. */
#include "model/comm.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int cb_comm_ranks(const cb_train_comm *comm) { return comm && comm->n_ranks > 1 ? comm->n_ranks : 1; }

int cb_comm_rank(const cb_train_comm *comm) { return cb_comm_ranks(comm) > 1 ? comm->rank : 0; }

void cb_split_range(size_t n, int n_ranks, int rank, size_t *lo, size_t *hi) {
    *lo = n * (size_t)rank / (size_t)n_ranks;
    *hi = n * ((size_t)rank + 1) / (size_t)n_ranks;
}

int cb_comm_allgather_bytes(const cb_train_comm *comm, void *buf, const size_t *bytes, const size_t *offset,
                            cb_error *err) {
    int n = cb_comm_ranks(comm), small[64]; /* few ranks: no allocation that could fail on one rank alone */
    if (n == 1) return CB_OK;
    int *count = 2 * n <= 64 ? small : cb_malloc(2 * (size_t)n * sizeof *count, err);
    if (!count) return CB_ENOMEM;
    int rc = CB_OK;
    for (int r = 0; r < n && !rc; r++) {
        if (bytes[r] % 4 || offset[r] % 4 || (bytes[r] + offset[r]) / 4 > INT_MAX)
            rc = cb_fail(err, CB_EINVAL, "across processes: a block of %zu bytes at %zu cannot be gathered", bytes[r],
                         offset[r]);
        count[r] = (int)(bytes[r] / 4);
        count[n + r] = (int)(offset[r] / 4);
    }
    if (!rc && comm->allgather(comm->ctx, buf, count, count + n))
        rc = cb_fail(err, CB_EIO, "across processes: the communicator's all-gather failed");
    if (count != small) free(count);
    return rc;
}

int cb_comm_all_ok(const cb_train_comm *comm, bool ok, cb_error *err) {
    int n = cb_comm_ranks(comm), me = cb_comm_rank(comm);
    if (n == 1) return ok ? CB_OK : CB_ENOMEM;
    int32_t flag[n];
    size_t bytes[n], offset[n];
    for (int r = 0; r < n; r++) flag[r] = 1, bytes[r] = sizeof *flag, offset[r] = (size_t)r * sizeof *flag;
    flag[me] = ok;
    int rc = cb_comm_allgather_bytes(comm, flag, bytes, offset, err);
    for (int r = 0; !rc && r < n; r++)
        if (!flag[r]) rc = cb_fail(err, CB_ENOMEM, "across processes: rank %d ran out of memory", r);
    return rc;
}
