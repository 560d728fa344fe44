/* Tests for the configuration: defaults, the YAML loader and its error
 * messages, listener parsing and cross-field validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"

#define ERR_CAP 512

/* Loads text over the defaults and returns the result, with the message in
 * err. */
static vigil_err load_text(struct vigil_config *cfg, const char *text, char *err)
{
    config_defaults(cfg);
    err[0] = '\0';
    return config_load_buffer(cfg, "t.yaml", (const uint8_t *)text, strlen(text), err, ERR_CAP);
}

/* Fails the test unless loading text fails with a message starting with
 * prefix and leaves the configuration at its defaults. */
static void expect_error(const char *text, const char *prefix)
{
    static struct vigil_config cfg;
    static struct vigil_config defaults;
    char err[ERR_CAP];
    vigil_err rc = load_text(&cfg, text, err);

    config_defaults(&defaults);
    if (rc != VIGIL_ERR_CONFIG)
        fail_msg("expected VIGIL_ERR_CONFIG for:\n%s\ngot %d (%s)", text, rc, err);
    if (strncmp(err, prefix, strlen(prefix)) != 0)
        fail_msg("for:\n%s\nexpected a message starting with\n  %s\ngot\n  %s", text, prefix,
                 err);
    assert_memory_equal(&cfg, &defaults, sizeof cfg);
}

static void example_path(char *out, size_t cap)
{
    const char *file = __FILE__;
    const char *tail = strstr(file, "tests/unit/test_config.c");

    assert_non_null(tail);
    snprintf(out, cap, "%.*svigil.example.yaml", (int)(tail - file), file);
}

/* The embedded default listeners, in order. */
static const struct {
    const char *host;
    uint16_t port;
    uint8_t transport;
} default_listeners[] = {
    {"127.0.0.1", 1883, CONFIG_TRANSPORT_MQTT},
    {"::1", 1883, CONFIG_TRANSPORT_MQTT},
    {"::", 8883, CONFIG_TRANSPORT_MQTTS},
    {"127.0.0.1", 5683, CONFIG_TRANSPORT_COAP},
    {"::1", 5683, CONFIG_TRANSPORT_COAP},
    {"::", 5684, CONFIG_TRANSPORT_COAPS},
    {"127.0.0.1", 1884, CONFIG_TRANSPORT_MQTTSN},
    {"::1", 1884, CONFIG_TRANSPORT_MQTTSN},
    {"::", 1885, CONFIG_TRANSPORT_MQTTSN_DTLS},
};

/* Plaintext defaults stay on loopback without anonymous access; secured
 * ones require client certificates and accept neither PSK nor passwords. */
static void check_default_listeners(const struct vigil_config *cfg)
{
    size_t n = sizeof default_listeners / sizeof default_listeners[0];

    assert_int_equal(cfg->n_listeners, n);
    for (size_t i = 0; i < n; i++) {
        const struct config_listener *l = &cfg->listeners[i];
        bool tls = l->transport == CONFIG_TRANSPORT_MQTTS ||
                   l->transport == CONFIG_TRANSPORT_COAPS ||
                   l->transport == CONFIG_TRANSPORT_MQTTSN_DTLS;

        assert_string_equal(l->host, default_listeners[i].host);
        assert_int_equal(l->port, default_listeners[i].port);
        assert_int_equal(l->transport, default_listeners[i].transport);
        assert_int_equal(config_listener_is_tls(l), tls);
        assert_int_equal(config_listener_is_udp(l), l->transport != CONFIG_TRANSPORT_MQTT &&
                                                        l->transport != CONFIG_TRANSPORT_MQTTS);
        assert_false(l->allow_anonymous);
        assert_false(l->plaintext_public);
        assert_false(l->allow_psk);
        assert_false(l->allow_password);
        assert_int_equal(l->require_client_cert, tls);
        if (!tls)
            assert_true(config_host_is_loopback(l->host));
    }
}

static void test_defaults_values(void **state)
{
    static struct vigil_config cfg;
    const struct config_role *device;
    const struct config_role *monitor;

    config_defaults(&cfg);
    assert_string_equal(cfg.data_dir, "./vigil-data");
    check_default_listeners(&cfg);
    assert_int_equal(cfg.n_roles, 2);

    device = config_find_role(&cfg, "device");
    assert_non_null(device);
    assert_int_equal(device->n_publish, 1);
    assert_string_equal(device->publish[0], "+/+/+/%d/#");
    assert_int_equal(device->n_subscribe, 1);
    assert_string_equal(device->subscribe[0], "+/+/+/%d/#");

    monitor = config_find_role(&cfg, "monitor");
    assert_non_null(monitor);
    assert_int_equal(monitor->n_publish, 0);
    assert_int_equal(monitor->n_subscribe, 2);
    assert_string_equal(monitor->subscribe[0], "#");
    assert_string_equal(monitor->subscribe[1], "$SYS/#");
    assert_null(config_find_role(&cfg, "admin"));

    assert_int_equal(cfg.limits.max_packet_size, 1048576);
    assert_int_equal(cfg.limits.receive_maximum, 64);
    assert_int_equal(cfg.limits.max_inflight_out, 64);
    assert_int_equal(cfg.limits.max_queued_messages, 1000);
    assert_int_equal(cfg.limits.max_subscriptions, 100);
    assert_int_equal(cfg.limits.max_topic_length, 1024);
    assert_int_equal(cfg.limits.max_topic_levels, 16);
    assert_int_equal(cfg.limits.max_connections, 10000);
    assert_int_equal(cfg.limits.max_keep_alive, 600);
    assert_int_equal(cfg.limits.topic_alias_maximum, 32);
    assert_int_equal(cfg.limits.max_session_expiry, 604800);
    assert_int_equal(cfg.limits.max_client_id_length, 128);
    assert_int_equal(cfg.limits.connect_timeout_ms, 10000);
    assert_int_equal(cfg.limits.max_output_bytes, 4 * 1024 * 1024);
    assert_int_equal(cfg.limits.output_budget_bytes, 64 * 1024 * 1024);
    assert_int_equal(cfg.limits.close_grace_ms, 5000);
    assert_int_equal(cfg.limits.sched_slice_us, 100);
    assert_int_equal(cfg.store_commit_interval_us, 5000);
    assert_int_equal(cfg.sys_interval_s, 10);
    assert_int_equal(cfg.event_queue_capacity, 16384);
    assert_int_equal(cfg.event_file_max_bytes, 256ull * 1024 * 1024);
    assert_int_equal(cfg.event_files_kept, 8);
    assert_string_equal(cfg.log_level, "info");

    assert_string_equal(cfg.tls.cert_file, "");
    assert_string_equal(cfg.tls.key_file, "");
    assert_string_equal(cfg.tls.ca_file, "");
    assert_string_equal(cfg.tls.crl_file, "");
    assert_int_equal(cfg.tls.identity, 0);
    assert_int_equal(cfg.tls.device_cert_days, 365);
    assert_int_equal(cfg.tls.rotation_overlap_s, 604800);
    assert_int_equal(cfg.tls.expiry_warning_days, 30);
    assert_int_equal(cfg.auth.failure_burst, 5);
    assert_int_equal(cfg.auth.failures_per_minute, 6);
}

static void test_defaults_validate(void **state)
{
    static struct vigil_config cfg;
    char err[ERR_CAP] = "";

    config_defaults(&cfg);
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_OK);
}

static void test_example_file_loads(void **state)
{
    static struct vigil_config cfg;
    static struct vigil_config defaults;
    const struct config_role *role;
    char path[1024];
    char err[ERR_CAP] = "";
    vigil_err rc;

    example_path(path, sizeof path);
    config_defaults(&defaults);
    config_defaults(&cfg);
    rc = config_load_file(&cfg, path, err, sizeof err);
    if (rc != VIGIL_OK)
        fail_msg("%s", err);
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_OK);

    assert_int_equal(cfg.n_listeners, defaults.n_listeners + 1);
    for (size_t i = 0; i < defaults.n_listeners; i++)
        assert_memory_equal(&cfg.listeners[i], &defaults.listeners[i], sizeof cfg.listeners[i]);
    assert_string_equal(cfg.listeners[defaults.n_listeners].host, "::1");
    assert_int_equal(cfg.listeners[defaults.n_listeners].port, 18830);
    assert_int_equal(cfg.listeners[defaults.n_listeners].transport, CONFIG_TRANSPORT_MQTT);
    assert_true(cfg.listeners[defaults.n_listeners].allow_anonymous);
    assert_memory_equal(&cfg.gateway, &defaults.gateway, sizeof cfg.gateway);
    assert_memory_equal(&cfg.tls, &defaults.tls, sizeof cfg.tls);
    assert_memory_equal(&cfg.auth, &defaults.auth, sizeof cfg.auth);
    assert_int_equal(cfg.n_roles, 3);
    role = config_find_role(&cfg, "nurse-call");
    assert_non_null(role);
    assert_string_equal(role->publish[0], "north/icu3/+/%d/call");
    assert_string_equal(role->subscribe[0], "north/icu3/#");
    assert_int_equal(cfg.limits.max_packet_size, 1048576);
    assert_string_equal(cfg.log_level, "info");
    assert_memory_equal(&cfg.secmon, &defaults.secmon, sizeof cfg.secmon);
    assert_string_equal(cfg.secmon_monitor_prefixes, defaults.secmon_monitor_prefixes);
    assert_memory_equal(&cfg.audit, &defaults.audit, sizeof cfg.audit);
    assert_int_equal(cfg.event_file_max_bytes, defaults.event_file_max_bytes);
    assert_int_equal(cfg.event_files_kept, defaults.event_files_kept);
    assert_int_equal(cfg.n_secmon_profiles, 2);
    assert_string_equal(cfg.secmon_profiles[0].type, "bedside-monitor");
    assert_string_equal(cfg.secmon_profiles[1].type, "infusion-pump");
}

