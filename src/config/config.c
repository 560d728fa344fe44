/* The embedded default configuration, listener parsing, cross-field checks
 * and the file reader in front of the YAML loader (config_yaml.c). */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config/config_internal.h"
#include "core/alloc.h"
#include "core/log.h"

#define NUMBER_OR_OFF(key, field, lo, hi, off)                                            \
    {                                                                                     \
        key, offsetof(struct vigil_config, field), sizeof(((struct vigil_config *)0)->field), \
            lo, hi, off                                                                   \
    }
#define NUMBER(key, field, lo, hi) NUMBER_OR_OFF(key, field, lo, hi, false)

/* Ranges: see docs/configuration.md for the reason behind each bound. */
static const struct config_number numbers[] = {
    NUMBER("limits.max_packet_size", limits.max_packet_size, 16, 268435455),
    NUMBER("limits.receive_maximum", limits.receive_maximum, 1, UINT16_MAX),
    NUMBER("limits.max_inflight_out", limits.max_inflight_out, 1, UINT16_MAX),
    NUMBER("limits.max_queued_messages", limits.max_queued_messages, 0, UINT32_MAX),
    NUMBER("limits.max_subscriptions", limits.max_subscriptions, 1, UINT32_MAX),
    NUMBER("limits.max_topic_length", limits.max_topic_length, 1, UINT16_MAX),
    NUMBER("limits.max_topic_levels", limits.max_topic_levels, 1, UINT16_MAX),
    NUMBER("limits.max_connections", limits.max_connections, 1, UINT32_MAX),
    NUMBER("limits.max_keep_alive", limits.max_keep_alive, 1, UINT16_MAX),
    NUMBER("limits.topic_alias_maximum", limits.topic_alias_maximum, 0, UINT16_MAX),
    NUMBER("limits.max_session_expiry", limits.max_session_expiry, 0, UINT32_MAX),
    NUMBER("limits.max_client_id_length", limits.max_client_id_length, 23, 255),
    NUMBER("limits.connect_timeout_ms", limits.connect_timeout_ms, 100, 3600000),
    NUMBER("limits.max_output_bytes", limits.max_output_bytes, 65536, 268435456),
    NUMBER("limits.output_budget_bytes", limits.output_budget_bytes, 1048576, 1099511627776),
    NUMBER("limits.close_grace_ms", limits.close_grace_ms, 100, 3600000),
    NUMBER("limits.io_threads", limits.io_threads, 0, 64),
    NUMBER("limits.sched_slice_us", limits.sched_slice_us, 0, 100000),
    NUMBER("store.commit_interval_us", store_commit_interval_us, 0, 1000000),
    NUMBER("sys_interval", sys_interval_s, 0, 86400),
    NUMBER("event_queue_capacity", event_queue_capacity, 16, 16777216),
    NUMBER_OR_OFF("event_file_max_bytes", event_file_max_bytes, 65536, 1099511627776, true),
    NUMBER("event_files_kept", event_files_kept, 1, VIGIL_EVENT_KEEP_MAX),
    NUMBER("tls.device_cert_days", tls.device_cert_days, 1, 3650),
    NUMBER("tls.rotation_overlap", tls.rotation_overlap_s, 0, 7776000),
    NUMBER("tls.expiry_warning_days", tls.expiry_warning_days, 1, 365),
    NUMBER("auth.failure_burst", auth.failure_burst, 1, 1000),
    NUMBER("auth.failures_per_minute", auth.failures_per_minute, 1, 60000),
    NUMBER("secmon.learning_s", secmon.learning_s, 1, 2592000),
    NUMBER("secmon.auth_fail_burst", secmon.auth_fail_burst, 1, 100000),
    NUMBER("secmon.auth_fail_window_s", secmon.auth_fail_window_s, 1, 86400),
    NUMBER("secmon.churn_connects", secmon.churn_connects, 1, 1000000),
    NUMBER("secmon.churn_window_s", secmon.churn_window_s, 1, 86400),
    NUMBER("secmon.identities_per_source", secmon.identities_per_source, 1, 32),
    NUMBER("secmon.slow_keepalive_s", secmon.slow_keepalive_s, 1, 65535),
    NUMBER("secmon.slow_conns", secmon.slow_conns, 1, 1000000),
    NUMBER("secmon.flood_msgs_per_s", secmon.flood_msgs_per_s, 1, 10000000),
    NUMBER("secmon.qos_flood_msgs_per_s", secmon.qos_flood_msgs_per_s, 1, 10000000),
    NUMBER("secmon.malformed_burst", secmon.malformed_burst, 1, 1000000),
    NUMBER("secmon.malformed_window_s", secmon.malformed_window_s, 1, 86400),
    NUMBER("secmon.silence_factor", secmon.silence_factor, 2, 1000),
    NUMBER("secmon.vital_max_msgs_per_s", secmon.vital_max_msgs_per_s, 1, 100000),
    NUMBER("secmon.alert_quiet_s", secmon.alert_quiet_s, 1, 86400),
    NUMBER("secmon.max_tracked", secmon.max_tracked, 16, 1000000),
    NUMBER("sniff_buffer_size", sniff.buffer_size, 65536, 1073741824),
    NUMBER("audit.checkpoint_every", audit.checkpoint_every, 1, 10000000),
    NUMBER("audit.checkpoint_interval", audit.checkpoint_interval_s, 1, 86400),
    NUMBER("audit.segment_max_bytes", audit.segment_max_bytes, 65536, 1099511627776),
    NUMBER("gateway.max_peers", gateway.max_peers, 1, 1000000),
    NUMBER("gateway.handshake_burst", gateway.handshake_burst, 1, 100000),
    NUMBER("gateway.handshakes_per_minute", gateway.handshakes_per_minute, 1, 6000000),
    NUMBER("gateway.coap_max_body", gateway.coap_max_body, 1024, 16777216),
    NUMBER("gateway.coap_idle", gateway.coap_idle_s, 10, 86400),
    NUMBER("gateway.mqttsn_sleep_queue", gateway.mqttsn_sleep_queue, 1, 100000),
    NUMBER("gateway.mqttsn_gateway_id", gateway.mqttsn_gateway_id, 0, 255),
    NUMBER("gateway.mqttsn_advertise", gateway.mqttsn_advertise_s, 0, 86400),
};

