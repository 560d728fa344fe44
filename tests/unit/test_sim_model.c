/* Tests of the built-in physiological model: ranges, determinism, episodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "sim/alarm.h"
#include "sim/model.h"

#define HOURS_S (4 * 3600)

static void values_in_plausible_ranges(void **state)
{
    (void)state;
    for (uint32_t patient = 0; patient < 20; patient++) {
        struct model_patient p;
        double v[VITAL_COUNT];
        int nbp = 0;

        model_init(&p, 42, patient);
        for (int s = 0; s < 3600; s++) {
            model_step(&p, 1.0, v);
            assert_true(v[VITAL_HR] >= 30 && v[VITAL_HR] <= 220);
            assert_true(v[VITAL_PULSE] >= 30 && v[VITAL_PULSE] <= 220);
            assert_true(v[VITAL_SPO2] >= 60 && v[VITAL_SPO2] <= 100);
            assert_true(v[VITAL_RESP] >= 3 && v[VITAL_RESP] <= 50);
            assert_true(v[VITAL_TEMP] >= 34 && v[VITAL_TEMP] <= 41);
            assert_true(v[VITAL_HR] == round(v[VITAL_HR]));
            assert_true(isnan(v[VITAL_ABP_SYS]));
            if (!isnan(v[VITAL_NBP_SYS])) {
                nbp++;
                assert_true(v[VITAL_NBP_SYS] > v[VITAL_NBP_DIA]);
                assert_true(v[VITAL_NBP_MEAN] > v[VITAL_NBP_DIA]);
                assert_true(v[VITAL_NBP_MEAN] < v[VITAL_NBP_SYS]);
            }
        }
        /* Cuff pressure every 15 minutes: four readings in an hour. */
        assert_int_equal(nbp, 4);
    }
}

static void same_seed_same_values(void **state)
{
    struct model_patient a, b, c;
    double va[VITAL_COUNT], vb[VITAL_COUNT], vc[VITAL_COUNT];
    int differ = 0;

    (void)state;
    model_init(&a, 7, 3);
    model_init(&b, 7, 3);
    model_init(&c, 8, 3);
    for (int s = 0; s < 600; s++) {
        model_step(&a, 1.0, va);
        model_step(&b, 1.0, vb);
        model_step(&c, 1.0, vc);
        for (int i = 0; i < VITAL_COUNT; i++) {
            assert_true((isnan(va[i]) && isnan(vb[i])) || va[i] == vb[i]);
            if (!isnan(va[i]) && va[i] != vc[i])
                differ++;
        }
    }
    assert_true(differ > 0);
}

static void patients_differ(void **state)
{
    struct model_patient a, b;

    (void)state;
    model_init(&a, 1, 0);
    model_init(&b, 1, 1);
    assert_true(a.hr0 != b.hr0);
    assert_true(a.spo2_0 != b.spo2_0);
}

/* Over a few simulated hours across a ward, episodes must drive alarms. */
static void episodes_raise_alarms(void **state)
{
    int raised[ALARM_COUNT] = {0};

    (void)state;
    for (uint32_t patient = 0; patient < 10; patient++) {
        struct model_patient p;
        struct alarm_state st[ALARM_COUNT];
        double v[VITAL_COUNT];

        memset(st, 0, sizeof st);
        model_init(&p, 1, patient);
        for (int s = 0; s < HOURS_S; s++) {
            model_step(&p, 1.0, v);
            for (int k = 0; k < ALARM_COUNT; k++) {
                const struct alarm_rule *r = alarm_rule((enum alarm_kind)k);

                if (alarm_feed(&st[k], r, s, 1, v[r->metric], 10) == ALARM_EVENT_RAISED)
                    raised[k]++;
            }
        }
    }
    assert_true(raised[ALARM_SPO2_LOW] > 0);
    assert_true(raised[ALARM_HR_HIGH] > 0);
    assert_true(raised[ALARM_RESP_LOW] > 0);
}

static void rng_uniform_in_unit_interval(void **state)
{
    struct model_rng r;
    double sum = 0;

    (void)state;
    model_rng_seed(&r, 99);
    for (int i = 0; i < 10000; i++) {
        double u = model_rng_uniform(&r);

        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
    }
    assert_true(fabs(sum / 10000 - 0.5) < 0.02);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_in_plausible_ranges),
        cmocka_unit_test(same_seed_same_values),
        cmocka_unit_test(patients_differ),
        cmocka_unit_test(episodes_raise_alarms),
        cmocka_unit_test(rng_uniform_in_unit_interval),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
