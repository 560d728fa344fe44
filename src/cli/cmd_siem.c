/* `vigil siem-send`: a diagnostic command that sends numbered test events
 * and alerts to one SIEM destination through the exporter and its outbox,
 * then waits until the receiver accepted them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/log.h"
#include "core/time.h"
#include "export/siem.h"

struct send_opts {
    struct siem_config cfg;
    long events;
    long alerts;
    long first;          /* number of the first test message */
    long wait_s;
};

static void siem_usage(FILE *out)
{
    fputs("usage: vigil siem-send --data-dir DIR --address HOST:PORT [options]\n"
          "       vigil siem-send --config FILE [--dest NAME] [options]\n"
          "\n"
          "Diagnostic: sends numbered test events (auth_success and auth_failure\n"
          "in turn) and alerts to one SIEM destination through the durable\n"
          "outbox <data-dir>/outbox-<name>.db, then waits until the receiver\n"
          "accepted every message, including rows left by an earlier run.\n"
          "\n"
          "options:\n"
          "  --config FILE         read data_dir and the siem destinations from FILE\n"
          "                        (vigil.yaml); the options below override them\n"
          "  --dest NAME           with --config: the destination to use (default: the\n"
          "                        first one listed)\n"
          "  --data-dir DIR        directory of the outbox (required without --config)\n"
          "  --name NAME           destination name (default \"default\")\n"
          "  --transport T         udp, tcp or tls (default tcp)\n"
          "  --address HOST:PORT   numeric receiver address (default 127.0.0.1:6514)\n"
          "  --format F            rfc5424, cef or ocsf-json (default rfc5424)\n"
          "  --ca-file FILE        tls: CA certificate of the receiver (PEM)\n"
          "  --server-name NAME    tls: name expected in the receiver's certificate\n"
          "                        (default: the address, checked as an IP SAN)\n"
          "  --facility F          syslog facility, 0..23 or a name (default local4)\n"
          "  --max-rows N          outbox cap in rows (default 1000000)\n"
          "  --backoff-max-ms MS   cap of the reconnect backoff (default 30000)\n"
          "  --hostname NAME       HOSTNAME field (default: this host's name)\n"
          "  --events N            test events to send (default 10)\n"
          "  --alerts N            test alerts to send (default 0)\n"
          "  --first K             number of the first test message (default 1)\n"
          "  --wait SECONDS        time allowed for delivery; 0 stores the messages\n"
          "                        in the outbox and exits (default 30)\n"
          "\n"
          "Exit status: 0 when everything was delivered (or stored, with --wait 0),\n"
          "1 on a timeout or error, 2 on a usage error.\n",
          out);
}

static int parse_long(const char *opt, const char *v, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);

    if (v[0] == '\0' || *end != '\0' || n < 0 || n > 100000000) {
        fprintf(stderr, "vigil siem-send: %s '%s' is invalid: expected a non-negative integer\n",
                opt, v);
        return -1;
    }
    *out = n;
    return 0;
}

/* Maps "--some-key" to the destination key "some_key". */
static int set_dest_option(struct siem_dest *d, const char *opt, const char *value)
{
    char key[32];
    char err[256];
    size_t i;

    for (i = 0; opt[i + 2] != '\0' && i < sizeof key - 1; i++)
        key[i] = opt[i + 2] == '-' ? '_' : opt[i + 2];
    key[i] = '\0';
    if (siem_dest_set(d, key, value, err, sizeof err) != VIGIL_OK) {
        fprintf(stderr, "vigil siem-send: %s\n", err);
        return -1;
    }
    return 0;
}

static int parse_option(struct send_opts *o, const char *opt, const char *v)
{
    if (strcmp(opt, "--data-dir") == 0) {
        snprintf(o->cfg.data_dir, sizeof o->cfg.data_dir, "%s", v);
        return 0;
    }
    if (strcmp(opt, "--hostname") == 0) {
        snprintf(o->cfg.hostname, sizeof o->cfg.hostname, "%s", v);
        return 0;
    }
    if (strcmp(opt, "--events") == 0)
        return parse_long(opt, v, &o->events);
    if (strcmp(opt, "--alerts") == 0)
        return parse_long(opt, v, &o->alerts);
    if (strcmp(opt, "--first") == 0)
        return parse_long(opt, v, &o->first);
    if (strcmp(opt, "--wait") == 0)
        return parse_long(opt, v, &o->wait_s);
    return set_dest_option(&o->cfg.dests[0], opt, v);
}