const struct config_number *config_numbers(size_t *count)
{
    *count = sizeof numbers / sizeof numbers[0];
    return numbers;
}

const struct config_number *config_number_find(const char *path)
{
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
        if (strcmp(numbers[i].path, path) == 0)
            return &numbers[i];
    return NULL;
}

uint64_t config_number_get(const struct vigil_config *cfg, const struct config_number *num)
{
    const unsigned char *field = (const unsigned char *)cfg + num->offset;
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;

    switch (num->size) {
    case 2:
        memcpy(&v16, field, 2);
        return v16;
    case 4:
        memcpy(&v32, field, 4);
        return v32;
    default:
        memcpy(&v64, field, 8);
        return v64;
    }
}

void config_number_set(struct vigil_config *cfg, const struct config_number *num, uint64_t value)
{
    unsigned char *field = (unsigned char *)cfg + num->offset;
    uint16_t v16 = (uint16_t)value;
    uint32_t v32 = (uint32_t)value;

    switch (num->size) {
    case 2:
        memcpy(field, &v16, 2);
        break;
    case 4:
        memcpy(field, &v32, 4);
        break;
    default:
        memcpy(field, &value, 8);
        break;
    }
}

bool config_number_allows(const struct config_number *num, uint64_t value)
{
    return (value >= num->min && value <= num->max) || (value == 0 && num->zero_off);
}

void config_number_expected(const struct config_number *num, char *out, size_t cap)
{
    snprintf(out, cap, "%san unsigned integer from %llu to %llu", num->zero_off ? "0 or " : "",
             (unsigned long long)num->min, (unsigned long long)num->max);
}

static void defaults_roles(struct vigil_config *cfg)
{
    struct config_role *device = &cfg->roles[0];
    struct config_role *monitor = &cfg->roles[1];

    /* A device may publish and subscribe only under its own id, the fourth
     * level of <site>/<unit>/<room>/<device-id>/<metric>. */
    snprintf(device->name, sizeof device->name, "device");
    snprintf(device->publish[0], sizeof device->publish[0], "+/+/+/%%d/#");
    device->n_publish = 1;
    snprintf(device->subscribe[0], sizeof device->subscribe[0], "+/+/+/%%d/#");
    device->n_subscribe = 1;

    /* A central station reads everything, including broker statistics, and
     * never writes. */
    snprintf(monitor->name, sizeof monitor->name, "monitor");
    snprintf(monitor->subscribe[0], sizeof monitor->subscribe[0], "#");
    snprintf(monitor->subscribe[1], sizeof monitor->subscribe[1], "$SYS/#");
    monitor->n_subscribe = 2;
    cfg->n_roles = 2;
}

