/* Loads vigil.yaml with libyaml's event API. Every value is checked against
 * its key's type and range as it is read, and the first problem is reported
 * as "FILE:LINE: key: message". */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/config.h"
#include "config/config_internal.h"
#include "core/alloc.h"
#include "core/log.h"

/* Maximum key length the loader stores for duplicate detection. Every known
 * key and role name is shorter. */
#define KEY_MAX 63
/* Distinct keys one mapping can hold before some other check (unknown key,
 * too many roles) has already rejected it. */
#define KEYS_PER_MAPPING 64

#define TOP_KEYS                                                                               \
    "data_dir, listeners, tls, auth, roles, limits, store, secmon, siem, sys_interval, "             \
    "event_queue_capacity, event_file_max_bytes, event_files_kept, "                           \
    "log_level, sniff, sniff_ports, sniff_promiscuous, sniff_buffer_size, audit, gateway"
#define GATEWAY_KEYS                                                                           \
    "topic_base, max_peers, handshake_burst, handshakes_per_minute, coap_max_body, "           \
    "coap_idle, mqttsn_sleep_queue, mqttsn_gateway_id, mqttsn_advertise, predefined_topics"
#define TLS_KEYS                                                                               \
    "cert_file, key_file, ca_file, crl_file, identity, device_cert_days, rotation_overlap, "   \
    "expiry_warning_days"
#define LIMIT_KEYS                                                                             \
    "max_packet_size, receive_maximum, max_inflight_out, max_queued_messages, "               \
    "max_subscriptions, max_topic_length, max_topic_levels, max_connections, max_keep_alive, " \
    "topic_alias_maximum, max_session_expiry, max_client_id_length, connect_timeout_ms, "     \
    "max_output_bytes, output_budget_bytes, close_grace_ms, io_threads, sched_slice_us"
#define SECMON_KEYS                                                                            \
    "learning_s, auth_fail_burst, auth_fail_window_s, churn_connects, churn_window_s, "        \
    "identities_per_source, slow_keepalive_s, slow_conns, flood_msgs_per_s, "                  \
    "qos_flood_msgs_per_s, malformed_burst, malformed_window_s, silence_factor, baseline_z, "  \
    "vital_max_msgs_per_s, alert_quiet_s, max_tracked, monitor_prefixes, profiles, enabled"
#define PROFILE_KEYS                                                                           \
    "learning_s, flood_msgs_per_s, qos_flood_msgs_per_s, silence_factor, baseline_z, "         \
    "vital_max_msgs_per_s"

struct loader {
    yaml_parser_t parser;
    yaml_event_t event;     /* the current event, valid when have_event is set */
    bool have_event;
    const char *name;       /* file name for messages */
    char *err;
    size_t errcap;
    struct vigil_config *cfg;   /* the working copy being filled */
};

/* One mapping being walked: value() is called with the value's first event
 * current and must leave the value's last event current. */
struct mapping_walk {
    const char *path;       /* dotted path of the mapping, "" at the top */
    const char *expected;   /* what its keys may be, for messages */
    vigil_err (*value)(struct loader *ld, const struct mapping_walk *walk, const char *key,
                       size_t key_line);
    void *ctx;
};

static size_t event_line(const struct loader *ld)
{
    return ld->event.start_mark.line + 1;
}

__attribute__((format(printf, 3, 4))) static vigil_err fail(struct loader *ld, size_t line,
                                                            const char *fmt, ...)
{
    int n = snprintf(ld->err, ld->errcap, "%s:%zu: ", ld->name, line);
    va_list ap;

    if (n >= 0 && (size_t)n < ld->errcap) {
        va_start(ap, fmt);
        vsnprintf(ld->err + n, ld->errcap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return VIGIL_ERR_CONFIG;
}

static vigil_err fail_syntax(struct loader *ld)
{
    const yaml_parser_t *p = &ld->parser;
    const char *problem = p->problem != NULL ? p->problem : "unreadable input";

    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(ld->err, ld->errcap, "%s: out of memory while parsing YAML", ld->name);
        return VIGIL_ERR_NOMEM;
    }
    if (p->context != NULL)
        return fail(ld, p->problem_mark.line + 1, "invalid YAML: %s %s", p->context, problem);
    return fail(ld, p->problem_mark.line + 1, "invalid YAML: %s", problem);
}

/* Rejects the YAML features a flat settings file has no use for, because
 * aliases can multiply the work of reading a small file. */
static vigil_err check_node_features(struct loader *ld)
{
    const yaml_event_t *ev = &ld->event;
    const yaml_char_t *anchor = NULL;
    const yaml_char_t *tag = NULL;

    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return fail(ld, event_line(ld), "aliases (*name) are not supported; write the value out");
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        break;
    default:
        return VIGIL_OK;
    }
    if (anchor != NULL)
        return fail(ld, event_line(ld), "anchors (&name) are not supported; write the value out");
    if (tag != NULL)
        return fail(ld, event_line(ld), "tags (!name) are not supported; remove the tag");
    return VIGIL_OK;
}

/* Advances to the next event. */
static vigil_err next(struct loader *ld)
{
    if (ld->have_event)
        yaml_event_delete(&ld->event);
    ld->have_event = false;
    if (!yaml_parser_parse(&ld->parser, &ld->event))
        return fail_syntax(ld);
    ld->have_event = true;
    return check_node_features(ld);
}

static bool scalar_is_null(const yaml_event_t *ev)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    const char *v = (const char *)ev->data.scalar.value;

    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        if (strcmp(v, nulls[i]) == 0)
            return true;
    return false;
}