static void test_load_every_setting(void **state)
{
    static struct vigil_config cfg;
    char err[ERR_CAP];
    const char *text = "data_dir: \"/var/lib/vigil\"\n"
                       "listeners:\n"
                       "  - {mqtts: \"0.0.0.0:8883\"}\n"
                       "  - {mqtt: \"0.0.0.0:1883\", plaintext_public: true}\n"
                       "  - mqtts: \"[::]:8884\"\n"
                       "    require_client_cert: false\n"
                       "    psk: true\n"
                       "    password: true\n"
                       "  - {mqtt: \"127.0.0.1:1884\", anonymous: true, plaintext_public: false}\n"
                       "tls:\n"
                       "  cert_file: /etc/vigil/server.pem\n"
                       "  key_file: /etc/vigil/server.key\n"
                       "  ca_file: \"/etc/vigil/ca.pem\"\n"
                       "  crl_file: /etc/vigil/ca.crl\n"
                       "  identity: cn\n"
                       "  device_cert_days: 90\n"
                       "  rotation_overlap: 0\n"
                       "  expiry_warning_days: 14\n"
                       "auth: {failure_burst: 1, failures_per_minute: 60000}\n"
                       "limits:\n"
                       "  max_packet_size: 16\n"
                       "  receive_maximum: 65535\n"
                       "  max_queued_messages: 0\n"
                       "  max_session_expiry: 4294967295\n"
                       "  connect_timeout_ms: 100\n"
                       "  output_budget_bytes: 1099511627776\n"
                       "  close_grace_ms: 100\n"
                       "  sched_slice_us: 100000\n"
                       "store: {commit_interval_us: 0}\n"
                       "sys_interval: 0\n"
                       "event_queue_capacity: 16777216\n"
                       "event_file_max_bytes: 65536\n"
                       "event_files_kept: 1000\n"
                       "log_level: debug\n";

    assert_int_equal(load_text(&cfg, text, err), VIGIL_OK);
    assert_string_equal(cfg.data_dir, "/var/lib/vigil");
    assert_int_equal(cfg.n_listeners, 4);
    assert_string_equal(cfg.listeners[0].host, "0.0.0.0");
    assert_int_equal(cfg.listeners[0].port, 8883);
    assert_int_equal(cfg.listeners[0].transport, CONFIG_TRANSPORT_MQTTS);
    assert_true(cfg.listeners[0].require_client_cert);
    assert_false(cfg.listeners[0].allow_psk);
    assert_false(cfg.listeners[0].allow_password);
    assert_false(cfg.listeners[0].allow_anonymous);
    assert_int_equal(cfg.listeners[1].transport, CONFIG_TRANSPORT_MQTT);
    assert_int_equal(cfg.listeners[1].port, 1883);
    assert_true(cfg.listeners[1].plaintext_public);
    assert_false(cfg.listeners[1].require_client_cert);
    assert_string_equal(cfg.listeners[2].host, "::");
    assert_int_equal(cfg.listeners[2].transport, CONFIG_TRANSPORT_MQTTS);
    assert_false(cfg.listeners[2].require_client_cert);
    assert_true(cfg.listeners[2].allow_psk);
    assert_true(cfg.listeners[2].allow_password);
    assert_int_equal(cfg.listeners[3].transport, CONFIG_TRANSPORT_MQTT);
    assert_true(cfg.listeners[3].allow_anonymous);
    assert_false(cfg.listeners[3].plaintext_public);
    assert_string_equal(cfg.tls.cert_file, "/etc/vigil/server.pem");
    assert_string_equal(cfg.tls.key_file, "/etc/vigil/server.key");
    assert_string_equal(cfg.tls.ca_file, "/etc/vigil/ca.pem");
    assert_string_equal(cfg.tls.crl_file, "/etc/vigil/ca.crl");
    assert_int_equal(cfg.tls.identity, 1);
    assert_int_equal(cfg.tls.device_cert_days, 90);
    assert_int_equal(cfg.tls.rotation_overlap_s, 0);
    assert_int_equal(cfg.tls.expiry_warning_days, 14);
    assert_int_equal(cfg.auth.failure_burst, 1);
    assert_int_equal(cfg.auth.failures_per_minute, 60000);
    assert_int_equal(cfg.limits.max_packet_size, 16);
    assert_int_equal(cfg.limits.receive_maximum, 65535);
    assert_int_equal(cfg.limits.max_queued_messages, 0);
    assert_int_equal(cfg.limits.max_session_expiry, 4294967295u);
    assert_int_equal(cfg.limits.connect_timeout_ms, 100);
    assert_int_equal(cfg.limits.output_budget_bytes, 1099511627776ull);
    assert_int_equal(cfg.limits.close_grace_ms, 100);
    assert_int_equal(cfg.limits.sched_slice_us, 100000);
    assert_int_equal(cfg.limits.max_topic_levels, 16);
    assert_int_equal(cfg.store_commit_interval_us, 0);
    assert_int_equal(cfg.sys_interval_s, 0);
    assert_int_equal(cfg.event_queue_capacity, 16777216);
    assert_int_equal(cfg.event_file_max_bytes, 65536);
    assert_int_equal(cfg.event_files_kept, 1000);
    assert_string_equal(cfg.log_level, "debug");
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_OK);
}

static void test_load_empty_inputs(void **state)
{
    static struct vigil_config cfg;
    static struct vigil_config defaults;
    static const char *const texts[] = {"", "# only a comment\n", "---\n", "---\n...\n", "~\n"};
    char err[ERR_CAP];

    config_defaults(&defaults);
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        if (load_text(&cfg, texts[i], err) != VIGIL_OK)
            fail_msg("input %zu: %s", i, err);
        assert_memory_equal(&cfg, &defaults, sizeof cfg);
    }
}

static void test_role_replaces_default(void **state)
{
    static struct vigil_config cfg;
    const struct config_role *device;
    char err[ERR_CAP];
    const char *text = "roles:\n"
                       "  device:\n"
                       "    publish: [\"a/%d\"]\n"
                       "  ward-display:\n"
                       "    subscribe:\n"
                       "      - north/+/+/+/heart_rate\n";

    assert_int_equal(load_text(&cfg, text, err), VIGIL_OK);
    assert_int_equal(cfg.n_roles, 3);
    device = config_find_role(&cfg, "device");
    assert_non_null(device);
    assert_int_equal(device->n_publish, 1);
    assert_string_equal(device->publish[0], "a/%d");
    assert_int_equal(device->n_subscribe, 0);
    assert_non_null(config_find_role(&cfg, "monitor"));
    assert_int_equal(config_find_role(&cfg, "monitor")->n_subscribe, 2);
    assert_int_equal(config_find_role(&cfg, "ward-display")->n_subscribe, 1);
}

static void test_load_file_missing(void **state)
{
    static struct vigil_config cfg;
    char err[ERR_CAP];

    config_defaults(&cfg);
    assert_int_equal(config_load_file(&cfg, "/nonexistent/vigil.yaml", err, sizeof err),
                     VIGIL_ERR_IO);
    assert_string_equal(err, "/nonexistent/vigil.yaml: failed to open the configuration file: "
                             "No such file or directory");
}

static void test_load_file_error_names_file(void **state)
{
    static struct vigil_config cfg;
    char path[] = "/tmp/vigil-test-config-XXXXXX";
    char err[ERR_CAP];
    char expected[128];
    int fd = mkstemp(path);
    const char *text = "log_level: info\n\nlog_level: loud\n";

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    config_defaults(&cfg);
    assert_int_equal(config_load_file(&cfg, path, err, sizeof err), VIGIL_ERR_CONFIG);
    snprintf(expected, sizeof expected, "%s:3: top level: duplicate key 'log_level'", path);
    assert_true(strncmp(err, expected, strlen(expected)) == 0);
    unlink(path);
}

static void test_error_unknown_keys(void **state)
{
    expect_error("data_dir: x\nfoo: 1\n",
                 "t.yaml:2: unknown key 'foo'; expected one of: data_dir, listeners, tls, auth, "
                 "roles, ");
    expect_error("limits:\n  max_packet_size: 100\n  bogus: 1\n",
                 "t.yaml:3: limits: unknown key 'bogus'; expected one of: max_packet_size, ");
    expect_error("store:\n  interval: 5\n",
                 "t.yaml:2: store: unknown key 'interval'; expected one of: commit_interval_us");
    expect_error("listeners:\n  - mqtt: 127.0.0.1:1883\n    tls: true\n",
                 "t.yaml:3: listeners[0]: unknown key 'tls'; expected one of: mqtt, mqtts, "
                 "coap, coaps, mqttsn, mqttsn-dtls, anonymous, plaintext_public, "
                 "require_client_cert, psk, password");
    expect_error("tls:\n  cert: a.pem\n",
                 "t.yaml:2: tls: unknown key 'cert'; expected one of: cert_file, key_file, "
                 "ca_file, crl_file, identity, device_cert_days, rotation_overlap, "
                 "expiry_warning_days");
    expect_error("auth:\n  burst: 5\n",
                 "t.yaml:2: auth: unknown key 'burst'; expected one of: failure_burst, "
                 "failures_per_minute");
    expect_error("roles:\n  device:\n    read: [\"#\"]\n",
                 "t.yaml:3: roles.device: unknown key 'read'; expected one of: publish, "
                 "subscribe");
    expect_error("sys_interval_s: 10\n", "t.yaml:1: unknown key 'sys_interval_s'");
}

