/* vigil sim: command line of the fleet simulator. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sim/cli_util.h"
#include "core/log.h"
#include "proto/mqtt/mqtt.h"
#include "sim/fleet.h"
#include "sim/udp_fleet_internal.h"
#include "sim/udp_link_dtls.h"
#include "sim/udp_link.h"

static void sim_usage(FILE *out)
{
    fputs("usage: vigil sim [options]\n"
          "\n"
          "Simulates bedside monitors that publish vital signs over MQTT: SenML\n"
          "measurements on <site>/<unit>/<room>/<device>/<metric>, a heartbeat on\n"
          ".../status (QoS 1) and clinical alarms on .../alarm (QoS 2). Beside them\n"
          "it can run CoAP wearables and MQTT-SN sensors over DTLS or plain UDP\n"
          "(see docs/simulator.md).\n"
          "\n"
          "options:\n"
          "  --host ADDR            broker address (default 127.0.0.1)\n"
          "  --port N               broker port (default 1883)\n"
          "  --mqtt-version V       5 or 3.1.1 (default 5)\n"
          "  --devices N            number of monitors mon-0001.. (default 50, max 9999;\n"
          "                         0 runs only CoAP and MQTT-SN devices)\n"
          "  --duration S           seconds to run; 0 runs until Ctrl-C (default 0)\n"
          "  --speed N              simulated seconds per real second (default 1)\n"
          "  --qos 0|1              QoS of vital-sign messages (default 0)\n"
          "  --credentials FILE     \"<device-id> <password>\" lines; user name = device id\n"
          "  --anonymous            connect without user name and password\n"
          "  --recordings DIR       folder scanned for BIDMC/MIMIC numerics CSV files\n"
          "                         (default ../shared/data/vitals, see docs/simulator.md)\n"
          "  --model                ignore recordings and use the built-in model\n"
          "  --seed N               seed of the built-in model (default 1)\n"
          "  --site NAME            first topic level (default north)\n"
          "  --unit NAME            second topic level (default icu3)\n"
          "  --first-room N         room number of mon-0001 (default 301)\n"
          "  --keep-alive S         MQTT keep-alive in seconds (default 30)\n"
          "  --status-interval S    heartbeat period in seconds (default 30)\n"
          "  --progress S           print a progress line every S seconds; 0 = never\n"
          "                         (default 10)\n"
          "  --log-level LEVEL      error, warn, info or debug (default info)\n"
          "\n"
          "CoAP and MQTT-SN devices:\n"
          "  --coap-devices N       CoAP wearables wear-0001.. (default 0, max 9999)\n"
          "  --mqttsn-devices N     MQTT-SN sensors sens-0001.. (default 0, max 9999)\n"
          "  --coap ADDR:PORT       hub's CoAP listener (default [::1]:5684 with DTLS,\n"
          "                         127.0.0.1:5683 with --anonymous)\n"
          "  --mqttsn ADDR:PORT     hub's MQTT-SN listener (default [::1]:1885 with DTLS,\n"
          "                         127.0.0.1:1884 with --anonymous)\n"
          "  --psk-file FILE        \"<device-id> <hex key>\" lines: DTLS with PSK, the\n"
          "                         device id as identity (keys from vigil device add --psk)\n"
          "  --cert-dir DIR         DTLS with certificates: DIR/<id>.crt and DIR/<id>.key\n"
          "                         as vigil device add writes them\n"
          "  --ca-file FILE         CA of the hub's certificate (default\n"
          "                         DIR/../pki/ca.crt for --cert-dir DIR)\n"
          "                         Without --psk-file or --cert-dir, --anonymous makes\n"
          "                         these devices use plain UDP without identity.\n"
          "  --coap-topic-base PAT  the hub's gateway.topic_base, for the status and\n"
          "                         alarm topics of wearables (default hospital/%u/%t/%d/)\n"
          "  --coap-type TYPE       device type of the wearables in the inventory\n"
          "                         (default wearable)\n"
          "  --mqttsn-sleep S       sensors sleep S seconds between reports; 0 keeps\n"
          "                         them awake (default 0)\n"
          "  -h, --help             show this help\n",
          out);
}

enum {
    OPT_HOST = 256, OPT_PORT, OPT_VERSION, OPT_DEVICES, OPT_DURATION, OPT_SPEED, OPT_QOS,
    OPT_CREDENTIALS, OPT_ANONYMOUS, OPT_RECORDINGS, OPT_MODEL, OPT_SEED, OPT_SITE, OPT_UNIT,
    OPT_FIRST_ROOM, OPT_KEEP_ALIVE, OPT_STATUS, OPT_PROGRESS, OPT_LOG_LEVEL,
    OPT_COAP_DEVICES, OPT_MQTTSN_DEVICES, OPT_COAP, OPT_MQTTSN, OPT_PSK_FILE, OPT_CERT_DIR,
    OPT_CA_FILE, OPT_COAP_TOPIC_BASE, OPT_COAP_TYPE, OPT_MQTTSN_SLEEP,
};

struct sim_args {
    struct fleet_options fleet;
    const char *credentials_path;
    bool anonymous;
    const char *recordings;
    bool model_only;
    const char *coap_addr;
    const char *mqttsn_addr;
    const char *psk_file;
    const char *cert_dir;
    const char *ca_file;
};

static int parse_device_count(const char *option, const char *arg, uint32_t *out)
{
    unsigned long v;

    if (simcli_parse_ulong(option, arg, 0, SIMUDP_MAX_DEVICES, &v) != 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Accepts a pattern the hub would accept as gateway.topic_base: "%d"
 * included, a trailing '/', and no '%' sequence other than %d, %t, %u. */