/* Describes the current event for "got ..." in messages. */
static void describe(const struct loader *ld, char *out, size_t cap)
{
    const yaml_event_t *ev = &ld->event;
    char shown[64];

    if (ev->type == YAML_SEQUENCE_START_EVENT) {
        snprintf(out, cap, "a sequence");
    } else if (ev->type == YAML_MAPPING_START_EVENT) {
        snprintf(out, cap, "a mapping");
    } else if (ev->type == YAML_SCALAR_EVENT && scalar_is_null(ev)) {
        snprintf(out, cap, "an empty value");
    } else if (ev->type == YAML_SCALAR_EVENT) {
        config_quote((const char *)ev->data.scalar.value, ev->data.scalar.length, shown,
                     sizeof shown);
        if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            snprintf(out, cap, "'%s'", shown);
        else
            snprintf(out, cap, "the quoted string \"%s\"", shown);
    } else {
        snprintf(out, cap, "no value");
    }
}

static vigil_err fail_type(struct loader *ld, const char *path, const char *expected)
{
    char got[80];

    describe(ld, got, sizeof got);
    return fail(ld, event_line(ld), "%s: expected %s, got %s", path, expected, got);
}

/* Copies a non-empty string scalar into out (cap bytes with the NUL). */
static vigil_err read_string(struct loader *ld, const char *path, char *out, size_t cap)
{
    const yaml_event_t *ev = &ld->event;
    size_t len;

    if (ev->type != YAML_SCALAR_EVENT || scalar_is_null(ev))
        return fail_type(ld, path, "a string");
    len = ev->data.scalar.length;
    if (len == 0)
        return fail_type(ld, path, "a non-empty string");
    if (memchr(ev->data.scalar.value, '\0', len) != NULL)
        return fail(ld, event_line(ld), "%s: the value contains a NUL character", path);
    if (len >= cap)
        return fail(ld, event_line(ld), "%s: expected a string of at most %zu bytes, got %zu bytes",
                    path, cap - 1, len);
    memcpy(out, ev->data.scalar.value, len + 1);
    return VIGIL_OK;
}

/* Parses a plain decimal scalar without sign, leading zeros or base prefix. */
static bool parse_decimal(const yaml_event_t *ev, uint64_t *out)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    uint64_t value = 0;

    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || len == 0 || len > 20)
        return false;
    if (len > 1 && s[0] == '0')
        return false;
    for (size_t i = 0; i < len; i++) {
        uint64_t digit = (uint64_t)(s[i] - '0');

        if (s[i] < '0' || s[i] > '9' || value > (UINT64_MAX - digit) / 10)
            return false;
        value = value * 10 + digit;
    }
    *out = value;
    return true;
}

static vigil_err read_number(struct loader *ld, const char *path)
{
    const struct config_number *num = config_number_find(path);
    char expected[96];
    uint64_t value;

    config_number_expected(num, expected, sizeof expected);
    if (ld->event.type != YAML_SCALAR_EVENT || !parse_decimal(&ld->event, &value) ||
        !config_number_allows(num, value))
        return fail_type(ld, path, expected);
    config_number_set(ld->cfg, num, value);
    return VIGIL_OK;
}

static vigil_err read_bool(struct loader *ld, const char *path, bool *out)
{
    const yaml_event_t *ev = &ld->event;
    const char *v = (const char *)ev->data.scalar.value;

    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
        (strcmp(v, "true") != 0 && strcmp(v, "false") != 0))
        return fail_type(ld, path, "true or false");
    *out = strcmp(v, "true") == 0;
    return VIGIL_OK;
}

static vigil_err fail_unknown_key(struct loader *ld, const struct mapping_walk *walk,
                                  const char *key, size_t key_line)
{
    char shown[64];

    config_quote(key, strlen(key), shown, sizeof shown);
    if (walk->path[0] == '\0')
        return fail(ld, key_line, "unknown key '%s'; expected one of: %s", shown, walk->expected);
    return fail(ld, key_line, "%s: unknown key '%s'; expected one of: %s", walk->path, shown,
                walk->expected);
}

static vigil_err read_key(struct loader *ld, const struct mapping_walk *walk,
                          char (*seen)[KEY_MAX + 1], size_t n_seen, char *key)
{
    const yaml_event_t *ev = &ld->event;
    const char *value = (const char *)ev->data.scalar.value;
    const char *where = walk->path[0] != '\0' ? walk->path : "top level";
    char shown[64];

    if (ev->type != YAML_SCALAR_EVENT)
        return fail(ld, event_line(ld), "%s: keys must be strings, got a %s", where,
                    ev->type == YAML_MAPPING_START_EVENT ? "mapping" : "sequence");
    config_quote(value, ev->data.scalar.length, shown, sizeof shown);
    if (ev->data.scalar.length > KEY_MAX || memchr(value, '\0', ev->data.scalar.length) != NULL)
        return fail(ld, event_line(ld), "%s: invalid key '%s'; expected %s", where, shown,
                    walk->expected);
    for (size_t i = 0; i < n_seen; i++)
        if (strcmp(seen[i], value) == 0)
            return fail(ld, event_line(ld), "%s: duplicate key '%s'; each key may appear once",
                        where, shown);
    if (n_seen == KEYS_PER_MAPPING)
        return fail(ld, event_line(ld), "%s: more than %d keys", where, KEYS_PER_MAPPING);
    memcpy(key, value, ev->data.scalar.length + 1);
    return VIGIL_OK;
}

/* Walks the mapping that starts at the current event. */
static vigil_err walk_mapping(struct loader *ld, const struct mapping_walk *walk)
{
    char seen[KEYS_PER_MAPPING][KEY_MAX + 1];
    size_t n_seen = 0;
    vigil_err rc;

    if (ld->event.type != YAML_MAPPING_START_EVENT)
        return fail_type(ld, walk->path[0] != '\0' ? walk->path : "top level", "a mapping");
    for (;;) {
        size_t key_line;

        rc = next(ld);
        if (rc != VIGIL_OK)
            return rc;
        if (ld->event.type == YAML_MAPPING_END_EVENT)
            return VIGIL_OK;
        key_line = event_line(ld);
        rc = read_key(ld, walk, seen, n_seen, seen[n_seen]);
        if (rc != VIGIL_OK)
            return rc;
        n_seen++;
        rc = next(ld);
        if (rc != VIGIL_OK)
            return rc;
        rc = walk->value(ld, walk, seen[n_seen - 1], key_line);
        if (rc != VIGIL_OK)
            return rc;
    }
}