static void test_error_numbers(void **state)
{
    expect_error("\n\nlimits:\n  max_packet_size: big\n",
                 "t.yaml:4: limits.max_packet_size: expected an unsigned integer from 16 to "
                 "268435455, got 'big'");
    expect_error("sys_interval: -1\n",
                 "t.yaml:1: sys_interval: expected an unsigned integer from 0 to 86400, got "
                 "'-1'");
    expect_error("limits:\n  receive_maximum: 65536\n",
                 "t.yaml:2: limits.receive_maximum: expected an unsigned integer from 1 to "
                 "65535, got '65536'");
    expect_error("limits:\n  max_packet_size: 15\n",
                 "t.yaml:2: limits.max_packet_size: expected an unsigned integer from 16 to "
                 "268435455, got '15'");
    expect_error("limits:\n  max_connections: 4294967296\n",
                 "t.yaml:2: limits.max_connections: expected an unsigned integer from 1 to "
                 "4294967295, got '4294967296'");
    expect_error("limits:\n  output_budget_bytes: 1048575\n",
                 "t.yaml:2: limits.output_budget_bytes: expected an unsigned integer from "
                 "1048576 to 1099511627776, got '1048575'");
    expect_error("limits:\n  close_grace_ms: 99\n",
                 "t.yaml:2: limits.close_grace_ms: expected an unsigned integer from 100 to "
                 "3600000, got '99'");
    expect_error("limits:\n  sched_slice_us: 100001\n",
                 "t.yaml:2: limits.sched_slice_us: expected an unsigned integer from 0 to "
                 "100000, got '100001'");
    expect_error("event_queue_capacity: 99999999999999999999999\n",
                 "t.yaml:1: event_queue_capacity: expected an unsigned integer from 16 to "
                 "16777216, got '99999999999999999999999'");
    expect_error("sys_interval: \"10\"\n",
                 "t.yaml:1: sys_interval: expected an unsigned integer from 0 to 86400, got the "
                 "quoted string \"10\"");
    expect_error("sys_interval: 010\n", "t.yaml:1: sys_interval: expected an unsigned integer");
    expect_error("sys_interval: 0x10\n", "t.yaml:1: sys_interval: expected an unsigned integer");
    expect_error("sys_interval: 1.5\n", "t.yaml:1: sys_interval: expected an unsigned integer");
    expect_error("sys_interval: +5\n", "t.yaml:1: sys_interval: expected an unsigned integer");
    expect_error("sys_interval:\n",
                 "t.yaml:1: sys_interval: expected an unsigned integer from 0 to 86400, got an "
                 "empty value");
    expect_error("store:\n  commit_interval_us: [1]\n",
                 "t.yaml:2: store.commit_interval_us: expected an unsigned integer from 0 to "
                 "1000000, got a sequence");
}

/* events.jsonl rotation: 0 turns it off, other sizes start at 64 KiB. */
static void test_event_file_keys(void **state)
{
    static struct vigil_config cfg;
    char err[ERR_CAP];

    assert_int_equal(load_text(&cfg, "event_file_max_bytes: 0\nevent_files_kept: 1\n", err),
                     VIGIL_OK);
    assert_int_equal(cfg.event_file_max_bytes, 0);
    assert_int_equal(cfg.event_files_kept, 1);
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_OK);
    assert_int_equal(load_text(&cfg, "event_file_max_bytes: 1099511627776\n", err), VIGIL_OK);
    assert_int_equal(cfg.event_file_max_bytes, 1099511627776ull);
    assert_int_equal(cfg.event_files_kept, 8);

    expect_error("event_file_max_bytes: 65535\n",
                 "t.yaml:1: event_file_max_bytes: expected 0 or an unsigned integer from 65536 "
                 "to 1099511627776, got '65535'");
    expect_error("event_file_max_bytes: 1\n",
                 "t.yaml:1: event_file_max_bytes: expected 0 or an unsigned integer from 65536 "
                 "to 1099511627776, got '1'");
    expect_error("event_file_max_bytes: 1099511627777\n",
                 "t.yaml:1: event_file_max_bytes: expected 0 or an unsigned integer from 65536 "
                 "to 1099511627776, got '1099511627777'");
    expect_error("event_file_max_bytes: 256MB\n",
                 "t.yaml:1: event_file_max_bytes: expected 0 or an unsigned integer from 65536 "
                 "to 1099511627776, got '256MB'");
    expect_error("event_files_kept: 0\n",
                 "t.yaml:1: event_files_kept: expected an unsigned integer from 1 to 1000, got "
                 "'0'");
    expect_error("event_files_kept: 1001\n",
                 "t.yaml:1: event_files_kept: expected an unsigned integer from 1 to 1000, got "
                 "'1001'");
    expect_error("event_files_kept: -1\n",
                 "t.yaml:1: event_files_kept: expected an unsigned integer from 1 to 1000, got "
                 "'-1'");
    expect_error("events:\n  max_file_bytes: 0\n", "t.yaml:1: unknown key 'events'");
}

static void test_error_wrong_containers(void **state)
{
    expect_error("limits:\n  - 1\n", "t.yaml:2: limits: expected a mapping, got a sequence");
    expect_error("limits: 5\n", "t.yaml:1: limits: expected a mapping, got '5'");
    expect_error("listeners:\n  mqtt: 127.0.0.1:1883\n",
                 "t.yaml:2: listeners: expected a sequence of listeners, got a mapping");
    expect_error("listeners:\n  - 127.0.0.1:1883\n",
                 "t.yaml:2: listeners[0]: expected a mapping, got '127.0.0.1:1883'");
    expect_error("roles:\n  device: all\n",
                 "t.yaml:2: roles.device: expected a mapping, got 'all'");
    expect_error("roles:\n  device:\n    publish: \"#\"\n",
                 "t.yaml:3: roles.device.publish: expected a sequence of topic patterns, got the "
                 "quoted string \"#\"");
    expect_error("data_dir: [a]\n", "t.yaml:1: data_dir: expected a string, got a sequence");
    expect_error("- a\n- b\n",
                 "t.yaml:1: top level: expected a mapping of settings, got a sequence");
    expect_error("just text\n",
                 "t.yaml:1: top level: expected a mapping of settings, got 'just text'");
    expect_error("? [a]\n: 1\n", "t.yaml:1: top level: keys must be strings, got a sequence");
}

static void test_error_booleans(void **state)
{
    static const char *const values[] = {"yes", "no", "on", "1", "True", "\"true\""};
    char text[160];
    char prefix[160];

    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        snprintf(text, sizeof text, "listeners:\n  - mqtt: 127.0.0.1:1883\n    anonymous: %s\n",
                 values[i]);
        snprintf(prefix, sizeof prefix,
                 "t.yaml:3: listeners[0].anonymous: expected true or false, got ");
        expect_error(text, prefix);
    }
}

static void test_error_duplicates(void **state)
{
    expect_error("log_level: info\nlog_level: debug\n",
                 "t.yaml:2: top level: duplicate key 'log_level'; each key may appear once");
    expect_error("limits:\n  max_keep_alive: 60\n  max_keep_alive: 60\n",
                 "t.yaml:3: limits: duplicate key 'max_keep_alive'");
    expect_error("roles:\n  ops: {}\n  ops: {}\n", "t.yaml:3: roles: duplicate key 'ops'");
    expect_error("listeners:\n  - mqtt: 127.0.0.1:1883\n    mqtt: 127.0.0.1:1884\n",
                 "t.yaml:3: listeners[0]: duplicate key 'mqtt'");
}

static void test_error_too_many(void **state)
{
    char text[4096];
    size_t n = 0;

    n += (size_t)snprintf(text + n, sizeof text - n, "listeners:\n");
    for (int i = 0; i < CONFIG_MAX_LISTENERS + 1; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "  - mqtt: 127.0.0.1:%d\n", 2000 + i);
    expect_error(text, "t.yaml:18: listeners: more than 16 listeners; at most 16 are supported");

    n = (size_t)snprintf(text, sizeof text, "roles:\n  r:\n    subscribe:\n");
    for (int i = 0; i < CONFIG_MAX_PATTERNS + 1; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "      - a/%d\n", i);
    expect_error(text, "t.yaml:20: roles.r.subscribe: more than 16 patterns; at most 16 are "
                       "supported");

    /* Two default roles plus fifteen from the file is one too many. */
    n = (size_t)snprintf(text, sizeof text, "roles:\n");
    for (int i = 0; i < CONFIG_MAX_ROLES - 1; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "  role%d: {}\n", i);
    expect_error(text, "t.yaml:16: roles: more than 16 roles, counting the default roles device "
                       "and monitor");
}