static void default_listener(struct vigil_config *cfg, const char *host, uint16_t port,
                             uint8_t transport)
{
    struct config_listener *l = &cfg->listeners[cfg->n_listeners++];

    snprintf(l->host, sizeof l->host, "%s", host);
    l->port = port;
    l->transport = transport;
    l->require_client_cert = config_listener_is_tls(l);
}

/* Plaintext MQTT, CoAP and MQTT-SN only on the two loopback addresses, for
 * tools and gateways on the same host. CoAP and MQTT-SN carry no
 * credentials, so without anonymous access no client can log in on their
 * plaintext listeners. Devices on the network use MQTT over TLS, CoAP over
 * DTLS and MQTT-SN over DTLS, each with client certificates, on "::", which
 * also accepts IPv4 where the system allows dual-stack sockets. */
static void defaults_listeners(struct vigil_config *cfg)
{
    cfg->n_listeners = 0;
    default_listener(cfg, "127.0.0.1", 1883, CONFIG_TRANSPORT_MQTT);
    default_listener(cfg, "::1", 1883, CONFIG_TRANSPORT_MQTT);
    default_listener(cfg, "::", 8883, CONFIG_TRANSPORT_MQTTS);
    default_listener(cfg, "127.0.0.1", 5683, CONFIG_TRANSPORT_COAP);
    default_listener(cfg, "::1", 5683, CONFIG_TRANSPORT_COAP);
    default_listener(cfg, "::", 5684, CONFIG_TRANSPORT_COAPS);
    default_listener(cfg, "127.0.0.1", 1884, CONFIG_TRANSPORT_MQTTSN);
    default_listener(cfg, "::1", 1884, CONFIG_TRANSPORT_MQTTSN);
    default_listener(cfg, "::", 1885, CONFIG_TRANSPORT_MQTTSN_DTLS);
}

void config_defaults(struct vigil_config *cfg)
{
    struct config_limits *lim = &cfg->limits;

    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "./vigil-data");
    defaults_listeners(cfg);
    defaults_roles(cfg);

    lim->max_packet_size = 1024 * 1024;
    lim->receive_maximum = 64;
    lim->max_inflight_out = 64;
    lim->max_queued_messages = 1000;
    lim->max_subscriptions = 100;
    lim->max_topic_length = 1024;
    lim->max_topic_levels = 16;
    lim->max_connections = 10000;
    lim->max_keep_alive = 600;
    lim->topic_alias_maximum = 32;
    lim->max_session_expiry = 7 * 24 * 3600;
    lim->max_client_id_length = 128;
    lim->connect_timeout_ms = 10000;
    lim->max_output_bytes = 4 * 1024 * 1024;
    lim->output_budget_bytes = 64 * 1024 * 1024;
    lim->close_grace_ms = 5000;
    lim->sched_slice_us = 100;

    cfg->tls.identity = 0;  /* URI SAN */
    cfg->tls.device_cert_days = 365;
    cfg->tls.rotation_overlap_s = 7 * 24 * 3600;
    cfg->tls.expiry_warning_days = 30;
    cfg->auth.failure_burst = 5;
    cfg->auth.failures_per_minute = 6;

    cfg->sniff.ports[0] = 1883;
    cfg->sniff.n_ports = 1;
    cfg->sniff.buffer_size = 4 * 1024 * 1024;

    snprintf(cfg->gateway.topic_base, sizeof cfg->gateway.topic_base, "hospital/%%u/%%t/%%d/");
    cfg->gateway.max_peers = 10000;
    cfg->gateway.handshake_burst = 10;
    cfg->gateway.handshakes_per_minute = 60;
    cfg->gateway.coap_max_body = 64 * 1024;
    cfg->gateway.coap_idle_s = 300;
    cfg->gateway.mqttsn_sleep_queue = 100;
    cfg->gateway.mqttsn_gateway_id = 1;
    cfg->gateway.mqttsn_advertise_s = 900;

    cfg->audit.checkpoint_every = 1000;
    cfg->audit.checkpoint_interval_s = 60;
    cfg->audit.segment_max_bytes = 64ull * 1024 * 1024;

    cfg->store_commit_interval_us = 5000;
    cfg->sys_interval_s = 10;
    cfg->event_queue_capacity = 16384;
    cfg->event_file_max_bytes = 256ull * 1024 * 1024;
    cfg->event_files_kept = 8;
    cfg->secmon_enabled = true;
    snprintf(cfg->log_level, sizeof cfg->log_level, "info");
    secmon_config_defaults(&cfg->secmon);
    snprintf(cfg->secmon_monitor_prefixes, sizeof cfg->secmon_monitor_prefixes, "%s",
             cfg->secmon.monitor_prefixes);
}

