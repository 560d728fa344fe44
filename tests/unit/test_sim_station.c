/* Tests of the central-station state: messages per bed, alarms, the view. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sim/station.h"

static void feed(struct station_state *st, const char *topic, const char *payload, uint64_t now)
{
    station_state_message(st, topic, strlen(topic), payload, strlen(payload), now);
}

static struct station_bed *find_bed(struct station_state *st, const char *id)
{
    for (size_t i = 0; i < st->cap; i++)
        if (strcmp(st->beds[i].device, id) == 0)
            return &st->beds[i];
    return NULL;
}

static void vitals_stored_per_bed(void **state)
{
    struct station_state st;
    struct station_bed *b;
    char payload[256];

    (void)state;
    assert_int_equal(station_state_init(&st), VIGIL_OK);
    senml_format(payload, sizeof payload, "mon-0001/", 100, VITAL_SPO2, 95);
    feed(&st, "north/icu3/room301/mon-0001/spo2", payload, 1000);
    senml_format(payload, sizeof payload, "mon-0001/", 100, VITAL_NBP_SYS, 121);
    feed(&st, "north/icu3/room301/mon-0001/nbp_sys", payload, 1000);
    feed(&st, "north/icu3/room302/mon-0002/heart_rate", "77", 1000);
    assert_int_equal(st.n_beds, 2);
    b = find_bed(&st, "mon-0001");
    assert_non_null(b);
    assert_string_equal(b->room, "room301");
    assert_true(fabs(b->values[VITAL_SPO2] - 95.0) < 1e-9);
    assert_true(fabs(b->values[VITAL_NBP_SYS] - 121.0) < 1e-6);
    assert_true(isnan(b->values[VITAL_HR]));
    assert_true(find_bed(&st, "mon-0002")->values[VITAL_HR] == 77.0);
    station_state_free(&st);
}

static void alarms_raise_and_clear(void **state)
{
    static const char raised[] = "{\"alarm\":\"spo2_low\",\"state\":\"raised\",\"value\":86,"
                                 "\"worst\":85,\"onset\":1000}";
    static const char cleared[] = "{\"alarm\":\"spo2_low\",\"state\":\"cleared\",\"value\":93}";
    struct station_state st;
    struct station_bed *b;

    (void)state;
    assert_int_equal(station_state_init(&st), VIGIL_OK);
    feed(&st, "north/icu3/room305/mon-0005/alarm", raised, 10);
    b = find_bed(&st, "mon-0005");
    assert_true(b->alarms[ALARM_SPO2_LOW].active);
    assert_true(b->alarms[ALARM_SPO2_LOW].value == 86.0);
    assert_true(b->alarms[ALARM_SPO2_LOW].worst == 85.0);
    feed(&st, "north/icu3/room305/mon-0005/alarm", cleared, 20);
    assert_false(b->alarms[ALARM_SPO2_LOW].active);
    station_state_free(&st);
}

static void sys_and_bad_topics(void **state)
{
    struct station_state st;

    (void)state;
    assert_int_equal(station_state_init(&st), VIGIL_OK);
    assert_int_equal(st.sys_clients_connected, -1);
    feed(&st, "$SYS/broker/clients/connected", "52", 1);
    assert_int_equal(st.sys_clients_connected, 52);
    feed(&st, "north/icu3/mon-0001/heart_rate", "70", 1);
    feed(&st, "north/icu3/room301/mon-0001/heart_rate/x", "70", 1);
    feed(&st, "north/icu3/room301/mon-0001/heart_rate", "[not json", 1);
    feed(&st, "north/icu3/room301/mon-0001/unknown", "1", 1);
    assert_int_equal(st.messages, 5);
    assert_int_equal(st.ignored, 4);
    station_state_free(&st);
}

static void many_beds_grow_table(void **state)
{
    struct station_state st;
    char topic[96];

    (void)state;
    assert_int_equal(station_state_init(&st), VIGIL_OK);
    for (int i = 0; i < 1000; i++) {
        snprintf(topic, sizeof topic, "north/icu3/room%d/mon-%04d/heart_rate", i, i);
        feed(&st, topic, "60", 1);
    }
    assert_int_equal(st.n_beds, 1000);
    assert_non_null(find_bed(&st, "mon-0999"));
    assert_true(find_bed(&st, "mon-0500")->values[VITAL_HR] == 60.0);
    station_state_free(&st);
}

static void view_lists_beds_and_alarms(void **state)
{
    struct station_state st;
    char text[4096] = {0};
    FILE *out = fmemopen(text, sizeof text - 1, "w");

    (void)state;
    assert_non_null(out);
    assert_int_equal(station_state_init(&st), VIGIL_OK);
    feed(&st, "north/icu3/room302/mon-0002/heart_rate", "141", 5000);
    feed(&st, "north/icu3/room301/mon-0001/heart_rate", "72", 5000);
    feed(&st, "north/icu3/room302/mon-0002/alarm",
         "{\"alarm\":\"hr_high\",\"state\":\"raised\",\"value\":141,\"worst\":141,\"onset\":0}",
         5000);
    station_state_render(&st, out, "title", 6000, 0);
    fclose(out);
    assert_non_null(strstr(text, "devices online: 2 of 2"));
    assert_non_null(strstr(text, "active alarms: 1"));
    assert_non_null(strstr(text, "hr_high"));
    /* Rows are sorted by room. */
    assert_true(strstr(text, "room301") < strstr(text, "room302"));
    station_state_free(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vitals_stored_per_bed),
        cmocka_unit_test(alarms_raise_and_clear),
        cmocka_unit_test(sys_and_bad_topics),
        cmocka_unit_test(many_beds_grow_table),
        cmocka_unit_test(view_lists_beds_and_alarms),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