static void test_error_overlong_strings(void **state)
{
    char text[2048];
    char long_value[600];

    memset(long_value, 'a', 512);
    long_value[512] = '\0';
    snprintf(text, sizeof text, "log_level: info\ndata_dir: %s\n", long_value);
    expect_error(text, "t.yaml:2: data_dir: expected a string of at most 511 bytes, got 512 bytes");

    long_value[256] = '\0';
    snprintf(text, sizeof text, "roles:\n  r:\n    publish: [%s]\n", long_value);
    expect_error(text, "t.yaml:3: roles.r.publish[0]: expected a string of at most 255 bytes, "
                       "got 256 bytes");

    long_value[32] = '\0';
    snprintf(text, sizeof text, "roles:\n  %s: {}\n", long_value);
    expect_error(text, "t.yaml:2: roles: invalid role name 'aaaa");

    long_value[64] = '\0';
    memset(long_value, 'k', 64);
    snprintf(text, sizeof text, "%s: 1\n", long_value);
    expect_error(text, "t.yaml:1: top level: invalid key 'kkkk");
}

static void test_error_strings(void **state)
{
    expect_error("data_dir:\n", "t.yaml:1: data_dir: expected a string, got an empty value");
    expect_error("data_dir: \"\"\n",
                 "t.yaml:1: data_dir: expected a non-empty string, got the quoted string \"\"");
    expect_error("data_dir: \"a\\0b\"\n",
                 "t.yaml:1: data_dir: the value contains a NUL character");
    expect_error("log_level: loud\n",
                 "t.yaml:1: log_level: expected one of error, warn, info, debug, got 'loud'");
    expect_error("roles:\n  bad name: {}\n",
                 "t.yaml:2: roles: invalid role name 'bad name'; expected 1 to 31 characters");
}

static void test_error_listeners(void **state)
{
    expect_error("listeners:\n  - mqtt: localhost:1883\n",
                 "t.yaml:2: listeners[0].mqtt: invalid listener 'localhost:1883': the address "
                 "must be a numeric IPv4 address or a bracketed IPv6 address");
    expect_error("listeners:\n  - mqtt: 127.0.0.1:0\n",
                 "t.yaml:2: listeners[0].mqtt: invalid listener '127.0.0.1:0': the port must be "
                 "a number from 1 to 65535");
    expect_error("listeners:\n  - anonymous: false\n",
                 "t.yaml:2: listeners[0]: missing address key; expected one of mqtt, mqtts, "
                 "coap, coaps, mqttsn or mqttsn-dtls with \"ADDRESS:PORT\"");
    expect_error("listeners: []\n", "t.yaml:1: listeners: expected at least one listener");
    expect_error("listeners:\n"
                 "  - mqtt: 127.0.0.1:1883\n"
                 "  - anonymous: true\n"
                 "    mqtt: 0.0.0.0:1883\n",
                 "t.yaml:3: listeners[1]: listener 0.0.0.0:1883: anonymous access is allowed "
                 "only on loopback addresses");
    expect_error("listeners:\n  - {mqtt: \"[::]:1883\", anonymous: true}\n",
                 "t.yaml:2: listeners[0]: listener [::]:1883: anonymous access is allowed only "
                 "on loopback addresses");
}

static void test_error_listener_transport(void **state)
{
    expect_error("listeners:\n  - mqtt: 127.0.0.1:1883\n    mqtts: 127.0.0.1:8883\n",
                 "t.yaml:3: listeners[0]: 'mqtt' and 'mqtts' are both set; a listener has "
                 "exactly one address key (mqtt, mqtts, coap, coaps, mqttsn or mqttsn-dtls)");
    expect_error("listeners:\n  - mqtt: 127.0.0.1:1883\n    psk: true\n",
                 "t.yaml:3: listeners[0]: key 'psk' applies only to mqtts, coaps and "
                 "mqttsn-dtls listeners; remove it from this 'mqtt' listener");
    expect_error("listeners:\n  - require_client_cert: false\n    coap: 127.0.0.1:5683\n",
                 "t.yaml:2: listeners[0]: key 'require_client_cert' applies only to mqtts, "
                 "coaps and mqttsn-dtls listeners");
    expect_error("listeners:\n  - mqtt: 127.0.0.1:1883\n    password: false\n",
                 "t.yaml:3: listeners[0]: key 'password' applies only to mqtts, coaps and "
                 "mqttsn-dtls listeners");
    expect_error("listeners:\n  - mqtts: 127.0.0.1:8883\n    anonymous: false\n",
                 "t.yaml:3: listeners[0]: key 'anonymous' applies only to mqtt, coap and "
                 "mqttsn listeners; remove it from this 'mqtts' listener");
    expect_error("listeners:\n  - mqttsn-dtls: 0.0.0.0:1885\n\n    plaintext_public: true\n",
                 "t.yaml:4: listeners[0]: key 'plaintext_public' applies only to mqtt, coap "
                 "and mqttsn listeners");
    expect_error("listeners:\n  - coap: 0.0.0.0:5683\n",
                 "t.yaml:2: listeners[0]: listener 0.0.0.0:5683: plaintext CoAP on a "
                 "non-loopback address requires plaintext_public: true; use a coaps listener");
    expect_error("listeners:\n  - coaps: \"[::]:5684\"\n    require_client_cert: false\n"
                 "    password: true\n",
                 "t.yaml:2: listeners[0]: listener [::]:5684: a coaps listener must accept "
                 "client certificates or PSK");
    expect_error("gateway:\n  topic_base: \"hospital/%u/\"\n",
                 "t.yaml:2: gateway.topic_base must contain %d");
    expect_error("gateway:\n  topic_base: \"hospital/+/%d/\"\n",
                 "t.yaml:2: gateway.topic_base must not contain the wildcards");
    expect_error("gateway:\n  topic_base: \"hospital/%d\"\n",
                 "t.yaml:2: gateway.topic_base must end with '/'");
    expect_error("gateway:\n  predefined_topics:\n    0: a/b\n",
                 "t.yaml:3: gateway.predefined_topics.0: the topic id must be a number from 1 "
                 "to 65534");
    expect_error("gateway:\n  predefined_topics:\n    7: a/#\n",
                 "t.yaml:3: gateway.predefined_topics.7: the topic must not contain the "
                 "wildcards");
    expect_error("gateway:\n  mqttsn_gateway_id: 256\n",
                 "t.yaml:2: gateway.mqttsn_gateway_id: expected an unsigned integer from 0 to "
                 "255, got '256'");
    expect_error("listeners:\n  - mqtts: 0.0.0.0:8883\n    psk: yes\n",
                 "t.yaml:3: listeners[0].psk: expected true or false, got 'yes'");
    expect_error("listeners:\n  - mqtts: localhost:8883\n",
                 "t.yaml:2: listeners[0].mqtts: invalid listener 'localhost:8883': the address "
                 "must be a numeric IPv4 address");
}

static void test_error_listener_access(void **state)
{
    expect_error("listeners:\n  - mqtt: 127.0.0.1:1883\n  - mqtt: 0.0.0.0:1883\n",
                 "t.yaml:3: listeners[1]: listener 0.0.0.0:1883: plaintext MQTT on a "
                 "non-loopback address requires plaintext_public: true; use an mqtts listener "
                 "instead");
    expect_error("listeners:\n  - plaintext_public: false\n    mqtt: \"[::]:1883\"\n",
                 "t.yaml:3: listeners[0]: listener [::]:1883: plaintext MQTT on a non-loopback "
                 "address requires plaintext_public: true");
    expect_error("listeners:\n"
                 "  - mqtt: 0.0.0.0:1883\n"
                 "    plaintext_public: true\n"
                 "    anonymous: true\n",
                 "t.yaml:4: listeners[0]: listener 0.0.0.0:1883: anonymous access is allowed "
                 "only on loopback addresses");
    expect_error("listeners:\n"
                 "  - mqtts: 0.0.0.0:8883\n"
                 "    require_client_cert: false\n",
                 "t.yaml:2: listeners[0]: listener 0.0.0.0:8883: an MQTTS listener must accept "
                 "client certificates, PSK or passwords; set require_client_cert, psk or "
                 "password to true");
    expect_error("listeners:\n"
                 "  - {mqtts: 127.0.0.1:8883, require_client_cert: false, psk: false, "
                 "password: false}\n",
                 "t.yaml:2: listeners[0]: listener 127.0.0.1:8883: an MQTTS listener must "
                 "accept");
}

static void test_error_tls(void **state)
{
    expect_error("tls:\n  cert_file: a.pem\n",
                 "t.yaml:1: tls: cert_file and key_file must be set together; set both, or "
                 "neither to use the local CA");
    expect_error("log_level: info\ntls:\n  key_file: a.key\n",
                 "t.yaml:2: tls: cert_file and key_file must be set together");
    expect_error("tls:\n  crl_file: ca.crl\n",
                 "t.yaml:1: tls: crl_file requires ca_file; set ca_file to the CA that issued "
                 "the CRL");
    expect_error("tls:\n  identity: dn\n",
                 "t.yaml:2: tls.identity: expected uri or cn, got 'dn'");
    expect_error("tls:\n  identity: [uri]\n",
                 "t.yaml:2: tls.identity: expected uri or cn, got a sequence");
    expect_error("tls:\n  cert_file: \"\"\n",
                 "t.yaml:2: tls.cert_file: expected a non-empty string");
    expect_error("tls:\n  device_cert_days: 0\n",
                 "t.yaml:2: tls.device_cert_days: expected an unsigned integer from 1 to 3650, "
                 "got '0'");
    expect_error("tls:\n  rotation_overlap: 7776001\n",
                 "t.yaml:2: tls.rotation_overlap: expected an unsigned integer from 0 to "
                 "7776000, got '7776001'");
    expect_error("tls:\n  expiry_warning_days: 366\n",
                 "t.yaml:2: tls.expiry_warning_days: expected an unsigned integer from 1 to "
                 "365, got '366'");
    expect_error("tls: on\n", "t.yaml:1: tls: expected a mapping, got 'on'");
    expect_error("tls:\n  ca_file: a\n  ca_file: b\n", "t.yaml:3: tls: duplicate key 'ca_file'");
}

