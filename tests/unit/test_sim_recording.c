/* Tests of the BIDMC and MIMIC numerics readers and the folder scan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim/recording.h"

/* The data sets live in shared/data/vitals beside the repository, and this file
 * is <repo>/tests/unit/test_sim_recording.c. VIGIL_VITALS_DIR overrides. */
static const char *real_data_dir(void)
{
    static char dir[4096];
    const char *env = getenv("VIGIL_VITALS_DIR");
    char *cut;

    if (env && *env)
        return env;
    snprintf(dir, sizeof dir, "%s", __FILE__);
    for (int i = 0; i < 3 && (cut = strrchr(dir, '/')) != NULL; i++)
        *cut = '\0';
    strncat(dir, "/../shared/data/vitals", sizeof dir - strlen(dir) - 1);
    return dir;
}

struct fixture {
    char dir[64];
};

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    strcpy(fx->dir, "/tmp/vigil-rec-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char cmd[128];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        return -1;
    free(fx);
    return 0;
}

static const char bidmc_text[] = "Time [s], HR, PULSE, RESP, SpO2\n"
                                 "0,94,93,25,97\n"
                                 "1,94,NaN,25,NaN\n"
                                 "2,92,93,0,97\n";

static const char mimic_text[] =
    "minute,HR_bpm,ABPSys_mmHg,ABPDias_mmHg,ABPMean_mmHg,PULSE_bpm,RESP_pm,SpO2_pct,"
    "NBPSys_mmHg,NBPDias_mmHg,NBPMean_mmHg\r\n"
    "0,0,0,0,0,0,23,0,NaN,NaN,NaN\r\n"
    "1,62.8,0,0,0,61.5,12.7,96.9,132,63,86\r\n";

static char *path_in(const struct fixture *fx, const char *name)
{
    static char path[256];

    snprintf(path, sizeof path, "%s/%s", fx->dir, name);
    return path;
}

static void bidmc_values_and_nan(void **state)
{
    struct fixture *fx = *state;
    struct recording r;

    write_file(fx->dir, "bidmc_01_Numerics.csv", bidmc_text);
    assert_int_equal(recording_load(path_in(fx, "bidmc_01_Numerics.csv"), &r), VIGIL_OK);
    assert_int_equal(r.format, RECORDING_BIDMC);
    assert_true(r.period_s == 1.0);
    assert_int_equal(r.n_rows, 3);
    assert_string_equal(r.name, "bidmc_01_Numerics.csv");
    assert_true(recording_value(&r, 0, VITAL_HR) == 94.0);
    assert_true(recording_value(&r, 0, VITAL_SPO2) == 97.0);
    assert_true(isnan(recording_value(&r, 1, VITAL_PULSE)));
    assert_true(isnan(recording_value(&r, 1, VITAL_SPO2)));
    /* BIDMC marks gaps with NaN only, so a 0 is a reading. */
    assert_true(recording_value(&r, 2, VITAL_RESP) == 0.0);
    assert_true(isnan(recording_value(&r, 0, VITAL_TEMP)));
    assert_true(isnan(recording_value(&r, 0, VITAL_NBP_SYS)));
    /* Rows wrap around at the end. */
    assert_true(recording_value(&r, 3, VITAL_HR) == 94.0);
    recording_free(&r);
}

static void mimic_zero_is_no_reading(void **state)
{
    struct fixture *fx = *state;
    struct recording r;

    write_file(fx->dir, "s1_per_minute.csv", mimic_text);
    assert_int_equal(recording_load(path_in(fx, "s1_per_minute.csv"), &r), VIGIL_OK);
    assert_int_equal(r.format, RECORDING_MIMIC);
    assert_true(r.period_s == 60.0);
    assert_int_equal(r.n_rows, 2);
    assert_true(isnan(recording_value(&r, 0, VITAL_HR)));
    assert_true(isnan(recording_value(&r, 0, VITAL_SPO2)));
    assert_true(isnan(recording_value(&r, 0, VITAL_ABP_SYS)));
    assert_true(isnan(recording_value(&r, 0, VITAL_NBP_SYS)));
    assert_true(recording_value(&r, 0, VITAL_RESP) == 23.0f);
    assert_true(fabs(recording_value(&r, 1, VITAL_HR) - 62.8) < 1e-4);
    assert_true(fabs(recording_value(&r, 1, VITAL_SPO2) - 96.9) < 1e-4);
    assert_true(recording_value(&r, 1, VITAL_NBP_SYS) == 132.0);
    assert_true(recording_value(&r, 1, VITAL_NBP_MEAN) == 86.0);
    assert_true(isnan(recording_value(&r, 1, VITAL_ABP_MEAN)));
    assert_true(r.channels & (1u << VITAL_ABP_SYS));
    recording_free(&r);
}

