/* `vigil analyze`: passive analysis of a pcap or pcapng capture. The MQTT
 * traffic in it goes through the security engine, and the alerts are
 * printed as a table or as JSON lines. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/alloc.h"
#include "core/map.h"
#include "core/time.h"
#include "passive/passive.h"
#include "secmon/engine.h"

/* Alerts kept for the report; past this, further alerts are counted only. */
#define ANALYZE_MAX_ALERTS 100000

struct analyze_opts {
    const char *path;
    const char *events_path;      /* --events: where events go as JSON lines */
    bool json;
    struct passive_config pcfg;
    bool port_given;
};

/* Alerts in the order they were raised; an update replaces its entry. */
struct alert_list {
    struct secmon_alert *items;   /* owned */
    size_t n, cap;
    struct vigil_map by_id;       /* alert_id -> index + 1 */
    uint64_t dropped;
};

struct analyze {
    struct secmon_engine *engine;
    FILE *events;                 /* owned; NULL without --events */
    struct alert_list alerts;
};

static void analyze_usage(FILE *out)
{
    fputs("usage: vigil analyze [options] FILE\n"
          "\n"
          "Reads a pcap or pcapng capture (Ethernet, Linux cooked v1/v2, raw IP or\n"
          "loopback; IPv4 and IPv6), reassembles the TCP streams to and from the MQTT\n"
          "port, decodes them with vigil's MQTT codec and runs the security engine on\n"
          "the resulting events, on capture time. Prints the alerts and a summary.\n"
          "\n"
          "options:\n"
          "  -p, --port N   server port of the MQTT traffic (default 1883); repeat the\n"
          "                 option for several ports\n"
          "      --json     print one JSON object per alert per line on standard\n"
          "                 output and the summary on standard error\n"
          "      --events FILE  also write every event fed to the engine to FILE,\n"
          "                 one JSON object per line (the format of events.jsonl)\n"
          "  -h, --help     show this help\n"
          "\n"
          "exit status: 0 analysed (alerts or not), 1 the capture cannot be read,\n"
          "2 usage error\n",
          out);
}

static bool parse_port(const char *s, uint16_t *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < 1 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

static int add_port(struct analyze_opts *o, const char *arg)
{
    uint16_t port;

    if (!parse_port(arg, &port)) {
        fprintf(stderr, "vigil analyze: invalid port '%s'; expected 1 to 65535\n", arg);
        return 2;
    }
    if (!o->port_given) {
        o->port_given = true;
        o->pcfg.n_ports = 0;
    }
    if (o->pcfg.n_ports == PASSIVE_MAX_PORTS) {
        fprintf(stderr, "vigil analyze: too many --port options; at most %d\n", PASSIVE_MAX_PORTS);
        return 2;
    }
    o->pcfg.ports[o->pcfg.n_ports++] = port;
    return 0;
}

/* Returns 0 to go on, 2 on a usage error, -1 after --help. */
static int parse_args(int argc, char **argv, struct analyze_opts *o)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},
        {"events", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    memset(o, 0, sizeof *o);
    passive_config_defaults(&o->pcfg);
    optind = 0;  /* 0 makes glibc's getopt forget the state of an earlier parse */
    while ((ch = getopt_long(argc, argv, "p:h", longopts, NULL)) != -1) {
        if (ch == 'h') {
            analyze_usage(stdout);
            return -1;
        }
        if (ch == 'j')
            o->json = true;
        else if (ch == 'e')
            o->events_path = optarg;
        else if (ch != 'p' || add_port(o, optarg) != 0)
            return 2;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "vigil analyze: expected one capture file\n");
        analyze_usage(stderr);
        return 2;
    }
    o->path = argv[optind];
    return 0;
}

static void on_alert(void *ctx, const struct secmon_alert *alert, bool update)
{
    struct alert_list *l = &((struct analyze *)ctx)->alerts;
    size_t len = strnlen(alert->alert_id, sizeof alert->alert_id);
    uintptr_t at = (uintptr_t)vigil_map_get(&l->by_id, alert->alert_id, len);

    if (at != 0) {
        l->items[at - 1] = *alert;
        return;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct secmon_alert *items;

        if (l->n >= ANALYZE_MAX_ALERTS ||
            (items = vigil_realloc(l->items, cap * sizeof *items)) == NULL) {
            l->dropped++;
            return;
        }
        l->items = items;
        l->cap = cap;
    }
    if (vigil_map_put(&l->by_id, alert->alert_id, len, (void *)(uintptr_t)(l->n + 1)) != VIGIL_OK) {
        l->dropped++;
        return;
    }
    l->items[l->n++] = *alert;
}