static void test_error_auth(void **state)
{
    expect_error("auth:\n  failure_burst: 0\n",
                 "t.yaml:2: auth.failure_burst: expected an unsigned integer from 1 to 1000, got "
                 "'0'");
    expect_error("auth:\n  failures_per_minute: 60001\n",
                 "t.yaml:2: auth.failures_per_minute: expected an unsigned integer from 1 to "
                 "60000, got '60001'");
    expect_error("auth: []\n", "t.yaml:1: auth: expected a mapping, got a sequence");
}

static void test_load_tls_partial(void **state)
{
    static struct vigil_config cfg;
    char err[ERR_CAP];

    assert_int_equal(load_text(&cfg, "tls:\n  ca_file: ca.pem\n  identity: uri\n", err),
                     VIGIL_OK);
    assert_string_equal(cfg.tls.ca_file, "ca.pem");
    assert_string_equal(cfg.tls.cert_file, "");
    assert_int_equal(cfg.tls.identity, 0);
    assert_int_equal(cfg.tls.device_cert_days, 365);
    assert_int_equal(cfg.auth.failure_burst, 5);
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_OK);
}

static void test_error_patterns(void **state)
{
    expect_error("roles:\n  r:\n    publish: [\"a/b#\"]\n",
                 "t.yaml:3: roles.r.publish[0]: invalid topic pattern 'a/b#': '#' must be a "
                 "whole level");
    expect_error("roles:\n  r:\n    subscribe:\n      - ok/+\n      - \"#/a\"\n",
                 "t.yaml:5: roles.r.subscribe[1]: invalid topic pattern '#/a': '#' must be the "
                 "last level");
    expect_error("roles:\n  r:\n    publish: [a+/b]\n",
                 "t.yaml:3: roles.r.publish[0]: invalid topic pattern 'a+/b': '+' must be a "
                 "whole level");
    expect_error("roles:\n  r:\n    publish: [\"site/dev-%d/x\"]\n",
                 "t.yaml:3: roles.r.publish[0]: invalid topic pattern 'site/dev-%d/x': '%' may "
                 "appear only as the whole level \"%d\"");
    expect_error("roles:\n  r:\n    publish: [\"a/%s\"]\n",
                 "t.yaml:3: roles.r.publish[0]: invalid topic pattern 'a/%s'");
    expect_error("roles:\n  r:\n    subscribe: [\"$share/g/a\"]\n",
                 "t.yaml:3: roles.r.subscribe[0]: invalid topic pattern '$share/g/a': a shared "
                 "subscription");
}

static void test_error_yaml_features(void **state)
{
    expect_error("log_level: info\ndata_dir: \"abc\n", "t.yaml:3: invalid YAML: ");
    expect_error("log_level: info\ndata_dir: a: b\n",
                 "t.yaml:2: invalid YAML: mapping values are not allowed in this context");
    expect_error("log_level: info\n\tdata_dir: x\n", "t.yaml:2: invalid YAML: ");
    expect_error("log_level: info\n---\nlog_level: info\n",
                 "t.yaml:2: only one YAML document is allowed");
    expect_error("sys_interval: &x 1\n", "t.yaml:1: anchors (&name) are not supported");
    expect_error("roles:\n  a: {publish: []}\n  b: *x\n",
                 "t.yaml:3: aliases (*name) are not supported; write the value out");
    expect_error("a: *b\n", "t.yaml:1: aliases (*name) are not supported");
    expect_error("sys_interval: !!int 1\n", "t.yaml:1: tags (!name) are not supported");
    expect_error("data_dir: \xc3\x28\n", "t.yaml:1: invalid YAML: invalid trailing UTF-8 octet");
}

static void test_parse_listener_valid(void **state)
{
    static const struct {
        const char *spec;
        const char *host;
        uint16_t port;
    } cases[] = {
        {"127.0.0.1:1883", "127.0.0.1", 1883},
        {"[::1]:1883", "::1", 1883},
        {"0.0.0.0:1883", "0.0.0.0", 1883},
        {"[::]:8883", "::", 8883},
        {"192.168.10.2:65535", "192.168.10.2", 65535},
        {"[fe80::1:2]:1", "fe80::1:2", 1},
    };
    struct config_listener l;
    char err[ERR_CAP];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&l, 0xaa, sizeof l);
        l.allow_anonymous = true;
        if (config_parse_listener(cases[i].spec, &l, err, sizeof err) != VIGIL_OK)
            fail_msg("%s: %s", cases[i].spec, err);
        assert_string_equal(l.host, cases[i].host);
        assert_int_equal(l.port, cases[i].port);
        assert_true(l.allow_anonymous);
    }
}

static void test_parse_listener_invalid(void **state)
{
    static const char *const specs[] = {
        "localhost:1883", "127.0.0.1:0",    "127.0.0.1:65536", "127.0.0.1",
        "::1:1883",       "[::1]1883",      "[::1]:",          "127.0.0.1:18a3",
        "",               ":1883",          "1.2.3.4.5:1",     "127.0.0.1:+1883",
        "[127.0.0.1]:1883", "[::1:1883",    "127.0.0.1:-1",    "127.0.0.1:99999999",
        "[]:1883",        "127.0.0.1: 1883", " 127.0.0.1:1883", "[::1%lo]:1883",
    };
    struct config_listener l;
    char err[ERR_CAP];

    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        err[0] = '\0';
        if (config_parse_listener(specs[i], &l, err, sizeof err) != VIGIL_ERR_INVALID)
            fail_msg("accepted '%s'", specs[i]);
        assert_true(strncmp(err, "invalid listener '", 18) == 0);
    }
}

static void test_parse_listener_messages(void **state)
{
    struct config_listener l;
    char err[ERR_CAP];

    config_parse_listener("::1:1883", &l, err, sizeof err);
    assert_string_equal(err, "invalid listener '::1:1883': an IPv6 address needs brackets, such "
                             "as [::1]:1883");
    config_parse_listener("127.0.0.1", &l, err, sizeof err);
    assert_string_equal(err, "invalid listener '127.0.0.1': missing ':PORT'; expected "
                             "ADDRESS:PORT, such as 127.0.0.1:1883");
}

static void test_host_is_loopback(void **state)
{
    assert_true(config_host_is_loopback("127.0.0.1"));
    assert_true(config_host_is_loopback("127.255.0.9"));
    assert_true(config_host_is_loopback("::1"));
    assert_true(config_host_is_loopback("::ffff:127.0.0.1"));
    assert_false(config_host_is_loopback("0.0.0.0"));
    assert_false(config_host_is_loopback("::"));
    assert_false(config_host_is_loopback("10.0.0.1"));
    assert_false(config_host_is_loopback("128.0.0.1"));
    assert_false(config_host_is_loopback("::2"));
    assert_false(config_host_is_loopback("localhost"));
    assert_false(config_host_is_loopback(""));
}

static void expect_invalid(const struct vigil_config *cfg, const char *message)
{
    char err[ERR_CAP] = "";

    assert_int_equal(config_validate(cfg, err, sizeof err), VIGIL_ERR_CONFIG);
    if (strncmp(err, message, strlen(message)) != 0)
        fail_msg("expected a message starting with\n  %s\ngot\n  %s", message, err);
}

static void test_validate_listeners(void **state)
{
    static struct vigil_config cfg;

    config_defaults(&cfg);
    cfg.listeners[0].allow_anonymous = true;
    assert_int_equal(config_validate(&cfg, (char[ERR_CAP]){0}, ERR_CAP), VIGIL_OK);

    snprintf(cfg.listeners[0].host, sizeof cfg.listeners[0].host, "0.0.0.0");
    expect_invalid(&cfg, "listener 0.0.0.0:1883: anonymous access is allowed only on loopback "
                         "addresses (127.0.0.0/8, ::1); set anonymous: false or listen on "
                         "127.0.0.1");

    config_defaults(&cfg);
    cfg.n_listeners = 0;
    expect_invalid(&cfg, "no listeners configured; add at least one entry under 'listeners'");

    config_defaults(&cfg);
    cfg.listeners[1] = cfg.listeners[0];
    cfg.n_listeners = 2;
    expect_invalid(&cfg, "listener 127.0.0.1:1883 is configured twice");

    config_defaults(&cfg);
    cfg.listeners[0].port = 0;
    expect_invalid(&cfg, "invalid listener '127.0.0.1:0': the port must be a number");

    config_defaults(&cfg);
    snprintf(cfg.listeners[0].host, sizeof cfg.listeners[0].host, "example.org");
    expect_invalid(&cfg, "invalid listener 'example.org:1883'");
}

