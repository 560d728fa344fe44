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

static void sim_usage(FILE *out)
{
    fputs("usage: vigil sim [options]\n"
          "\n"
          "Simulates bedside monitors that publish vital signs over MQTT: SenML\n"
          "measurements on <site>/<unit>/<room>/<device>/<metric>, a heartbeat on\n"
          ".../status (QoS 1) and clinical alarms on .../alarm (QoS 2).\n"
          "\n"
          "options:\n"
          "  --host ADDR            broker address (default 127.0.0.1)\n"
          "  --port N               broker port (default 1883)\n"
          "  --mqtt-version V       5 or 3.1.1 (default 5)\n"
          "  --devices N            number of monitors mon-0001.. (default 50, max 9999)\n"
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
          "  -h, --help             show this help\n",
          out);
}

enum {
    OPT_HOST = 256, OPT_PORT, OPT_VERSION, OPT_DEVICES, OPT_DURATION, OPT_SPEED, OPT_QOS,
    OPT_CREDENTIALS, OPT_ANONYMOUS, OPT_RECORDINGS, OPT_MODEL, OPT_SEED, OPT_SITE, OPT_UNIT,
    OPT_FIRST_ROOM, OPT_KEEP_ALIVE, OPT_STATUS, OPT_PROGRESS, OPT_LOG_LEVEL,
};

struct sim_args {
    struct fleet_options fleet;
    const char *credentials_path;
    bool anonymous;
    const char *recordings;
    bool model_only;
};

static int parse_one(int opt, const char *arg, struct sim_args *a)
{
    struct fleet_options *o = &a->fleet;
    unsigned long v;

    switch (opt) {
    case OPT_HOST: o->host = arg; return 0;
    case OPT_PORT: return simcli_parse_port(arg, &o->port);
    case OPT_VERSION: return simcli_parse_mqtt_version(arg, &o->version);
    case OPT_DEVICES:
        if (simcli_parse_ulong("--devices", arg, 1, 9999, &v) != 0)
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
    default: return -1;
    }
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
    if ((a->credentials_path != NULL) == a->anonymous) {
        fputs("vigil sim: missing credentials: give either --credentials FILE or --anonymous\n", stderr);
        return 2;
    }
    return 0;
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

static void print_summary(const struct fleet_summary *s)
{
    uint64_t errors = s->publish_failed + s->rejected + s->lost + s->alarms_unsent +
                      s->connection_errors + s->refused;

    printf("summary: %.0f s simulated in %.1f s; %u devices connected at the end\n",
           s->simulated_s, s->elapsed_s, s->devices_connected_at_end);
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
}

static int run(struct sim_args *a)
{
    struct recording_set set = {0};
    struct credentials *creds = NULL;
    struct fleet_summary sum;
    char dir[4096];
    const char *found = NULL;
    vigil_err rc;

    if (a->credentials_path) {
        rc = credentials_load(a->credentials_path, &creds);
        if (rc != VIGIL_OK) {
            /* VIGIL_ERR_IO comes straight from a failed fopen, so errno still
             * holds its cause (for example "No such file or directory"). */
            fprintf(stderr, "vigil sim: cannot read credentials file %s: %s\n",
                    a->credentials_path, rc == VIGIL_ERR_IO ? strerror(errno) : vigil_strerror(rc));
            return 1;
        }
    }
    if (!a->model_only && simcli_find_recordings(a->recordings, dir, sizeof dir) == 0) {
        found = dir;
        rc = recording_scan(dir, &set);
        if (rc != VIGIL_OK)
            log_warn("cannot scan recordings under %s: %s", dir, vigil_strerror(rc));
    }
    if (a->model_only)
        printf("source: built-in physiological model (--model)\n");
    else
        describe_source(&set, found ? found : a->recordings, a->fleet.devices);
    a->fleet.credentials = creds;
    a->fleet.recordings = &set;
    printf("devices: %u (mon-0001..mon-%04u) -> %s:%u, MQTT %s, vitals QoS %u, speed %gx\n",
           a->fleet.devices, a->fleet.devices, a->fleet.host, (unsigned)a->fleet.port,
           a->fleet.version == MQTT_V5 ? "5" : "3.1.1", a->fleet.qos, a->fleet.speed);
    fflush(stdout);
    rc = fleet_run(&a->fleet, &sum);
    recording_set_free(&set);
    credentials_free(creds);
    if (rc != VIGIL_OK) {
        /* VIGIL_ERR_NOT_FOUND means a device without a password, which
         * fleet_run has already logged with the line to add. */
        if (rc != VIGIL_ERR_NOT_FOUND)
            fprintf(stderr, "vigil sim: %s\n", vigil_strerror(rc));
        return 1;
    }
    print_summary(&sum);
    if (sum.connects == 0) {
        fprintf(stderr, "vigil sim: no device could connect to %s:%u\n", a->fleet.host,
                (unsigned)a->fleet.port);
        return 1;
    }
    return 0;
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
