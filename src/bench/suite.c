/* The side-by-side suite (see suite.h). */
#include "bench/suite.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "bench/report.h"
#include "core/log.h"
#include "core/time.h"

#define SUITE_MAX 24
#define BROKER_BIT(k) (1u << (k))
#define THREE_BROKERS                                                                        \
    (BROKER_BIT(BENCH_BROKER_VIGIL) | BROKER_BIT(BENCH_BROKER_MOSQUITTO) |                    \
     BROKER_BIT(BENCH_BROKER_RELAY))
#define VIGIL_MAX_CONNECTIONS 100000

struct suite_entry {
    struct bench_scenario s;
    uint32_t brokers;         /* BROKER_BIT() of each broker that runs it */
};

/* Brokers in the order they run within a scenario. */
static const uint8_t broker_order[] = {BENCH_BROKER_VIGIL, BENCH_BROKER_VIGIL_NOENGINE,
                                       BENCH_BROKER_MOSQUITTO, BENCH_BROKER_RELAY};

static struct suite_entry *add(struct suite_entry *list, size_t *n, const char *name,
                               uint8_t kind, bool quick, uint32_t brokers)
{
    struct suite_entry *e = &list[(*n)++];

    bench_scenario_defaults(&e->s, kind, quick);
    snprintf(e->s.name, sizeof e->s.name, "%s", name);
    e->brokers = brokers;
    return e;
}

static size_t build_suite(bool quick, struct suite_entry *list)
{
    static const uint32_t sizes_full[] = {16, 1024, 16384};
    static const uint32_t sizes_quick[] = {16, 16384};
    const uint32_t *sizes = quick ? sizes_quick : sizes_full;
    size_t n_sizes = quick ? 2 : 3, n = 0;
    uint32_t engine = BROKER_BIT(BENCH_BROKER_VIGIL_NOENGINE);
    struct suite_entry *e;

    add(list, &n, "fanin-q0", BENCH_FANIN, quick, THREE_BROKERS | engine);
    for (uint8_t qos = 1; qos <= 2; qos++) {
        e = add(list, &n, qos == 1 ? "fanin-q1" : "fanin-q2", BENCH_FANIN, quick, THREE_BROKERS);
        e->s.qos = qos;
        e->s.persistence = true;
    }
    /* The subscriber of fanin-q1 has a clean session: once a message is
     * delivered to it, a restart has nothing to give back, so vigil
     * acknowledges without writing. Here the subscriber's session
     * persists, so each message is vigil's to store until acknowledged. */
    e = add(list, &n, "fanin-q1-durable", BENCH_FANIN, quick, BROKER_BIT(BENCH_BROKER_VIGIL) |
                                                              BROKER_BIT(BENCH_BROKER_MOSQUITTO));
    e->s.qos = 1;
    e->s.persistence = true;
    e->s.durable_sub = true;
    add(list, &n, "fanout", BENCH_FANOUT, quick, THREE_BROKERS);
    for (size_t i = 0; i < n_sizes; i++) {
        char name[32];

        snprintf(name, sizeof name, "payload-%u", sizes[i]);
        e = add(list, &n, name, BENCH_FANIN, quick, THREE_BROKERS);
        e->s.publishers = 100;
        e->s.payload = sizes[i];
    }
    /* The same fan-in from 100 publishers that send what they have due
     * once a millisecond: fewer, larger writes, so the kernel's per-write
     * cost on loopback no longer caps every broker near the relay's rate. */
    e = add(list, &n, "fanin-coalesce", BENCH_FANIN, quick, THREE_BROKERS);
    e->s.publishers = 100;
    e->s.coalesce_us = 1000;
    e->s.start_rate = 20000;
    add(list, &n, "storm", BENCH_STORM, quick, THREE_BROKERS);
    add(list, &n, "idle", BENCH_IDLE, quick, THREE_BROKERS);
    add(list, &n, "tls", BENCH_TLS, quick,
        BROKER_BIT(BENCH_BROKER_VIGIL) | BROKER_BIT(BENCH_BROKER_MOSQUITTO));
    add(list, &n, "hospital", BENCH_HOSPITAL, quick,
        BROKER_BIT(BENCH_BROKER_VIGIL) | BROKER_BIT(BENCH_BROKER_MOSQUITTO) | engine);
    return n;
}

static bool in_list(const char *list, const char *name)
{
    size_t len = strlen(name);
    const char *p = list;

    if (list == NULL)
        return true;
    while (p != NULL) {
        if (strncmp(p, name, len) == 0 && (p[len] == ',' || p[len] == '\0'))
            return true;
        p = strchr(p, ',');
        if (p != NULL)
            p++;
    }
    return false;
}

void bench_list_suite(bool quick)
{
    struct suite_entry list[SUITE_MAX];
    size_t n = build_suite(quick, list);

    for (size_t i = 0; i < n; i++) {
        const struct bench_scenario *s = &list[i].s;

        printf("%-16s %-9s", s->name, bench_kind_name(s->kind));
        for (size_t b = 0; b < sizeof broker_order; b++)
            if (list[i].brokers & BROKER_BIT(broker_order[b]))
                printf(" %s", bench_broker_name(broker_order[b]));
        putchar('\n');
    }
}

