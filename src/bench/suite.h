/* The side-by-side suite of `vigil bench --compare`: every scenario runs
 * against vigil, mosquitto and the raw relay in turn, each broker started
 * fresh on loopback for each scenario and stopped before the next. */
#ifndef VIGIL_BENCH_SUITE_H
#define VIGIL_BENCH_SUITE_H

#include <stdbool.h>
#include <stdint.h>

#include "bench/scenario.h"

struct bench_compare_opts {
    const char *vigil_bin;
    const char *mosquitto_bin;
    const char *out_dir;      /* created if missing */
    const char *only;         /* comma-separated scenario names; NULL for all */
    const char *brokers;      /* comma-separated broker names; NULL for all */
    const char *command;      /* the command line, recorded in results.json */
    bool quick;
    bool keep;                /* keep the brokers' directories */
    struct bench_env env;
};

/* Runs the suite and writes the outputs. Returns the exit status: 0 when
 * every run produced a result, 1 otherwise. */
int bench_compare(const struct bench_compare_opts *o);

/* Prints the suite's scenario names with what each runs. */
void bench_list_suite(bool quick);

/* Raises the soft RLIMIT_NOFILE to the hard limit and returns the number
 * of connections one idle scenario can hold on each side. */
uint32_t bench_raise_fd_limit(void);

#endif