/* Reads a sequence of patterns into out (at most CONFIG_MAX_PATTERNS). */
static vigil_err read_patterns(struct loader *ld, const char *path, char (*out)[256], size_t *n)
{
    char item[96];
    const char *problem;
    char shown[64];
    vigil_err rc;

    if (ld->event.type != YAML_SEQUENCE_START_EVENT)
        return fail_type(ld, path, "a sequence of topic patterns");
    *n = 0;
    for (;;) {
        rc = next(ld);
        if (rc != VIGIL_OK)
            return rc;
        if (ld->event.type == YAML_SEQUENCE_END_EVENT)
            return VIGIL_OK;
        snprintf(item, sizeof item, "%s[%zu]", path, *n);
        if (*n == CONFIG_MAX_PATTERNS)
            return fail(ld, event_line(ld), "%s: more than %d patterns; at most %d are supported",
                        path, CONFIG_MAX_PATTERNS, CONFIG_MAX_PATTERNS);
        rc = read_string(ld, item, out[*n], 256);
        if (rc != VIGIL_OK)
            return rc;
        problem = config_pattern_problem(out[*n]);
        if (problem != NULL) {
            config_quote(out[*n], strlen(out[*n]), shown, sizeof shown);
            return fail(ld, event_line(ld), "%s: invalid topic pattern '%s': %s", item, shown,
                        problem);
        }
        (*n)++;
    }
}

static vigil_err role_value(struct loader *ld, const struct mapping_walk *walk, const char *key,
                            size_t key_line)
{
    struct config_role *role = walk->ctx;
    char path[128];

    snprintf(path, sizeof path, "%s.%s", walk->path, key);
    if (strcmp(key, "publish") == 0)
        return read_patterns(ld, path, role->publish, &role->n_publish);
    if (strcmp(key, "subscribe") == 0)
        return read_patterns(ld, path, role->subscribe, &role->n_subscribe);
    return fail_unknown_key(ld, walk, key, key_line);
}

/* Returns the slot for role name: the existing role of that name (which the
 * file replaces) or a new one. NULL when all slots are taken. */
static struct config_role *role_slot(struct loader *ld, const char *name)
{
    struct vigil_config *cfg = ld->cfg;

    for (size_t i = 0; i < cfg->n_roles; i++)
        if (strcmp(cfg->roles[i].name, name) == 0)
            return &cfg->roles[i];
    if (cfg->n_roles >= CONFIG_MAX_ROLES)
        return NULL;
    return &cfg->roles[cfg->n_roles++];
}

static vigil_err roles_value(struct loader *ld, const struct mapping_walk *walk, const char *key,
                             size_t key_line)
{
    struct mapping_walk role_walk = {.expected = "publish, subscribe", .value = role_value};
    struct config_role *role;
    char shown[64];
    char path[96];

    if (!config_role_name_valid(key)) {
        config_quote(key, strlen(key), shown, sizeof shown);
        return fail(ld, key_line,
                    "roles: invalid role name '%s'; expected 1 to 31 characters of A-Z, a-z, 0-9, "
                    "'.', '_' or '-'",
                    shown);
    }
    role = role_slot(ld, key);
    if (role == NULL)
        return fail(ld, key_line,
                    "roles: more than %d roles, counting the default roles device and monitor",
                    CONFIG_MAX_ROLES);
    memset(role, 0, sizeof *role);
    memcpy(role->name, key, strlen(key) + 1);
    snprintf(path, sizeof path, "roles.%s", key);
    role_walk.path = path;
    role_walk.ctx = role;
    return walk_mapping(ld, &role_walk);
}

#define LISTENER_KEYS                                                                          \
    "mqtt, mqtts, coap, coaps, mqttsn, mqttsn-dtls, anonymous, plaintext_public, "             \
    "require_client_cert, psk, password"

enum listener_flag {
    FLAG_ANONYMOUS,
    FLAG_PLAINTEXT_PUBLIC,
    FLAG_REQUIRE_CLIENT_CERT,
    FLAG_PSK,
    FLAG_PASSWORD,
    N_LISTENER_FLAGS
};

/* Boolean listener keys; each applies either to the plaintext transports
 * (mqtt, coap, mqttsn) or to the secured ones (mqtts, coaps, mqttsn-dtls). */
static const struct {
    const char *key;
    bool secured;
    size_t offset;          /* of the bool in struct config_listener */
} listener_flags[N_LISTENER_FLAGS] = {
    [FLAG_ANONYMOUS] = {"anonymous", false, offsetof(struct config_listener, allow_anonymous)},
    [FLAG_PLAINTEXT_PUBLIC] = {"plaintext_public", false,
                               offsetof(struct config_listener, plaintext_public)},
    [FLAG_REQUIRE_CLIENT_CERT] = {"require_client_cert", true,
                                  offsetof(struct config_listener, require_client_cert)},
    [FLAG_PSK] = {"psk", true, offsetof(struct config_listener, allow_psk)},
    [FLAG_PASSWORD] = {"password", true, offsetof(struct config_listener, allow_password)},
};

/* Address keys of a listener, one per transport, indexed by enum
 * config_transport. */
