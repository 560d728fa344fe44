/* Tests for the siem section of vigil.yaml: destinations, defaults, and
 * errors with file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "export/siem.h"

static char path[64];

static void write_yaml(const char *text)
{
    FILE *f;
    int fd;

    snprintf(path, sizeof path, "/tmp/test-siem-config.XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static vigil_err load(const char *text, struct siem_config *cfg, char *err, size_t errcap)
{
    vigil_err rc;

    siem_config_defaults(cfg);
    write_yaml(text);
    rc = siem_config_load_file(cfg, path, err, errcap);
    unlink(path);
    return rc;
}

static void test_config_two_destinations(void **state)
{
    struct siem_config cfg;
    char err[256];

    (void)state;
    assert_int_equal(load("data_dir: /var/lib/vigil\n"
                          "listeners: []\n"
                          "siem:\n"
                          "  queue_capacity: 64\n"
                          "  hostname: hub-a\n"
                          "  destinations:\n"
                          "    - name: soc\n"
                          "      transport: tls\n"
                          "      address: \"10.1.2.3:6514\"\n"
                          "      ca_file: /etc/vigil/ca.pem\n"
                          "      server_name: siem.example.org\n"
                          "    - name: lab\n"
                          "      transport: udp\n"
                          "      address: \"[::1]:514\"\n"
                          "      format: cef\n"
                          "      facility: local7\n"
                          "      max_rows: 10\n",
                          &cfg, err, sizeof err),
                     VIGIL_OK);
    assert_string_equal(cfg.data_dir, "/var/lib/vigil");
    assert_string_equal(cfg.hostname, "hub-a");
    assert_int_equal(cfg.queue_capacity, 64);
    assert_int_equal(cfg.n_dests, 2);
    assert_string_equal(cfg.dests[0].name, "soc");
    assert_int_equal(cfg.dests[0].transport, SIEM_TRANSPORT_TLS);
    assert_string_equal(cfg.dests[0].host, "10.1.2.3");
    assert_int_equal(cfg.dests[0].port, 6514);
    assert_string_equal(cfg.dests[0].server_name, "siem.example.org");
    assert_int_equal(cfg.dests[0].format, SIEM_FORMAT_RFC5424);
    assert_int_equal(cfg.dests[0].facility, 20);
    assert_int_equal(cfg.dests[1].transport, SIEM_TRANSPORT_UDP);
    assert_string_equal(cfg.dests[1].host, "::1");
    assert_int_equal(cfg.dests[1].format, SIEM_FORMAT_CEF);
    assert_int_equal(cfg.dests[1].facility, 23);
    assert_int_equal(cfg.dests[1].max_rows, 10);
}

static void test_config_without_siem(void **state)
{
    struct siem_config cfg;
    char err[256];

    (void)state;
    assert_int_equal(load("log_level: info\n", &cfg, err, sizeof err), VIGIL_OK);
    assert_int_equal(cfg.n_dests, 0);
    assert_int_equal(cfg.queue_capacity, 1024);
}

static void test_config_errors_have_lines(void **state)
{
    struct siem_config cfg;
    char err[256];

    (void)state;
    assert_int_equal(load("siem:\n  destinations:\n    - name: a\n      transport: sctp\n", &cfg,
                          err, sizeof err),
                     VIGIL_ERR_CONFIG);
    assert_non_null(strstr(err, ":4: siem transport 'sctp' is invalid"));
    assert_int_equal(load("siem:\n  colour: red\n", &cfg, err, sizeof err), VIGIL_ERR_CONFIG);
    assert_non_null(strstr(err, ":2: unknown key in siem"));
    assert_int_equal(load("siem:\n  destinations:\n    - name: a\n      transport: tls\n", &cfg,
                          err, sizeof err),
                     VIGIL_ERR_CONFIG);
    assert_non_null(strstr(err, ":3: siem destination 'a': tls needs ca_file"));
    assert_int_equal(load("siem:\n  destinations:\n    - name: a\n    - name: a\n", &cfg, err,
                          sizeof err),
                     VIGIL_ERR_CONFIG);
    assert_non_null(strstr(err, ":4: siem destination name is used twice"));
    assert_int_equal(load("siem:\n  queue_capacity: -1\n", &cfg, err, sizeof err),
                     VIGIL_ERR_CONFIG);
    assert_non_null(strstr(err, ":2: siem queue_capacity must be"));
    assert_int_equal(load("siem: [\n", &cfg, err, sizeof err), VIGIL_ERR_CONFIG);
    assert_non_null(strstr(err, "invalid YAML"));
}

static void test_config_missing_file(void **state)
{
    struct siem_config cfg;
    char err[256];

    (void)state;
    siem_config_defaults(&cfg);
    assert_int_equal(siem_config_load_file(&cfg, "/nonexistent/vigil.yaml", err, sizeof err),
                     VIGIL_ERR_IO);
    assert_non_null(strstr(err, "/nonexistent/vigil.yaml: cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_two_destinations),
        cmocka_unit_test(test_config_without_siem),
        cmocka_unit_test(test_config_errors_have_lines),
        cmocka_unit_test(test_config_missing_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