static void test_validate_listener_transport(void **state)
{
    static struct vigil_config cfg;
    struct config_listener *l = &cfg.listeners[0];

    config_defaults(&cfg);
    snprintf(l->host, sizeof l->host, "0.0.0.0");
    expect_invalid(&cfg, "listener 0.0.0.0:1883: plaintext MQTT on a non-loopback address "
                         "requires plaintext_public: true; use an mqtts listener instead");
    l->plaintext_public = true;
    assert_int_equal(config_validate(&cfg, (char[ERR_CAP]){0}, ERR_CAP), VIGIL_OK);

    config_defaults(&cfg);
    cfg.listeners[2].allow_anonymous = true;
    expect_invalid(&cfg, "listener [::]:8883 (mqtts): anonymous access is not allowed on TLS "
                         "and DTLS listeners");
    snprintf(cfg.listeners[2].host, sizeof cfg.listeners[2].host, "127.0.0.1");
    expect_invalid(&cfg, "listener 127.0.0.1:8883 (mqtts): anonymous access is not allowed on "
                         "TLS and DTLS listeners");

    config_defaults(&cfg);
    cfg.listeners[2].require_client_cert = false;
    expect_invalid(&cfg, "listener [::]:8883: an MQTTS listener must accept client "
                         "certificates, PSK or passwords");
    cfg.listeners[2].allow_psk = true;
    assert_int_equal(config_validate(&cfg, (char[ERR_CAP]){0}, ERR_CAP), VIGIL_OK);
    cfg.listeners[2].allow_psk = false;
    cfg.listeners[2].allow_password = true;
    assert_int_equal(config_validate(&cfg, (char[ERR_CAP]){0}, ERR_CAP), VIGIL_OK);

    config_defaults(&cfg);
    cfg.listeners[2].transport = 7;
    expect_invalid(&cfg, "listener [::]:8883: unknown transport 7");
}

static void test_parse_listener_keeps_transport(void **state)
{
    struct config_listener l;
    char err[ERR_CAP];

    memset(&l, 0, sizeof l);
    l.transport = CONFIG_TRANSPORT_MQTTS;
    l.require_client_cert = true;
    assert_int_equal(config_parse_listener("[::1]:8883", &l, err, sizeof err), VIGIL_OK);
    assert_int_equal(l.transport, CONFIG_TRANSPORT_MQTTS);
    assert_true(l.require_client_cert);
    assert_string_equal(l.host, "::1");
}

static void test_validate_tls(void **state)
{
    static struct vigil_config cfg;

    config_defaults(&cfg);
    snprintf(cfg.tls.cert_file, sizeof cfg.tls.cert_file, "server.pem");
    expect_invalid(&cfg, "tls: cert_file and key_file must be set together; set both, or "
                         "neither to use the local CA");
    snprintf(cfg.tls.key_file, sizeof cfg.tls.key_file, "server.key");
    assert_int_equal(config_validate(&cfg, (char[ERR_CAP]){0}, ERR_CAP), VIGIL_OK);

    config_defaults(&cfg);
    snprintf(cfg.tls.crl_file, sizeof cfg.tls.crl_file, "ca.crl");
    expect_invalid(&cfg, "tls: crl_file requires ca_file");
    snprintf(cfg.tls.ca_file, sizeof cfg.tls.ca_file, "ca.pem");
    assert_int_equal(config_validate(&cfg, (char[ERR_CAP]){0}, ERR_CAP), VIGIL_OK);

    config_defaults(&cfg);
    cfg.tls.identity = 2;
    expect_invalid(&cfg, "tls: identity must be uri or cn");

    config_defaults(&cfg);
    cfg.tls.device_cert_days = 0;
    expect_invalid(&cfg, "tls.device_cert_days is 0; expected an unsigned integer from 1 to "
                         "3650");

    config_defaults(&cfg);
    cfg.auth.failure_burst = 1001;
    expect_invalid(&cfg, "auth.failure_burst is 1001");
}

static void test_validate_roles(void **state)
{
    static struct vigil_config cfg;

    config_defaults(&cfg);
    snprintf(cfg.roles[0].publish[0], sizeof cfg.roles[0].publish[0], "a/%%d-x");
    expect_invalid(&cfg, "role 'device': invalid publish pattern 'a/%d-x': '%' may appear only");

    config_defaults(&cfg);
    snprintf(cfg.roles[1].name, sizeof cfg.roles[1].name, "device");
    expect_invalid(&cfg, "role 'device' is defined twice");

    config_defaults(&cfg);
    snprintf(cfg.roles[1].name, sizeof cfg.roles[1].name, "a b");
    expect_invalid(&cfg, "invalid role name 'a b'");

    config_defaults(&cfg);
    cfg.roles[1].n_subscribe = CONFIG_MAX_PATTERNS + 1;
    expect_invalid(&cfg, "role 'monitor': 17 subscribe patterns; at most 16 are supported");
}

static void test_validate_numbers(void **state)
{
    static struct vigil_config cfg;

    config_defaults(&cfg);
    cfg.limits.max_packet_size = 268435456;
    expect_invalid(&cfg, "limits.max_packet_size is 268435456; expected an unsigned integer from "
                         "16 to 268435455");

    config_defaults(&cfg);
    cfg.limits.receive_maximum = 0;
    expect_invalid(&cfg, "limits.receive_maximum is 0");

    config_defaults(&cfg);
    cfg.event_queue_capacity = 8;
    expect_invalid(&cfg, "event_queue_capacity is 8");

    config_defaults(&cfg);
    cfg.event_file_max_bytes = 4096;
    expect_invalid(&cfg, "event_file_max_bytes is 4096; expected 0 or an unsigned integer from "
                         "65536 to 1099511627776");

    config_defaults(&cfg);
    cfg.event_files_kept = 0;
    expect_invalid(&cfg, "event_files_kept is 0; expected an unsigned integer from 1 to 1000");

    config_defaults(&cfg);
    snprintf(cfg.log_level, sizeof cfg.log_level, "verbose");
    expect_invalid(&cfg, "invalid log_level; expected error, warn, info or debug");

    config_defaults(&cfg);
    cfg.data_dir[0] = '\0';
    expect_invalid(&cfg, "data_dir is empty");
}

static void test_secmon_defaults(void **state)
{
    static struct vigil_config cfg;
    struct secmon_config engine_defaults;
    struct secmon_config sm;

    config_defaults(&cfg);
    secmon_config_defaults(&engine_defaults);
    assert_int_equal(cfg.secmon.learning_s, engine_defaults.learning_s);
    assert_int_equal(cfg.secmon.auth_fail_burst, engine_defaults.auth_fail_burst);
    assert_int_equal(cfg.secmon.max_tracked, engine_defaults.max_tracked);
    assert_true(cfg.secmon.baseline_z == engine_defaults.baseline_z);
    assert_string_equal(cfg.secmon_monitor_prefixes, engine_defaults.monitor_prefixes);
    config_secmon(&cfg, &sm);
    assert_ptr_equal(sm.monitor_prefixes, cfg.secmon_monitor_prefixes);
    assert_false(sm.passive);
}

static void test_load_secmon(void **state)
{
    static struct vigil_config cfg;
    static struct vigil_config copy;
    struct secmon_config sm;
    char err[ERR_CAP];
    const char *text = "secmon:\n"
                       "  learning_s: 12\n"
                       "  auth_fail_burst: 7\n"
                       "  auth_fail_window_s: 30\n"
                       "  churn_connects: 80\n"
                       "  churn_window_s: 45\n"
                       "  identities_per_source: 32\n"
                       "  slow_keepalive_s: 600\n"
                       "  slow_conns: 4\n"
                       "  flood_msgs_per_s: 300\n"
                       "  qos_flood_msgs_per_s: 150\n"
                       "  malformed_burst: 3\n"
                       "  malformed_window_s: 20\n"
                       "  silence_factor: 5\n"
                       "  baseline_z: 3.5\n"
                       "  vital_max_msgs_per_s: 90\n"
                       "  alert_quiet_s: 15\n"
                       "  max_tracked: 500\n"
                       "  monitor_prefixes: \"central,dash-\"\n";

    if (load_text(&cfg, text, err) != VIGIL_OK)
        fail_msg("%s", err);
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_OK);
    assert_int_equal(cfg.secmon.learning_s, 12);
    assert_int_equal(cfg.secmon.auth_fail_burst, 7);
    assert_int_equal(cfg.secmon.auth_fail_window_s, 30);
    assert_int_equal(cfg.secmon.churn_connects, 80);
    assert_int_equal(cfg.secmon.churn_window_s, 45);
    assert_int_equal(cfg.secmon.identities_per_source, 32);
    assert_int_equal(cfg.secmon.slow_keepalive_s, 600);
    assert_int_equal(cfg.secmon.slow_conns, 4);
    assert_int_equal(cfg.secmon.flood_msgs_per_s, 300);
    assert_int_equal(cfg.secmon.qos_flood_msgs_per_s, 150);
    assert_int_equal(cfg.secmon.malformed_burst, 3);
    assert_int_equal(cfg.secmon.malformed_window_s, 20);
    assert_int_equal(cfg.secmon.silence_factor, 5);
    assert_true(cfg.secmon.baseline_z == 3.5);
    assert_int_equal(cfg.secmon.vital_max_msgs_per_s, 90);
    assert_int_equal(cfg.secmon.alert_quiet_s, 15);
    assert_int_equal(cfg.secmon.max_tracked, 500);
    assert_string_equal(cfg.secmon_monitor_prefixes, "central,dash-");

    /* The prefixes follow a copy of the configuration. */
    copy = cfg;
    config_secmon(&copy, &sm);
    assert_string_equal(sm.monitor_prefixes, "central,dash-");
    assert_ptr_equal(sm.monitor_prefixes, copy.secmon_monitor_prefixes);
    assert_int_equal(sm.learning_s, 12);

    if (load_text(&cfg, "secmon:\n  baseline_z: 4\n  monitor_prefixes: \"\"\n", err) != VIGIL_OK)
        fail_msg("%s", err);
    assert_true(cfg.secmon.baseline_z == 4.0);
    assert_string_equal(cfg.secmon_monitor_prefixes, "");
    assert_int_equal(cfg.secmon.learning_s, 300);
}