static const char *const listener_address_keys[] = {
    [CONFIG_TRANSPORT_MQTT] = "mqtt",   [CONFIG_TRANSPORT_MQTTS] = "mqtts",
    [CONFIG_TRANSPORT_COAP] = "coap",   [CONFIG_TRANSPORT_COAPS] = "coaps",
    [CONFIG_TRANSPORT_MQTTSN] = "mqttsn", [CONFIG_TRANSPORT_MQTTSN_DTLS] = "mqttsn-dtls",
};
#define N_LISTENER_ADDRESS_KEYS (sizeof listener_address_keys / sizeof listener_address_keys[0])

static int listener_address_transport(const char *key)
{
    for (size_t i = 0; i < N_LISTENER_ADDRESS_KEYS; i++)
        if (strcmp(key, listener_address_keys[i]) == 0)
            return (int)i;
    return -1;
}

struct listener_entry {
    struct config_listener *listener;
    const char *address_key;            /* "mqtt" or "mqtts"; NULL until seen */
    size_t address_line;
    size_t flag_lines[N_LISTENER_FLAGS];    /* 0 when the key is absent */
};

static vigil_err listener_address(struct loader *ld, struct listener_entry *entry,
                                  const char *path, const char *key, size_t key_line)
{
    char spec[128];
    char problem[256];

    int transport = listener_address_transport(key);

    if (entry->address_key != NULL)
        return fail(ld, key_line,
                    "%s: '%s' and '%s' are both set; a listener has exactly one address key "
                    "(mqtt, mqtts, coap, coaps, mqttsn or mqttsn-dtls)",
                    path, entry->address_key, key);
    if (read_string(ld, path, spec, sizeof spec) != VIGIL_OK)
        return VIGIL_ERR_CONFIG;
    if (config_parse_listener(spec, entry->listener, problem, sizeof problem) != VIGIL_OK)
        return fail(ld, event_line(ld), "%s.%s: %s", path, key, problem);
    entry->address_key = listener_address_keys[transport];
    entry->address_line = event_line(ld);
    entry->listener->transport = (uint8_t)transport;
    return VIGIL_OK;
}

static vigil_err listener_value(struct loader *ld, const struct mapping_walk *walk,
                                const char *key, size_t key_line)
{
    struct listener_entry *entry = walk->ctx;
    char path[96];

    if (listener_address_transport(key) >= 0)
        return listener_address(ld, entry, walk->path, key, key_line);
    snprintf(path, sizeof path, "%s.%s", walk->path, key);
    for (size_t i = 0; i < N_LISTENER_FLAGS; i++) {
        if (strcmp(key, listener_flags[i].key) == 0) {
            entry->flag_lines[i] = key_line;
            return read_bool(ld, path,
                             (bool *)((unsigned char *)entry->listener + listener_flags[i].offset));
        }
    }
    return fail_unknown_key(ld, walk, key, key_line);
}

/* Rejects keys of the other transport, then applies the defaults of the
 * listener's own transport to the keys it left out. */
static vigil_err listener_finish(struct loader *ld, struct listener_entry *entry,
                                 const char *path)
{
    struct config_listener *l = entry->listener;
    bool secured = config_listener_is_tls(l);

    for (size_t i = 0; i < N_LISTENER_FLAGS; i++) {
        if (entry->flag_lines[i] != 0 && listener_flags[i].secured != secured)
            return fail(ld, entry->flag_lines[i],
                        "%s: key '%s' applies only to %s listeners; remove it from this '%s' "
                        "listener",
                        path, listener_flags[i].key,
                        secured ? "mqtt, coap and mqttsn" : "mqtts, coaps and mqttsn-dtls",
                        entry->address_key);
    }
    /* Mutual authentication with certificates is the default of a secured
     * listener. */
    if (secured && entry->flag_lines[FLAG_REQUIRE_CLIENT_CERT] == 0)
        l->require_client_cert = true;
    return VIGIL_OK;
}

/* Picks the line of the key that broke a listener rule. */
static size_t rule_line(const struct listener_entry *entry, enum config_listener_rule rule,
                        size_t start_line)
{
    if (rule == CONFIG_LISTENER_ANONYMOUS && entry->flag_lines[FLAG_ANONYMOUS] != 0)
        return entry->flag_lines[FLAG_ANONYMOUS];
    if (rule == CONFIG_LISTENER_PLAINTEXT)
        return entry->address_line;
    return start_line;
}

static vigil_err read_listener(struct loader *ld, size_t index)
{
    struct config_listener *l = &ld->cfg->listeners[index];
    struct listener_entry entry = {.listener = l};
    struct mapping_walk walk = {.expected = LISTENER_KEYS, .value = listener_value};
    size_t start_line = event_line(ld);
    enum config_listener_rule rule;
    char problem[256];
    char path[32];
    vigil_err rc;

    memset(l, 0, sizeof *l);
    snprintf(path, sizeof path, "listeners[%zu]", index);
    walk.path = path;
    walk.ctx = &entry;
    rc = walk_mapping(ld, &walk);
    if (rc != VIGIL_OK)
        return rc;
    if (entry.address_key == NULL)
        return fail(ld, start_line,
                    "%s: missing address key; expected one of mqtt, mqtts, coap, coaps, mqttsn "
                    "or mqttsn-dtls with \"ADDRESS:PORT\"",
                    path);
    rc = listener_finish(ld, &entry, path);
    if (rc != VIGIL_OK)
        return rc;
    rule = config_listener_check(l, problem, sizeof problem);
    if (rule != CONFIG_LISTENER_OK)
        return fail(ld, rule_line(&entry, rule, start_line), "%s: %s", path, problem);
    return VIGIL_OK;
}