void config_secmon(const struct vigil_config *cfg, struct secmon_config *out)
{
    *out = cfg->secmon;
    out->monitor_prefixes = cfg->secmon_monitor_prefixes;
    out->passive = false;
}

void config_quote(const char *s, size_t len, char *out, size_t cap)
{
    const size_t shown_max = 48;
    size_t n = 0;

    if (cap == 0)
        return;
    for (size_t i = 0; i < len && i < shown_max && n + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[n] = '\0';
    if (len > shown_max && n + 4 < cap) {
        memcpy(out + n, "...", 4);
    }
}

void config_format_listener(const struct config_listener *l, char *out, size_t cap)
{
    if (strchr(l->host, ':') != NULL)
        snprintf(out, cap, "[%s]:%u", l->host, (unsigned)l->port);
    else
        snprintf(out, cap, "%s:%u", l->host, (unsigned)l->port);
}

static bool parse_port(const char *s, uint16_t *port)
{
    unsigned long value = 0;
    size_t n = strlen(s);

    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        value = value * 10 + (unsigned long)(s[i] - '0');
    }
    if (value == 0 || value > 65535)
        return false;
    *port = (uint16_t)value;
    return true;
}

/* Splits spec into host and port text. Returns NULL or the problem. */
static const char *split_listener(const char *spec, char *host, size_t hostcap, const char **port,
                                  bool *bracketed)
{
    const char *colon;
    size_t hostlen;

    *bracketed = spec[0] == '[';
    if (*bracketed) {
        const char *close = strchr(spec, ']');

        if (close == NULL || close[1] != ':')
            return "expected [IPV6-ADDRESS]:PORT, such as [::1]:1883";
        hostlen = (size_t)(close - spec - 1);
        spec++;
        colon = close + 1;
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL)
            return "missing ':PORT'; expected ADDRESS:PORT, such as 127.0.0.1:1883";
        if (memchr(spec, ':', (size_t)(colon - spec)) != NULL)
            return "an IPv6 address needs brackets, such as [::1]:1883";
        hostlen = (size_t)(colon - spec);
    }
    if (hostlen == 0)
        return "missing address; expected ADDRESS:PORT, such as 127.0.0.1:1883";
    if (hostlen >= hostcap)
        return "the address is too long for a numeric IPv4 or IPv6 address";
    memcpy(host, spec, hostlen);
    host[hostlen] = '\0';
    *port = colon + 1;
    return NULL;
}

static const char *check_listener(const char *spec, struct config_listener *l)
{
    char host[sizeof l->host] = "";  /* zero-filled, so l->host has no stale bytes */
    const char *port_text;
    const char *problem;
    unsigned char addr[16];
    bool bracketed;
    uint16_t port;

    problem = split_listener(spec, host, sizeof host, &port_text, &bracketed);
    if (problem != NULL)
        return problem;
    if (inet_pton(bracketed ? AF_INET6 : AF_INET, host, addr) != 1)
        return bracketed ? "the address in brackets is not a valid IPv6 address"
                         : "the address must be a numeric IPv4 address or a bracketed IPv6 "
                           "address; host names are not resolved";
    if (!parse_port(port_text, &port))
        return "the port must be a number from 1 to 65535";
    memcpy(l->host, host, sizeof host);
    l->port = port;
    return NULL;
}

vigil_err config_parse_listener(const char *spec, struct config_listener *l, char *err,
                                size_t errcap)
{
    const char *problem = check_listener(spec, l);
    char shown[64];

    if (problem == NULL)
        return VIGIL_OK;
    config_quote(spec, strlen(spec), shown, sizeof shown);
    snprintf(err, errcap, "invalid listener '%s': %s", shown, problem);
    return VIGIL_ERR_INVALID;
}

bool config_host_is_loopback(const char *host)
{
    unsigned char addr[16];
    static const unsigned char v6_loopback[16] = {[15] = 1};
    static const unsigned char v4_mapped[12] = {[10] = 0xff, [11] = 0xff};

    if (inet_pton(AF_INET, host, addr) == 1)
        return addr[0] == 127;
    if (inet_pton(AF_INET6, host, addr) != 1)
        return false;
    if (memcmp(addr, v6_loopback, 16) == 0)
        return true;
    /* ::ffff:127.x.y.y reaches the IPv4 loopback network. */
    return memcmp(addr, v4_mapped, 12) == 0 && addr[12] == 127;
}

