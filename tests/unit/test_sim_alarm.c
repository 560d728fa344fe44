/* Tests of the alarm state machine: sustain window, clear, gaps, message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "sim/alarm.h"

static void spo2_raised_after_ten_seconds(void **state)
{
    const struct alarm_rule *r = alarm_rule(ALARM_SPO2_LOW);
    struct alarm_state st = {0};

    (void)state;
    assert_int_equal(alarm_feed(&st, r, 0, 1, 95, 10), ALARM_EVENT_NONE);
    for (int t = 1; t <= 9; t++)
        assert_int_equal(alarm_feed(&st, r, t, 1, 88 - (t % 2), 10), ALARM_EVENT_NONE);
    /* Samples at t = 1..10 cover ten seconds of signal. */
    assert_int_equal(alarm_feed(&st, r, 10, 1, 86, 10), ALARM_EVENT_RAISED);
    assert_true(st.raised);
    assert_true(st.onset_s == 1.0);
    assert_true(st.worst == 86.0);
    /* Raised once: further low samples raise nothing new. */
    assert_int_equal(alarm_feed(&st, r, 11, 1, 84, 10), ALARM_EVENT_NONE);
    assert_true(st.worst == 84.0);
    assert_int_equal(alarm_feed(&st, r, 12, 1, 91, 10), ALARM_EVENT_CLEARED);
    assert_false(st.raised);
    assert_true(st.last == 91.0);
    assert_int_equal(alarm_feed(&st, r, 13, 1, 92, 10), ALARM_EVENT_NONE);
}

static void short_dip_not_raised(void **state)
{
    const struct alarm_rule *r = alarm_rule(ALARM_SPO2_LOW);
    struct alarm_state st = {0};

    (void)state;
    for (int t = 0; t < 9; t++)
        assert_int_equal(alarm_feed(&st, r, t, 1, 85, 10), ALARM_EVENT_NONE);
    assert_int_equal(alarm_feed(&st, r, 9, 1, 90, 10), ALARM_EVENT_NONE);
    /* The onset starts again after the value came back in range. */
    for (int t = 10; t < 19; t++)
        assert_int_equal(alarm_feed(&st, r, t, 1, 85, 10), ALARM_EVENT_NONE);
    assert_int_equal(alarm_feed(&st, r, 19, 1, 85, 10), ALARM_EVENT_RAISED);
}

static void gap_ends_pending_not_raised(void **state)
{
    const struct alarm_rule *r = alarm_rule(ALARM_HR_HIGH);
    struct alarm_state st = {0};

    (void)state;
    for (int t = 0; t < 5; t++)
        assert_int_equal(alarm_feed(&st, r, t, 1, 140, 10), ALARM_EVENT_NONE);
    assert_int_equal(alarm_feed(&st, r, 5, 1, NAN, 10), ALARM_EVENT_NONE);
    assert_false(st.pending);
    for (int t = 6; t < 15; t++)
        assert_int_equal(alarm_feed(&st, r, t, 1, 140, 10), ALARM_EVENT_NONE);
    assert_int_equal(alarm_feed(&st, r, 15, 1, 141, 10), ALARM_EVENT_RAISED);
    /* A gap while raised keeps the alarm raised. */
    assert_int_equal(alarm_feed(&st, r, 16, 1, NAN, 10), ALARM_EVENT_NONE);
    assert_true(st.raised);
    assert_int_equal(alarm_feed(&st, r, 17, 1, 100, 10), ALARM_EVENT_CLEARED);
}

static void per_minute_sample_sustains(void **state)
{
    const struct alarm_rule *r = alarm_rule(ALARM_RESP_LOW);
    struct alarm_state st = {0};

    (void)state;
    /* One per-minute sample stands for 60 s of signal. */
    assert_int_equal(alarm_feed(&st, r, 0, 60, 6, 10), ALARM_EVENT_RAISED);
    assert_int_equal(alarm_feed(&st, r, 60, 60, 8, 10), ALARM_EVENT_CLEARED);
}

static void thresholds_are_strict(void **state)
{
    struct alarm_state st = {0};

    (void)state;
    for (int t = 0; t < 30; t++) {
        assert_int_equal(alarm_feed(&st, alarm_rule(ALARM_HR_HIGH), t, 1, 130, 10),
                         ALARM_EVENT_NONE);
    }
    memset(&st, 0, sizeof st);
    for (int t = 0; t < 30; t++)
        assert_int_equal(alarm_feed(&st, alarm_rule(ALARM_HR_LOW), t, 1, 40, 10),
                         ALARM_EVENT_NONE);
    memset(&st, 0, sizeof st);
    for (int t = 0; t < 30; t++)
        assert_int_equal(alarm_feed(&st, alarm_rule(ALARM_RESP_HIGH), t, 1, 30, 10),
                         ALARM_EVENT_NONE);
    assert_int_equal(alarm_from_name("resp_high"), ALARM_RESP_HIGH);
    assert_int_equal(alarm_from_name("nope"), -1);
}

static void message_is_json_with_values(void **state)
{
    const struct alarm_rule *r = alarm_rule(ALARM_SPO2_LOW);
    struct alarm_state st = {0};
    char out[512];
    size_t n;
    json_error_t err;
    json_t *root;

    (void)state;
    for (int t = 0; t < 10; t++)
        alarm_feed(&st, r, t, 1, 87, 10);
    assert_true(st.raised);
    n = alarm_format(out, sizeof out, r, &st, ALARM_EVENT_RAISED, "mon-0003", 1000009.0,
                     1000000.0, 10);
    assert_true(n > 0);
    root = json_loadb(out, n, 0, &err);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "alarm")), "spo2_low");
    assert_string_equal(json_string_value(json_object_get(root, "state")), "raised");
    assert_string_equal(json_string_value(json_object_get(root, "device")), "mon-0003");
    assert_string_equal(json_string_value(json_object_get(root, "metric")), "spo2");
    assert_string_equal(json_string_value(json_object_get(root, "condition")), "<");
    assert_true(json_number_value(json_object_get(root, "value")) == 87.0);
    assert_true(json_number_value(json_object_get(root, "threshold")) == 90.0);
    assert_true(json_number_value(json_object_get(root, "onset")) == 1000000.0);
    assert_null(json_object_get(root, "duration_s"));
    json_decref(root);

    alarm_feed(&st, r, 20, 1, 95, 10);
    n = alarm_format(out, sizeof out, r, &st, ALARM_EVENT_CLEARED, "mon-0003", 1000020.0,
                     1000000.0, 10);
    root = json_loadb(out, n, 0, &err);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "state")), "cleared");
    assert_true(json_number_value(json_object_get(root, "value")) == 95.0);
    assert_true(json_number_value(json_object_get(root, "worst")) == 87.0);
    assert_true(json_number_value(json_object_get(root, "duration_s")) == 20.0);
    json_decref(root);
    assert_int_equal(alarm_format(out, 40, r, &st, ALARM_EVENT_CLEARED, "mon-0003", 1, 0, 10),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spo2_raised_after_ten_seconds),
        cmocka_unit_test(short_dip_not_raised),
        cmocka_unit_test(gap_ends_pending_not_raised),
        cmocka_unit_test(per_minute_sample_sustains),
        cmocka_unit_test(thresholds_are_strict),
        cmocka_unit_test(message_is_json_with_values),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
