/* Tests for damped incremental statistics against a direct computation,
 * and for measurement extraction from SenML and plain payloads. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "secmon/stats.h"
#include "secmon/value.h"

#define SEC INT64_C(1000000)
#define N 200

/* Weighted mean and variance with weight 2^(-(t_last - t_i)/h), computed
 * from all samples at once. */
static void reference(const double *x, const int64_t *t, int n, double h, double *w, double *mean,
                      double *var)
{
    double sw = 0, sx = 0, sxx = 0;

    for (int i = 0; i < n; i++) {
        double wi = exp2(-((double)(t[n - 1] - t[i]) / 1e6) / h);

        sw += wi;
        sx += wi * x[i];
    }
    *mean = sx / sw;
    for (int i = 0; i < n; i++) {
        double wi = exp2(-((double)(t[n - 1] - t[i]) / 1e6) / h);

        sxx += wi * (x[i] - *mean) * (x[i] - *mean);
    }
    *w = sw;
    *var = sxx / sw;
}

static void test_damped_matches_reference(void **state)
{
    double x[N];
    int64_t t[N];
    struct secmon_damped s;
    double w, mean, var;
    uint32_t seed = 12345;

    (void)state;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = 50.0 + (double)(seed >> 16 & 0xff) / 8.0;
        t[i] = INT64_C(1767323045000000) + i * 700000 + (int64_t)(seed % 300000);
        secmon_damped_add(&s, 60.0, t[i], x[i]);
    }
    reference(x, t, N, 60.0, &w, &mean, &var);
    assert_float_equal(s.weight, w, 1e-9 * w);
    assert_float_equal(secmon_damped_mean(&s), mean, 1e-9 * mean);
    assert_float_equal(secmon_damped_var(&s), var, 1e-9 * var + 1e-12);
}

static void test_damped_halves_per_half_life(void **state)
{
    struct secmon_damped s;

    (void)state;
    memset(&s, 0, sizeof s);
    secmon_damped_add(&s, 10.0, 1000 * SEC, 4.0);
    secmon_damped_add(&s, 10.0, 1000 * SEC, 8.0);
    assert_float_equal(s.weight, 2.0, 1e-12);
    secmon_damped_decay(&s, 10.0, 1010 * SEC);
    assert_float_equal(s.weight, 1.0, 1e-12);
    assert_float_equal(secmon_damped_mean(&s), 6.0, 1e-12);
    assert_float_equal(secmon_damped_var(&s), 4.0, 1e-12);
    /* Time going backwards changes nothing. */
    secmon_damped_decay(&s, 10.0, 900 * SEC);
    assert_float_equal(s.weight, 1.0, 1e-12);
}

/* Statistics of several half-lives decayed over the same intervals, in
 * turn, each get the factor of their own half-life. */
static void test_damped_decay_per_half_life(void **state)
{
    static const double half_lives[] = {10.0, 60.0, 600.0, 3600.0, 5.0};
    struct secmon_damped s[5];

    (void)state;
    memset(s, 0, sizeof s);
    for (int i = 0; i < 5; i++)
        secmon_damped_add(&s[i], half_lives[i], 1000 * SEC, 1.0);
    for (int step = 1; step <= 3; step++)
        for (int i = 0; i < 5; i++)
            secmon_damped_decay(&s[i], half_lives[i], (1000 + 7 * step) * SEC);
    for (int i = 0; i < 5; i++)
        assert_float_equal(s[i].weight, exp2(-21.0 / half_lives[i]), 1e-12);
}

static void test_damped_rate_steady_stream(void **state)
{
    struct secmon_multi m;

    (void)state;
    memset(&m, 0, sizeof m);
    for (int i = 0; i < 2000; i++)
        secmon_multi_add(&m, 1000 * SEC + i * SEC / 4, 1.0); /* 4 per second */
    for (int w = 0; w < SECMON_WINDOWS; w++) {
        double r = secmon_damped_rate(&m.win[w], secmon_half_life_s[w], 1000 * SEC + 1999 * SEC / 4);

        assert_true(fabs(r - 4.0) < 0.2);
    }
}

static void test_damped_empty(void **state)
{
    struct secmon_damped s;

    (void)state;
    memset(&s, 0, sizeof s);
    assert_float_equal(secmon_damped_mean(&s), 0, 0);
    assert_float_equal(secmon_damped_var(&s), 0, 0);
    assert_float_equal(secmon_damped_rate(&s, 10, 5 * SEC), 0, 0);
}

