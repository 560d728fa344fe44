/* Option parsing and path helpers shared by `vigil sim` and `vigil station`.
 * Each parser prints a message naming the option and returns -1 for an
 * invalid value, 0 otherwise. */
#ifndef VIGIL_SIM_CLI_UTIL_H
#define VIGIL_SIM_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>

int simcli_parse_ulong(const char *option, const char *arg, unsigned long min, unsigned long max,
                       unsigned long *out);
int simcli_parse_double(const char *option, const char *arg, double min, double max, double *out);
int simcli_parse_port(const char *arg, uint16_t *out);
/* Accepts "5", "5.0", "3.1.1" and "4"; stores MQTT_V5 or MQTT_V311. */
int simcli_parse_mqtt_version(const char *arg, uint8_t *out);
/* Accepts 1..64 characters of [A-Za-z0-9._-], so a value can never add a
 * topic level or a wildcard, nor need escaping in JSON. */
int simcli_check_topic_level(const char *option, const char *arg);
int simcli_set_log_level(const char *arg);

/* Finds the recordings folder: explicit when given, else
 * ../shared/data/vitals relative to the current directory, else the same
 * path relative to the repository holding the executable (<repo>/build/vigil
 * gives <repo>/../shared/data/vitals). Writes the folder to dir and returns
 * 0, or -1 when none exists. */
int simcli_find_recordings(const char *explicit_dir, char *dir, size_t cap);

#endif
