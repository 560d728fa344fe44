/* SIEM destination settings: defaults, one key at a time from configuration
 * text, and the checks of a complete destination. */
#include "export/siem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"

void siem_dest_defaults(struct siem_dest *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "default");
    d->transport = SIEM_TRANSPORT_TCP;
    snprintf(d->host, sizeof d->host, "127.0.0.1");
    d->port = 6514;
    d->format = SIEM_FORMAT_RFC5424;
    d->facility = 20;
    d->max_rows = 1000000;
    d->backoff_max_ms = 30000;
}

void siem_config_defaults(struct siem_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "./vigil-data");
    cfg->queue_capacity = 1024;
}

/* Facility names of RFC 5424 section 6.2.1 and their codes. */
static int parse_facility(const char *v)
{
    static const char *const names[24] = {
        "kern",  "user",  "mail",   "daemon", "auth",   "syslog", "lpr",    "news",
        "uucp",  "cron",  "authpriv", "ftp",  "ntp",    "audit",  "alert",  "clock",
        "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
    };
    char *end;
    long n;

    for (int i = 0; i < 24; i++)
        if (strcasecmp(v, names[i]) == 0)
            return i;
    n = strtol(v, &end, 10);
    if (v[0] == '\0' || *end != '\0' || n < 0 || n > 23)
        return -1;
    return (int)n;
}

static int parse_choice(const char *v, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    return -1;
}

static bool valid_name(const char *v)
{
    if (v[0] == '\0' || strlen(v) >= sizeof ((struct siem_dest *)0)->name)
        return false;
    for (const char *p = v; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return false;
    return true;
}

static vigil_err set_address(struct siem_dest *d, const char *value, char *err, size_t errcap)
{
    struct config_listener l;
    char why[128];

    memset(&l, 0, sizeof l);
    if (config_parse_listener(value, &l, why, sizeof why) != VIGIL_OK) {
        snprintf(err, errcap, "siem address: %s (expected a numeric host:port)", why);
        return VIGIL_ERR_CONFIG;
    }
    snprintf(d->host, sizeof d->host, "%s", l.host);
    d->port = l.port;
    return VIGIL_OK;
}

static vigil_err set_number(uint64_t *field, const char *key, const char *value, uint64_t min,
                            uint64_t max, char *err, size_t errcap)
{
    char *end;
    unsigned long long n = strtoull(value, &end, 10);

    if (value[0] == '\0' || value[0] == '-' || *end != '\0' || n < min || n > max) {
        snprintf(err, errcap, "siem %s '%s' is invalid: expected an integer from %llu to %llu",
                 key, value, (unsigned long long)min, (unsigned long long)max);
        return VIGIL_ERR_CONFIG;
    }
    *field = n;
    return VIGIL_OK;
}

static vigil_err set_enum(uint8_t *field, const char *key, const char *value,
                          const char *const *names, int count, const char *expected, char *err,
                          size_t errcap)
{
    int v = parse_choice(value, names, count);

    if (v < 0) {
        snprintf(err, errcap, "siem %s '%s' is invalid: expected %s", key, value, expected);
        return VIGIL_ERR_CONFIG;
    }
    *field = (uint8_t)v;
    return VIGIL_OK;
}

static vigil_err set_string(char *field, size_t cap, const char *key, const char *value,
                            char *err, size_t errcap)
{
    if (strlen(value) >= cap) {
        snprintf(err, errcap, "siem %s is too long: at most %zu bytes", key, cap - 1);
        return VIGIL_ERR_CONFIG;
    }
    snprintf(field, cap, "%s", value);
    return VIGIL_OK;
}

vigil_err siem_dest_set(struct siem_dest *d, const char *key, const char *value, char *err,
                        size_t errcap)
{
    static const char *const transports[] = {"udp", "tcp", "tls"};
    static const char *const formats[] = {"rfc5424", "cef", "ocsf-json"};
    uint64_t n;
    vigil_err rc;

    if (strcmp(key, "name") == 0) {
        if (!valid_name(value)) {
            snprintf(err, errcap, "siem name '%s' is invalid: expected 1 to 31 of A-Z a-z 0-9 _ -",
                     value);
            return VIGIL_ERR_CONFIG;
        }
        snprintf(d->name, sizeof d->name, "%s", value);
        return VIGIL_OK;
    }
    if (strcmp(key, "transport") == 0)
        return set_enum(&d->transport, key, value, transports, 3, "udp, tcp or tls", err, errcap);
    if (strcmp(key, "format") == 0)
        return set_enum(&d->format, key, value, formats, 3, "rfc5424, cef or ocsf-json", err,
                        errcap);
    if (strcmp(key, "address") == 0)
        return set_address(d, value, err, errcap);
    if (strcmp(key, "ca_file") == 0)
        return set_string(d->ca_file, sizeof d->ca_file, key, value, err, errcap);
    if (strcmp(key, "server_name") == 0)
        return set_string(d->server_name, sizeof d->server_name, key, value, err, errcap);
    if (strcmp(key, "facility") == 0) {
        int f = parse_facility(value);

        if (f < 0) {
            snprintf(err, errcap, "siem facility '%s' is invalid: expected 0..23 or a name "
                     "such as local4", value);
            return VIGIL_ERR_CONFIG;
        }
        d->facility = (uint8_t)f;
        return VIGIL_OK;
    }
    if (strcmp(key, "max_rows") == 0) {
        rc = set_number(&n, key, value, 1, UINT64_C(1) << 40, err, errcap);
        if (rc == VIGIL_OK)
            d->max_rows = n;
        return rc;
    }
    if (strcmp(key, "backoff_max_ms") == 0) {
        rc = set_number(&n, key, value, 100, 3600000, err, errcap);
        if (rc == VIGIL_OK)
            d->backoff_max_ms = (uint32_t)n;
        return rc;
    }
    snprintf(err, errcap, "unknown siem key '%s'", key);
    return VIGIL_ERR_CONFIG;
}

vigil_err siem_dest_validate(const struct siem_dest *d, char *err, size_t errcap)
{
    if (!valid_name(d->name)) {
        snprintf(err, errcap, "siem destination name '%s' is invalid", d->name);
        return VIGIL_ERR_CONFIG;
    }
    if (d->host[0] == '\0' || d->port == 0) {
        snprintf(err, errcap, "siem destination '%s': address is missing", d->name);
        return VIGIL_ERR_CONFIG;
    }
    if (d->transport == SIEM_TRANSPORT_TLS && d->ca_file[0] == '\0') {
        snprintf(err, errcap, "siem destination '%s': tls needs ca_file (the CA of the "
                 "receiver's certificate)", d->name);
        return VIGIL_ERR_CONFIG;
    }
    if (d->transport > SIEM_TRANSPORT_TLS || d->format > SIEM_FORMAT_OCSF_JSON ||
        d->facility > 23) {
        snprintf(err, errcap, "siem destination '%s': transport, format or facility out of "
                 "range", d->name);
        return VIGIL_ERR_CONFIG;
    }
    return VIGIL_OK;
}
