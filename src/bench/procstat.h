/* CPU time and memory of a process, read from /proc. */
#ifndef VIGIL_BENCH_PROCSTAT_H
#define VIGIL_BENCH_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

#include "core/error.h"

struct bench_proc_sample {
    uint64_t cpu_ns; /* user + system time of all threads (utime + stime of /proc/PID/stat) */
    uint64_t rss_kb; /* VmRSS of /proc/PID/status */
    uint64_t hwm_kb; /* VmHWM: peak resident set size since the process started */
};

/* Reads the sample of pid. Returns VIGIL_ERR_NOT_FOUND when the process is
 * gone, VIGIL_ERR_IO when its files cannot be parsed. */
vigil_err bench_proc_read(pid_t pid, struct bench_proc_sample *out);

/* Busy time of all CPUs together (every /proc/stat "cpu" field except
 * idle and iowait), to tell how much else ran during a measurement. */
vigil_err bench_system_busy(uint64_t *busy_ns);

/* Monotonic clock (CLOCK_MONOTONIC) in nanoseconds. */
uint64_t bench_now_ns(void);

#endif