static void test_load_secmon_profiles(void **state)
{
    static struct vigil_config cfg;
    struct secmon_config sm;
    char err[ERR_CAP];
    const char *text = "secmon:\n"
                       "  profiles:\n"
                       "    infusion-pump:\n"
                       "      flood_msgs_per_s: 10\n"
                       "      baseline_z: 3.5\n"
                       "    bedside-monitor:\n"
                       "      qos_flood_msgs_per_s: 75\n"
                       "      learning_s: 600\n"
                       "      silence_factor: 20\n"
                       "      vital_max_msgs_per_s: 200\n"
                       "    type without devices yet: {}\n"
                       "  flood_msgs_per_s: 120\n"
                       "  learning_s: 12\n";

    (void)state;
    if (load_text(&cfg, text, err) != VIGIL_OK)
        fail_msg("%s", err);
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_OK);
    assert_int_equal(cfg.n_secmon_profiles, 3);
    assert_string_equal(cfg.secmon_profiles[0].type, "infusion-pump");
    assert_string_equal(cfg.secmon_profiles[1].type, "bedside-monitor");
    assert_string_equal(cfg.secmon_profiles[2].type, "type without devices yet");

    /* A profile overrides its own keys and inherits the others, including
     * those set after it in the file. */
    config_secmon_profile(&cfg, 0, &sm);
    assert_int_equal(sm.flood_msgs_per_s, 10);
    assert_true(sm.baseline_z == 3.5);
    assert_int_equal(sm.learning_s, 12);
    assert_int_equal(sm.qos_flood_msgs_per_s, cfg.secmon.qos_flood_msgs_per_s);
    assert_int_equal(sm.auth_fail_burst, cfg.secmon.auth_fail_burst);
    assert_ptr_equal(sm.monitor_prefixes, cfg.secmon_monitor_prefixes);

    config_secmon_profile(&cfg, 1, &sm);
    assert_int_equal(sm.flood_msgs_per_s, 120);
    assert_int_equal(sm.qos_flood_msgs_per_s, 75);
    assert_int_equal(sm.learning_s, 600);
    assert_int_equal(sm.silence_factor, 20);
    assert_int_equal(sm.vital_max_msgs_per_s, 200);
    assert_true(sm.baseline_z == cfg.secmon.baseline_z);

    config_secmon_profile(&cfg, 2, &sm);
    assert_int_equal(sm.flood_msgs_per_s, 120);
    assert_int_equal(sm.learning_s, 12);

    /* A later file replaces the profile of the same type as a whole. */
    text = "secmon:\n  profiles:\n    infusion-pump:\n      silence_factor: 4\n";
    if (config_load_buffer(&cfg, "u.yaml", (const uint8_t *)text, strlen(text), err, ERR_CAP) !=
        VIGIL_OK)
        fail_msg("%s", err);
    assert_int_equal(cfg.n_secmon_profiles, 3);
    config_secmon_profile(&cfg, 0, &sm);
    assert_int_equal(sm.silence_factor, 4);
    assert_int_equal(sm.flood_msgs_per_s, 120);
    assert_true(sm.baseline_z == cfg.secmon.baseline_z);
}

static void test_error_secmon_profiles(void **state)
{
    char text[2048];
    size_t len = 0;

    (void)state;
    expect_error("secmon:\n  profiles:\n    infusion-pump:\n      churn_connects: 5\n",
                 "t.yaml:4: secmon.profiles.infusion-pump.churn_connects: this setting applies per "
                 "source address or to the whole engine");
    expect_error("secmon:\n  profiles:\n    infusion-pump:\n      monitor_prefixes: a\n",
                 "t.yaml:4: secmon.profiles.infusion-pump.monitor_prefixes: this setting applies");
    expect_error("secmon:\n  profiles:\n    infusion-pump:\n      flood: 5\n",
                 "t.yaml:4: secmon.profiles.infusion-pump: unknown key 'flood'; expected one of: "
                 "learning_s, flood_msgs_per_s");
    expect_error("secmon:\n  profiles:\n    infusion-pump:\n      flood_msgs_per_s: 0\n",
                 "t.yaml:4: secmon.profiles.infusion-pump.flood_msgs_per_s: expected an unsigned "
                 "integer from 1 to 10000000, got '0'");
    expect_error("secmon:\n  profiles:\n    infusion-pump:\n      silence_factor: 1\n",
                 "t.yaml:4: secmon.profiles.infusion-pump.silence_factor: expected an unsigned "
                 "integer from 2 to 1000");
    expect_error("secmon:\n  profiles:\n    infusion-pump:\n      baseline_z: 0.5\n",
                 "t.yaml:4: secmon.profiles.infusion-pump.baseline_z: expected a decimal number "
                 "from 1 to 100");
    expect_error("secmon:\n  profiles:\n    infusion-pump: 5\n",
                 "t.yaml:3: secmon.profiles.infusion-pump: expected a mapping");
    expect_error("secmon:\n  profiles: [infusion-pump]\n",
                 "t.yaml:2: secmon.profiles: expected a mapping");
    expect_error("secmon:\n  profiles:\n    a:\n      learning_s: 5\n    a:\n      learning_s: 6\n",
                 "t.yaml:5: secmon.profiles: duplicate key 'a'");
    expect_error("secmon:\n  profiles:\n    0123456789012345678901234567890123: {}\n",
                 "t.yaml:3: secmon.profiles: invalid device type '0123456789012345678901234567890123'");

    len += (size_t)snprintf(text, sizeof text, "secmon:\n  profiles:\n");
    for (int i = 0; i <= CONFIG_MAX_SECMON_PROFILES; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "    type-%d: {}\n", i);
    expect_error(text, "t.yaml:19: secmon.profiles: more than 16 profiles; at most 16 are supported");
}

static void test_error_secmon(void **state)
{
    expect_error("secmon:\n  learning: 10\n",
                 "t.yaml:2: secmon: unknown key 'learning'; expected one of: learning_s, ");
    expect_error("secmon:\n  passive: true\n", "t.yaml:2: secmon: unknown key 'passive'");
    expect_error("secmon:\n  learning_s: 0\n",
                 "t.yaml:2: secmon.learning_s: expected an unsigned integer from 1 to 2592000, "
                 "got '0'");
    expect_error("secmon:\n  identities_per_source: 33\n",
                 "t.yaml:2: secmon.identities_per_source: expected an unsigned integer from 1 to "
                 "32, got '33'");
    expect_error("secmon:\n  silence_factor: 1\n",
                 "t.yaml:2: secmon.silence_factor: expected an unsigned integer from 2 to 1000");
    expect_error("secmon:\n  max_tracked: 15\n",
                 "t.yaml:2: secmon.max_tracked: expected an unsigned integer from 16 to 1000000");
    expect_error("secmon:\n  flood_msgs_per_s: -5\n",
                 "t.yaml:2: secmon.flood_msgs_per_s: expected an unsigned integer");
    expect_error("secmon:\n  baseline_z: 0.5\n",
                 "t.yaml:2: secmon.baseline_z: expected a decimal number from 1 to 100, such as 4 "
                 "or 3.5, got '0.5'");
    expect_error("secmon:\n  baseline_z: 101\n", "t.yaml:2: secmon.baseline_z: expected a decimal");
    expect_error("secmon:\n  baseline_z: 1e1\n", "t.yaml:2: secmon.baseline_z: expected a decimal");
    expect_error("secmon:\n  baseline_z: 4.\n", "t.yaml:2: secmon.baseline_z: expected a decimal");
    expect_error("secmon:\n  baseline_z: 3.5.1\n", "t.yaml:2: secmon.baseline_z: expected a decimal");
    expect_error("secmon:\n  baseline_z: \"4\"\n", "t.yaml:2: secmon.baseline_z: expected a decimal");
    expect_error("secmon:\n  baseline_z: nan\n", "t.yaml:2: secmon.baseline_z: expected a decimal");
    expect_error("secmon:\n  monitor_prefixes: [a]\n",
                 "t.yaml:2: secmon.monitor_prefixes: expected a string of comma-separated client "
                 "id prefixes, got a sequence");
    expect_error("secmon:\n  monitor_prefixes:\n",
                 "t.yaml:2: secmon.monitor_prefixes: expected a string");
    expect_error("secmon: 5\n", "t.yaml:1: secmon: expected a mapping, got '5'");
}

static void test_validate_secmon(void **state)
{
    static struct vigil_config cfg;
    char err[ERR_CAP] = "";

    config_defaults(&cfg);
    cfg.secmon.baseline_z = 0.0;
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_ERR_CONFIG);
    assert_string_equal(err, "secmon.baseline_z must be a number from 1 to 100");

    config_defaults(&cfg);
    cfg.secmon.learning_s = 0;
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_ERR_CONFIG);
    assert_string_equal(err, "secmon.learning_s is 0; expected an unsigned integer from 1 to "
                             "2592000");

    config_defaults(&cfg);
    memset(cfg.secmon_monitor_prefixes, 'a', sizeof cfg.secmon_monitor_prefixes);
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_ERR_CONFIG);
    assert_string_equal(err, "secmon.monitor_prefixes is not NUL-terminated");
}

