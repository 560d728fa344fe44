/* Connection scenarios: the connection storm, idle connections (broker
 * memory per connection) and full TLS handshakes per second. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/churn.h"
#include "bench/loadgen.h"
#include "bench/scenario.h"
#include "core/alloc.h"

#define CHURN_TIMEOUT_MS 120000
#define IDLE_CONNECT_TIMEOUT_MS 300000
#define IDLE_SETTLE_MS 2000
#define IDLE_QUIET_PCT 2.0       /* the broker counts as settled below this */
#define IDLE_QUIET_WAIT_MS 30000
#define QUIET_OTHER_PCT 5.0      /* other processes: the machine counts as quiet below this */
#define QUIET_WAIT_MS 60000

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static uint64_t broker_cpu(const struct bench_target *t)
{
    struct bench_proc_sample s;

    return t->pid > 0 && bench_proc_read(t->pid, &s) == VIGIL_OK ? s.cpu_ns : 0;
}

static json_t *churn_json(const struct bench_scenario *s, const struct bench_target *t,
                          const struct churn_result *r, uint64_t broker_ns)
{
    double secs = r->elapsed_s > 0 ? r->elapsed_s : 1e-9;
    const char *rate_key = s->kind == BENCH_TLS ? "handshakes_per_s" : "connects_per_s";

    return json_pack("{s:s, s:s, s:{s:s, s:i, s:i}, s:f, s:I, s:I, s:s, s:f, s:f, s:f, s:f, "
                     "s:f, s:f, s:f, s:f}",
                     "scenario", s->name, "broker", t->name, "params", "kind",
                     bench_kind_name(s->kind), "connections", (int)s->connections,
                     "concurrency", (int)s->concurrency, rate_key,
                     (double)r->completed / secs, "completed", (json_int_t)r->completed,
                     "failed", (json_int_t)r->failed, "first_error", r->first_error,
                     "elapsed_s", r->elapsed_s, "p50_us", us(bench_hist_percentile(&r->hist, 50)),
                     "p99_us", us(bench_hist_percentile(&r->hist, 99)), "p999_us",
                     us(bench_hist_percentile(&r->hist, 99.9)), "max_us",
                     us(r->hist.max), "broker_cpu_pct", (double)broker_ns / (secs * 1e7),
                     "gen_cpu_pct", (double)r->gen_cpu_ns / (secs * 1e7),
                     "broker_cpu_us_per_conn",
                     r->completed ? (double)broker_ns / 1000.0 / (double)r->completed : 0.0);
}

static json_t *run_churn(const struct bench_scenario *s, const struct bench_target *t,
                         const struct bench_env *env, char *err, size_t errcap)
{
    struct churn_options opt = {.threads = env->threads, .total = s->connections,
                                .concurrency = s->concurrency, .timeout_ms = CHURN_TIMEOUT_MS,
                                .source_addrs = env->source_addrs};
    struct churn_result *r = vigil_malloc(sizeof *r);
    struct bench_system_sample s0 = {0}, s1 = {0};
    uint64_t b0, b1;
    json_t *res = NULL;
    vigil_err rc;

    if (r == NULL) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    snprintf(opt.host, sizeof opt.host, "%s", t->host);
    opt.port = t->port;
    snprintf(opt.client_prefix, sizeof opt.client_prefix, "b%ds", (int)getpid());
    if (s->kind == BENCH_TLS) {
        opt.port = t->tls_port;
        opt.tls = t->tls;
        snprintf(opt.client_prefix, sizeof opt.client_prefix, "%s", t->tls->client_id);
    }
    if (!env->no_wait)
        bench_wait_machine_quiet(t->pid, QUIET_OTHER_PCT, QUIET_WAIT_MS, env->verbose);
    bench_system_read(&s0);
    b0 = broker_cpu(t);
    rc = churn_run(&opt, r);
    b1 = broker_cpu(t);
    bench_system_read(&s1);
    if (rc != VIGIL_OK)
        snprintf(err, errcap, "connection loop: %s%s%s", vigil_strerror(rc),
                 r->first_error[0] ? ": " : "", r->first_error);
    else if (!bench_target_alive(t))
        snprintf(err, errcap, "%s stopped during the run", t->name);
    else
        res = churn_json(s, t, r, b1 > b0 ? b1 - b0 : 0);
    if (res != NULL) {
        double other = (double)(s1.task_ns - s0.task_ns) - (double)(b1 - b0) -
                       (double)r->gen_cpu_ns;

        json_object_set_new(res, "other_cpu_pct",
                            json_real(other > 0 && r->elapsed_s > 0
                                          ? other / (r->elapsed_s * 1e7) : 0));
    }
    if (res != NULL && env->verbose)
        fprintf(stderr, "  %-16s %-9s %8.0f/s completed %llu failed %llu p99 %.0f us\n", t->name,
                s->name, (double)r->completed / (r->elapsed_s > 0 ? r->elapsed_s : 1),
                (unsigned long long)r->completed, (unsigned long long)r->failed,
                us(bench_hist_percentile(&r->hist, 99)));
    vigil_free(r);
    return res;
}