/* Returns the value of option name in argv, or NULL. */
static const char *find_option(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

/* Loads --config FILE and keeps only the destination --dest names (or the
 * first one). Returns 0, or 2 after printing the problem. */
static int load_config(const char *path, const char *dest, struct siem_config *cfg)
{
    char err[512];
    size_t pick = 0;

    cfg->n_dests = 0;
    if (siem_config_load_file(cfg, path, err, sizeof err) != VIGIL_OK) {
        fprintf(stderr, "vigil siem-send: %s\n", err);
        return 2;
    }
    if (cfg->n_dests == 0) {
        fprintf(stderr, "vigil siem-send: %s has no siem destinations\n", path);
        return 2;
    }
    while (dest != NULL && pick < cfg->n_dests && strcmp(cfg->dests[pick].name, dest) != 0)
        pick++;
    if (pick == cfg->n_dests) {
        fprintf(stderr, "vigil siem-send: destination '%s' not found in %s\n", dest, path);
        return 2;
    }
    cfg->dests[0] = cfg->dests[pick];
    cfg->n_dests = 1;
    return 0;
}

static int parse_args(int argc, char **argv, struct send_opts *o)
{
    const char *config = find_option(argc, argv, "--config");

    siem_config_defaults(&o->cfg);
    o->cfg.data_dir[0] = '\0';
    o->cfg.n_dests = 1;
    siem_dest_defaults(&o->cfg.dests[0]);
    if (config != NULL && load_config(config, find_option(argc, argv, "--dest"), &o->cfg) != 0)
        return 2;
    o->events = 10;
    o->alerts = 0;
    o->first = 1;
    o->wait_s = 30;
    /* Options come in "--name value" pairs. */
    for (int i = 1; i < argc; i += 2) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            siem_usage(stdout);
            return 0;
        }
        if (strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc) {
            fprintf(stderr, "vigil siem-send: option '%s' is unknown or lacks its value\n",
                    argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--config") != 0 && strcmp(argv[i], "--dest") != 0 &&
            parse_option(o, argv[i], argv[i + 1]) != 0)
            return 2;
    }
    if (o->cfg.data_dir[0] == '\0') {
        fputs("vigil siem-send: --data-dir is required (or data_dir in --config)\n", stderr);
        return 2;
    }
    return -1;
}

static void make_event(long k, struct vigil_event *ev)
{
    vigil_event_init(ev, k % 2 == 1 ? VIGIL_EV_AUTH_SUCCESS : VIGIL_EV_AUTH_FAILURE);
    ev->proto = VIGIL_PROTO_MQTT5;
    ev->conn_id = (uint64_t)k;
    snprintf(ev->peer, sizeof ev->peer, "127.0.0.1:%ld", 10000 + k % 50000);
    snprintf(ev->client_id, sizeof ev->client_id, "siem-test-%ld", k);
    if (k % 2 == 1)
        snprintf(ev->device, sizeof ev->device, "siem-test-%ld", k);
    snprintf(ev->detail, sizeof ev->detail, "siem test event %ld", k);
}

static void make_alert(long k, struct secmon_alert *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->alert_id, sizeof a->alert_id, "siem-test-alert-%ld", k);
    a->rule = SECMON_RULE_BRUTE_FORCE;
    a->severity = SECMON_SEV_HIGH;
    snprintf(a->device, sizeof a->device, "siem-test-%ld", k);
    snprintf(a->source, sizeof a->source, "127.0.0.1");
    snprintf(a->observation, sizeof a->observation, "siem test alert %ld", k);
    snprintf(a->expectation, sizeof a->expectation, "no test alerts");
    snprintf(a->explanation, sizeof a->explanation,
             "Test alert %ld sent by vigil siem-send to check the export path.", k);
    a->deviation = 1.0;
    a->first_seen_us = a->last_seen_us = vigil_time_now_us();
    a->count = 1;
    snprintf(a->evidence[0], sizeof a->evidence[0], "test evidence %ld", k);
    a->n_evidence = 1;
}

static int submit_all(struct siem_exporter *exp, const struct send_opts *o)
{
    for (long i = 0; i < o->events; i++) {
        struct vigil_event ev;

        make_event(o->first + i, &ev);
        while (siem_exporter_submit_event(exp, &ev) == VIGIL_ERR_LIMIT)
            siem_exporter_flush(exp, 10); /* the queue is full: let it drain */
    }
    for (long i = 0; i < o->alerts; i++) {
        struct secmon_alert a;

        make_alert(o->first + o->events + i, &a);
        while (siem_exporter_submit_alert(exp, &a) == VIGIL_ERR_LIMIT)
            siem_exporter_flush(exp, 10);
    }
    return 0;
}

/* Waits until the exporter stored every submitted item in the outbox. */
static void wait_stored(struct siem_exporter *exp, uint64_t expected)
{
    struct siem_stats st;

    for (;;) {
        siem_exporter_stats(exp, &st);
        if (st.dests[0].stored + st.dests[0].outbox_dropped >= expected)
            return;
        siem_exporter_flush(exp, 10);
    }
}

int cli_siem(int argc, char **argv)
{
    struct send_opts o;
    struct siem_exporter *exp;
    struct siem_stats st;
    int rc = parse_args(argc, argv, &o);
    vigil_err err;

    if (rc >= 0)
        return rc;
    mkdir(o.cfg.data_dir, 0700);
    if (siem_exporter_start(&o.cfg, &exp) != VIGIL_OK) {
        fputs("vigil siem-send: the exporter did not start (see the log above)\n", stderr);
        return 1;
    }
    submit_all(exp, &o);
    wait_stored(exp, (uint64_t)(o.events + o.alerts));
    err = o.wait_s > 0 ? siem_exporter_flush(exp, (uint32_t)o.wait_s * 1000) : VIGIL_OK;
    siem_exporter_stats(exp, &st);
    siem_exporter_stop(exp);
    printf("submitted %llu stored %llu sent %llu pending %llu outbox_dropped %llu "
           "queue_dropped %llu connects %llu connect_failures %llu\n",
           (unsigned long long)st.submitted, (unsigned long long)st.dests[0].stored,
           (unsigned long long)st.dests[0].sent, (unsigned long long)st.dests[0].pending,
           (unsigned long long)st.dests[0].outbox_dropped, (unsigned long long)st.queue_dropped,
           (unsigned long long)st.dests[0].connects,
           (unsigned long long)st.dests[0].connect_failures);
    if (err != VIGIL_OK) {
        fprintf(stderr, "vigil siem-send: %llu messages not delivered within %ld s; they stay "
                "in the outbox\n", (unsigned long long)st.dests[0].pending, o.wait_s);
        return 1;
    }
    return 0;
}