static void test_sniff_defaults(void **state)
{
    static struct vigil_config cfg;

    config_defaults(&cfg);
    assert_int_equal(cfg.sniff.n_interfaces, 0);
    assert_int_equal(cfg.sniff.n_ports, 1);
    assert_int_equal(cfg.sniff.ports[0], 1883);
    assert_false(cfg.sniff.promiscuous);
    assert_int_equal(cfg.sniff.buffer_size, 4 * 1024 * 1024);
}

static void test_load_sniff(void **state)
{
    static struct vigil_config cfg;
    char err[ERR_CAP];
    const char *text = "sniff: [eth1, \"any\"]\n"
                       "sniff_ports: [1883, 1884]\n"
                       "sniff_promiscuous: true\n"
                       "sniff_buffer_size: 65536\n";

    assert_int_equal(load_text(&cfg, text, err), VIGIL_OK);
    assert_int_equal(cfg.sniff.n_interfaces, 2);
    assert_string_equal(cfg.sniff.interfaces[0], "eth1");
    assert_string_equal(cfg.sniff.interfaces[1], "any");
    assert_int_equal(cfg.sniff.n_ports, 2);
    assert_int_equal(cfg.sniff.ports[0], 1883);
    assert_int_equal(cfg.sniff.ports[1], 1884);
    assert_true(cfg.sniff.promiscuous);
    assert_int_equal(cfg.sniff.buffer_size, 65536);
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_OK);

    assert_int_equal(load_text(&cfg, "sniff: []\n", err), VIGIL_OK);
    assert_int_equal(cfg.sniff.n_interfaces, 0);
}

static void test_error_sniff(void **state)
{
    expect_error("sniff: eth1\n",
                 "t.yaml:1: sniff: expected a sequence of interface names, got 'eth1'");
    expect_error("sniff: [eth1, eth1]\n",
                 "t.yaml:1: sniff interface 'eth1' is listed twice; each interface may appear once");
    expect_error("sniff: [\"eth 1\"]\n",
                 "t.yaml:1: sniff interface 'eth 1' contains a space or a non-printable character");
    expect_error("sniff: [a, b, c, d, e, f, g, h, i]\n",
                 "t.yaml:1: sniff: more than 8 interfaces; at most 8 are supported");
    expect_error("sniff:\n  - [eth1]\n", "t.yaml:2: sniff[0]: expected a string, got a sequence");
    expect_error("sniff_ports: []\n", "t.yaml:1: sniff_ports: expected at least one port");
    expect_error("sniff_ports: [0]\n",
                 "t.yaml:1: sniff_ports: expected a port from 1 to 65535, got '0'");
    expect_error("sniff_ports: [65536]\n",
                 "t.yaml:1: sniff_ports: expected a port from 1 to 65535, got '65536'");
    expect_error("sniff_ports: [1883, 1883]\n",
                 "t.yaml:1: sniff port 1883 is listed twice; each port may appear once");
    expect_error("sniff_ports: 1883\n",
                 "t.yaml:1: sniff_ports: expected a sequence of ports, got '1883'");
    expect_error("sniff_promiscuous: yes\n",
                 "t.yaml:1: sniff_promiscuous: expected true or false, got 'yes'");
    expect_error("sniff_buffer_size: 1024\n",
                 "t.yaml:1: sniff_buffer_size: expected an unsigned integer from 65536 to "
                 "1073741824, got '1024'");
}

static void test_validate_sniff(void **state)
{
    static struct vigil_config cfg;
    char err[ERR_CAP] = "";

    config_defaults(&cfg);
    cfg.sniff.n_ports = 0;
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_ERR_CONFIG);
    assert_string_equal(err, "sniff: 0 interfaces and 0 ports; expected at most 8 interfaces "
                             "and 1 to 16 ports");

    config_defaults(&cfg);
    cfg.sniff.n_interfaces = 1;
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_ERR_CONFIG);
    assert_string_equal(err, "sniff interface '' is empty; expected an interface name such as "
                             "eth1");

    config_defaults(&cfg);
    cfg.sniff.ports[0] = 0;
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_ERR_CONFIG);
    assert_string_equal(err, "sniff port 0 is invalid; expected 1 to 65535");

    config_defaults(&cfg);
    snprintf(cfg.sniff.interfaces[0], sizeof cfg.sniff.interfaces[0], "lo");
    cfg.sniff.n_interfaces = 1;
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_OK);
}

static void test_audit_defaults(void **state)
{
    static struct vigil_config cfg;

    config_defaults(&cfg);
    assert_int_equal(cfg.audit.checkpoint_every, 1000);
    assert_int_equal(cfg.audit.checkpoint_interval_s, 60);
    assert_int_equal(cfg.audit.segment_max_bytes, 64ull * 1024 * 1024);
}

static void test_load_audit(void **state)
{
    static struct vigil_config cfg;
    char err[ERR_CAP];
    const char *text = "audit:\n"
                       "  checkpoint_every: 50\n"
                       "  checkpoint_interval: 5\n"
                       "  segment_max_bytes: 1099511627776\n";

    assert_int_equal(load_text(&cfg, text, err), VIGIL_OK);
    assert_int_equal(cfg.audit.checkpoint_every, 50);
    assert_int_equal(cfg.audit.checkpoint_interval_s, 5);
    assert_int_equal(cfg.audit.segment_max_bytes, 1099511627776ull);
    assert_int_equal(config_validate(&cfg, err, sizeof err), VIGIL_OK);

    assert_int_equal(load_text(&cfg, "audit: {checkpoint_every: 1}\n", err), VIGIL_OK);
    assert_int_equal(cfg.audit.checkpoint_every, 1);
    assert_int_equal(cfg.audit.checkpoint_interval_s, 60);
}

static void test_error_audit(void **state)
{
    expect_error("audit:\n  checkpoint_every: 0\n",
                 "t.yaml:2: audit.checkpoint_every: expected an unsigned integer from 1 to "
                 "10000000, got '0'");
    expect_error("audit:\n  checkpoint_interval: 86401\n",
                 "t.yaml:2: audit.checkpoint_interval: expected an unsigned integer from 1 to "
                 "86400, got '86401'");
    expect_error("audit:\n  segment_max_bytes: 1024\n",
                 "t.yaml:2: audit.segment_max_bytes: expected an unsigned integer from 65536 to "
                 "1099511627776, got '1024'");
    expect_error("audit:\n  sign_every: 5\n",
                 "t.yaml:2: audit: unknown key 'sign_every'; expected one of: checkpoint_every, "
                 "checkpoint_interval, segment_max_bytes");
    expect_error("audit: 5\n", "t.yaml:1: audit: expected a mapping");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_values),
        cmocka_unit_test(test_defaults_validate),
        cmocka_unit_test(test_example_file_loads),
        cmocka_unit_test(test_load_every_setting),
        cmocka_unit_test(test_load_empty_inputs),
        cmocka_unit_test(test_role_replaces_default),
        cmocka_unit_test(test_load_file_missing),
        cmocka_unit_test(test_load_file_error_names_file),
        cmocka_unit_test(test_error_unknown_keys),
        cmocka_unit_test(test_error_numbers),
        cmocka_unit_test(test_event_file_keys),
        cmocka_unit_test(test_error_wrong_containers),
        cmocka_unit_test(test_error_booleans),
        cmocka_unit_test(test_error_duplicates),
        cmocka_unit_test(test_error_too_many),
        cmocka_unit_test(test_error_overlong_strings),
        cmocka_unit_test(test_error_strings),
        cmocka_unit_test(test_error_listeners),
        cmocka_unit_test(test_error_listener_transport),
        cmocka_unit_test(test_error_listener_access),
        cmocka_unit_test(test_error_tls),
        cmocka_unit_test(test_error_auth),
        cmocka_unit_test(test_load_tls_partial),
        cmocka_unit_test(test_error_patterns),
        cmocka_unit_test(test_error_yaml_features),
        cmocka_unit_test(test_parse_listener_valid),
        cmocka_unit_test(test_parse_listener_invalid),
        cmocka_unit_test(test_parse_listener_messages),
        cmocka_unit_test(test_host_is_loopback),
        cmocka_unit_test(test_validate_listeners),
        cmocka_unit_test(test_validate_listener_transport),
        cmocka_unit_test(test_parse_listener_keeps_transport),
        cmocka_unit_test(test_validate_tls),
        cmocka_unit_test(test_validate_roles),
        cmocka_unit_test(test_validate_numbers),
        cmocka_unit_test(test_secmon_defaults),
        cmocka_unit_test(test_load_secmon),
        cmocka_unit_test(test_error_secmon),
        cmocka_unit_test(test_load_secmon_profiles),
        cmocka_unit_test(test_error_secmon_profiles),
        cmocka_unit_test(test_validate_secmon),
        cmocka_unit_test(test_sniff_defaults),
        cmocka_unit_test(test_load_sniff),
        cmocka_unit_test(test_error_sniff),
        cmocka_unit_test(test_validate_sniff),
        cmocka_unit_test(test_audit_defaults),
        cmocka_unit_test(test_load_audit),
        cmocka_unit_test(test_error_audit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