/* A listeners sequence replaces the listeners configured so far. */
static vigil_err read_listeners(struct loader *ld)
{
    size_t start_line = event_line(ld);
    vigil_err rc;

    if (ld->event.type != YAML_SEQUENCE_START_EVENT)
        return fail_type(ld, "listeners", "a sequence of listeners");
    ld->cfg->n_listeners = 0;
    for (;;) {
        rc = next(ld);
        if (rc != VIGIL_OK)
            return rc;
        if (ld->event.type == YAML_SEQUENCE_END_EVENT)
            break;
        if (ld->cfg->n_listeners == CONFIG_MAX_LISTENERS)
            return fail(ld, event_line(ld), "listeners: more than %d listeners; at most %d are "
                        "supported", CONFIG_MAX_LISTENERS, CONFIG_MAX_LISTENERS);
        rc = read_listener(ld, ld->cfg->n_listeners);
        if (rc != VIGIL_OK)
            return rc;
        ld->cfg->n_listeners++;
    }
    if (ld->cfg->n_listeners == 0)
        return fail(ld, start_line, "listeners: expected at least one listener");
    return VIGIL_OK;
}

static vigil_err nested_number_value(struct loader *ld, const struct mapping_walk *walk,
                                     const char *key, size_t key_line)
{
    char path[128];

    snprintf(path, sizeof path, "%s.%s", walk->path, key);
    if (config_number_find(path) == NULL)
        return fail_unknown_key(ld, walk, key, key_line);
    return read_number(ld, path);
}

/* Parses a plain decimal scalar with at most one '.', and no sign, exponent
 * or leading zero before other digits. */
static bool parse_fraction(const yaml_event_t *ev, double *out)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    char text[32];
    size_t dots = 0;

    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || len == 0 || len >= sizeof text)
        return false;
    if (s[0] == '.' || s[len - 1] == '.' || (len > 1 && s[0] == '0' && s[1] != '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.')
            dots++;
        else if (s[i] < '0' || s[i] > '9')
            return false;
    }
    if (dots > 1)
        return false;
    memcpy(text, s, len);
    text[len] = '\0';
    *out = strtod(text, NULL);
    return true;
}

static vigil_err read_baseline_z(struct loader *ld)
{
    double value;

    if (ld->event.type != YAML_SCALAR_EVENT || !parse_fraction(&ld->event, &value) ||
        value < CONFIG_BASELINE_Z_MIN || value > CONFIG_BASELINE_Z_MAX)
        return fail_type(ld, "secmon.baseline_z", "a decimal number from 1 to 100, such as 4 or 3.5");
    ld->cfg->secmon.baseline_z = value;
    return VIGIL_OK;
}

/* Comma-separated client id prefixes; an empty string names no monitor. */
static vigil_err read_monitor_prefixes(struct loader *ld)
{
    const yaml_event_t *ev = &ld->event;
    const char *path = "secmon.monitor_prefixes";
    char *out = ld->cfg->secmon_monitor_prefixes;
    size_t cap = sizeof ld->cfg->secmon_monitor_prefixes;
    size_t len = ev->data.scalar.length;

    if (ev->type != YAML_SCALAR_EVENT || scalar_is_null(ev))
        return fail_type(ld, path, "a string of comma-separated client id prefixes");
    if (memchr(ev->data.scalar.value, '\0', len) != NULL)
        return fail(ld, event_line(ld), "%s: the value contains a NUL character", path);
    if (len >= cap)
        return fail(ld, event_line(ld), "%s: expected a string of at most %zu bytes, got %zu bytes",
                    path, cap - 1, len);
    memcpy(out, ev->data.scalar.value, len + 1);
    return VIGIL_OK;
}

/* Reads one threshold of a profile, range-checked like the same key of the
 * secmon section. */
static vigil_err read_profile_threshold(struct loader *ld, struct config_secmon_profile *profile,
                                        int index, const char *path)
{
    size_t n_keys;
    const struct config_profile_key *k = &config_profile_keys(&n_keys)[index];
    char *field = (char *)&profile->cfg + k->offset;
    const struct config_number *num;
    char number_path[96];
    char expected[96];
    uint64_t value;
    uint32_t value32;
    double z;

    if (k->decimal) {
        if (ld->event.type != YAML_SCALAR_EVENT || !parse_fraction(&ld->event, &z) ||
            z < CONFIG_BASELINE_Z_MIN || z > CONFIG_BASELINE_Z_MAX)
            return fail_type(ld, path, "a decimal number from 1 to 100, such as 4 or 3.5");
        memcpy(field, &z, sizeof z);
    } else {
        snprintf(number_path, sizeof number_path, "secmon.%s", k->key);
        num = config_number_find(number_path);
        config_number_expected(num, expected, sizeof expected);
        if (ld->event.type != YAML_SCALAR_EVENT || !parse_decimal(&ld->event, &value) ||
            !config_number_allows(num, value))
            return fail_type(ld, path, expected);
        value32 = (uint32_t)value;
        memcpy(field, &value32, sizeof value32);
    }
    profile->set_mask |= UINT32_C(1) << index;
    return VIGIL_OK;
}

static vigil_err profile_value(struct loader *ld, const struct mapping_walk *walk, const char *key,
                               size_t key_line)
{
    int index = config_profile_key_find(key);
    char number_path[96];
    char path[160];

    snprintf(path, sizeof path, "%s.%s", walk->path, key);
    if (index >= 0)
        return read_profile_threshold(ld, walk->ctx, index, path);
    snprintf(number_path, sizeof number_path, "secmon.%s", key);
    if (config_number_find(number_path) != NULL || strcmp(key, "monitor_prefixes") == 0 ||
        strcmp(key, "profiles") == 0)
        return fail(ld, key_line,
                    "%s: this setting applies per source address or to the whole engine, so only "
                    "the secmon section sets it; a profile may set %s",
                    path, PROFILE_KEYS);
    return fail_unknown_key(ld, walk, key, key_line);
}

/* Returns the profile of type: the existing one, which the file replaces,
 * or a new one. NULL when all slots are taken. */
static struct config_secmon_profile *profile_slot(struct loader *ld, const char *type)
{
    struct vigil_config *cfg = ld->cfg;

