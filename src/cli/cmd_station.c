/* vigil station: central-station subscriber with a live terminal view. */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <uv.h>

#include "cli/cli.h"
#include "client/mqttc.h"
#include "core/log.h"
#include "core/time.h"
#include "sim/cli_util.h"
#include "sim/credentials.h"
#include "sim/station.h"

struct station_args {
    const char *host;
    uint16_t port;
    uint8_t version;
    const char *username;
    const char *credentials_path;
    bool anonymous;
    const char *site;
    const char *filter;
    double interval_s;
    double duration_s;
    bool once;
    bool plain;
};

struct station_run {
    uv_loop_t loop;
    uv_timer_t refresh;
    uv_timer_t stop;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    struct mqttc *client;
    struct station_state state;
    const struct station_args *args;
    char filter[128];
    char title[256];
    bool ansi;
    bool ever_connected;
    bool stopping;
    char last_error[128];
};

static void station_usage(FILE *out)
{
    fputs("usage: vigil station [options]\n"
          "\n"
          "Subscribes to <site>/# and $SYS/broker/# and shows, per bed, the latest\n"
          "vital signs and the active alarms, refreshed every --interval seconds.\n"
          "\n"
          "options:\n"
          "  --host ADDR            broker address (default 127.0.0.1)\n"
          "  --port N               broker port (default 1883)\n"
          "  --mqtt-version V       5 or 3.1.1 (default 5)\n"
          "  --username ID          user name and client id (default central)\n"
          "  --credentials FILE     \"<id> <password>\" lines; the line of --username is used\n"
          "  --anonymous            connect without user name and password\n"
          "  --site NAME            subscribe to NAME/# (default north)\n"
          "  --filter FILTER        subscribe to FILTER instead of <site>/#\n"
          "  --interval S           seconds between views (default 1)\n"
          "  --duration S           stop after S seconds; 0 = until Ctrl-C (default 0)\n"
          "  --once                 print one view after --interval seconds and exit\n"
          "  --plain                never clear the screen (default when not a terminal)\n"
          "  --log-level LEVEL      error, warn, info or debug (default warn)\n"
          "  -h, --help             show this help\n",
          out);
}

enum {
    OPT_HOST = 256, OPT_PORT, OPT_VERSION, OPT_USERNAME, OPT_CREDENTIALS, OPT_ANONYMOUS,
    OPT_SITE, OPT_FILTER, OPT_INTERVAL, OPT_DURATION, OPT_ONCE, OPT_PLAIN, OPT_LOG_LEVEL,
};

static int parse_one(int opt, const char *arg, struct station_args *a)
{
    switch (opt) {
    case OPT_HOST: a->host = arg; return 0;
    case OPT_PORT: return simcli_parse_port(arg, &a->port);
    case OPT_VERSION: return simcli_parse_mqtt_version(arg, &a->version);
    case OPT_USERNAME: a->username = arg; return simcli_check_topic_level("--username", arg);
    case OPT_CREDENTIALS: a->credentials_path = arg; return 0;
    case OPT_ANONYMOUS: a->anonymous = true; return 0;
    case OPT_SITE: a->site = arg; return simcli_check_topic_level("--site", arg);
    case OPT_FILTER: a->filter = arg; return 0;
    case OPT_INTERVAL: return simcli_parse_double("--interval", arg, 0.1, 3600, &a->interval_s);
    case OPT_DURATION: return simcli_parse_double("--duration", arg, 0, 1e9, &a->duration_s);
    case OPT_ONCE: a->once = true; return 0;
    case OPT_PLAIN: a->plain = true; return 0;
    case OPT_LOG_LEVEL: return simcli_set_log_level(arg);
    default: return -1;
    }
}

