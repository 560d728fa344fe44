/* `vigil alerts` (list, ack, resolve) and `vigil report`: the alert life
 * cycle and the mean times to detect and to resolve, read from
 * <data-dir>/alerts.db while the hub runs or after. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/admin_record.h"
#include "cli/cli.h"
#include "core/time.h"
#include "secmon/alerts.h"

struct alerts_opts {
    const char *data_dir;
    int state;           /* -1: all */
    bool json;
    const char *id;
};

static const char *sev_name(uint8_t sev)
{
    static const char *const names[] = {"info", "low", "medium", "high", "critical"};

    return sev < 5 ? names[sev] : "unknown";
}

static void alerts_usage(FILE *out)
{
    fputs("usage: vigil alerts list [--state open|acknowledged|resolved] [--json] [--data-dir DIR]\n"
          "       vigil alerts ack ID [--data-dir DIR]\n"
          "       vigil alerts resolve ID [--data-dir DIR]\n"
          "       vigil report [--json] [--data-dir DIR]\n"
          "\n"
          "Lists the alerts the security engine raised, acknowledges or resolves one,\n"
          "or reports counts and the mean times to detect (MTTD) and to resolve (MTTR).\n"
          "DIR defaults to ./vigil-data.\n",
          out);
}

static int alerts_parse(int argc, char **argv, struct alerts_opts *o, bool want_id)
{
    static const struct option longopts[] = {
        {"data-dir", required_argument, NULL, 'd'}, {"state", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    o->data_dir = "./vigil-data";
    o->state = -1;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd': o->data_dir = optarg; break;
        case 'j': o->json = true; break;
        case 's':
            o->state = alerts_state_parse(optarg);
            if (o->state < 0) {
                fprintf(stderr, "vigil alerts: invalid state '%s': use open, acknowledged or resolved\n",
                        optarg);
                return 2;
            }
            break;
        case 'h': alerts_usage(stdout); return 0;
        default: alerts_usage(stderr); return 2;
        }
    }
    if (want_id) {
        if (optind != argc - 1) {
            fputs("vigil alerts: expected one alert id\n", stderr);
            return 2;
        }
        o->id = argv[optind];
    } else if (optind != argc) {
        fprintf(stderr, "vigil alerts: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return -1;
}

static void print_row(void *ctx, const struct alerts_row *r)
{
    json_t *arr = ctx;
    const struct secmon_alert *a = &r->alert;
    char first[40], last[40];

    vigil_time_format_rfc3339(a->first_seen_us, first, sizeof first);
    vigil_time_format_rfc3339(a->last_seen_us, last, sizeof last);
    if (arr == NULL) {
        printf("%-32s %-13s %-22s %-8s %-20s %-21s %6llu  %s\n", a->alert_id,
               alerts_state_name(r->state), r->rule, sev_name(a->severity), a->device, first,
               (unsigned long long)a->count, a->observation);
        return;
    }
    json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}",
                                         "alert_id", a->alert_id, "state",
                                         alerts_state_name(r->state), "rule", r->rule, "severity",
                                         sev_name(a->severity), "device", a->device, "source",
                                         a->source, "explanation", a->explanation, "observation",
                                         a->observation, "first_seen", first, "last_seen", last,
                                         "count", (json_int_t)a->count));
}