    for (size_t i = 0; i < cfg->n_secmon_profiles; i++)
        if (strcmp(cfg->secmon_profiles[i].type, type) == 0)
            return &cfg->secmon_profiles[i];
    if (cfg->n_secmon_profiles >= CONFIG_MAX_SECMON_PROFILES)
        return NULL;
    return &cfg->secmon_profiles[cfg->n_secmon_profiles++];
}

static bool device_type_valid(const char *type)
{
    size_t len = strlen(type);

    if (len == 0 || len >= sizeof ((struct config_secmon_profile *)0)->type)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)type[i] < 0x20 || type[i] == 0x7f)
            return false;
    return true;
}

/* Each key of secmon.profiles is a device type, which no device needs to
 * have yet, and its value a mapping of thresholds. */
static vigil_err profiles_value(struct loader *ld, const struct mapping_walk *walk, const char *key,
                                size_t key_line)
{
    struct mapping_walk profile_walk = {.expected = PROFILE_KEYS, .value = profile_value};
    struct config_secmon_profile *profile;
    char shown[64];
    char path[96];

    config_quote(key, strlen(key), shown, sizeof shown);
    if (!device_type_valid(key))
        return fail(ld, key_line,
                    "%s: invalid device type '%s'; expected 1 to 31 bytes without control "
                    "characters",
                    walk->path, shown);
    profile = profile_slot(ld, key);
    if (profile == NULL)
        return fail(ld, key_line, "%s: more than %d profiles; at most %d are supported", walk->path,
                    CONFIG_MAX_SECMON_PROFILES, CONFIG_MAX_SECMON_PROFILES);
    memset(profile, 0, sizeof *profile);
    memcpy(profile->type, key, strlen(key) + 1);
    snprintf(path, sizeof path, "%s.%s", walk->path, key);
    profile_walk.path = path;
    profile_walk.ctx = profile;
    return walk_mapping(ld, &profile_walk);
}

static vigil_err secmon_value(struct loader *ld, const struct mapping_walk *walk, const char *key,
                              size_t key_line)
{
    struct mapping_walk profiles = {"secmon.profiles", "a device type, such as infusion-pump",
                                    profiles_value, NULL};

    if (strcmp(key, "profiles") == 0)
        return walk_mapping(ld, &profiles);
    if (strcmp(key, "enabled") == 0)
        return read_bool(ld, "secmon.enabled", &ld->cfg->secmon_enabled);
    if (strcmp(key, "baseline_z") == 0)
        return read_baseline_z(ld);
    if (strcmp(key, "monitor_prefixes") == 0)
        return read_monitor_prefixes(ld);
    return nested_number_value(ld, walk, key, key_line);
}

static vigil_err read_log_level(struct loader *ld)
{
    char level[sizeof ld->cfg->log_level];
    const yaml_event_t *ev = &ld->event;

    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.length >= sizeof level ||
        vigil_log_parse_level((const char *)ev->data.scalar.value) < 0)
        return fail_type(ld, "log_level", "one of error, warn, info, debug");
    memcpy(level, ev->data.scalar.value, ev->data.scalar.length + 1);
    memcpy(ld->cfg->log_level, level, sizeof level);
    return VIGIL_OK;
}

static vigil_err read_identity(struct loader *ld, const char *path)
{
    const yaml_event_t *ev = &ld->event;
    const char *v = (const char *)ev->data.scalar.value;

    if (ev->type != YAML_SCALAR_EVENT || (strcmp(v, "uri") != 0 && strcmp(v, "cn") != 0))
        return fail_type(ld, path, "uri or cn");
    ld->cfg->tls.identity = strcmp(v, "cn") == 0 ? 1 : 0;
    return VIGIL_OK;
}

static vigil_err tls_value(struct loader *ld, const struct mapping_walk *walk, const char *key,
                           size_t key_line)
{
    static const struct {
        const char *key;
        size_t offset;
    } files[] = {
        {"cert_file", offsetof(struct config_tls, cert_file)},
        {"key_file", offsetof(struct config_tls, key_file)},
        {"ca_file", offsetof(struct config_tls, ca_file)},
        {"crl_file", offsetof(struct config_tls, crl_file)},
    };
    char path[96];

    snprintf(path, sizeof path, "tls.%s", key);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (strcmp(key, files[i].key) == 0)
            return read_string(ld, path, (char *)&ld->cfg->tls + files[i].offset,
                               sizeof ld->cfg->tls.cert_file);
    if (strcmp(key, "identity") == 0)
        return read_identity(ld, path);
    return nested_number_value(ld, walk, key, key_line);
}

static vigil_err read_tls(struct loader *ld, size_t key_line)
{
    struct mapping_walk walk = {"tls", TLS_KEYS, tls_value, NULL};
    const char *problem;
    vigil_err rc = walk_mapping(ld, &walk);

    if (rc != VIGIL_OK)
        return rc;
    problem = config_tls_problem(&ld->cfg->tls);
    if (problem != NULL)
        return fail(ld, key_line, "tls: %s", problem);
    return VIGIL_OK;
}

/* A sniff sequence replaces the interfaces configured so far; an empty
 * sequence turns live capture off. */