static int parse_topic_base(const char *arg, const char **out)
{
    char expanded[256];
    size_t len = strlen(arg);

    if (strstr(arg, "%d") == NULL || len == 0 || arg[len - 1] != '/' ||
        simudp_expand_topic_base(arg, "u", "t", "d", expanded, sizeof expanded) == 0) {
        fprintf(stderr, "vigil sim: invalid --coap-topic-base '%s': use the hub's "
                "gateway.topic_base, with %%d, ending in '/', and no '%%' other than %%d, %%t "
                "and %%u\n", arg);
        return -1;
    }
    *out = arg;
    return 0;
}

static int parse_udp_option(int opt, const char *arg, struct sim_args *a)
{
    struct simudp_options *u = &a->fleet.udp;

    switch (opt) {
    case OPT_COAP_DEVICES: return parse_device_count("--coap-devices", arg, &u->coap_devices);
    case OPT_MQTTSN_DEVICES:
        return parse_device_count("--mqttsn-devices", arg, &u->mqttsn_devices);
    case OPT_COAP: a->coap_addr = arg; return 0;
    case OPT_MQTTSN: a->mqttsn_addr = arg; return 0;
    case OPT_PSK_FILE: a->psk_file = arg; return 0;
    case OPT_CERT_DIR: a->cert_dir = arg; return 0;
    case OPT_CA_FILE: a->ca_file = arg; return 0;
    case OPT_COAP_TOPIC_BASE: return parse_topic_base(arg, &u->coap_topic_base);
    case OPT_COAP_TYPE: u->coap_type = arg; return simcli_check_topic_level("--coap-type", arg);
    case OPT_MQTTSN_SLEEP:
        return simcli_parse_double("--mqttsn-sleep", arg, 0, 30000, &u->mqttsn_sleep_s);
    default: return -1;
    }
}