static int alerts_list_cmd(struct alerts_db *db, const struct alerts_opts *o)
{
    json_t *arr = o->json ? json_array() : NULL;

    if (!o->json)
        printf("%-32s %-13s %-22s %-8s %-20s %-21s %6s  %s\n", "ALERT", "STATE", "RULE",
               "SEVERITY", "DEVICE", "FIRST SEEN", "COUNT", "OBSERVATION");
    if (alerts_list(db, o->state, print_row, arr) != VIGIL_OK) {
        fputs("vigil alerts: reading the alert store failed\n", stderr);
        json_decref(arr);
        return 1;
    }
    if (arr != NULL) {
        json_dumpf(arr, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(arr);
    }
    return 0;
}

static int alerts_change(struct alerts_db *db, const struct alerts_opts *o, bool resolve)
{
    vigil_err rc = resolve ? alerts_resolve(db, o->id, 0) : alerts_ack(db, o->id, 0);

    if (rc == VIGIL_ERR_NOT_FOUND) {
        fprintf(stderr, "vigil alerts: no alert '%s'; see vigil alerts list\n", o->id);
        return 1;
    }
    if (rc == VIGIL_ERR_INVALID) {
        fprintf(stderr, "vigil alerts: alert '%s' is not %s\n", o->id,
                resolve ? "open or acknowledged" : "open");
        return 1;
    }
    if (rc != VIGIL_OK) {
        fprintf(stderr, "vigil alerts: updating alert '%s' failed: %s\n", o->id, vigil_strerror(rc));
        return 1;
    }
    printf("alert %s %s\n", o->id, resolve ? "resolved" : "acknowledged");
    if (fflush(stdout) != 0)
        return 1;
    return cli_admin_record(resolve ? "vigil alerts resolve" : "vigil alerts ack", o->data_dir,
                            NULL, resolve ? "alert_resolved" : "alert_acknowledged",
                            json_pack("{s:s}", "alert_id", o->id));
}

struct report_counts {
    unsigned long by_state[3];
    unsigned long total;
};

static void count_row(void *ctx, const struct alerts_row *r)
{
    struct report_counts *c = ctx;

    if ((unsigned)r->state < 3)
        c->by_state[r->state]++;
    c->total++;
}

static int report_cmd(struct alerts_db *db, const struct alerts_opts *o)
{
    struct report_counts c = {0};
    double mttd, mttr;

    if (alerts_list(db, -1, count_row, &c) != VIGIL_OK ||
        alerts_mttd_mttr(db, &mttd, &mttr) != VIGIL_OK) {
        fputs("vigil report: reading the alert store failed\n", stderr);
        return 1;
    }
    if (o->json) {
        json_t *j = json_pack("{s:I, s:I, s:I, s:I}", "alerts", (json_int_t)c.total, "open",
                              (json_int_t)c.by_state[ALERTS_OPEN], "acknowledged",
                              (json_int_t)c.by_state[ALERTS_ACKNOWLEDGED], "resolved",
                              (json_int_t)c.by_state[ALERTS_RESOLVED]);

        json_object_set_new(j, "mttd_s", mttd < 0 ? json_null() : json_real(mttd));
        json_object_set_new(j, "mttr_s", mttr < 0 ? json_null() : json_real(mttr));
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(j);
        return 0;
    }
    printf("alerts: %lu (open %lu, acknowledged %lu, resolved %lu)\n", c.total,
           c.by_state[ALERTS_OPEN], c.by_state[ALERTS_ACKNOWLEDGED], c.by_state[ALERTS_RESOLVED]);
    if (mttd < 0)
        printf("mean time to detect: no alerts yet\n");
    else
        printf("mean time to detect: %.3f s (first event to alert)\n", mttd);
    if (mttr < 0)
        printf("mean time to resolve: no resolved alerts yet\n");
    else
        printf("mean time to resolve: %.1f s (alert to resolution)\n", mttr);
    return 0;
}

static int alerts_run(int argc, char **argv, const char *action)
{
    struct alerts_opts o = {0};
    bool want_id = strcmp(action, "ack") == 0 || strcmp(action, "resolve") == 0;
    struct alerts_db *db;
    int rc = alerts_parse(argc, argv, &o, want_id);

    if (rc >= 0)
        return rc;
    if (alerts_open(o.data_dir, &db) != VIGIL_OK) {
        fprintf(stderr, "vigil %s: cannot open %s/alerts.db; check --data-dir\n",
                strcmp(action, "report") == 0 ? "report" : "alerts", o.data_dir);
        return 1;
    }
    if (strcmp(action, "list") == 0)
        rc = alerts_list_cmd(db, &o);
    else if (strcmp(action, "report") == 0)
        rc = report_cmd(db, &o);
    else
        rc = alerts_change(db, &o, strcmp(action, "resolve") == 0);
    alerts_close(db);
    return rc;
}

int cli_alerts(int argc, char **argv)
{
    static const char *const actions[] = {"list", "ack", "resolve"};

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        alerts_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < 3; i++)
        if (strcmp(argv[1], actions[i]) == 0)
            return alerts_run(argc - 1, argv + 1, actions[i]);
    fprintf(stderr, "vigil alerts: unknown action '%s': use list, ack or resolve\n", argv[1]);
    return 2;
}

int cli_report(int argc, char **argv)
{
    return alerts_run(argc, argv, "report");
}