static void waveform_file_skipped(void **state)
{
    struct fixture *fx = *state;
    struct recording r;

    write_file(fx->dir, "bidmc_01_Signals.csv",
               "Time [s], RESP, PLETH, V, AVR, II\n0,0.4,0.5,0.1,0.2,0.3\n");
    write_file(fx->dir, "wave.csv", "time_s,II_mV,V_mV,ABP_mmHg\n0,0,0,-1.2\n");
    assert_int_equal(recording_load(path_in(fx, "bidmc_01_Signals.csv"), &r),
                     VIGIL_ERR_NOT_FOUND);
    assert_int_equal(recording_load(path_in(fx, "wave.csv"), &r), VIGIL_ERR_NOT_FOUND);
    assert_null(r.values);
}

static void malformed_rows_rejected(void **state)
{
    struct fixture *fx = *state;
    struct recording r;

    write_file(fx->dir, "bad1.csv", "Time [s], HR, PULSE, RESP, SpO2\n0,94,93,abc,97\n");
    write_file(fx->dir, "bad2.csv", "Time [s], HR, PULSE, RESP, SpO2\n0,94,93\n");
    write_file(fx->dir, "empty.csv", "Time [s], HR, PULSE, RESP, SpO2\n");
    assert_int_equal(recording_load(path_in(fx, "bad1.csv"), &r), VIGIL_ERR_INVALID);
    assert_int_equal(recording_load(path_in(fx, "bad2.csv"), &r), VIGIL_ERR_INVALID);
    assert_int_equal(recording_load(path_in(fx, "empty.csv"), &r), VIGIL_ERR_INVALID);
    assert_int_equal(recording_load(path_in(fx, "missing.csv"), &r), VIGIL_ERR_IO);
}

static void scan_is_recursive_and_sorted(void **state)
{
    struct fixture *fx = *state;
    struct recording_set set;
    char sub[128];

    snprintf(sub, sizeof sub, "%s/b/c", fx->dir);
    assert_int_equal(mkdir(path_in(fx, "b"), 0700), 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    write_file(sub, "s2_per_minute.csv", mimic_text);
    write_file(fx->dir, "a.csv", bidmc_text);
    write_file(fx->dir, "notes.txt", "not a csv");
    write_file(fx->dir, "wave.csv", "time_s,II_mV\n0,0\n");
    assert_int_equal(recording_scan(fx->dir, &set), VIGIL_OK);
    assert_int_equal(set.n, 2);
    assert_int_equal(set.n_bidmc, 1);
    assert_int_equal(set.n_mimic, 1);
    assert_int_equal(set.n_skipped, 1);
    assert_string_equal(set.items[0].name, "a.csv");
    assert_string_equal(set.items[1].name, "s2_per_minute.csv");
    recording_set_free(&set);
    assert_int_equal(recording_scan(path_in(fx, "nope"), &set), VIGIL_ERR_NOT_FOUND);
}

static void real_data_smoke(void **state)
{
    struct recording_set set;
    struct recording r;
    struct stat st;
    size_t nan_rows = 0;
    char path[4200];
    const char *dir = real_data_dir();

    (void)state;
    if (stat(dir, &st) != 0)
        skip();
    assert_int_equal(recording_scan(dir, &set), VIGIL_OK);
    assert_int_equal(set.n_bidmc, 53);
    assert_int_equal(set.n_mimic, 2);
    recording_set_free(&set);

    snprintf(path, sizeof path, "%s/bidmc/numerics/bidmc_01_Numerics.csv", dir);
    assert_int_equal(recording_load(path, &r), VIGIL_OK);
    assert_int_equal(r.n_rows, 481);
    /* Record 01 has a PULSE/SpO2 dropout starting at t = 111 s. */
    assert_false(isnan(recording_value(&r, 110, VITAL_SPO2)));
    assert_true(isnan(recording_value(&r, 111, VITAL_SPO2)));
    for (size_t i = 0; i < r.n_rows; i++)
        nan_rows += isnan(recording_value(&r, i, VITAL_PULSE)) ? 1 : 0;
    assert_true(nan_rows > 0);
    recording_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(bidmc_values_and_nan, setup, teardown),
        cmocka_unit_test_setup_teardown(mimic_zero_is_no_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(waveform_file_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_rows_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(scan_is_recursive_and_sorted, setup, teardown),
        cmocka_unit_test(real_data_smoke),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