static vigil_err read_sniff_interfaces(struct loader *ld)
{
    struct config_sniff *sniff = &ld->cfg->sniff;
    char item[32];
    char problem[256];
    vigil_err rc;

    if (ld->event.type != YAML_SEQUENCE_START_EVENT)
        return fail_type(ld, "sniff", "a sequence of interface names");
    sniff->n_interfaces = 0;
    for (;;) {
        rc = next(ld);
        if (rc != VIGIL_OK)
            return rc;
        if (ld->event.type == YAML_SEQUENCE_END_EVENT)
            break;
        if (sniff->n_interfaces == CONFIG_MAX_SNIFF_INTERFACES)
            return fail(ld, event_line(ld), "sniff: more than %d interfaces; at most %d are "
                        "supported", CONFIG_MAX_SNIFF_INTERFACES, CONFIG_MAX_SNIFF_INTERFACES);
        snprintf(item, sizeof item, "sniff[%zu]", sniff->n_interfaces);
        rc = read_string(ld, item, sniff->interfaces[sniff->n_interfaces],
                         sizeof sniff->interfaces[0]);
        if (rc != VIGIL_OK)
            return rc;
        sniff->n_interfaces++;
        if (config_sniff_check(sniff, problem, sizeof problem) != VIGIL_OK)
            return fail(ld, event_line(ld), "%s", problem);
    }
    return VIGIL_OK;
}

/* A sniff_ports sequence replaces the default port 1883. */
static vigil_err read_sniff_ports(struct loader *ld, size_t key_line)
{
    struct config_sniff *sniff = &ld->cfg->sniff;
    const char *expected = "a port from 1 to 65535";
    char problem[256];
    uint64_t port;
    vigil_err rc;

    if (ld->event.type != YAML_SEQUENCE_START_EVENT)
        return fail_type(ld, "sniff_ports", "a sequence of ports");
    sniff->n_ports = 0;
    for (;;) {
        rc = next(ld);
        if (rc != VIGIL_OK)
            return rc;
        if (ld->event.type == YAML_SEQUENCE_END_EVENT)
            break;
        if (sniff->n_ports == CONFIG_MAX_SNIFF_PORTS)
            return fail(ld, event_line(ld), "sniff_ports: more than %d ports; at most %d are "
                        "supported", CONFIG_MAX_SNIFF_PORTS, CONFIG_MAX_SNIFF_PORTS);
        if (ld->event.type != YAML_SCALAR_EVENT || !parse_decimal(&ld->event, &port) ||
            port == 0 || port > UINT16_MAX)
            return fail_type(ld, "sniff_ports", expected);
        sniff->ports[sniff->n_ports++] = (uint16_t)port;
        if (config_sniff_check(sniff, problem, sizeof problem) != VIGIL_OK)
            return fail(ld, event_line(ld), "%s", problem);
    }
    if (sniff->n_ports == 0)
        return fail(ld, key_line, "sniff_ports: expected at least one port");
    return VIGIL_OK;
}

/* Checks an expanded-later topic: one or more levels, no wildcard, not
 * starting with '$'. */
static const char *gateway_topic_problem(const char *topic)
{
    if (topic[0] == '\0')
        return "must not be empty";
    if (topic[0] == '$')
        return "must not start with '$'";
    if (strpbrk(topic, "+#") != NULL)
        return "must not contain the wildcards '+' or '#'";
    return NULL;
}

static vigil_err read_predefined_topic(struct loader *ld, const char *key, size_t key_line)
{
    struct config_gateway *gw = &ld->cfg->gateway;
    struct config_predefined_topic *t;
    char path[96];
    char *end;
    unsigned long id = strtoul(key, &end, 10);
    const char *problem;

    snprintf(path, sizeof path, "gateway.predefined_topics.%s", key);
    if (*key == '\0' || *end != '\0' || id == 0 || id >= 0xFFFF)
        return fail(ld, key_line, "%s: the topic id must be a number from 1 to 65534", path);
    for (size_t i = 0; i < gw->n_predefined; i++)
        if (gw->predefined[i].id == id)
            return fail(ld, key_line, "%s: topic id %lu is defined twice", path, id);
    if (gw->n_predefined == CONFIG_MAX_PREDEFINED_TOPICS)
        return fail(ld, key_line, "%s: at most %d predefined topics are supported", path,
                    CONFIG_MAX_PREDEFINED_TOPICS);
    t = &gw->predefined[gw->n_predefined];
    if (read_string(ld, path, t->topic, sizeof t->topic) != VIGIL_OK)
        return VIGIL_ERR_CONFIG;
    problem = gateway_topic_problem(t->topic);
    if (problem != NULL)
        return fail(ld, event_line(ld), "%s: the topic %s", path, problem);
    t->id = (uint16_t)id;
    gw->n_predefined++;
    return VIGIL_OK;
}

static vigil_err predefined_value(struct loader *ld, const struct mapping_walk *walk,
                                  const char *key, size_t key_line)
{
    (void)walk;
    return read_predefined_topic(ld, key, key_line);
}

static vigil_err gateway_value(struct loader *ld, const struct mapping_walk *walk,
                               const char *key, size_t key_line)
{
    struct config_gateway *gw = &ld->cfg->gateway;
    struct mapping_walk predefined = {"gateway.predefined_topics", "topic ids from 1 to 65534",
                                      predefined_value, NULL};
    const char *problem;

    if (strcmp(key, "predefined_topics") == 0) {
        if (ld->event.type != YAML_MAPPING_START_EVENT)
            return fail_type(ld, "gateway.predefined_topics", "a mapping of topic id to topic");
        gw->n_predefined = 0;
        return walk_mapping(ld, &predefined);
    }
    if (strcmp(key, "topic_base") != 0)
        return nested_number_value(ld, walk, key, key_line);
    if (read_string(ld, "gateway.topic_base", gw->topic_base, sizeof gw->topic_base) != VIGIL_OK)
        return VIGIL_ERR_CONFIG;
    problem = gateway_topic_problem(gw->topic_base);
    if (problem == NULL && strstr(gw->topic_base, "%d") == NULL)
        problem = "must contain %d, the device id, so that devices cannot write as each other";
    if (problem == NULL && gw->topic_base[strlen(gw->topic_base) - 1] != '/')
        problem = "must end with '/'; the metric name follows it";
    if (problem != NULL)
        return fail(ld, event_line(ld), "gateway.topic_base %s", problem);
    return VIGIL_OK;
}

