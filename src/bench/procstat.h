/* CPU time and memory of a process, read from /proc. */
#ifndef VIGIL_BENCH_PROCSTAT_H
#define VIGIL_BENCH_PROCSTAT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/error.h"

struct bench_proc_sample {
    uint64_t cpu_ns; /* user + system time of all threads (utime + stime of /proc/PID/stat) */
    uint64_t sys_ns; /* the system (kernel) part of cpu_ns: stime */
    uint64_t rss_kb; /* VmRSS of /proc/PID/status */
    uint64_t hwm_kb; /* VmHWM: peak resident set size since the process started */
};

/* Reads the sample of pid. Returns VIGIL_ERR_NOT_FOUND when the process is
 * gone, VIGIL_ERR_IO when its files cannot be parsed. */
vigil_err bench_proc_read(pid_t pid, struct bench_proc_sample *out);

/* Time of all CPUs together from the "cpu" line of /proc/stat. */
struct bench_system_sample {
    uint64_t task_ns;    /* user + nice + system: time charged to processes */
    uint64_t irq_ns;     /* irq + softirq: charged to no process, such as the
                          * TCP receive work of loopback traffic */
    uint64_t steal_ns;   /* taken by the hypervisor */
};

vigil_err bench_system_read(struct bench_system_sample *out);

/* CPU use of every process other than broker (0 for none) and this one
 * over window_ms, in percent of one core. Returns -1 when /proc cannot be
 * read. */
double bench_other_cpu_pct(pid_t broker, unsigned window_ms);

/* Waits until other processes use less than max_pct of one core over
 * 250 ms, at most max_wait_ms. Returns false on timeout; prints what it
 * waits for on stderr when verbose is set. */
bool bench_wait_machine_quiet(pid_t broker, double max_pct, unsigned max_wait_ms, bool verbose);

/* Waits, for at most max_wait_ms, until process pid itself uses less than
 * max_pct of one core over 250 ms, as a broker does once it has finished
 * the work a burst left behind (queued events, log writes). Returns false
 * on timeout. */
bool bench_wait_proc_quiet(pid_t pid, double max_pct, unsigned max_wait_ms);

/* Monotonic clock (CLOCK_MONOTONIC) in nanoseconds. */
uint64_t bench_now_ns(void);

#endif