static int parse_one(int opt, const char *arg, struct sim_args *a)
{
    struct fleet_options *o = &a->fleet;
    unsigned long v;

    switch (opt) {
    case OPT_HOST: o->host = arg; return 0;
    case OPT_PORT: return simcli_parse_port(arg, &o->port);
    case OPT_VERSION: return simcli_parse_mqtt_version(arg, &o->version);
    case OPT_DEVICES:
        if (simcli_parse_ulong("--devices", arg, 0, 9999, &v) != 0)
            return -1;
        o->devices = (uint32_t)v;
        return 0;
    case OPT_DURATION: return simcli_parse_double("--duration", arg, 0, 1e9, &o->duration_s);
    case OPT_SPEED: return simcli_parse_double("--speed", arg, 0.001, 1e6, &o->speed);
    case OPT_QOS:
        if (simcli_parse_ulong("--qos", arg, 0, 1, &v) != 0)
            return -1;
        o->qos = (uint8_t)v;
        return 0;
    case OPT_CREDENTIALS: a->credentials_path = arg; return 0;
    case OPT_ANONYMOUS: a->anonymous = true; return 0;
    case OPT_RECORDINGS: a->recordings = arg; return 0;
    case OPT_MODEL: a->model_only = true; return 0;
    case OPT_SEED:
        if (simcli_parse_ulong("--seed", arg, 0, ULONG_MAX, &v) != 0)
            return -1;
        o->seed = v;
        return 0;
    case OPT_SITE: o->site = arg; return simcli_check_topic_level("--site", arg);
    case OPT_UNIT: o->unit = arg; return simcli_check_topic_level("--unit", arg);
    case OPT_FIRST_ROOM:
        if (simcli_parse_ulong("--first-room", arg, 0, 1000000, &v) != 0)
            return -1;
        o->first_room = (uint32_t)v;
        return 0;
    case OPT_KEEP_ALIVE:
        if (simcli_parse_ulong("--keep-alive", arg, 0, 65535, &v) != 0)
            return -1;
        o->keep_alive = (uint16_t)v;
        return 0;
    case OPT_STATUS: return simcli_parse_double("--status-interval", arg, 1, 86400, &o->status_interval_s);
    case OPT_PROGRESS: return simcli_parse_double("--progress", arg, 0, 86400, &o->progress_interval_s);
    case OPT_LOG_LEVEL: return simcli_set_log_level(arg);
    default: return parse_udp_option(opt, arg, a);
    }
}

static int parse_address(const char *option, const char *text, uint16_t default_port,
                         struct sockaddr_storage *out)
{
    if (sim_link_parse_address(text, default_port, out) == VIGIL_OK)
        return 0;
    fprintf(stderr, "vigil sim: %s %s: invalid address; use ADDR:PORT with a numeric IPv4 "
            "address or a bracketed IPv6 one, such as [::1]:5684\n", option, text);
    return -1;
}

/* Checks the options that depend on each other and fills in the default
 * addresses; returns 0 or 2. */
static int check_combination(struct sim_args *a)
{
    struct simudp_options *u = &a->fleet.udp;
    bool dtls = a->psk_file != NULL || a->cert_dir != NULL;

    if (a->credentials_path != NULL && a->anonymous) {
        fputs("vigil sim: give either --credentials FILE or --anonymous, not both\n", stderr);
        return 2;
    }
    if (a->fleet.devices > 0 && a->credentials_path == NULL && !a->anonymous) {
        fputs("vigil sim: missing credentials: give either --credentials FILE or --anonymous\n",
              stderr);
        return 2;
    }
    if (a->fleet.devices == 0 && u->coap_devices == 0 && u->mqttsn_devices == 0) {
        fputs("vigil sim: no devices: give --devices, --coap-devices or --mqttsn-devices\n",
              stderr);
        return 2;
    }
    if (a->psk_file != NULL && a->cert_dir != NULL) {
        fputs("vigil sim: give either --psk-file FILE or --cert-dir DIR, not both\n", stderr);
        return 2;
    }
    if (u->coap_devices + u->mqttsn_devices > 0 && !dtls && !a->anonymous) {
        fputs("vigil sim: CoAP and MQTT-SN devices need --psk-file FILE or --cert-dir DIR for "
              "DTLS, or --anonymous for plain UDP\n", stderr);
        return 2;
    }
    if (a->coap_addr == NULL)
        a->coap_addr = dtls ? "[::1]:5684" : "127.0.0.1:5683";
    if (a->mqttsn_addr == NULL)
        a->mqttsn_addr = dtls ? "[::1]:1885" : "127.0.0.1:1884";
    if (parse_address("--coap", a->coap_addr, dtls ? 5684 : 5683, &u->coap_addr) != 0 ||
        parse_address("--mqttsn", a->mqttsn_addr, dtls ? 1885 : 1884, &u->mqttsn_addr) != 0)
        return 2;
    return 0;
}