/* Checks one level of a pattern (len bytes at level). */
static const char *level_problem(const char *level, size_t len, bool last)
{
    if (memchr(level, '+', len) != NULL && len != 1)
        return "'+' must be a whole level";
    if (memchr(level, '#', len) != NULL) {
        if (len != 1)
            return "'#' must be a whole level";
        if (!last)
            return "'#' must be the last level";
    }
    if (memchr(level, '%', len) != NULL && !(len == 2 && level[0] == '%' && level[1] == 'd'))
        return "'%' may appear only as the whole level \"%d\"";
    return NULL;
}

const char *config_pattern_problem(const char *pattern)
{
    size_t len = strlen(pattern);
    const char *level = pattern;

    if (len == 0)
        return "a pattern must not be empty";
    if (len > 255)
        return "a pattern must be at most 255 bytes";
    if (strncmp(pattern, "$share/", 7) == 0)
        return "a shared subscription ($share/...) cannot be an access pattern";
    for (;;) {
        const char *slash = strchr(level, '/');
        size_t n = slash != NULL ? (size_t)(slash - level) : strlen(level);
        const char *problem = level_problem(level, n, slash == NULL);

        if (problem != NULL)
            return problem;
        if (slash == NULL)
            return NULL;
        level = slash + 1;
    }
}

bool config_role_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > 31)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';

        if (!ok)
            return false;
    }
    return true;
}

bool config_listener_is_tls(const struct config_listener *l)
{
    return l->transport == CONFIG_TRANSPORT_MQTTS || l->transport == CONFIG_TRANSPORT_COAPS ||
           l->transport == CONFIG_TRANSPORT_MQTTSN_DTLS;
}

bool config_listener_is_udp(const struct config_listener *l)
{
    return l->transport >= CONFIG_TRANSPORT_COAP && l->transport <= CONFIG_TRANSPORT_MQTTSN_DTLS;
}

const char *config_transport_name(uint8_t transport)
{
    static const char *const names[] = {"mqtt", "mqtts", "coap", "coaps", "mqttsn",
                                        "mqttsn-dtls"};

    return transport < sizeof names / sizeof names[0] ? names[transport] : "unknown";
}

enum config_listener_rule config_listener_check(const struct config_listener *l, char *err,
                                                size_t errcap)
{
    bool loopback = config_host_is_loopback(l->host);
    char spec[80];

    config_format_listener(l, spec, sizeof spec);
    if (l->allow_anonymous && config_listener_is_tls(l)) {
        snprintf(err, errcap,
                 "listener %s (%s): anonymous access is not allowed on TLS and DTLS listeners; "
                 "devices there authenticate with a client certificate, a PSK or a password",
                 spec, config_transport_name(l->transport));
        return CONFIG_LISTENER_ANONYMOUS;
    }
    if (l->allow_anonymous && !loopback) {
        snprintf(err, errcap,
                 "listener %s: anonymous access is allowed only on loopback addresses "
                 "(127.0.0.0/8, ::1); set anonymous: false or listen on 127.0.0.1",
                 spec);
        return CONFIG_LISTENER_ANONYMOUS;
    }
    if (!config_listener_is_tls(l) && !loopback && !l->plaintext_public) {
        bool coap = l->transport == CONFIG_TRANSPORT_COAP;
        bool sn = l->transport == CONFIG_TRANSPORT_MQTTSN;

        snprintf(err, errcap,
                 "listener %s: plaintext %s on a non-loopback address requires "
                 "plaintext_public: true; use %s listener instead",
                 spec, coap ? "CoAP" : sn ? "MQTT-SN" : "MQTT",
                 coap ? "a coaps" : sn ? "an mqttsn-dtls" : "an mqtts");
        return CONFIG_LISTENER_PLAINTEXT;
    }
    if (l->transport == CONFIG_TRANSPORT_MQTTS && !l->require_client_cert && !l->allow_psk &&
        !l->allow_password) {
        snprintf(err, errcap,
                 "listener %s: an MQTTS listener must accept client certificates, PSK or "
                 "passwords; set require_client_cert, psk or password to true",
                 spec);
        return CONFIG_LISTENER_NO_AUTH;
    }
    /* Passwords exist only in MQTT, so a DTLS listener needs certificates or
     * PSK. */
    if (config_listener_is_tls(l) && config_listener_is_udp(l) && !l->require_client_cert &&
        !l->allow_psk) {
        snprintf(err, errcap,
                 "listener %s: a %s listener must accept client certificates or PSK; set "
                 "require_client_cert or psk to true",
                 spec, config_transport_name(l->transport));
        return CONFIG_LISTENER_NO_AUTH;
    }
    return CONFIG_LISTENER_OK;
}

