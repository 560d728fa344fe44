/* Tests for the SIEM exporter thread: octet-counted frames on a real
 * loopback TCP connection, and the outbox cap counted when the receiver is
 * down. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/time.h"
#include "export/siem.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test-siem-exporter.XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Listens on 127.0.0.1 with a port chosen by the kernel. */
static int listen_loopback(uint16_t *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void one_dest_config(struct siem_config *cfg, const char *address)
{
    char err[128];

    siem_config_defaults(cfg);
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", dir);
    snprintf(cfg->hostname, sizeof cfg->hostname, "unit");
    cfg->n_dests = 1;
    siem_dest_defaults(&cfg->dests[0]);
    assert_int_equal(siem_dest_set(&cfg->dests[0], "address", address, err, sizeof err),
                     VIGIL_OK);
}

static void submit_numbered(struct siem_exporter *exp, int count)
{
    for (int i = 1; i <= count; i++) {
        struct vigil_event ev;

        vigil_event_init(&ev, VIGIL_EV_CONNECT_ATTEMPT);
        snprintf(ev.client_id, sizeof ev.client_id, "client-%d", i);
        assert_int_equal(siem_exporter_submit_event(exp, &ev), VIGIL_OK);
    }
}

/* Reads from fd until want frames were parsed or 10 s passed; checks that
 * frame i carries seq i and client-i. */
static void read_frames(int fd, int want)
{
    char buf[65536];
    size_t len = 0;
    int got = 0;
    uint64_t deadline = vigil_time_mono_ms() + 10000;

    while (got < want && vigil_time_mono_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char *space;
        ssize_t n;

        if (poll(&p, 1, 100) <= 0)
            continue;
        n = read(fd, buf + len, sizeof buf - len - 1);
        assert_true(n > 0);
        len += (size_t)n;
        buf[len] = '\0';
        while ((space = memchr(buf, ' ', len)) != NULL) {
            char expected[64];
            char *end;
            unsigned long frame = strtoul(buf, &end, 10);
            size_t head = (size_t)(space - buf) + 1;

            assert_ptr_equal(end, space);
            if (len < head + frame)
                break;
            got++;
            snprintf(expected, sizeof expected, "[vigil@32473 seq=\"%d\" client_id=\"client-%d\"]",
                     got, got);
            assert_non_null(memmem(buf + head, frame, expected, strlen(expected)));
            assert_memory_equal(buf + head, "<166>1 ", 7);
            memmove(buf, buf + head + frame, len - head - frame);
            len -= head + frame;
        }
    }
    assert_int_equal(got, want);
    assert_int_equal(len, 0);
}

static void test_exporter_tcp_frames(void **state)
{
    struct siem_config cfg;
    struct siem_exporter *exp;
    struct siem_stats st;
    char address[32];
    uint16_t port;
    int lfd = listen_loopback(&port);
    int fd;

    (void)state;
    snprintf(address, sizeof address, "127.0.0.1:%u", port);
    one_dest_config(&cfg, address);
    assert_int_equal(siem_exporter_start(&cfg, &exp), VIGIL_OK);
    submit_numbered(exp, 150);
    fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    read_frames(fd, 150);
    assert_int_equal(siem_exporter_flush(exp, 10000), VIGIL_OK);
    siem_exporter_stats(exp, &st);
    assert_int_equal(st.submitted, 150);
    assert_int_equal(st.dests[0].stored, 150);
    assert_int_equal(st.dests[0].sent, 150);
    assert_int_equal(st.dests[0].pending, 0);
    assert_int_equal(st.dests[0].connects, 1);
    siem_exporter_stop(exp);
    close(fd);
    close(lfd);
}

static void test_exporter_outbox_cap_counted(void **state)
{
    struct siem_config cfg;
    struct siem_exporter *exp;
    struct siem_stats st;
    char err[128];
    uint16_t port;
    int lfd = listen_loopback(&port);
    char address[32];

    (void)state;
    /* A port that was just closed: every connect fails. */
    close(lfd);
    snprintf(address, sizeof address, "127.0.0.1:%u", port);
    one_dest_config(&cfg, address);
    assert_int_equal(siem_dest_set(&cfg.dests[0], "max_rows", "5", err, sizeof err), VIGIL_OK);
    assert_int_equal(siem_exporter_start(&cfg, &exp), VIGIL_OK);
    submit_numbered(exp, 8);
    assert_int_equal(siem_exporter_flush(exp, 300), VIGIL_ERR_AGAIN);
    siem_exporter_stats(exp, &st);
    assert_int_equal(st.submitted, 8);
    assert_int_equal(st.dests[0].stored, 5);
    assert_int_equal(st.dests[0].outbox_dropped, 3);
    assert_int_equal(st.dests[0].pending, 5);
    assert_int_equal(st.dests[0].sent, 0);
    assert_false(st.dests[0].connected);
    assert_true(st.dests[0].connect_failures >= 1);
    siem_exporter_stop(exp);
}

static void test_exporter_rejects_bad_config(void **state)
{
    struct siem_config cfg;
    struct siem_exporter *exp = NULL;

    (void)state;
    one_dest_config(&cfg, "127.0.0.1:6514");
    cfg.dests[0].transport = SIEM_TRANSPORT_TLS; /* without ca_file */
    assert_int_equal(siem_exporter_start(&cfg, &exp), VIGIL_ERR_CONFIG);
    assert_null(exp);
    one_dest_config(&cfg, "127.0.0.1:6514");
    cfg.n_dests = 2;
    cfg.dests[1] = cfg.dests[0];
    assert_int_equal(siem_exporter_start(&cfg, &exp), VIGIL_ERR_CONFIG);
    assert_null(exp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exporter_tcp_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exporter_outbox_cap_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exporter_rejects_bad_config, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