/* Returns 0 to run, 1 after --help, 2 for a usage error. */
static int parse_args(int argc, char **argv, struct sim_args *a)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"mqtt-version", required_argument, NULL, OPT_VERSION},
        {"devices", required_argument, NULL, OPT_DEVICES},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"speed", required_argument, NULL, OPT_SPEED},
        {"qos", required_argument, NULL, OPT_QOS},
        {"credentials", required_argument, NULL, OPT_CREDENTIALS},
        {"anonymous", no_argument, NULL, OPT_ANONYMOUS},
        {"recordings", required_argument, NULL, OPT_RECORDINGS},
        {"model", no_argument, NULL, OPT_MODEL},
        {"seed", required_argument, NULL, OPT_SEED},
        {"site", required_argument, NULL, OPT_SITE},
        {"unit", required_argument, NULL, OPT_UNIT},
        {"first-room", required_argument, NULL, OPT_FIRST_ROOM},
        {"keep-alive", required_argument, NULL, OPT_KEEP_ALIVE},
        {"status-interval", required_argument, NULL, OPT_STATUS},
        {"progress", required_argument, NULL, OPT_PROGRESS},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"coap-devices", required_argument, NULL, OPT_COAP_DEVICES},
        {"mqttsn-devices", required_argument, NULL, OPT_MQTTSN_DEVICES},
        {"coap", required_argument, NULL, OPT_COAP},
        {"mqttsn", required_argument, NULL, OPT_MQTTSN},
        {"psk-file", required_argument, NULL, OPT_PSK_FILE},
        {"cert-dir", required_argument, NULL, OPT_CERT_DIR},
        {"ca-file", required_argument, NULL, OPT_CA_FILE},
        {"coap-topic-base", required_argument, NULL, OPT_COAP_TOPIC_BASE},
        {"coap-type", required_argument, NULL, OPT_COAP_TYPE},
        {"mqttsn-sleep", required_argument, NULL, OPT_MQTTSN_SLEEP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            sim_usage(stdout);
            return 1;
        }
        if (opt == '?' || parse_one(opt, optarg, a) != 0) {
            sim_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vigil sim: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return check_combination(a);
}

static void describe_source(const struct recording_set *set, const char *dir, uint32_t devices)
{
    if (set->n == 0) {
        printf("source: built-in physiological model (no recordings found under %s)\n",
               dir ? dir : "../shared/data/vitals");
        return;
    }
    printf("source: %zu recordings from %s (", set->n, dir);
    if (set->n_bidmc)
        printf("%zu BIDMC 1 Hz numerics%s", set->n_bidmc, set->n_mimic ? ", " : "");
    if (set->n_mimic)
        printf("%zu MIMIC per-minute numerics", set->n_mimic);
    printf("); body temperature from the built-in model\n");
    if (devices > set->n)
        printf("note: %u devices but %zu recordings: recordings are reused, each reuse "
               "starting at a different time offset\n",
               devices, set->n);
}

static void print_udp_summary(const struct simudp_summary *u)
{
    const struct coap_dev_counters *c = &u->coap;
    const struct sn_dev_counters *m = &u->mqttsn;

    if (u->coap_devices + u->mqttsn_devices == 0)
        return;
    if (u->coap_devices > 0)
        printf("  CoAP (%u wearables): confirmable %llu (%llu acknowledged, %llu rejected, "
               "%llu timed out, %llu retransmissions), non-confirmable %llu\n",
               u->coap_devices, (unsigned long long)c->con_sent,
               (unsigned long long)c->acknowledged, (unsigned long long)c->rejected,
               (unsigned long long)c->timed_out, (unsigned long long)c->retransmissions,
               (unsigned long long)c->non_sent);
    if (u->mqttsn_devices > 0)
        printf("  MQTT-SN (%u sensors): QoS 0: %llu, QoS 1: %llu (%llu acknowledged), "
               "QoS 2: %llu (%llu completed); %llu connects, %llu refused, %llu rejected, "
               "%llu lost, %llu sleeps, %llu wakes\n",
               u->mqttsn_devices, (unsigned long long)m->published[0],
               (unsigned long long)m->published[1], (unsigned long long)m->delivered[1],
               (unsigned long long)m->published[2], (unsigned long long)m->delivered[2],
               (unsigned long long)m->connects, (unsigned long long)m->refused,
               (unsigned long long)m->rejected, (unsigned long long)m->lost,
               (unsigned long long)m->sleeps, (unsigned long long)m->wakes);
    printf("  UDP links: %llu sessions (%llu resumed), %llu failed attempts, %llu datagrams "
           "sent, %llu received, %llu send errors\n",
           (unsigned long long)u->links.sessions, (unsigned long long)u->links.resumed,
           (unsigned long long)u->links.failures, (unsigned long long)u->links.datagrams_sent,
           (unsigned long long)u->links.datagrams_received,
           (unsigned long long)u->links.send_errors);
    printf("  UDP devices: alarms %llu raised, %llu cleared, %llu not sent; measurements not "
           "sent while offline or asleep: %llu\n",
           (unsigned long long)u->alarms_raised, (unsigned long long)u->alarms_cleared,
           (unsigned long long)u->alarms_unsent, (unsigned long long)u->samples_offline);
}