static void on_event(void *ctx, const struct vigil_event *ev)
{
    struct analyze *a = ctx;
    char line[VIGIL_EVENT_JSON_MAX];

    secmon_engine_feed(a->engine, ev);
    if (a->events != NULL && vigil_event_to_json(ev, line, sizeof line) > 0)
        fprintf(a->events, "%s\n", line);
}

static void on_tick(void *ctx, int64_t now_us)
{
    secmon_engine_tick(((struct analyze *)ctx)->engine, now_us);
}

static const char *severity_name(uint8_t severity)
{
    static const char *const names[] = {"info", "low", "medium", "high", "critical"};

    return severity < sizeof names / sizeof names[0] ? names[severity] : "unknown";
}

static json_t *time_json(int64_t us)
{
    char buf[40];

    return json_string(vigil_time_format_rfc3339(us, buf, sizeof buf));
}

static json_t *alert_json(const struct secmon_alert *a)
{
    json_t *o = json_object(), *evidence = json_array();

    for (uint8_t i = 0; i < a->n_evidence && i < SECMON_EVIDENCE_MAX; i++)
        json_array_append_new(evidence, json_string(a->evidence[i]));
    json_object_set_new(o, "alert_id", json_string(a->alert_id));
    json_object_set_new(o, "rule", json_string(a->rule ? a->rule : ""));
    json_object_set_new(o, "severity", json_string(severity_name(a->severity)));
    json_object_set_new(o, "device", json_string(a->device));
    json_object_set_new(o, "source", json_string(a->source));
    json_object_set_new(o, "explanation", json_string(a->explanation));
    json_object_set_new(o, "observation", json_string(a->observation));
    json_object_set_new(o, "expectation", json_string(a->expectation));
    json_object_set_new(o, "deviation", json_real(a->deviation));
    json_object_set_new(o, "count", json_integer((json_int_t)a->count));
    json_object_set_new(o, "first_seen", time_json(a->first_seen_us));
    json_object_set_new(o, "last_seen", time_json(a->last_seen_us));
    if (a->first_event_us != 0)
        json_object_set_new(o, "first_event", time_json(a->first_event_us));
    json_object_set_new(o, "evidence", evidence);
    return o;
}

/* Prints each alert as one JSON line; returns false when one cannot be
 * encoded (jansson rejects invalid UTF-8). */
static bool print_json(const struct alert_list *l)
{
    bool ok = true;

    for (size_t i = 0; i < l->n; i++) {
        json_t *o = alert_json(&l->items[i]);
        char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;

        if (line != NULL)
            puts(line);
        else
            ok = false;
        free(line);
        json_decref(o);
    }
    return ok;
}

static void print_table(const struct alert_list *l)
{
    char when[40];

    if (l->n == 0) {
        puts("No alerts.");
        return;
    }
    printf("%-27s %-8s %-22s %-24s %-22s %7s  %s\n", "first seen", "severity", "rule", "device",
           "source", "count", "observation");
    for (size_t i = 0; i < l->n; i++) {
        const struct secmon_alert *a = &l->items[i];

        printf("%-27s %-8s %-22s %-24.24s %-22.22s %7" PRIu64 "  %s\n",
               vigil_time_format_rfc3339(a->first_seen_us, when, sizeof when),
               severity_name(a->severity), a->rule ? a->rule : "", a->device, a->source, a->count,
               a->observation);
    }
}

/* Prints the count of alerts per rule, in order of first appearance. */
static void print_rule_counts(FILE *out, const struct alert_list *l)
{
    const char *rules[32];
    size_t counts[32], n = 0;

    for (size_t i = 0; i < l->n; i++) {
        const char *rule = l->items[i].rule ? l->items[i].rule : "";
        size_t j = 0;

        while (j < n && strcmp(rules[j], rule) != 0)
            j++;
        if (j == n) {
            if (n == sizeof rules / sizeof rules[0])
                continue;
            rules[n] = rule;
            counts[n++] = 0;
        }
        counts[j]++;
    }
    for (size_t j = 0; j < n; j++)
        fprintf(out, "    %-24s %zu\n", rules[j], counts[j]);
}

