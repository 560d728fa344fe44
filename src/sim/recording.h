/* Readers for recorded vital-sign numerics in CSV:
 * - BIDMC PPG and Respiration Dataset (PhysioNet), bidmc_NN_Numerics.csv:
 *   header "Time [s], HR, PULSE, RESP, SpO2", one row per second.
 * - MIMIC-II/III Waveform Database numerics decoded to CSV, *_per_minute.csv:
 *   header "minute,HR_bpm,ABPSys_mmHg,...,SpO2_pct,NBPSys_mmHg,...", one row
 *   per minute.
 * Other CSV files (waveforms, annotations) are recognised by their header and
 * skipped. */
#ifndef VIGIL_SIM_RECORDING_H
#define VIGIL_SIM_RECORDING_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "sim/vitals.h"

/* Caps on what one file or one scan may load. */
#define RECORDING_MAX_ROWS 1000000
#define RECORDING_MAX_FILES 4096
#define RECORDING_MAX_DEPTH 8

enum recording_format {
    RECORDING_BIDMC,  /* 1 Hz numerics */
    RECORDING_MIMIC,  /* per-minute numerics */
};

struct recording {
    char *path;                  /* owned */
    const char *name;            /* file name inside path */
    enum recording_format format;
    double period_s;             /* 1 or 60 */
    size_t n_rows;
    float *values;               /* owned, n_rows * VITAL_COUNT, NaN = no reading */
    uint32_t channels;           /* bit (1u << vital) for each column the file has */
};

struct recording_set {
    struct recording *items;     /* owned, sorted by path */
    size_t n;
    size_t n_bidmc;
    size_t n_mimic;
    size_t n_skipped;            /* CSV files that are not numerics or failed to load */
};

/* Loads one CSV file. VIGIL_ERR_NOT_FOUND when its header is not one of the
 * two numerics formats; VIGIL_ERR_INVALID for a malformed row; VIGIL_ERR_IO
 * when it cannot be opened. On failure *out is left empty. */
vigil_err recording_load(const char *path, struct recording *out);
void recording_free(struct recording *r);

/* Value of vital v at row (wrapping around the end), rounded to the 0.1
 * resolution of the recordings; NaN when absent. */
double recording_value(const struct recording *r, size_t row, enum vital v);

/* Scans dir recursively (up to RECORDING_MAX_DEPTH levels) for *.csv files
 * and loads every numerics file. VIGIL_ERR_NOT_FOUND when dir cannot be
 * opened. A set with n == 0 is returned as VIGIL_OK. */
vigil_err recording_scan(const char *dir, struct recording_set *set);
void recording_set_free(struct recording_set *set);

#endif