/* Returns 0 to run, 1 after --help, 2 for a usage error. */
static int parse_args(int argc, char **argv, struct station_args *a)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"mqtt-version", required_argument, NULL, OPT_VERSION},
        {"username", required_argument, NULL, OPT_USERNAME},
        {"credentials", required_argument, NULL, OPT_CREDENTIALS},
        {"anonymous", no_argument, NULL, OPT_ANONYMOUS},
        {"site", required_argument, NULL, OPT_SITE},
        {"filter", required_argument, NULL, OPT_FILTER},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"once", no_argument, NULL, OPT_ONCE},
        {"plain", no_argument, NULL, OPT_PLAIN},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            station_usage(stdout);
            return 1;
        }
        if (opt == '?' || parse_one(opt, optarg, a) != 0) {
            station_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vigil station: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if ((a->credentials_path != NULL) == a->anonymous) {
        fputs("vigil station: missing credentials: give either --credentials FILE or "
              "--anonymous\n",
              stderr);
        return 2;
    }
    return 0;
}

/* ---- Loop callbacks --------------------------------------------------- */

static void begin_stop(struct station_run *r)
{
    if (r->stopping)
        return;
    r->stopping = true;
    uv_close((uv_handle_t *)&r->refresh, NULL);
    uv_close((uv_handle_t *)&r->stop, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    mqttc_stop(r->client);
    mqttc_close(r->client, NULL, NULL);
}

static size_t view_rows(const struct station_run *r)
{
    struct winsize ws;

    if (!r->ansi || ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_row < 16)
        return 0;
    /* Header, column titles, the alarm section and some alarm lines. */
    return (size_t)ws.ws_row - 12;
}

static void render(struct station_run *r)
{
    uint64_t now = vigil_time_mono_ms();
    char stamp[40];
    char title[400];

    station_state_tick(&r->state, now);
    vigil_time_format_rfc3339(vigil_time_now_us(), stamp, sizeof stamp);
    snprintf(title, sizeof title, "%s   %.19sZ%s", r->title, stamp,
             mqttc_connected(r->client) ? "" : "   (not connected)");
    if (r->ansi)
        fputs("\033[H\033[2J", stdout);
    else
        fputs("----\n", stdout);
    station_state_render(&r->state, stdout, title, now, view_rows(r));
}

static void on_refresh(uv_timer_t *t)
{
    struct station_run *r = t->data;

    render(r);
    if (r->args->once)
        begin_stop(r);
}

static void on_stop_timer(uv_timer_t *t)
{
    begin_stop(t->data);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    begin_stop(s->data);
}

static void on_message(struct mqttc *c, const struct mqtt_publish *m, void *user)
{
    struct station_run *r = user;

    (void)c;
    station_state_message(&r->state, (const char *)m->topic.p, m->topic.len,
                          (const char *)m->payload.p, m->payload.len, vigil_time_mono_ms());
}

static void on_connack(struct mqttc *c, uint8_t reason, bool session_present, void *user)
{
    struct station_run *r = user;
    const char *filters[2] = {r->filter, "$SYS/broker/#"};

    (void)session_present;
    if (reason != 0) {
        snprintf(r->last_error, sizeof r->last_error,
                 "connection refused with reason code 0x%02x", reason);
        log_warn("station: %s (0x86/4 = bad user name or password)", r->last_error);
        return;
    }
    r->ever_connected = true;
    if (mqttc_subscribe(c, filters, 2, 2, NULL) != VIGIL_OK)
        log_error("station: SUBSCRIBE to %s could not be queued", r->filter);
}

static void on_suback(struct mqttc *c, uint16_t id, const uint8_t *codes, size_t n, void *user)
{
    struct station_run *r = user;

    (void)c;
    (void)id;
    if (n > 0 && codes[0] >= 0x80)
        log_warn("station: subscription to %s rejected with reason code 0x%02x", r->filter,
                 codes[0]);
    if (n > 1 && codes[1] >= 0x80)
        log_info("station: $SYS/broker/# not granted (reason code 0x%02x)", codes[1]);
}

static void on_disconnect(struct mqttc *c, vigil_err why, const char *detail, void *user)
{
    struct station_run *r = user;

    (void)c;
    if (why == VIGIL_ERR_AUTH || r->stopping)
        return;
    if (strcmp(r->last_error, detail) != 0)
        log_warn("station: connection to %s:%u: %s; retrying", r->args->host,
                 (unsigned)r->args->port, detail);
    snprintf(r->last_error, sizeof r->last_error, "%s", detail);
}

/* ---- Setup ------------------------------------------------------------ */

static vigil_err create_client(struct station_run *r, const char *password)
{
    const struct station_args *a = r->args;
    struct mqttc_options co;
    char client_id[80];

    memset(&co, 0, sizeof co);
    snprintf(client_id, sizeof client_id, "%s", a->username);
    co.host = a->host;
    co.port = a->port;
    co.client_id = client_id;
    co.username = a->anonymous ? NULL : a->username;
    co.password = password;
    co.version = a->version;
    co.keep_alive = 30;
    co.clean_start = true;
    co.max_packet_size = 1024 * 1024;
    co.reconnect_max_ms = 5000;
    co.user = r;
    co.on_connack = on_connack;
    co.on_disconnect = on_disconnect;
    co.on_message = on_message;
    co.on_suback = on_suback;
    return mqttc_create(&r->loop, &co, &r->client);
}

static void start_handles(struct station_run *r)
{
    const struct station_args *a = r->args;
    uint64_t interval_ms = (uint64_t)(a->interval_s * 1000.0);

    uv_timer_init(&r->loop, &r->refresh);
    uv_timer_init(&r->loop, &r->stop);
    uv_signal_init(&r->loop, &r->sigint);
    uv_signal_init(&r->loop, &r->sigterm);
    r->refresh.data = r->stop.data = r;
    r->sigint.data = r->sigterm.data = r;
    uv_timer_start(&r->refresh, on_refresh, interval_ms, interval_ms);
    if (a->duration_s > 0)
        uv_timer_start(&r->stop, on_stop_timer, (uint64_t)(a->duration_s * 1000.0), 0);
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
}

static const char *lookup_password(const struct station_args *a, struct credentials **creds)
{
    const char *pw;
    vigil_err rc;

    if (a->anonymous)
        return NULL;
    rc = credentials_load(a->credentials_path, creds);
    if (rc != VIGIL_OK) {
        fprintf(stderr, "vigil station: cannot read credentials file %s: %s\n",
                a->credentials_path, vigil_strerror(rc));
        return NULL;
    }
    pw = credentials_find(*creds, a->username);
    if (pw == NULL)
        fprintf(stderr, "vigil station: no password for %s in %s\n", a->username,
                a->credentials_path);
    return pw;
}

static int run(const struct station_args *a)
{
    struct station_run r;
    struct credentials *creds = NULL;
    const char *password = lookup_password(a, &creds);
    int status = 1;

    if (!a->anonymous && password == NULL)
        goto out;
    memset(&r, 0, sizeof r);
    r.args = a;
    r.ansi = !a->plain && isatty(STDOUT_FILENO);
    snprintf(r.filter, sizeof r.filter, "%s%s", a->filter ? a->filter : a->site,
             a->filter ? "" : "/#");
    snprintf(r.title, sizeof r.title, "vigil central station   %s   %s:%u", r.filter, a->host,
             (unsigned)a->port);
    if (uv_loop_init(&r.loop) != 0 || station_state_init(&r.state) != VIGIL_OK)
        goto out;
    if (create_client(&r, password) != VIGIL_OK) {
        fprintf(stderr, "vigil station: invalid client options\n");
        station_state_free(&r.state);
        uv_loop_close(&r.loop);
        goto out;
    }
    station_state_tick(&r.state, vigil_time_mono_ms());
    mqttc_start(r.client);
    start_handles(&r);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    uv_loop_close(&r.loop);
    station_state_free(&r.state);
    status = r.ever_connected ? 0 : 1;
    if (!r.ever_connected)
        fprintf(stderr, "vigil station: could not connect to %s:%u: %s\n", a->host,
                (unsigned)a->port, r.last_error[0] ? r.last_error : "no CONNACK");

out:
    credentials_free(creds);
    return status;
}

int cli_station(int argc, char **argv)
{
    struct station_args a = {
        .host = "127.0.0.1",
        .port = 1883,
        .version = 5,
        .username = "central",
        .site = "north",
        .interval_s = 1.0,
    };
    int st;

    vigil_log_set_level(VIGIL_LOG_WARN);
    st = parse_args(argc, argv, &a);
    if (st != 0)
        return st == 1 ? 0 : 2;
    return run(&a);
}