static void print_summary(FILE *out, const struct passive *p, const struct analyze *a)
{
    const struct passive_stats *s = passive_get_stats(p);
    char first[40], last[40];

    fprintf(out, "\nSummary\n");
    if (s->frames > 0)
        fprintf(out, "  capture:       %s to %s\n",
                vigil_time_format_rfc3339(passive_first_us(p), first, sizeof first),
                vigil_time_format_rfc3339(passive_now_us(p), last, sizeof last));
    fprintf(out, "  packets:       %" PRIu64 " (%" PRIu64 " TCP segments on MQTT ports, %" PRIu64
                 " unreadable)\n", s->frames, s->segments, s->frames_invalid);
    fprintf(out, "  flows:         %" PRIu64 " (%" PRIu64 " evicted)\n", s->flows, s->flows_evicted);
    fprintf(out, "  MQTT packets:  %" PRIu64 "\n", s->mqtt_packets);
    fprintf(out, "  events:        %" PRIu64 "\n", s->events);
    fprintf(out, "  malformed:     %" PRIu64 " from clients, %" PRIu64 " from servers\n",
            s->malformed, s->server_malformed);
    fprintf(out, "  stream gaps:   %" PRIu64 " (%" PRIu64 " retransmitted, %" PRIu64
                 " overlapping segments)\n", s->gaps, s->retransmissions, s->overlaps);
    fprintf(out, "  alerts:        %" PRIu64 "\n", secmon_engine_alerts(a->engine));
    print_rule_counts(out, &a->alerts);
    if (a->alerts.dropped > 0)
        fprintf(out, "  alerts not kept for this report: %" PRIu64 " (limit %d)\n",
                a->alerts.dropped, ANALYZE_MAX_ALERTS);
}

static int run(const struct analyze_opts *o, struct analyze *a)
{
    struct secmon_config scfg;
    struct passive *p = NULL;
    char err[256] = "";
    int status = 1;
    vigil_err rc;

    if (o->events_path != NULL && (a->events = fopen(o->events_path, "w")) == NULL) {
        fprintf(stderr, "vigil analyze: cannot create %s: %s\n", o->events_path, strerror(errno));
        return 1;
    }
    secmon_config_defaults(&scfg);
    scfg.passive = true;
    rc = secmon_engine_new(&scfg, on_alert, a, &a->engine);
    if (rc == VIGIL_OK)
        rc = passive_new(&o->pcfg, on_event, on_tick, a, &p);
    if (rc != VIGIL_OK) {
        fprintf(stderr, "vigil analyze: cannot start the analysis: %s\n", vigil_strerror(rc));
        goto cleanup;
    }
    rc = passive_read_file(p, o->path, err, sizeof err);
    if (rc != VIGIL_OK) {
        fprintf(stderr, "vigil analyze: cannot read %s: %s\n", o->path, err);
        goto cleanup;
    }
    status = 0;
    if (o->json) {
        if (!print_json(&a->alerts)) {
            fprintf(stderr, "vigil analyze: an alert could not be encoded as JSON\n");
            status = 1;
        }
        print_summary(stderr, p, a);
    } else {
        print_table(&a->alerts);
        print_summary(stdout, p, a);
    }
cleanup:
    passive_free(p);
    if (a->events != NULL && fclose(a->events) != 0) {
        fprintf(stderr, "vigil analyze: cannot write %s: %s\n", o->events_path, strerror(errno));
        status = 1;
    }
    a->events = NULL;
    return status;
}

int cli_analyze(int argc, char **argv)
{
    struct analyze_opts o;
    struct analyze a;
    int status = parse_args(argc, argv, &o);

    if (status != 0)
        return status < 0 ? 0 : status;
    memset(&a, 0, sizeof a);
    vigil_map_init(&a.alerts.by_id);
    status = run(&o, &a);
    secmon_engine_free(a.engine);
    vigil_map_free(&a.alerts.by_id);
    vigil_free(a.alerts.items);
    fflush(stdout);
    return status;
}
