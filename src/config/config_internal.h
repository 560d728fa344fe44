/* Helpers shared by the YAML loader (config_yaml.c) and the defaults and
 * checks in config.c. Not part of the module's public contract. */
#ifndef VIGIL_CONFIG_CONFIG_INTERNAL_H
#define VIGIL_CONFIG_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* Maximum size of a configuration file, so a wrong path (a log, a disk
 * image) fails fast instead of being read whole. */
#define CONFIG_MAX_FILE_SIZE (1024 * 1024)

/* An unsigned integer setting: its dotted key path, where it lives in
 * struct vigil_config, its width in bytes (2, 4 or 8) and its allowed range.
 * With zero_off, 0 is allowed too and turns the feature off. */
struct config_number {
    const char *path;
    size_t offset;
    size_t size;
    uint64_t min;
    uint64_t max;
    bool zero_off;
};

/* Returns the setting with that dotted path ("limits.max_packet_size"), or
 * NULL. */
const struct config_number *config_number_find(const char *path);
/* Returns the table of every numeric setting. *count receives its length. */
const struct config_number *config_numbers(size_t *count);
uint64_t config_number_get(const struct vigil_config *cfg, const struct config_number *num);
/* value must already be allowed (config_number_allows). */
void config_number_set(struct vigil_config *cfg, const struct config_number *num, uint64_t value);
/* True when value is within [num->min, num->max], or 0 with zero_off. */
bool config_number_allows(const struct config_number *num, uint64_t value);
/* Writes the allowed values for messages: "an unsigned integer from 1 to
 * 86400", or "0 or an unsigned integer from 65536 to ..." with zero_off. */
void config_number_expected(const struct config_number *num, char *out, size_t cap);

/* Checks an access pattern: a valid MQTT topic filter of at most 255 bytes,
 * not a shared subscription, with "%d" only as a whole level. Returns NULL
 * when valid, else a static description of the first problem. */
const char *config_pattern_problem(const char *pattern);
/* Role names: 1 to 31 characters of [A-Za-z0-9._-]. */
bool config_role_name_valid(const char *name);

/* The per-listener rules of config_validate, in the order they are
 * checked. The loader uses the result to point at the key at fault. */
enum config_listener_rule {
    CONFIG_LISTENER_OK = 0,
    CONFIG_LISTENER_ANONYMOUS,  /* anonymous on MQTTS or off loopback */
    CONFIG_LISTENER_PLAINTEXT,  /* plaintext MQTT off loopback without plaintext_public */
    CONFIG_LISTENER_NO_AUTH,    /* MQTTS that accepts no kind of credential */
};

/* Checks one listener's transport and access rules, and writes
 * "listener ADDRESS:PORT: problem" into err when one fails. */
enum config_listener_rule config_listener_check(const struct config_listener *l, char *err,
                                                size_t errcap);
/* Returns NULL when the TLS file names fit together, else a static
 * description of the first problem. */
const char *config_tls_problem(const struct config_tls *tls);

/* Range of secmon.baseline_z, the one setting that is not an integer. */
#define CONFIG_BASELINE_Z_MIN 1.0
#define CONFIG_BASELINE_Z_MAX 100.0
/* A threshold that a secmon profile may set: the per-device ones. Integer
 * keys take their range from the number table entry "secmon.KEY". */
struct config_profile_key {
    const char *key;
    size_t offset;          /* in struct secmon_config */
    bool decimal;           /* a double (baseline_z), else a uint32_t */
};

/* Returns the table of profile keys. *count receives its length. */
const struct config_profile_key *config_profile_keys(size_t *count);
/* Returns the index of key in that table, or -1. */
int config_profile_key_find(const char *key);

/* Returns NULL when the secmon settings that are not in the number table
 * are valid, else a static description of the first problem. */
const char *config_secmon_problem(const struct vigil_config *cfg);

/* Checks the sniff settings: interface names, duplicates and port counts.
 * Writes the first problem into err and returns VIGIL_ERR_CONFIG. */
vigil_err config_sniff_check(const struct config_sniff *sniff, char *err, size_t errcap);

/* Copies at most len bytes of s into out for an error message: printable
 * ASCII is kept, other bytes become '?', and a cut value ends in "...". */
void config_quote(const char *s, size_t len, char *out, size_t cap);
/* Writes "127.0.0.1:1883" or "[::1]:1883" into out. */
void config_format_listener(const struct config_listener *l, char *out, size_t cap);

#endif