static void print_summary(const struct fleet_summary *s, uint32_t mqtt_devices)
{
    uint64_t errors = s->publish_failed + s->rejected + s->lost + s->alarms_unsent +
                      s->connection_errors + s->refused;

    printf("summary: %.0f s simulated in %.1f s; %u devices connected at the end\n",
           s->simulated_s, s->elapsed_s, s->devices_connected_at_end);
    if (mqtt_devices == 0) {
        print_udp_summary(&s->udp);
        return;
    }
    printf("  published: QoS 0: %llu, QoS 1: %llu (%llu acknowledged), "
           "QoS 2: %llu (%llu completed)\n",
           (unsigned long long)s->published[0], (unsigned long long)s->published[1],
           (unsigned long long)s->delivered[1], (unsigned long long)s->published[2],
           (unsigned long long)s->delivered[2]);
    printf("  alarms: %llu raised, %llu cleared\n", (unsigned long long)s->alarms_raised,
           (unsigned long long)s->alarms_cleared);
    printf("  errors: %llu (publish failed %llu, rejected %llu, lost %llu, alarms not sent %llu, "
           "connection errors %llu, connections refused %llu)\n",
           (unsigned long long)errors, (unsigned long long)s->publish_failed,
           (unsigned long long)s->rejected, (unsigned long long)s->lost,
           (unsigned long long)s->alarms_unsent, (unsigned long long)s->connection_errors,
           (unsigned long long)s->refused);
    printf("  measurements not sent while offline: %llu\n",
           (unsigned long long)s->samples_offline);
    print_udp_summary(&s->udp);
}

static void set_defaults(struct sim_args *a)
{
    struct fleet_options *o = &a->fleet;

    memset(a, 0, sizeof *a);
    o->host = "127.0.0.1";
    o->port = 1883;
    o->version = MQTT_V5;
    o->devices = 50;
    o->speed = 1.0;
    o->site = "north";
    o->unit = "icu3";
    o->first_room = 301;
    o->seed = 1;
    o->keep_alive = 30;
    o->status_interval_s = 30.0;
    o->sustain_s = 10.0;
    o->progress_interval_s = 10.0;
    o->udp.coap_topic_base = "hospital/%u/%t/%d/";
    o->udp.coap_type = "wearable";
}

static int load_keys(const char *path, const char *what, struct credentials **out)
{
    vigil_err rc = credentials_load(path, out);

    if (rc == VIGIL_OK)
        return 0;
    /* VIGIL_ERR_IO comes straight from a failed fopen, so errno still holds
     * its cause (for example "No such file or directory"). */
    fprintf(stderr, "vigil sim: cannot read %s %s: %s\n", what, path,
            rc == VIGIL_ERR_IO ? strerror(errno) : vigil_strerror(rc));
    return -1;
}

/* Builds the DTLS client context of the UDP devices, if they use DTLS. */
static int setup_dtls(struct sim_args *a, struct credentials **psk_keys, struct sim_dtls **dtls)
{
    char ca[4096];

    if (a->fleet.udp.coap_devices + a->fleet.udp.mqttsn_devices == 0)
        return 0;
    if (a->psk_file != NULL) {
        if (load_keys(a->psk_file, "PSK file", psk_keys) != 0)
            return -1;
        return sim_dtls_new_psk(*psk_keys, dtls) == VIGIL_OK ? 0 : -1;
    }
    if (a->cert_dir == NULL)
        return 0;
    if (a->ca_file == NULL)
        snprintf(ca, sizeof ca, "%s/../pki/ca.crt", a->cert_dir);
    if (sim_dtls_new_cert(a->cert_dir, a->ca_file ? a->ca_file : ca, dtls) != VIGIL_OK) {
        fputs("vigil sim: cannot set up DTLS with certificates (see the message above)\n",
              stderr);
        return -1;
    }
    return 0;
}