static vigil_err validate_listener(const struct vigil_config *cfg, size_t i, char *err,
                                   size_t errcap)
{
    const struct config_listener *l = &cfg->listeners[i];
    struct config_listener parsed;
    char spec[80];

    config_format_listener(l, spec, sizeof spec);
    if (config_parse_listener(spec, &parsed, err, errcap) != VIGIL_OK)
        return VIGIL_ERR_CONFIG;
    if (l->transport > CONFIG_TRANSPORT_MQTTSN_DTLS) {
        snprintf(err, errcap, "listener %s: unknown transport %u", spec, (unsigned)l->transport);
        return VIGIL_ERR_CONFIG;
    }
    if (config_listener_check(l, err, errcap) != CONFIG_LISTENER_OK)
        return VIGIL_ERR_CONFIG;
    for (size_t j = 0; j < i; j++) {
        /* TCP and UDP have separate port spaces. */
        if (config_listener_is_udp(&cfg->listeners[j]) != config_listener_is_udp(l))
            continue;
        if (cfg->listeners[j].port == l->port && strcmp(cfg->listeners[j].host, l->host) == 0) {
            snprintf(err, errcap, "listener %s is configured twice; remove one of them", spec);
            return VIGIL_ERR_CONFIG;
        }
    }
    return VIGIL_OK;
}

static vigil_err validate_listeners(const struct vigil_config *cfg, char *err, size_t errcap)
{
    if (cfg->n_listeners == 0) {
        snprintf(err, errcap, "no listeners configured; add at least one entry under 'listeners'");
        return VIGIL_ERR_CONFIG;
    }
    if (cfg->n_listeners > CONFIG_MAX_LISTENERS) {
        snprintf(err, errcap, "%zu listeners configured; at most %d are supported",
                 cfg->n_listeners, CONFIG_MAX_LISTENERS);
        return VIGIL_ERR_CONFIG;
    }
    for (size_t i = 0; i < cfg->n_listeners; i++)
        if (validate_listener(cfg, i, err, errcap) != VIGIL_OK)
            return VIGIL_ERR_CONFIG;
    return VIGIL_OK;
}

static vigil_err validate_patterns(const struct config_role *role, const char *kind,
                                   const char (*patterns)[256], size_t n, char *err, size_t errcap)
{
    char shown[64];

    if (n > CONFIG_MAX_PATTERNS) {
        snprintf(err, errcap, "role '%s': %zu %s patterns; at most %d are supported", role->name,
                 n, kind, CONFIG_MAX_PATTERNS);
        return VIGIL_ERR_CONFIG;
    }
    for (size_t i = 0; i < n; i++) {
        const char *problem = config_pattern_problem(patterns[i]);

        if (problem != NULL) {
            config_quote(patterns[i], strnlen(patterns[i], 256), shown, sizeof shown);
            snprintf(err, errcap, "role '%s': invalid %s pattern '%s': %s", role->name, kind,
                     shown, problem);
            return VIGIL_ERR_CONFIG;
        }
    }
    return VIGIL_OK;
}

/* Interface names as libpcap takes them: Linux names are at most 15 bytes,
 * but pseudo-devices such as "nflog:5" or "bluetooth-monitor" can be longer. */
