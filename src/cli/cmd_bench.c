/* vigil bench: runs one benchmark scenario against a broker, the
 * side-by-side suite against vigil, mosquitto and the raw relay, or the
 * relay itself. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/relay.h"
#include "bench/report.h"
#include "bench/scenario.h"
#include "bench/suite.h"
#include "bench/target.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/log.h"

#define DEFAULT_OUT_DIR "bench-results"
#define DEFAULT_SOURCE_ADDRS 16

/* Scenario fields given on the command line; -1 when not given. */
struct overrides {
    long long publishers, subscribers, connections, concurrency, qos, payload;
    long long warmup_ms, measure_ms, coalesce_us;
    double rate, start_rate, max_rate;
    bool durable;
};

struct bench_args {
    const char *scenario;     /* positional SCENARIO, NULL with --compare or --relay */
    bool compare, quick, keep, list;
    const char *relay;        /* --relay HOST:PORT */
    const char *report;       /* --report RESULTS.json */
    const char *broker;       /* --broker: start this broker for a single scenario */
    const char *host;
    long long port, pid;
    const char *vigil_bin, *mosquitto_bin, *out_dir, *only, *brokers, *json_path, *csv_path;
    long long tls_port;
    struct bench_tls_files tls; /* --cafile, --cert, --key, --client-id */
    struct overrides ov;
    struct bench_env env;
    char self[PATH_MAX];
};

static void usage(FILE *out)
{
    fputs("usage: vigil bench SCENARIO [options]      one scenario against one broker\n"
          "       vigil bench --compare [options]     the side-by-side suite\n"
          "       vigil bench --relay HOST:PORT       run the raw reference relay\n"
          "\n"
          "Scenarios: fan-in (N publishers -> 1 wildcard subscriber), fan-out (1 -> N\n"
          "subscribers), storm (connections/s), idle (memory per idle connection),\n"
          "tls (full TLS handshakes/s), hospital (devices at 1 msg/s, QoS 0/1/2).\n"
          "fan-in and fan-out sweep the offered rate to find the knee: the highest\n"
          "rate delivered in full with p99 latency at or below --p99-limit.\n"
          "\n"
          "target (one scenario):\n"
          "      --host ADDR        broker address, numeric IPv4 (default 127.0.0.1)\n"
          "      --port N           broker port (default 1883)\n"
          "      --pid PID          broker process, for its CPU time and memory\n"
          "      --broker NAME      start vigil, vigil-engine-off, mosquitto or relay\n"
          "                         on a free loopback port instead\n"
          "      --tls-port N --cafile F --cert F --key F --client-id ID\n"
          "                         MQTT over TLS for the tls scenario\n"
          "scenario:\n"
          "      --publishers N --subscribers N --connections N --concurrency N\n"
          "      --qos 0|1|2        publish and subscription QoS (fan-in, fan-out)\n"
          "      --payload BYTES    16 to 65536 (default 100)\n"
          "      --rate R           fixed offered publishes/s instead of the sweep\n"
          "      --start-rate R     first step of the sweep, publishes/s (x1.5 per step)\n"
          "      --max-rate R       no sweep step above R publishes/s\n"
          "      --coalesce US      fan-in: send what each publisher has due once per\n"
          "                         period of US microseconds, in one write; the knee's\n"
          "                         latency limit grows by US unless --p99-limit is given\n"
          "      --durable          fan-in, QoS 1/2: the subscriber keeps a persistent\n"
          "                         session, so the broker must hold every message for it\n"
          "      --duration MS      measured time per step; --warmup MS before it\n"
          "      --p99-limit US     knee latency limit (default 2000; fan-out 50000)\n"
          "      --quick            shorter runs and fewer connections\n"
          "suite:\n"
          "      --compare          run every scenario against each broker in turn\n"
          "      --only LIST        comma-separated suite scenario names (see --list)\n"
          "      --brokers LIST     among vigil, vigil-engine-off, mosquitto, relay\n"
          "      --out DIR          results directory (default bench-results)\n"
          "      --keep             keep the brokers' temporary directories\n"
          "      --list             print the suite's scenarios and exit\n"
          "      --report FILE      rebuild the summary and the CSV files of an earlier\n"
          "                         results.json into --out\n"
          "common:\n"
          "      --threads N        load generator threads, 1 to 4 (default 1)\n"
          "      --no-wait          measure at once instead of waiting until other\n"
          "                         processes use under 5% of a core, and keep\n"
          "                         disturbed steps (for profiling on a busy machine)\n"
          "      --vigil PATH       vigil binary to start (default: this one)\n"
          "      --mosquitto PATH   default /usr/sbin/mosquitto\n"
          "      --json FILE --csv FILE  one scenario: write its result there\n"
          "  -h, --help           show this help\n",
          out);
}

