/* Tests of the SenML formatter and reader for vital signs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "sim/vitals.h"

static json_t *parse(const char *text, size_t len)
{
    json_error_t err;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);

    assert_non_null(root);
    return root;
}

static void heart_rate_record(void **state)
{
    char out[256];
    size_t n;
    json_t *root, *rec;

    (void)state;
    n = senml_format(out, sizeof out, "mon-0001/", 1767225600.0, VITAL_HR, 72.0);
    assert_true(n > 0);
    assert_int_equal(n, strlen(out));
    root = parse(out, n);
    assert_true(json_is_array(root));
    assert_int_equal(json_array_size(root), 1);
    rec = json_array_get(root, 0);
    assert_string_equal(json_string_value(json_object_get(rec, "bn")), "mon-0001/");
    assert_true(json_number_value(json_object_get(rec, "bt")) == 1767225600.0);
    assert_string_equal(json_string_value(json_object_get(rec, "n")), "heart_rate");
    assert_string_equal(json_string_value(json_object_get(rec, "u")), "beat/min");
    assert_true(json_number_value(json_object_get(rec, "v")) == 72.0);
    json_decref(root);
}

static void units_converted(void **state)
{
    char out[256];
    size_t n;
    json_t *root, *rec;

    (void)state;
    n = senml_format(out, sizeof out, "d/", 10.5, VITAL_SPO2, 96.9);
    root = parse(out, n);
    rec = json_array_get(root, 0);
    assert_string_equal(json_string_value(json_object_get(rec, "u")), "/");
    assert_true(fabs(json_number_value(json_object_get(rec, "v")) - 0.969) < 1e-9);
    assert_true(json_number_value(json_object_get(rec, "bt")) == 10.5);
    json_decref(root);

    n = senml_format(out, sizeof out, "d/", 10, VITAL_NBP_SYS, 120.0);
    root = parse(out, n);
    rec = json_array_get(root, 0);
    assert_string_equal(json_string_value(json_object_get(rec, "u")), "Pa");
    assert_true(fabs(json_number_value(json_object_get(rec, "v")) - 15998.6865) < 0.01);
    json_decref(root);

    n = senml_format(out, sizeof out, "d/", 10, VITAL_TEMP, 37.2);
    root = parse(out, n);
    rec = json_array_get(root, 0);
    assert_string_equal(json_string_value(json_object_get(rec, "u")), "Cel");
    assert_true(fabs(json_number_value(json_object_get(rec, "v")) - 37.2) < 1e-9);
    json_decref(root);

    n = senml_format(out, sizeof out, "d/", 10, VITAL_RESP, 18);
    assert_non_null(strstr(out, "\"u\":\"1/min\""));
    assert_true(n > 0);
}

static void nan_never_emitted(void **state)
{
    char out[256];

    (void)state;
    memset(out, 'x', sizeof out);
    assert_int_equal(senml_format(out, sizeof out, "d/", 10, VITAL_HR, NAN), 0);
    assert_int_equal(senml_format(out, sizeof out, "d/", 10, VITAL_HR, INFINITY), 0);
    assert_int_equal(senml_format(out, sizeof out, "d/", NAN, VITAL_HR, 70), 0);
    assert_int_equal(senml_format(out, sizeof out, "d/", 10, VITAL_COUNT, 70), 0);
    assert_int_equal(senml_format(out, 20, "d/", 10, VITAL_HR, 70), 0);
}

static void read_back_all_vitals(void **state)
{
    char out[256];
    double v;

    (void)state;
    for (int i = 0; i < VITAL_COUNT; i++) {
        size_t n = senml_format(out, sizeof out, "mon-0002/", 100, (enum vital)i, 88.0);

        assert_true(n > 0);
        assert_int_equal(senml_read_value(out, n, (enum vital)i, &v), VIGIL_OK);
        assert_true(fabs(v - 88.0) < 1e-6);
    }
}

static void read_plain_and_reject_bad(void **state)
{
    static const char wrong_unit[] = "[{\"n\":\"spo2\",\"u\":\"%\",\"v\":97}]";
    static const char base_unit[] = "[{\"bu\":\"/\",\"n\":\"spo2\",\"v\":0.97}]";
    double v = 0;

    (void)state;
    assert_int_equal(senml_read_value("72", 2, VITAL_HR, &v), VIGIL_OK);
    assert_true(v == 72.0);
    assert_int_equal(senml_read_value("36.9\n", 5, VITAL_TEMP, &v), VIGIL_OK);
    assert_true(fabs(v - 36.9) < 1e-9);
    assert_int_equal(senml_read_value("abc", 3, VITAL_HR, &v), VIGIL_ERR_INVALID);
    assert_int_equal(senml_read_value("[1,", 3, VITAL_HR, &v), VIGIL_ERR_INVALID);
    assert_int_equal(senml_read_value(wrong_unit, strlen(wrong_unit), VITAL_SPO2, &v),
                     VIGIL_ERR_INVALID);
    assert_int_equal(senml_read_value(base_unit, strlen(base_unit), VITAL_SPO2, &v), VIGIL_OK);
    assert_true(fabs(v - 97.0) < 1e-9);
}

static void names_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < VITAL_COUNT; i++) {
        const char *name = vital_info((enum vital)i)->name;

        assert_int_equal(vital_from_name(name, strlen(name)), i);
    }
    assert_int_equal(vital_from_name("status", 6), -1);
    assert_int_equal(vital_from_name("heart", 5), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(heart_rate_record),
        cmocka_unit_test(units_converted),
        cmocka_unit_test(nan_never_emitted),
        cmocka_unit_test(read_back_all_vitals),
        cmocka_unit_test(read_plain_and_reject_bad),
        cmocka_unit_test(names_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