static const char *sniff_interface_problem(const char *name)
{
    if (name[0] == '\0')
        return "is empty; expected an interface name such as eth1";
    for (const char *c = name; *c != '\0'; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
            return "contains a space or a non-printable character";
    return NULL;
}

vigil_err config_sniff_check(const struct config_sniff *sniff, char *err, size_t errcap)
{
    char shown[64];

    if (sniff->n_interfaces > CONFIG_MAX_SNIFF_INTERFACES || sniff->n_ports == 0 ||
        sniff->n_ports > CONFIG_MAX_SNIFF_PORTS) {
        snprintf(err, errcap, "sniff: %zu interfaces and %zu ports; expected at most %d "
                 "interfaces and 1 to %d ports", sniff->n_interfaces, sniff->n_ports,
                 CONFIG_MAX_SNIFF_INTERFACES, CONFIG_MAX_SNIFF_PORTS);
        return VIGIL_ERR_CONFIG;
    }
    for (size_t i = 0; i < sniff->n_interfaces; i++) {
        const char *name = sniff->interfaces[i];
        const char *problem = sniff_interface_problem(name);

        config_quote(name, strnlen(name, sizeof sniff->interfaces[i]), shown, sizeof shown);
        if (problem != NULL) {
            snprintf(err, errcap, "sniff interface '%s' %s", shown, problem);
            return VIGIL_ERR_CONFIG;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(sniff->interfaces[j], name) == 0) {
                snprintf(err, errcap, "sniff interface '%s' is listed twice; each interface "
                         "may appear once", shown);
                return VIGIL_ERR_CONFIG;
            }
    }
    for (size_t i = 0; i < sniff->n_ports; i++) {
        if (sniff->ports[i] == 0) {
            snprintf(err, errcap, "sniff port 0 is invalid; expected 1 to 65535");
            return VIGIL_ERR_CONFIG;
        }
        for (size_t j = 0; j < i; j++)
            if (sniff->ports[j] == sniff->ports[i]) {
                snprintf(err, errcap, "sniff port %u is listed twice; each port may appear once",
                         (unsigned)sniff->ports[i]);
                return VIGIL_ERR_CONFIG;
            }
    }
    return VIGIL_OK;
}

static vigil_err validate_role(const struct vigil_config *cfg, size_t i, char *err, size_t errcap)
{
    const struct config_role *role = &cfg->roles[i];
    char shown[64];

    if (!config_role_name_valid(role->name)) {
        config_quote(role->name, strnlen(role->name, sizeof role->name), shown, sizeof shown);
        snprintf(err, errcap,
                 "invalid role name '%s'; expected 1 to 31 characters of A-Z, a-z, 0-9, '.', "
                 "'_' or '-'",
                 shown);
        return VIGIL_ERR_CONFIG;
    }
    for (size_t j = 0; j < i; j++) {
        if (strcmp(cfg->roles[j].name, role->name) == 0) {
            snprintf(err, errcap, "role '%s' is defined twice; remove one of them", role->name);
            return VIGIL_ERR_CONFIG;
        }
    }
    if (validate_patterns(role, "publish", role->publish, role->n_publish, err, errcap) != VIGIL_OK)
        return VIGIL_ERR_CONFIG;
    return validate_patterns(role, "subscribe", role->subscribe, role->n_subscribe, err, errcap);
}

static vigil_err validate_numbers(const struct vigil_config *cfg, char *err, size_t errcap)
{
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        const struct config_number *num = &numbers[i];
        uint64_t value = config_number_get(cfg, num);
        char expected[96];

        if (!config_number_allows(num, value)) {
            config_number_expected(num, expected, sizeof expected);
            snprintf(err, errcap, "%s is %llu; expected %s", num->path, (unsigned long long)value,
                     expected);
            return VIGIL_ERR_CONFIG;
        }
    }
    return VIGIL_OK;
}

const char *config_tls_problem(const struct config_tls *tls)
{
    if ((tls->cert_file[0] == '\0') != (tls->key_file[0] == '\0'))
        return "cert_file and key_file must be set together; set both, or neither to use the "
               "local CA";
    if (tls->crl_file[0] != '\0' && tls->ca_file[0] == '\0')
        return "crl_file requires ca_file; set ca_file to the CA that issued the CRL";
    if (tls->identity > 1)
        return "identity must be uri or cn";
    return NULL;
}

static vigil_err validate_tls(const struct vigil_config *cfg, char *err, size_t errcap)
{
    const struct config_tls *tls = &cfg->tls;
    const char *problem;

    if (strnlen(tls->cert_file, sizeof tls->cert_file) == sizeof tls->cert_file ||
        strnlen(tls->key_file, sizeof tls->key_file) == sizeof tls->key_file ||
        strnlen(tls->ca_file, sizeof tls->ca_file) == sizeof tls->ca_file ||
        strnlen(tls->crl_file, sizeof tls->crl_file) == sizeof tls->crl_file) {
        snprintf(err, errcap, "tls: a file name is not NUL-terminated");
        return VIGIL_ERR_CONFIG;
    }
    problem = config_tls_problem(tls);
    if (problem != NULL) {
        snprintf(err, errcap, "tls: %s", problem);
        return VIGIL_ERR_CONFIG;
    }
    return VIGIL_OK;
}

const char *config_secmon_problem(const struct vigil_config *cfg)
{
    const struct secmon_config *sm = &cfg->secmon;

    if (!(sm->baseline_z >= CONFIG_BASELINE_Z_MIN && sm->baseline_z <= CONFIG_BASELINE_Z_MAX))
        return "secmon.baseline_z must be a number from 1 to 100";
    if (strnlen(cfg->secmon_monitor_prefixes, sizeof cfg->secmon_monitor_prefixes) ==
        sizeof cfg->secmon_monitor_prefixes)
        return "secmon.monitor_prefixes is not NUL-terminated";
    return NULL;
}

