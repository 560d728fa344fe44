/* Vital-sign metric table and SenML JSON formatting and reading. */
#include "sim/vitals.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

/* SenML units come from the registry of RFC 8428 section 12.1:
 * - "beat/min" (heart rate) and "1/min" (event rate per minute) are
 *   registered. The registry marks both as not recommended for new
 *   producers in favour of "1/s", but clinical consumers expect per-minute
 *   rates and the names are registered, so consumers must accept them.
 * - "%" in that registry is NOT a percentage: it is an old name of "/", the
 *   plain ratio. SpO2 is therefore sent as "/" with 0.97 for 97 %.
 * - The registry has no millimetre of mercury, so pressures are sent in its
 *   SI unit "Pa" (1 mmHg = 133.322387415 Pa) and converted back for display.
 * - "Cel" is degrees Celsius. */
#define MMHG_PA 133.322387415

static const struct vital_info vitals[VITAL_COUNT] = {
    [VITAL_HR] = {"heart_rate", "/min", "beat/min", 1.0, 0},
    [VITAL_PULSE] = {"pulse_rate", "/min", "beat/min", 1.0, 0},
    [VITAL_RESP] = {"resp_rate", "/min", "1/min", 1.0, 0},
    [VITAL_SPO2] = {"spo2", "%", "/", 0.01, 0},
    [VITAL_TEMP] = {"temperature", "Cel", "Cel", 1.0, 1},
    [VITAL_ABP_SYS] = {"abp_sys", "mmHg", "Pa", MMHG_PA, 0},
    [VITAL_ABP_DIA] = {"abp_dia", "mmHg", "Pa", MMHG_PA, 0},
    [VITAL_ABP_MEAN] = {"abp_mean", "mmHg", "Pa", MMHG_PA, 0},
    [VITAL_NBP_SYS] = {"nbp_sys", "mmHg", "Pa", MMHG_PA, 0},
    [VITAL_NBP_DIA] = {"nbp_dia", "mmHg", "Pa", MMHG_PA, 0},
    [VITAL_NBP_MEAN] = {"nbp_mean", "mmHg", "Pa", MMHG_PA, 0},
};

const struct vital_info *vital_info(enum vital v)
{
    return (unsigned)v < VITAL_COUNT ? &vitals[v] : NULL;
}

int vital_from_name(const char *name, size_t len)
{
    for (int i = 0; i < VITAL_COUNT; i++)
        if (strlen(vitals[i].name) == len && memcmp(vitals[i].name, name, len) == 0)
            return i;
    return -1;
}

size_t senml_format(char *out, size_t cap, const char *base_name, double time_s, enum vital v,
                    double value)
{
    const struct vital_info *info = vital_info(v);
    double senml_value;
    int n;

    if (info == NULL || !isfinite(value) || !isfinite(time_s))
        return 0;
    senml_value = value * info->senml_scale;
    /* %.10g keeps 0.1 mmHg in pascals and three decimals of a ratio exact
     * enough, and never prints "nan" or "inf" because both were rejected. */
    if (time_s == floor(time_s))
        n = snprintf(out, cap, "[{\"bn\":\"%s\",\"bt\":%.0f,\"n\":\"%s\",\"u\":\"%s\",\"v\":%.10g}]",
                     base_name, time_s, info->name, info->senml_unit, senml_value);
    else
        n = snprintf(out, cap, "[{\"bn\":\"%s\",\"bt\":%.3f,\"n\":\"%s\",\"u\":\"%s\",\"v\":%.10g}]",
                     base_name, time_s, info->name, info->senml_unit, senml_value);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}

/* Reads a payload that is only a JSON number, such as "72" or "36.9". */
static vigil_err read_plain_number(const char *payload, size_t len, double *value)
{
    char tmp[64];
    char *end;

    if (len == 0 || len >= sizeof tmp)
        return VIGIL_ERR_INVALID;
    memcpy(tmp, payload, len);
    tmp[len] = '\0';
    *value = strtod(tmp, &end);
    while (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')
        end++;
    if (end == tmp || *end != '\0' || !isfinite(*value))
        return VIGIL_ERR_INVALID;
    return VIGIL_OK;
}

static vigil_err read_record(json_t *rec, json_t *base_unit, enum vital v, double *value)
{
    const struct vital_info *info = vital_info(v);
    json_t *jv = json_object_get(rec, "v");
    json_t *ju = json_object_get(rec, "u");
    const char *unit;

    if (!json_is_number(jv))
        return VIGIL_ERR_INVALID;
    if (ju == NULL)
        ju = base_unit;
    unit = json_is_string(ju) ? json_string_value(ju) : NULL;
    if (unit == NULL || strcmp(unit, info->senml_unit) != 0)
        return VIGIL_ERR_INVALID;
    *value = json_number_value(jv) / info->senml_scale;
    return isfinite(*value) ? VIGIL_OK : VIGIL_ERR_INVALID;
}

vigil_err senml_read_value(const char *payload, size_t len, enum vital v, double *value)
{
    json_error_t jerr;
    json_t *root;
    json_t *first;
    vigil_err rc = VIGIL_ERR_INVALID;

    if (vital_info(v) == NULL)
        return VIGIL_ERR_INVALID;
    if (len > 0 && payload[0] != '[')
        return read_plain_number(payload, len, value);
    root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return VIGIL_ERR_INVALID;
    first = json_array_get(root, 0);
    if (json_is_object(first))
        rc = read_record(first, json_object_get(first, "bu"), v, value);
    json_decref(root);
    return rc;
}
