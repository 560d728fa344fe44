/* Vital-sign metrics shared by the simulator and the central station: names
 * used as the last topic level, SenML units (RFC 8428) and the conversion
 * between clinical units and SenML units, and the SenML JSON formatter and
 * reader for one measurement. */
#ifndef VIGIL_SIM_VITALS_H
#define VIGIL_SIM_VITALS_H

#include <stddef.h>

#include "core/error.h"

enum vital {
    VITAL_HR,        /* heart rate from the ECG, beats/min */
    VITAL_PULSE,     /* pulse rate from the pulse oximeter, beats/min */
    VITAL_RESP,      /* respiratory rate, breaths/min */
    VITAL_SPO2,      /* oxygen saturation, percent */
    VITAL_TEMP,      /* body temperature, degrees Celsius */
    VITAL_ABP_SYS,   /* invasive arterial pressure, mmHg */
    VITAL_ABP_DIA,
    VITAL_ABP_MEAN,
    VITAL_NBP_SYS,   /* non-invasive cuff pressure, mmHg */
    VITAL_NBP_DIA,
    VITAL_NBP_MEAN,
    VITAL_COUNT
};

struct vital_info {
    const char *name;        /* topic level and SenML record name, e.g. "heart_rate" */
    const char *unit;        /* clinical unit shown to people: "/min", "%", "Cel", "mmHg" */
    const char *senml_unit;  /* unit from the SenML units registry */
    double senml_scale;      /* SenML value = clinical value * senml_scale */
    int decimals;            /* resolution of the clinical value */
};

const struct vital_info *vital_info(enum vital v);
/* Returns the metric with that topic name, or -1. */
int vital_from_name(const char *name, size_t len);

/* Formats one measurement as a SenML JSON pack of one record:
 * [{"bn":"<base_name>","bt":<time>,"n":"<name>","u":"<unit>","v":<value>}].
 * value is in clinical units and is converted to the SenML unit. base_name
 * must need no JSON escaping (callers pass validated device ids). Returns the
 * length written (NUL excluded), or 0 when value is not finite or out does
 * not have room: a missing value is never published as a number. */
size_t senml_format(char *out, size_t cap, const char *base_name, double time_s, enum vital v,
                    double value);

/* Reads the value of a SenML JSON pack as written by senml_format(), or a
 * plain number, and returns it in the clinical unit of v. A SenML record with
 * a unit other than the expected one is rejected with VIGIL_ERR_INVALID. */
vigil_err senml_read_value(const char *payload, size_t len, enum vital v, double *value);

#endif
