/* Benchmark output: the machine description, the summary of a side-by-side
 * run (headline metric per scenario and broker, with the vigil/mosquitto
 * ratio) and the files results.json, steps.csv, summary.csv, summary.md. */
#ifndef VIGIL_BENCH_REPORT_H
#define VIGIL_BENCH_REPORT_H

#include <jansson.h>
#include <stdio.h>

#include "core/error.h"

/* {"cpu", "cores", "memory_kb", "kernel", "mosquitto"} from /proc and uname. */
json_t *bench_machine_info(const char *mosquitto_bin);

/* Builds the summary rows of results (an array of scenario results). */
json_t *bench_summarize(json_t *results);

/* Prints the summary rows as a Markdown table. */
void bench_print_summary(FILE *out, json_t *summary);

/* Writes results.json (doc as given), steps.csv, summary.csv and
 * summary.md into dir, which must exist. doc contains "results" and
 * "summary". On failure writes the reason into err. */
vigil_err bench_write_outputs(const char *dir, json_t *doc, char *err, size_t errcap);

/* Appends one CSV row per traffic step of result to f; header first when
 * with_header is set. */
void bench_write_steps_csv(FILE *f, json_t *result, int with_header);

#endif
