/* bench_clock — the CPU clocks of the benchmarks: a loaded machine's wall
 * clock counts the time spent waiting for a core, these do not. */
#ifndef CB_BENCH_CLOCK_H
#define CB_BENCH_CLOCK_H

#include <time.h>

/* CPU seconds of this thread. */
static inline double bench_thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the whole process (every thread, OpenBLAS's included). */
static inline double bench_process_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