static bool parse_num(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

enum {
    OPT_HOST = 256, OPT_PORT, OPT_PID, OPT_BROKER, OPT_TLS_PORT, OPT_CAFILE, OPT_CERT, OPT_KEY,
    OPT_CLIENT_ID, OPT_PUBLISHERS, OPT_SUBSCRIBERS, OPT_CONNECTIONS, OPT_CONCURRENCY, OPT_QOS,
    OPT_PAYLOAD, OPT_RATE, OPT_DURATION, OPT_WARMUP, OPT_P99, OPT_QUICK, OPT_COMPARE, OPT_ONLY,
    OPT_BROKERS, OPT_OUT, OPT_KEEP, OPT_LIST, OPT_THREADS, OPT_VIGIL, OPT_MOSQUITTO, OPT_JSON,
    OPT_CSV, OPT_COALESCE, OPT_RELAY, OPT_START_RATE, OPT_MAX_RATE, OPT_REPORT, OPT_NO_WAIT, OPT_DURABLE,
};

static const struct option longopts[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"pid", required_argument, NULL, OPT_PID},
    {"broker", required_argument, NULL, OPT_BROKER},
    {"tls-port", required_argument, NULL, OPT_TLS_PORT},
    {"cafile", required_argument, NULL, OPT_CAFILE},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"client-id", required_argument, NULL, OPT_CLIENT_ID},
    {"publishers", required_argument, NULL, OPT_PUBLISHERS},
    {"subscribers", required_argument, NULL, OPT_SUBSCRIBERS},
    {"connections", required_argument, NULL, OPT_CONNECTIONS},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"qos", required_argument, NULL, OPT_QOS},
    {"payload", required_argument, NULL, OPT_PAYLOAD},
    {"rate", required_argument, NULL, OPT_RATE},
    {"start-rate", required_argument, NULL, OPT_START_RATE},
    {"max-rate", required_argument, NULL, OPT_MAX_RATE},
    {"coalesce", required_argument, NULL, OPT_COALESCE},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"p99-limit", required_argument, NULL, OPT_P99},
    {"quick", no_argument, NULL, OPT_QUICK},
    {"compare", no_argument, NULL, OPT_COMPARE},
    {"only", required_argument, NULL, OPT_ONLY},
    {"brokers", required_argument, NULL, OPT_BROKERS},
    {"out", required_argument, NULL, OPT_OUT},
    {"keep", no_argument, NULL, OPT_KEEP},
    {"list", no_argument, NULL, OPT_LIST},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"vigil", required_argument, NULL, OPT_VIGIL},
    {"mosquitto", required_argument, NULL, OPT_MOSQUITTO},
    {"json", required_argument, NULL, OPT_JSON},
    {"csv", required_argument, NULL, OPT_CSV},
    {"relay", required_argument, NULL, OPT_RELAY},
    {"report", required_argument, NULL, OPT_REPORT},
    {"no-wait", no_argument, NULL, OPT_NO_WAIT},
    {"durable", no_argument, NULL, OPT_DURABLE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Numeric options: the field each fills and its range. */
struct num_opt {
    int opt;
    const char *name;
    long long lo, hi;
    size_t offset;            /* of a long long in struct bench_args */
};

#define NUM(o, n, lo, hi, field) {o, n, lo, hi, offsetof(struct bench_args, field)}

static const struct num_opt num_opts[] = {
    NUM(OPT_PORT, "--port", 1, 65535, port),
    NUM(OPT_PID, "--pid", 1, INT_MAX, pid),
    NUM(OPT_TLS_PORT, "--tls-port", 1, 65535, tls_port),
    NUM(OPT_PUBLISHERS, "--publishers", 1, 1000000, ov.publishers),
    NUM(OPT_SUBSCRIBERS, "--subscribers", 1, 1000000, ov.subscribers),
    NUM(OPT_CONNECTIONS, "--connections", 1, 10000000, ov.connections),
    NUM(OPT_CONCURRENCY, "--concurrency", 1, 100000, ov.concurrency),
    NUM(OPT_QOS, "--qos", 0, 2, ov.qos),
    NUM(OPT_PAYLOAD, "--payload", 16, 65536, ov.payload),
    NUM(OPT_DURATION, "--duration", 100, 3600000, ov.measure_ms),
    NUM(OPT_WARMUP, "--warmup", 0, 600000, ov.warmup_ms),
    NUM(OPT_COALESCE, "--coalesce", 0, 1000000, ov.coalesce_us),
};

static int parse_number_opt(struct bench_args *a, int opt, const char *arg)
{
    for (size_t i = 0; i < sizeof num_opts / sizeof num_opts[0]; i++) {
        const struct num_opt *n = &num_opts[i];

        if (n->opt != opt)
            continue;
        if (!parse_num(arg, n->lo, n->hi, (long long *)((char *)a + n->offset))) {
            fprintf(stderr, "vigil bench: %s: expected an integer from %lld to %lld, got '%s'\n",
                    n->name, n->lo, n->hi, arg);
            return 2;
        }
        return -1;
    }
    return 0;
}

static int parse_double(const char *name, const char *arg, double lo, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(arg, &end);
    if (errno != 0 || end == arg || *end != '\0' || *out < lo) {
        fprintf(stderr, "vigil bench: %s: expected a number of at least %g, got '%s'\n", name, lo,
                arg);
        return 2;
    }
    return -1;
}

static int parse_threads(struct bench_args *a, const char *arg)
{
    long long n;

    if (!parse_num(arg, 1, 4, &n)) {
        fprintf(stderr, "vigil bench: --threads: expected 1 to 4, got '%s'\n", arg);
        return 2;
    }
    a->env.threads = (unsigned)n;
    return -1;
}

static void copy_path(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

/* Handles one option; returns -1 to go on, or an exit status. */
static int parse_option(struct bench_args *a, int opt, const char *arg)
{
    int st = parse_number_opt(a, opt, arg);

    if (st != 0)
        return st;
    switch (opt) {
    case OPT_HOST: a->host = arg; break;
    case OPT_BROKER: a->broker = arg; break;
    case OPT_CAFILE: copy_path(a->tls.ca, sizeof a->tls.ca, arg); break;
    case OPT_CERT: copy_path(a->tls.client_cert, sizeof a->tls.client_cert, arg); break;
    case OPT_KEY: copy_path(a->tls.client_key, sizeof a->tls.client_key, arg); break;
    case OPT_CLIENT_ID: copy_path(a->tls.client_id, sizeof a->tls.client_id, arg); break;
    case OPT_RATE: return parse_double("--rate", arg, 0.001, &a->ov.rate);
    case OPT_START_RATE: return parse_double("--start-rate", arg, 0.001, &a->ov.start_rate);
    case OPT_MAX_RATE: return parse_double("--max-rate", arg, 0.001, &a->ov.max_rate);
    case OPT_P99: return parse_double("--p99-limit", arg, 1, &a->env.p99_limit_us);
    case OPT_QUICK: a->quick = true; break;
    case OPT_COMPARE: a->compare = true; break;
    case OPT_ONLY: a->only = arg; break;
    case OPT_BROKERS: a->brokers = arg; break;
    case OPT_OUT: a->out_dir = arg; break;
    case OPT_KEEP: a->keep = true; break;
    case OPT_LIST: a->list = true; break;
    case OPT_THREADS: return parse_threads(a, arg);
    case OPT_VIGIL: a->vigil_bin = arg; break;
    case OPT_MOSQUITTO: a->mosquitto_bin = arg; break;
    case OPT_JSON: a->json_path = arg; break;
    case OPT_CSV: a->csv_path = arg; break;
    case OPT_RELAY: a->relay = arg; break;
    case OPT_REPORT: a->report = arg; break;
    case OPT_NO_WAIT: a->env.no_wait = true; break;
    case OPT_DURABLE: a->ov.durable = true; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
    return -1;
}

static void args_defaults(struct bench_args *a)
{
    memset(a, 0, sizeof *a);
    a->ov = (struct overrides){-1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, false};
    a->host = "127.0.0.1";
    a->port = 1883;
    a->mosquitto_bin = "/usr/sbin/mosquitto";
    a->out_dir = DEFAULT_OUT_DIR;
    a->env.threads = 1;
    a->env.source_addrs = DEFAULT_SOURCE_ADDRS;
    a->env.verbose = true;
    snprintf(a->tls.client_id, sizeof a->tls.client_id, "bench-tls");
    ssize_t n = readlink("/proc/self/exe", a->self, sizeof a->self - 1);
    a->self[n > 0 ? n : 0] = '\0';
    a->vigil_bin = a->self;
}

static int parse_args(int argc, char **argv, struct bench_args *a)
{
    int opt, st;

    args_defaults(a);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        st = parse_option(a, opt, optarg);
        if (st >= 0)
            return st;
    }
    if (optind < argc)
        a->scenario = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "vigil bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (a->compare && a->ov.durable) {
        fprintf(stderr, "vigil bench: --durable sets one fan-in run; the suite has its own "
                        "fanin-q1-durable scenario\n");
        return 2;
    }
    if (a->compare && a->ov.coalesce_us >= 0) {
        fprintf(stderr, "vigil bench: --coalesce sets one fan-in run; the suite's "
                        "fanin-coalesce scenario has its own period\n");
        return 2;
    }
    if (!a->compare && !a->list && a->relay == NULL && a->report == NULL && a->scenario == NULL) {
        fprintf(stderr, "vigil bench: name a SCENARIO, or give --compare, --report or --relay\n");
        usage(stderr);
        return 2;
    }
    return -1;
}

static void apply_overrides(const struct overrides *ov, struct bench_scenario *s)
{
    if (ov->publishers >= 0)
        s->publishers = (uint32_t)ov->publishers;
    if (ov->subscribers >= 0)
        s->subscribers = (uint32_t)ov->subscribers;
    if (ov->connections >= 0)
        s->connections = (uint32_t)ov->connections;
    if (ov->concurrency >= 0)
        s->concurrency = (uint32_t)ov->concurrency;
    if (ov->qos >= 0)
        s->qos = (uint8_t)ov->qos;
    if (ov->payload >= 0)
        s->payload = (uint32_t)ov->payload;
    if (ov->measure_ms >= 0)
        s->measure_ms = (uint32_t)ov->measure_ms;
    if (ov->warmup_ms >= 0)
        s->warmup_ms = (uint32_t)ov->warmup_ms;
    if (ov->coalesce_us >= 0)
        s->coalesce_us = (uint32_t)ov->coalesce_us;
    if (ov->durable) {
        s->durable_sub = true;
        s->persistence = true;
    }
    if (ov->rate > 0)
        s->rate = ov->rate;
    if (ov->start_rate > 0)
        s->start_rate = ov->start_rate;
    if (ov->max_rate > 0)
        s->max_rate = ov->max_rate;
}

static int run_relay(const char *spec)
{
    struct config_listener l = {0};
    char err[256];

    if (config_parse_listener(spec, &l, err, sizeof err) != VIGIL_OK ||
        strchr(l.host, ':') != NULL) {
        fprintf(stderr, "vigil bench: --relay: expected IPV4:PORT, got '%s'\n", spec);
        return 2;
    }
    return bench_relay_run(l.host, l.port);
}

/* The command line as one string, for results.json. */
static void join_args(int argc, char **argv, char *out, size_t cap)
{
    size_t len = 0;

    out[0] = '\0';
    snprintf(out, cap, "vigil");
    len = strlen(out);
    for (int i = 0; i < argc && len + 1 < cap; i++) {
        snprintf(out + len, cap - len, " %s", argv[i]);
        len += strlen(out + len);
    }
}

static int run_compare(struct bench_args *a, int argc, char **argv)
{
    char command[2048];
    struct bench_compare_opts o = {.vigil_bin = a->vigil_bin, .mosquitto_bin = a->mosquitto_bin,
                                   .out_dir = a->out_dir, .only = a->only,
                                   .brokers = a->brokers, .command = command, .quick = a->quick,
                                   .keep = a->keep, .env = a->env};

    join_args(argc, argv, command, sizeof command);
    for (const char *p = a->brokers; p != NULL;) {
        char name[32];

        snprintf(name, sizeof name, "%.*s", (int)strcspn(p, ","), p);
        if (bench_broker_parse(name) < 0) {
            fprintf(stderr, "vigil bench: --brokers: unknown broker '%s'\n", name);
            return 2;
        }
        p = strchr(p, ',');
        if (p != NULL)
            p++;
    }
    o.env.max_connections = bench_raise_fd_limit();
    return bench_compare(&o);
}

/* Writes one result to stdout or --json, and its steps to --csv. */
static int emit_result(const struct bench_args *a, json_t *res)
{
    FILE *f;

    if (a->json_path != NULL ? json_dump_file(res, a->json_path, JSON_INDENT(1)) != 0
                             : json_dumpf(res, stdout, JSON_INDENT(1)) != 0) {
        fprintf(stderr, "vigil bench: cannot write the result\n");
        return 1;
    }
    if (a->json_path == NULL)
        putchar('\n');
    if (a->csv_path == NULL)
        return 0;
    f = fopen(a->csv_path, "w");
    if (f == NULL) {
        fprintf(stderr, "vigil bench: cannot write %s: %s\n", a->csv_path, strerror(errno));
        return 1;
    }
    bench_write_steps_csv(f, NULL, 1);
    bench_write_steps_csv(f, res, 0);
    fclose(f);
    return 0;
}

/* Fills t from --host, --port, --pid and the TLS options. */
static int external_target(struct bench_args *a, struct bench_target *t)
{
    memset(t, 0, sizeof *t);
    t->kind = BENCH_BROKER_EXTERNAL;
    snprintf(t->name, sizeof t->name, "external");
    snprintf(t->host, sizeof t->host, "%s", a->host);
    t->port = (uint16_t)a->port;
    t->pid = a->pid > 0 ? (pid_t)a->pid : 0;
    if (a->tls_port > 0) {
        if (a->tls.ca[0] == '\0' || a->tls.client_cert[0] == '\0' ||
            a->tls.client_key[0] == '\0') {
            fprintf(stderr, "vigil bench: --tls-port needs --cafile, --cert and --key\n");
            return 2;
        }
        t->tls_port = (uint16_t)a->tls_port;
        t->tls = &a->tls;
    }
    return -1;
}

static int owned_target(struct bench_args *a, const struct bench_scenario *s, char *work,
                        struct bench_target *t)
{
    struct bench_launch l = {.vigil_bin = a->vigil_bin, .mosquitto_bin = a->mosquitto_bin,
                             .work_dir = work, .persistence = s->persistence,
                             .max_connections = 100000};
    int kind = bench_broker_parse(a->broker);
    char err[512];

    if (kind < 0) {
        fprintf(stderr, "vigil bench: --broker: unknown broker '%s'\n", a->broker);
        return 2;
    }
    if (mkdtemp(work) == NULL) {
        fprintf(stderr, "vigil bench: cannot create %s: %s\n", work, strerror(errno));
        return 1;
    }
    if (s->kind == BENCH_TLS) {
        if (bench_tls_prepare(a->vigil_bin, work, &a->tls, err, sizeof err) != VIGIL_OK) {
            fprintf(stderr, "vigil bench: %s\n", err);
            return 1;
        }
        l.tls = &a->tls;
    }
    if (bench_target_start((uint8_t)kind, &l, t, err, sizeof err) != VIGIL_OK) {
        fprintf(stderr, "vigil bench: %s\n", err);
        bench_target_stop(t);
        return 1;
    }
    fprintf(stderr, "vigil bench: %s files in %s\n", t->name, work);
    return -1;
}

static int run_single(struct bench_args *a)
{
    struct bench_scenario s;
    struct bench_target t;
    char err[512], work[] = "/tmp/vigil-bench.XXXXXX";
    int kind = bench_kind_parse(a->scenario), st;
    json_t *res;

    if (kind < 0) {
        fprintf(stderr, "vigil bench: unknown scenario '%s'; expected fan-in, fan-out, storm, "
                        "idle, tls or hospital\n", a->scenario);
        return 2;
    }
    if (a->ov.coalesce_us > 0 && kind != BENCH_FANIN) {
        fprintf(stderr, "vigil bench: --coalesce applies to fan-in only, not to %s\n",
                a->scenario);
        return 2;
    }
    bench_scenario_defaults(&s, (uint8_t)kind, a->quick);
    apply_overrides(&a->ov, &s);
    if (s.durable_sub && (kind != BENCH_FANIN || s.qos == 0)) {
        fprintf(stderr, "vigil bench: --durable applies to fan-in with --qos 1 or 2\n");
        return 2;
    }
    a->env.max_connections = bench_raise_fd_limit();
    st = a->broker != NULL ? owned_target(a, &s, work, &t) : external_target(a, &t);
    if (st >= 0)
        return st;
    res = bench_run(&s, &t, &a->env, err, sizeof err);
    bench_target_stop(&t);
    if (res == NULL) {
        fprintf(stderr, "vigil bench: %s: %s\n", s.name, err);
        return 1;
    }
    st = emit_result(a, res);
    json_decref(res);
    return st;
}

/* Rebuilds the summary of an earlier run, for example after the summary
 * rules changed, without running anything. */
static int run_report(const struct bench_args *a)
{
    json_error_t jerr;
    json_t *doc = json_load_file(a->report, 0, &jerr);
    char err[512];
    int status = 0;

    if (doc == NULL || !json_is_array(json_object_get(doc, "results"))) {
        fprintf(stderr, "vigil bench: %s: %s\n", a->report,
                doc == NULL ? jerr.text : "no \"results\" array");
        json_decref(doc);
        return 1;
    }
    if (mkdir(a->out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "vigil bench: cannot create %s: %s\n", a->out_dir, strerror(errno));
        json_decref(doc);
        return 1;
    }
    json_object_set_new(doc, "summary", bench_summarize(json_object_get(doc, "results")));
    if (bench_write_outputs(a->out_dir, doc, err, sizeof err) != VIGIL_OK) {
        fprintf(stderr, "vigil bench: %s\n", err);
        status = 1;
    } else {
        bench_print_summary(stdout, json_object_get(doc, "summary"));
    }
    json_decref(doc);
    return status;
}

int cli_bench(int argc, char **argv)
{
    struct bench_args a;
    int st = parse_args(argc, argv, &a);

    if (st >= 0)
        return st;
    vigil_log_set_level(VIGIL_LOG_WARN);
    if (a.relay != NULL)
        return run_relay(a.relay);
    if (a.list) {
        bench_list_suite(a.quick);
        return 0;
    }
    if (a.report != NULL)
        return run_report(&a);
    if (a.compare)
        return run_compare(&a, argc - 1, argv + 1);
    return run_single(&a);
}