static struct lg *idle_lg(const struct bench_target *t, const struct bench_env *env, uint32_t n)
{
    struct lg_options opt = {.port = t->port, .threads = env->threads,
                             .source_addrs = env->source_addrs, .keep_alive = 600,
                             .max_inflight = 1, .tx_limit = 4096, .connect_window = 128};
    struct lg_workload wl = {.n_idle = n, .payload = LG_PAYLOAD_MIN, .fanout = 1};
    struct lg *lg;

    snprintf(opt.host, sizeof opt.host, "%s", t->host);
    snprintf(opt.client_prefix, sizeof opt.client_prefix, "b%di", (int)getpid());
    return lg_create(&opt, &wl, &lg) == VIGIL_OK ? lg : NULL;
}

static json_t *idle_json(const struct bench_scenario *s, const struct bench_target *t,
                         uint32_t n, const struct bench_proc_sample *before,
                         const struct bench_proc_sample *after, double connect_s)
{
    double per_conn = ((double)after->rss_kb - (double)before->rss_kb) * 1024.0 / n;

    return json_pack("{s:s, s:s, s:{s:s, s:i}, s:i, s:I, s:I, s:I, s:f, s:f, s:f}", "scenario",
                     s->name, "broker", t->name, "params", "kind", bench_kind_name(s->kind),
                     "requested", (int)s->connections, "connections", (int)n, "rss_before_kb",
                     (json_int_t)before->rss_kb, "rss_after_kb", (json_int_t)after->rss_kb,
                     "broker_hwm_kb", (json_int_t)after->hwm_kb, "bytes_per_connection",
                     per_conn, "connect_s", connect_s, "connects_per_s", n / connect_s);
}

static json_t *run_idle(const struct bench_scenario *s, const struct bench_target *t,
                        const struct bench_env *env, char *err, size_t errcap)
{
    uint32_t n = s->connections < env->max_connections ? s->connections : env->max_connections;
    struct bench_proc_sample before, after;
    struct lg *lg;
    uint64_t t0;
    bool settled = false;
    json_t *res = NULL;

    if (t->pid <= 0) {
        snprintf(err, errcap, "the idle scenario reads the broker's memory: give its --pid");
        return NULL;
    }
    lg = idle_lg(t, env, n);
    if (lg == NULL) {
        snprintf(err, errcap, "load generator: cannot create %u connections", n);
        return NULL;
    }
    sleep_ms(IDLE_SETTLE_MS / 2);
    if (!env->no_wait)
        bench_wait_machine_quiet(t->pid, QUIET_OTHER_PCT, QUIET_WAIT_MS, env->verbose);
    bench_proc_read(t->pid, &before);
    t0 = bench_now_ns();
    if (lg_connect(lg, IDLE_CONNECT_TIMEOUT_MS, err, errcap) == VIGIL_OK) {
        double connect_s = (double)(bench_now_ns() - t0) / 1e9;

        /* Memory is read once the broker has also finished what the burst
         * of CONNECTs left to do (events, log records), so that transient
         * queues do not count as the cost of an idle connection. */
        sleep_ms(IDLE_SETTLE_MS);
        settled = bench_wait_proc_quiet(t->pid, IDLE_QUIET_PCT, IDLE_QUIET_WAIT_MS);
        if (!settled && env->verbose)
            fprintf(stderr, "  %s still busy %d s after the connections; measuring anyway\n",
                    t->name, (IDLE_SETTLE_MS + IDLE_QUIET_WAIT_MS) / 1000);
        if (bench_proc_read(t->pid, &after) == VIGIL_OK && lg_ready(lg) == n)
            res = idle_json(s, t, n, &before, &after, connect_s);
        else
            snprintf(err, errcap, "%s lost connections while idle", t->name);
    }
    if (res != NULL)
        json_object_set_new(res, "settled", json_boolean(settled));
    if (res != NULL && s->connections > n)
        json_object_set_new(res, "capped_by",
                            json_string("RLIMIT_NOFILE: each connection takes a descriptor in "
                                        "the broker and one in the load generator"));
    if (res != NULL && env->verbose)
        fprintf(stderr, "  %-16s %-9s %u connections: %.0f bytes each (RSS %llu -> %llu kB)\n",
                t->name, s->name, n,
                json_real_value(json_object_get(res, "bytes_per_connection")),
                (unsigned long long)before.rss_kb, (unsigned long long)after.rss_kb);
    lg_disconnect(lg);
    lg_destroy(lg);
    return res;
}

json_t *bench_run_connections(const struct bench_scenario *s, const struct bench_target *t,
                              const struct bench_env *env, char *err, size_t errcap)
{
    if (s->kind == BENCH_IDLE)
        return run_idle(s, t, env, err, errcap);
    if (s->kind == BENCH_TLS && (t->tls == NULL || t->tls_port == 0)) {
        snprintf(err, errcap, "%s has no TLS listener", t->name);
        return NULL;
    }
    return run_churn(s, t, env, err, errcap);
}