uint32_t bench_raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1000;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < 1024)
        return 512;
    /* Headroom for the broker's own files and the generator's epoll and
     * event descriptors. */
    return rl.rlim_cur > 1000000 ? 1000000 - 256 : (uint32_t)rl.rlim_cur - 256;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

struct suite_run {
    const struct bench_compare_opts *o;
    char work_dir[512];
    struct bench_tls_files tls;
    bool tls_ready;
    json_t *results;
    int failures;
};

static void record_error(struct suite_run *run, const char *scenario, const char *broker,
                         const char *reason)
{
    fprintf(stderr, "vigil bench: %s on %s: %s\n", scenario, broker, reason);
    json_array_append_new(run->results,
                          json_pack("{s:s, s:s, s:s}", "scenario", scenario, "broker", broker,
                                    "error", reason));
    run->failures++;
}

/* Starts one broker, runs the scenario against it and stops it. */
static void run_one(struct suite_run *run, const struct bench_scenario *s, uint8_t kind)
{
    const struct bench_compare_opts *o = run->o;
    struct bench_launch l = {.vigil_bin = o->vigil_bin, .mosquitto_bin = o->mosquitto_bin,
                             .work_dir = run->work_dir, .persistence = s->persistence,
                             .tls = s->kind == BENCH_TLS ? &run->tls : NULL,
                             .max_connections = VIGIL_MAX_CONNECTIONS};
    struct bench_target t;
    char err[512];
    json_t *res;

    if (bench_target_start(kind, &l, &t, err, sizeof err) != VIGIL_OK) {
        bench_target_stop(&t);
        record_error(run, s->name, bench_broker_name(kind), err);
        return;
    }
    res = bench_run(s, &t, &o->env, err, sizeof err);
    if (res == NULL && !bench_target_alive(&t))
        snprintf(err + strlen(err), sizeof err - strlen(err), " (%s exited; see %s/broker.log)",
                 t.name, t.dir);
    if (!bench_target_stop(&t) && res != NULL)
        json_object_set_new(res, "broker_exit", json_string("not clean: see broker.log"));
    if (res == NULL) {
        record_error(run, s->name, t.name, err);
        return;
    }
    json_object_set_new(res, "broker_dir", json_string(t.dir));
    json_array_append_new(run->results, res);
}

static void run_entry(struct suite_run *run, const struct suite_entry *e)
{
    char err[512];

    if (e->s.kind == BENCH_TLS && !run->tls_ready) {
        if (bench_tls_prepare(run->o->vigil_bin, run->work_dir, &run->tls, err, sizeof err) !=
            VIGIL_OK) {
            record_error(run, e->s.name, "all", err);
            return;
        }
        run->tls_ready = true;
    }
    for (size_t b = 0; b < sizeof broker_order; b++) {
        if (!(e->brokers & BROKER_BIT(broker_order[b])) ||
            !in_list(run->o->brokers, bench_broker_name(broker_order[b])))
            continue;
        fprintf(stderr, "== %s on %s\n", e->s.name, bench_broker_name(broker_order[b]));
        run_one(run, &e->s, broker_order[b]);
    }
}

static json_t *document(struct suite_run *run, time_t started)
{
    char when[40];

    vigil_time_format_rfc3339((int64_t)started * 1000000, when, sizeof when);
    return json_pack("{s:i, s:s, s:s, s:b, s:f, s:i, s:o, s:O, s:o, s:f}", "format", 1,
                     "command", run->o->command, "started", when, "quick", run->o->quick,
                     "p99_limit_override_us", run->o->env.p99_limit_us, "threads",
                     (int)run->o->env.threads, "machine",
                     bench_machine_info(run->o->mosquitto_bin), "results", run->results,
                     "summary", bench_summarize(run->results), "elapsed_s",
                     difftime(time(NULL), started));
}

static int finish(struct suite_run *run, time_t started)
{
    json_t *doc = document(run, started);
    char err[512];
    int status = run->failures > 0 ? 1 : 0;

    if (bench_write_outputs(run->o->out_dir, doc, err, sizeof err) != VIGIL_OK) {
        fprintf(stderr, "vigil bench: %s\n", err);
        status = 1;
    } else {
        bench_print_summary(stdout, json_object_get(doc, "summary"));
        fprintf(stderr, "vigil bench: results in %s (%.0f s)\n", run->o->out_dir,
                difftime(time(NULL), started));
    }
    json_decref(doc);
    return status;
}

int bench_compare(const struct bench_compare_opts *o)
{
    struct suite_entry list[SUITE_MAX];
    struct suite_run run = {.o = o, .results = json_array()};
    size_t n = build_suite(o->quick, list);
    time_t started = time(NULL);
    int status;

    if (mkdir(o->out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "vigil bench: cannot create %s: %s\n", o->out_dir, strerror(errno));
        return 1;
    }
    snprintf(run.work_dir, sizeof run.work_dir, "/tmp/vigil-bench.XXXXXX");
    if (mkdtemp(run.work_dir) == NULL) {
        fprintf(stderr, "vigil bench: cannot create a directory in /tmp: %s\n", strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (in_list(o->only, list[i].s.name))
            run_entry(&run, &list[i]);
    status = finish(&run, started);
    json_decref(run.results);
    if (!o->keep)
        nftw(run.work_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    else
        fprintf(stderr, "vigil bench: broker directories kept in %s\n", run.work_dir);
    return status;
}