/* Passes over the `siem:` section: the SIEM exporter reads it from the same
 * file with its own checks (siem_config_load_file). */
static vigil_err skip_value(struct loader *ld)
{
    int depth = 0;

    for (;;) {
        vigil_err rc;

        if (ld->event.type == YAML_MAPPING_START_EVENT || ld->event.type == YAML_SEQUENCE_START_EVENT)
            depth++;
        else if (ld->event.type == YAML_MAPPING_END_EVENT || ld->event.type == YAML_SEQUENCE_END_EVENT)
            depth--;
        if (depth == 0)
            return VIGIL_OK;
        rc = next(ld);
        if (rc != VIGIL_OK)
            return rc;
    }
}

static vigil_err top_value(struct loader *ld, const struct mapping_walk *walk, const char *key,
                           size_t key_line)
{
    struct mapping_walk limits = {"limits", LIMIT_KEYS, nested_number_value, NULL};
    struct mapping_walk auth = {"auth", "failure_burst, failures_per_minute", nested_number_value,
                                NULL};
    struct mapping_walk store = {"store", "commit_interval_us", nested_number_value, NULL};
    struct mapping_walk roles = {"roles", "a role name", roles_value, NULL};
    struct mapping_walk secmon = {"secmon", SECMON_KEYS, secmon_value, NULL};
    struct mapping_walk audit = {"audit",
                                 "checkpoint_every, checkpoint_interval, segment_max_bytes",
                                 nested_number_value, NULL};
    struct mapping_walk gateway = {"gateway", GATEWAY_KEYS, gateway_value, NULL};

    if (strcmp(key, "data_dir") == 0)
        return read_string(ld, key, ld->cfg->data_dir, sizeof ld->cfg->data_dir);
    if (strcmp(key, "listeners") == 0)
        return read_listeners(ld);
    if (strcmp(key, "tls") == 0)
        return read_tls(ld, key_line);
    if (strcmp(key, "auth") == 0)
        return walk_mapping(ld, &auth);
    if (strcmp(key, "roles") == 0)
        return walk_mapping(ld, &roles);
    if (strcmp(key, "limits") == 0)
        return walk_mapping(ld, &limits);
    if (strcmp(key, "store") == 0)
        return walk_mapping(ld, &store);
    if (strcmp(key, "secmon") == 0)
        return walk_mapping(ld, &secmon);
    if (strcmp(key, "siem") == 0)
        return skip_value(ld);
    if (strcmp(key, "audit") == 0)
        return walk_mapping(ld, &audit);
    if (strcmp(key, "gateway") == 0)
        return walk_mapping(ld, &gateway);
    if (strcmp(key, "log_level") == 0)
        return read_log_level(ld);
    if (strcmp(key, "sniff") == 0)
        return read_sniff_interfaces(ld);
    if (strcmp(key, "sniff_ports") == 0)
        return read_sniff_ports(ld, key_line);
    if (strcmp(key, "sniff_promiscuous") == 0)
        return read_bool(ld, key, &ld->cfg->sniff.promiscuous);
    if (strcmp(key, "sys_interval") == 0 || strcmp(key, "event_queue_capacity") == 0 ||
        strcmp(key, "event_file_max_bytes") == 0 || strcmp(key, "event_files_kept") == 0 ||
        strcmp(key, "sniff_buffer_size") == 0)
        return read_number(ld, key);
    return fail_unknown_key(ld, walk, key, key_line);
}

/* Reads the one document of the stream. An empty stream or an empty
 * document changes nothing. */
static vigil_err read_stream(struct loader *ld)
{
    struct mapping_walk top = {"", TOP_KEYS, top_value, NULL};
    vigil_err rc;

    rc = next(ld);  /* stream start */
    if (rc == VIGIL_OK)
        rc = next(ld);
    if (rc != VIGIL_OK || ld->event.type == YAML_STREAM_END_EVENT)
        return rc;
    rc = next(ld);  /* the root node */
    if (rc != VIGIL_OK)
        return rc;
    if (!(ld->event.type == YAML_SCALAR_EVENT && scalar_is_null(&ld->event))) {
        if (ld->event.type != YAML_MAPPING_START_EVENT)
            return fail_type(ld, "top level", "a mapping of settings");
        rc = walk_mapping(ld, &top);
        if (rc != VIGIL_OK)
            return rc;
    }
    rc = next(ld);  /* document end */
    if (rc == VIGIL_OK)
        rc = next(ld);
    if (rc == VIGIL_OK && ld->event.type != YAML_STREAM_END_EVENT)
        return fail(ld, event_line(ld), "only one YAML document is allowed; remove the second "
                    "'---'");
    return rc;
}

vigil_err config_load_buffer(struct vigil_config *cfg, const char *name, const uint8_t *data,
                             size_t len, char *err, size_t errcap)
{
    struct loader *ld = NULL;
    vigil_err rc = VIGIL_OK;

    ld = vigil_calloc(1, sizeof *ld);
    if (ld != NULL)
        ld->cfg = vigil_malloc(sizeof *ld->cfg);
    if (ld == NULL || ld->cfg == NULL || !yaml_parser_initialize(&ld->parser)) {
        snprintf(err, errcap, "%s: out of memory loading the configuration", name);
        rc = VIGIL_ERR_NOMEM;
        goto cleanup;
    }
    ld->name = name;
    ld->err = err;
    ld->errcap = errcap;
    *ld->cfg = *cfg;
    yaml_parser_set_input_string(&ld->parser, data, len);
    rc = read_stream(ld);
    if (rc == VIGIL_OK)
        *cfg = *ld->cfg;
    if (ld->have_event)
        yaml_event_delete(&ld->event);
    yaml_parser_delete(&ld->parser);

cleanup:
    if (ld != NULL)
        vigil_free(ld->cfg);
    vigil_free(ld);
    return rc;
}