static vigil_err validate_secmon(const struct vigil_config *cfg, char *err, size_t errcap)
{
    const char *problem = config_secmon_problem(cfg);

    if (problem == NULL)
        return VIGIL_OK;
    snprintf(err, errcap, "%s", problem);
    return VIGIL_ERR_CONFIG;
}

vigil_err config_validate(const struct vigil_config *cfg, char *err, size_t errcap)
{
    if (cfg->data_dir[0] == '\0') {
        snprintf(err, errcap, "data_dir is empty; expected a directory path");
        return VIGIL_ERR_CONFIG;
    }
    if (strnlen(cfg->log_level, sizeof cfg->log_level) == sizeof cfg->log_level ||
        vigil_log_parse_level(cfg->log_level) < 0) {
        snprintf(err, errcap, "invalid log_level; expected error, warn, info or debug");
        return VIGIL_ERR_CONFIG;
    }
    if (validate_listeners(cfg, err, errcap) != VIGIL_OK ||
        validate_tls(cfg, err, errcap) != VIGIL_OK)
        return VIGIL_ERR_CONFIG;
    if (cfg->n_roles > CONFIG_MAX_ROLES) {
        snprintf(err, errcap, "%zu roles configured; at most %d are supported", cfg->n_roles,
                 CONFIG_MAX_ROLES);
        return VIGIL_ERR_CONFIG;
    }
    for (size_t i = 0; i < cfg->n_roles; i++)
        if (validate_role(cfg, i, err, errcap) != VIGIL_OK)
            return VIGIL_ERR_CONFIG;
    if (validate_secmon(cfg, err, errcap) != VIGIL_OK)
        return VIGIL_ERR_CONFIG;
    if (config_sniff_check(&cfg->sniff, err, errcap) != VIGIL_OK)
        return VIGIL_ERR_CONFIG;
    return validate_numbers(cfg, err, errcap);
}

const struct config_role *config_find_role(const struct vigil_config *cfg, const char *name)
{
    size_t n = cfg->n_roles < CONFIG_MAX_ROLES ? cfg->n_roles : CONFIG_MAX_ROLES;

    for (size_t i = 0; i < n; i++)
        if (strcmp(cfg->roles[i].name, name) == 0)
            return &cfg->roles[i];
    return NULL;
}

/* Reads at most CONFIG_MAX_FILE_SIZE bytes of path into a new buffer that
 * the caller frees with vigil_free(). */
static vigil_err read_file(const char *path, uint8_t **out, size_t *len, char *err, size_t errcap)
{
    vigil_err rc = VIGIL_OK;
    uint8_t *data = NULL;
    FILE *f = fopen(path, "rb");
    size_t n;

    if (f == NULL) {
        snprintf(err, errcap, "%s: failed to open the configuration file: %s", path,
                 strerror(errno));
        return VIGIL_ERR_IO;
    }
    data = vigil_malloc(CONFIG_MAX_FILE_SIZE + 1);
    if (data == NULL) {
        snprintf(err, errcap, "%s: out of memory reading the configuration file", path);
        rc = VIGIL_ERR_NOMEM;
        goto cleanup;
    }
    n = fread(data, 1, CONFIG_MAX_FILE_SIZE + 1, f);
    if (ferror(f)) {
        snprintf(err, errcap, "%s: failed to read the configuration file: %s", path,
                 strerror(errno));
        rc = VIGIL_ERR_IO;
    } else if (n > CONFIG_MAX_FILE_SIZE) {
        snprintf(err, errcap, "%s: file is larger than %d bytes; expected a YAML configuration",
                 path, CONFIG_MAX_FILE_SIZE);
        rc = VIGIL_ERR_CONFIG;
    }

cleanup:
    fclose(f);
    if (rc != VIGIL_OK) {
        vigil_free(data);
        return rc;
    }
    *out = data;
    *len = n;
    return VIGIL_OK;
}

vigil_err config_load_file(struct vigil_config *cfg, const char *path, char *err, size_t errcap)
{
    uint8_t *data = NULL;
    size_t len = 0;
    vigil_err rc = read_file(path, &data, &len, err, errcap);

    if (rc != VIGIL_OK)
        return rc;
    rc = config_load_buffer(cfg, path, data, len, err, errcap);
    vigil_free(data);
    return rc;
}