static void describe_devices(const struct sim_args *a)
{
    const struct fleet_options *o = &a->fleet;
    const char *security = a->psk_file ? "DTLS with PSK"
                           : a->cert_dir ? "DTLS with certificates"
                                         : "plain UDP";

    if (o->devices > 0)
        printf("devices: %u (mon-0001..mon-%04u) -> %s:%u, MQTT %s, vitals QoS %u, speed %gx\n",
               o->devices, o->devices, o->host, (unsigned)o->port,
               o->version == MQTT_V5 ? "5" : "3.1.1", o->qos, o->speed);
    if (o->udp.coap_devices > 0)
        printf("devices: %u (wear-0001..wear-%04u) -> %s, CoAP, %s\n", o->udp.coap_devices,
               o->udp.coap_devices, a->coap_addr, security);
    if (o->udp.mqttsn_devices > 0)
        printf("devices: %u (sens-0001..sens-%04u) -> %s, MQTT-SN, %s%s\n",
               o->udp.mqttsn_devices, o->udp.mqttsn_devices, a->mqttsn_addr, security,
               o->udp.mqttsn_sleep_s > 0 ? ", sleeping between reports" : "");
    fflush(stdout);
}

static void load_recordings(struct sim_args *a, struct recording_set *set)
{
    char dir[4096];
    const char *found = NULL;
    uint32_t devices = a->fleet.devices + a->fleet.udp.coap_devices + a->fleet.udp.mqttsn_devices;
    vigil_err rc;

    if (!a->model_only && simcli_find_recordings(a->recordings, dir, sizeof dir) == 0) {
        found = dir;
        rc = recording_scan(dir, set);
        if (rc != VIGIL_OK)
            log_warn("cannot scan recordings under %s: %s", dir, vigil_strerror(rc));
    }
    if (a->model_only)
        printf("source: built-in physiological model (--model)\n");
    else
        describe_source(set, found ? found : a->recordings, devices);
}

/* True when any device reached the hub: an accepted MQTT or MQTT-SN
 * connection, or an acknowledged CoAP request. */
static bool reached_hub(const struct fleet_summary *s)
{
    return s->connects + s->udp.mqttsn.connects + s->udp.coap.acknowledged > 0;
}

static int run(struct sim_args *a)
{
    struct recording_set set = {0};
    struct credentials *creds = NULL;
    struct credentials *psk_keys = NULL;
    struct sim_dtls *dtls = NULL;
    struct fleet_summary sum;
    int status = 1;
    vigil_err rc;

    if (a->credentials_path && load_keys(a->credentials_path, "credentials file", &creds) != 0)
        goto cleanup;
    if (setup_dtls(a, &psk_keys, &dtls) != 0)
        goto cleanup;
    load_recordings(a, &set);
    a->fleet.credentials = creds;
    a->fleet.recordings = &set;
    a->fleet.udp.dtls = dtls;
    describe_devices(a);
    rc = fleet_run(&a->fleet, &sum);
    if (rc != VIGIL_OK) {
        /* VIGIL_ERR_NOT_FOUND and VIGIL_ERR_INVALID mean a device without a
         * password, key or certificate, which fleet_run has already logged
         * with what to add. */
        if (rc != VIGIL_ERR_NOT_FOUND && rc != VIGIL_ERR_INVALID)
            fprintf(stderr, "vigil sim: %s\n", vigil_strerror(rc));
        goto cleanup;
    }
    print_summary(&sum, a->fleet.devices);
    status = 0;
    if (!reached_hub(&sum)) {
        fprintf(stderr, "vigil sim: no device could connect to the hub\n");
        status = 1;
    }

cleanup:
    recording_set_free(&set);
    sim_dtls_free(dtls);
    credentials_free(psk_keys);
    credentials_free(creds);
    return status;
}

int cli_sim(int argc, char **argv)
{
    struct sim_args a;
    int st;

    set_defaults(&a);
    st = parse_args(argc, argv, &a);
    if (st != 0)
        return st == 1 ? 0 : 2;
    return run(&a);
}
