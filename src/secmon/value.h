/* Extraction of one vital-sign measurement from a PUBLISH (SenML JSON or a
 * plain number on a metric topic) and the physiological range of each
 * metric, for the security engine's value checks. */
#ifndef VIGIL_SECMON_VALUE_H
#define VIGIL_SECMON_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Maximum payload length secmon_extract_value() parses; it returns false
 * for longer payloads. */
#define SECMON_VALUE_PAYLOAD_MAX 4096

/* Finds the first record of a known metric in payload and writes its name
 * (canonical, e.g. "heart_rate", NUL-terminated, truncated to mcap) and its
 * value converted to the clinical unit: beats or breaths per minute, SpO2 in
 * percent, degrees Celsius, pressures in mmHg. Accepts a SenML JSON array
 * ([{"n":"heart_rate","u":"beat/min","v":72}], with "bn"/"bt" too; the
 * metric is the last '/' or ':' separated part of n (or of bn), or the topic's
 * last level when the record has no name) or a plain decimal number when
 * the topic's last level is a known metric. Returns false for anything
 * else. Pure: reads only its arguments, never allocates, and accepts any
 * bytes. */
bool secmon_extract_value(const char *topic, size_t tlen, const uint8_t *payload, size_t plen,
                          char *metric, size_t mcap, double *value);

/* Physiological range of a canonical metric name in its clinical unit;
 * false for a name without one. */
bool secmon_metric_range(const char *metric, double *lo, double *hi, const char **unit);

/* Canonical name of a metric name or alias ("hr" gives "heart_rate"), or
 * NULL when the name is not a known metric. */
const char *secmon_metric_canonical(const char *name, size_t len);

#endif
