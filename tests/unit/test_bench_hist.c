/* Tests for the benchmark's latency histogram: exact small values,
 * percentiles within the stated error, merging and the empty case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "bench/hist.h"

static struct bench_hist *new_hist(void)
{
    struct bench_hist *h = malloc(sizeof *h);

    assert_non_null(h);
    bench_hist_reset(h);
    return h;
}

/* True when got is within 1% of want. */
static int close_to(uint64_t got, uint64_t want)
{
    double d = (double)got - (double)want;

    return (d < 0 ? -d : d) <= (double)want * 0.01;
}

static void test_hist_empty(void **state)
{
    struct bench_hist *h = new_hist();

    (void)state;
    assert_int_equal(bench_hist_percentile(h, 50), 0);
    assert_int_equal(bench_hist_percentile(h, 100), 0);
    free(h);
}

static void test_hist_small_values_exact(void **state)
{
    struct bench_hist *h = new_hist();

    (void)state;
    for (uint64_t v = 1; v <= 100; v++)
        bench_hist_record(h, v);
    assert_int_equal(h->count, 100);
    assert_int_equal(bench_hist_percentile(h, 50), 50);
    assert_int_equal(bench_hist_percentile(h, 99), 99);
    assert_int_equal(bench_hist_percentile(h, 100), 100);
    assert_int_equal(h->min, 1);
    free(h);
}

static void test_hist_percentiles_within_error(void **state)
{
    struct bench_hist *h = new_hist();

    (void)state;
    /* 1 us .. 10 ms in steps of 1 us: percentile p is near p% of 10 ms. */
    for (uint64_t v = 1000; v <= 10000000; v += 1000)
        bench_hist_record(h, v);
    assert_true(close_to(bench_hist_percentile(h, 50), 5000000));
    assert_true(close_to(bench_hist_percentile(h, 99), 9900000));
    assert_true(close_to(bench_hist_percentile(h, 99.9), 9990000));
    assert_int_equal(bench_hist_percentile(h, 100), 10000000);
    free(h);
}

static void test_hist_outlier_sets_max(void **state)
{
    struct bench_hist *h = new_hist();

    (void)state;
    for (int i = 0; i < 999; i++)
        bench_hist_record(h, 100000);
    bench_hist_record(h, UINT64_C(5000000000));
    assert_true(close_to(bench_hist_percentile(h, 99.9), 100000));
    assert_int_equal(bench_hist_percentile(h, 100), UINT64_C(5000000000));
    free(h);
}

static void test_hist_merge(void **state)
{
    struct bench_hist *a = new_hist(), *b = new_hist();

    (void)state;
    for (int i = 0; i < 90; i++)
        bench_hist_record(a, 1000);
    for (int i = 0; i < 10; i++)
        bench_hist_record(b, 2000000);
    bench_hist_merge(a, b);
    assert_int_equal(a->count, 100);
    assert_int_equal(a->min, 1000);
    assert_int_equal(a->max, 2000000);
    assert_true(close_to(bench_hist_percentile(a, 50), 1000));
    assert_true(close_to(bench_hist_percentile(a, 95), 2000000));
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_empty),
        cmocka_unit_test(test_hist_small_values_exact),
        cmocka_unit_test(test_hist_percentiles_within_error),
        cmocka_unit_test(test_hist_outlier_sets_max),
        cmocka_unit_test(test_hist_merge),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