static bool extract(const char *topic, const char *payload, char *metric, double *v)
{
    return secmon_extract_value(topic, strlen(topic), (const uint8_t *)payload, strlen(payload), metric, 24, v);
}

static void test_value_senml_simulator(void **state)
{
    char metric[24];
    double v = 0;

    (void)state;
    assert_true(extract("north/icu3/r1/mon-1/spo2",
                        "[{\"bn\":\"mon-1/\",\"bt\":1767323045,\"n\":\"spo2\",\"u\":\"/\",\"v\":0.97}]", metric, &v));
    assert_string_equal(metric, "spo2");
    assert_float_equal(v, 97.0, 1e-9);
    assert_true(extract("x", "[{\"n\":\"heart_rate\",\"u\":\"beat/min\",\"v\":72}]", metric, &v));
    assert_string_equal(metric, "heart_rate");
    assert_float_equal(v, 72.0, 1e-9);
    assert_true(extract("x", "[{\"bn\":\"urn:dev:mon-1:\",\"n\":\"abp_sys\",\"u\":\"Pa\",\"v\":15998.68648978}]",
                        metric, &v));
    assert_float_equal(v, 120.0, 1e-6);
    assert_true(extract("x", " [ {\"bn\":\"mon-1/temp\", \"u\":\"K\", \"v\":310.15} ] ", metric, &v));
    assert_string_equal(metric, "temperature");
    assert_float_equal(v, 37.0, 1e-9);
}

static void test_value_plain_number(void **state)
{
    char metric[24];
    double v = 0;

    (void)state;
    assert_true(extract("north/icu3/r1/mon-1/hr", " 72.5\n", metric, &v));
    assert_string_equal(metric, "heart_rate");
    assert_float_equal(v, 72.5, 1e-12);
    assert_false(extract("north/icu3/r1/mon-1/firmware", "72", metric, &v));
    assert_false(extract("north/icu3/r1/mon-1/hr", "72 bpm", metric, &v));
    assert_false(extract("north/icu3/r1/mon-1/hr", "nan", metric, &v));
    assert_false(extract("north/icu3/r1/mon-1/hr", "1e999", metric, &v));
}

static void test_value_rejects_malformed(void **state)
{
    static const char *const bad[] = {
        "[", "[{", "[{\"n\":\"heart_rate\",\"v\":}]", "[{\"n\":\"heart_rate\"}]",
        "[{\"n\":\"heart_rate\",\"u\":\"Pa\",\"v\":1}]", "{\"n\":\"heart_rate\",\"v\":1}",
        "[{\"n\":\"heart_rate\",\"v\":\"72\"}]", "[{\"n\":\"heart_rate\",\"v\":[72]}]", "",
    };
    char metric[24];
    double v;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(extract("x/heart_rate", bad[i], metric, &v));
}

static void test_value_second_record(void **state)
{
    char metric[24];
    double v = 0;

    (void)state;
    assert_true(extract("x", "[{\"bn\":\"mon-1/\",\"n\":\"alarm\",\"vs\":\"on\"},{\"n\":\"resp_rate\",\"v\":14}]",
                        metric, &v));
    assert_string_equal(metric, "resp_rate");
    assert_float_equal(v, 14.0, 1e-12);
}

static void test_metric_ranges(void **state)
{
    double lo, hi;
    const char *unit;

    (void)state;
    assert_true(secmon_metric_range("heart_rate", &lo, &hi, &unit));
    assert_float_equal(lo, 20, 0);
    assert_float_equal(hi, 300, 0);
    assert_true(secmon_metric_range("spo2", &lo, &hi, &unit));
    assert_float_equal(lo, 50, 0);
    assert_false(secmon_metric_range("firmware", &lo, &hi, &unit));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_damped_matches_reference),
        cmocka_unit_test(test_damped_halves_per_half_life),
        cmocka_unit_test(test_damped_decay_per_half_life),
        cmocka_unit_test(test_damped_rate_steady_stream),
        cmocka_unit_test(test_damped_empty),
        cmocka_unit_test(test_value_senml_simulator),
        cmocka_unit_test(test_value_plain_number),
        cmocka_unit_test(test_value_rejects_malformed),
        cmocka_unit_test(test_value_second_record),
        cmocka_unit_test(test_metric_ranges),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
