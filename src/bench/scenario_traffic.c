/* Fan-in, fan-out and the hospital profile: message traffic through the
 * broker, either at one fixed offered rate or as a sweep that finds the
 * knee, the highest offered rate delivered in full with p99 latency at or
 * below the limit. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/loadgen.h"
#include "bench/scenario.h"
#include "core/alloc.h"

#define CONNECT_TIMEOUT_MS 120000
#define SWEEP_FACTOR 1.5
#define SWEEP_MAX_STEPS 20
#define SWEEP_REFINE_STEPS 2
#define QUIET_CPU_PCT 10.0       /* the broker counts as idle below this */
#define QUIET_MAX_MS 3000
#define QUIET_OTHER_PCT 5.0      /* other processes: the machine counts as quiet below this */
#define QUIET_WAIT_MS 60000
#define DISTURBED_PCT 10.0       /* a step with more other CPU use than this runs again */
#define DISTURBED_TRIES 3

struct traffic {
    const struct bench_scenario *s;
    const struct bench_target *t;
    const struct bench_env *env;
    struct lg *lg;
    struct lg_result *r;      /* owned scratch result */
    uint32_t fanout;
    char prefix[24];          /* client id prefix, also the device part of hospital topics */
    json_t *steps;            /* borrowed from the result object */
};

static void fanin_topic(void *ctx, uint32_t i, uint8_t qos, char *out, size_t cap)
{
    snprintf(out, cap, "bench/in/%u", i);
}

static void fanin_filter(void *ctx, uint32_t i, uint8_t qos, char *out, size_t cap)
{
    snprintf(out, cap, "bench/in/#");
}

static void fanout_topic(void *ctx, uint32_t i, uint8_t qos, char *out, size_t cap)
{
    snprintf(out, cap, "bench/out");
}

/* Hospital topics follow <site>/<unit>/<room>/<device>/<metric>; the
 * device part is the client id, and unit u has central station u. */
static void hospital_topic(void *ctx, uint32_t i, uint8_t qos, char *out, size_t cap)
{
    static const char *const metric[] = {"vitals", "status", "alarm"};
    const struct traffic *tr = ctx;

    snprintf(out, cap, "north/unit%02u/room%05u/%s-p%u/%s", i % tr->s->subscribers, i,
             tr->prefix, i, metric[qos]);
}

static void hospital_filter(void *ctx, uint32_t i, uint8_t qos, char *out, size_t cap)
{
    snprintf(out, cap, "north/unit%02u/#", i);
}

/* Per device and 100 messages: one QoS 2 alarm, nine QoS 1 status
 * messages, 90 QoS 0 vital signs. The device index shifts the pattern so
 * the alarms of all devices do not fall in the same second. */
static uint8_t hospital_qos(void *ctx, uint32_t i, uint64_t seq)
{
    uint64_t k = (seq + i) % 100;

    if (k == 99)
        return 2;
    if (k % 10 == 9)
        return 1;
    return 0;
}

static void workload(struct traffic *tr, struct lg_workload *wl)
{
    const struct bench_scenario *s = tr->s;

    memset(wl, 0, sizeof *wl);
    wl->n_pub = s->publishers;
    wl->n_sub = s->subscribers;
    wl->pub_qos = s->qos;
    wl->sub_qos = s->qos;
    wl->sub_persistent = s->durable_sub;
    wl->payload = s->payload;
    wl->ctx = tr;
    wl->fanout = 1;
    if (s->kind == BENCH_FANIN) {
        wl->pub_topic = fanin_topic;
        wl->sub_filter = fanin_filter;
    } else if (s->kind == BENCH_FANOUT) {
        wl->pub_topic = fanout_topic;
        wl->sub_filter = fanout_topic;
        wl->fanout = s->subscribers;
    } else {
        wl->pub_topic = hospital_topic;
        wl->sub_filter = hospital_filter;
        wl->msg_qos = hospital_qos;
        wl->sub_qos = 2;
    }
    tr->fanout = wl->fanout;
}

static vigil_err start_lg(struct traffic *tr, char *err, size_t errcap)
{
    struct lg_options opt = {.port = tr->t->port, .threads = tr->env->threads,
                             .source_addrs = tr->env->source_addrs, .keep_alive = 600,
                             .max_inflight = 64, .connect_window = 64};
    struct lg_workload wl;
    vigil_err rc;

    workload(tr, &wl);
    snprintf(opt.host, sizeof opt.host, "%s", tr->t->host);
    snprintf(opt.client_prefix, sizeof opt.client_prefix, "%s", tr->prefix);
    /* Enough for bursts at the highest rates without letting 1000
     * publishers hold gigabytes when the broker stops reading. */
    opt.tx_limit = tr->s->publishers >= 100 ? 256u * 1024 : 8u * 1024 * 1024;
    opt.coalesce_us = tr->s->coalesce_us;
    rc = lg_create(&opt, &wl, &tr->lg);
    if (rc != VIGIL_OK) {
        snprintf(err, errcap, "load generator: %s", vigil_strerror(rc));
        return rc;
    }
    rc = lg_connect(tr->lg, CONNECT_TIMEOUT_MS, err, errcap);
    return rc;
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

/* A coalescing generator delays each publish by up to one period before
 * sending it, so the period is added to the scenario's own limit. */
static double p99_limit(const struct traffic *tr)
{
    if (tr->env->p99_limit_us > 0)
        return tr->env->p99_limit_us;
    return tr->s->p99_limit_us + tr->s->coalesce_us;
}

static bool step_passes(const struct traffic *tr, const struct lg_result *r)
{
    return r->conn_lost == 0 && r->gen_dropped == 0 && r->expected > 0 &&
           r->received >= r->expected &&
           us(bench_hist_percentile(&r->hist, 99.0)) <= p99_limit(tr);
}

/* CPU use of every other process during the window, in percent of one
 * core: a large value means the machine was not quiet. */
static double other_cpu_pct(const struct lg_result *r)
{
    double other = (double)r->system_task_ns - (double)r->broker_cpu_ns - (double)r->gen_cpu_ns;

    return other > 0 ? other / (r->measure_s * 1e7) : 0;
}

static json_t *step_json(const struct traffic *tr, const struct lg_result *r, bool pass)
{
    double secs = r->measure_s;
    uint64_t lost = r->expected > r->received ? r->expected - r->received : 0;
    json_t *step;

    step = json_pack(
        "{s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:b}",
        "offered_per_s", r->rate, "offered_deliveries_per_s", r->rate * tr->fanout, "sent",
        (json_int_t)r->sent, "expected", (json_int_t)r->expected, "received",
        (json_int_t)r->received, "lost", (json_int_t)lost, "gen_dropped",
        (json_int_t)r->gen_dropped, "conn_lost", (json_int_t)r->conn_lost, "delivered_per_s",
        (double)r->received / secs, "p50_us", us(bench_hist_percentile(&r->hist, 50)), "p99_us",
        us(bench_hist_percentile(&r->hist, 99)), "p999_us",
        us(bench_hist_percentile(&r->hist, 99.9)), "max_us", us(r->hist.max), "broker_cpu_pct",
        (double)r->broker_cpu_ns / (secs * 1e7), "gen_cpu_pct",
        (double)r->gen_cpu_ns / (secs * 1e7), "pass", pass);
    json_object_set_new(step, "broker_sys_cpu_pct",
                        json_real((double)r->broker_sys_ns / (secs * 1e7)));
    json_object_set_new(step, "other_cpu_pct", json_real(other_cpu_pct(r)));
    json_object_set_new(step, "irq_cpu_pct", json_real((double)r->system_irq_ns / (secs * 1e7)));
    json_object_set_new(step, "steal_cpu_pct",
                        json_real((double)r->system_steal_ns / (secs * 1e7)));
    return step;
}

static void print_step(const struct traffic *tr, const char *phase, const struct lg_result *r,
                       bool pass)
{
    if (!tr->env->verbose)
        return;
    fprintf(stderr,
            "  %-16s %-9s %-10s offered %9.0f/s delivered %10.0f/s p50 %8.0f us p99 %8.0f us "
            "lost %llu dropped %llu cpu %3.0f%% (kernel %3.0f%%) other %3.0f%% %s\n",
            tr->t->name, tr->s->name, phase, r->rate * tr->fanout,
            (double)r->received / r->measure_s, us(bench_hist_percentile(&r->hist, 50)),
            us(bench_hist_percentile(&r->hist, 99)),
            (unsigned long long)(r->expected > r->received ? r->expected - r->received : 0),
            (unsigned long long)r->gen_dropped, (double)r->broker_cpu_ns / (r->measure_s * 1e7),
            (double)r->broker_sys_ns / (r->measure_s * 1e7), other_cpu_pct(r), pass ? "pass" : "FAIL");
}

/* Runs one step; returns its JSON (NULL when the broker died) and sets
 * *pass. */
/* Runs one step after waiting for the machine to be quiet. A step during
 * which other processes used more than DISTURBED_PCT of a core is kept,
 * marked, and run again, up to DISTURBED_TRIES times in all. */
static json_t *run_step(struct traffic *tr, const char *phase, double rate, uint32_t warmup,
                        uint32_t measure, uint32_t drain, bool *pass)
{
    struct lg_step step = {.rate = rate, .warmup_ms = warmup, .measure_ms = measure,
                           .drain_ms = drain, .broker_pid = tr->t->pid};
    json_t *js;

    for (unsigned attempt = 1;; attempt++) {
        *pass = false;
        if (!tr->env->no_wait)
            bench_wait_machine_quiet(tr->t->pid, QUIET_OTHER_PCT, QUIET_WAIT_MS,
                                     tr->env->verbose);
        if (lg_run_step(tr->lg, &step, tr->r) != VIGIL_OK || !bench_target_alive(tr->t))
            return NULL;
        *pass = step_passes(tr, tr->r);
        print_step(tr, phase, tr->r, *pass);
        js = step_json(tr, tr->r, *pass);
        if (other_cpu_pct(tr->r) <= DISTURBED_PCT || tr->env->no_wait)
            return js;
        json_object_set_new(js, "disturbed", json_true());
        if (attempt == DISTURBED_TRIES)
            return js; /* counted, still marked */
        json_object_set_new(js, "retried", json_true());
        json_array_append_new(tr->steps, js);
    }
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Waits until the broker's CPU use over 100 ms falls below QUIET_CPU_PCT,
 * so work left over from an overloaded step does not slow the next. */
static void wait_quiet(const struct bench_target *t)
{
    struct bench_proc_sample a, b;

    if (t->pid <= 0 || bench_proc_read(t->pid, &a) != VIGIL_OK)
        return;
    for (unsigned waited = 0; waited < QUIET_MAX_MS; waited += 100) {
        sleep_ms(100);
        if (bench_proc_read(t->pid, &b) != VIGIL_OK)
            return;
        if ((double)(b.cpu_ns - a.cpu_ns) / 1e6 < QUIET_CPU_PCT)
            return;
        a = b;
    }
}

/* Fresh connections after a failed step, whose queues and windows would
 * otherwise spill into the next. */
static vigil_err reconnect(struct traffic *tr, char *err, size_t errcap)
{
    lg_disconnect(tr->lg);
    wait_quiet(tr->t);
    return lg_connect(tr->lg, CONNECT_TIMEOUT_MS, err, errcap);
}

static void set_knee(struct traffic *tr, json_t *res, double rate, json_t *step)
{
    json_object_set_new(res, "knee_offered_per_s", json_real(rate));
    json_object_set_new(res, "knee_per_s", json_real(rate * tr->fanout));
    json_object_set(res, "knee_p99_us", json_object_get(step, "p99_us"));
    json_object_set(res, "knee_broker_cpu_pct", json_object_get(step, "broker_cpu_pct"));
    json_object_set(res, "knee_broker_sys_cpu_pct", json_object_get(step, "broker_sys_cpu_pct"));
}

/* True when a step failed on latency alone: everything was delivered. */
static bool failed_on_latency(const struct lg_result *r)
{
    return r->conn_lost == 0 && r->gen_dropped == 0 && r->received >= r->expected;
}

/* Runs one sweep step, appends it and moves the knee when it passes. A
 * step that fails on latency alone runs once more and the second result
 * counts. At low rates one stall of a few milliseconds (another process,
 * the hypervisor) is enough to push p99 over the limit. Returns false when
 * the broker stopped. */
static bool sweep_step(struct traffic *tr, json_t *res, const char *phase, double rate,
                       bool *pass)
{
    const struct bench_scenario *s = tr->s;
    json_t *step = run_step(tr, phase, rate, s->warmup_ms, s->measure_ms, s->drain_ms, pass);

    if (step != NULL && !*pass && failed_on_latency(tr->r)) {
        json_object_set_new(step, "retried", json_true());
        json_array_append_new(tr->steps, step);
        step = run_step(tr, "retry", rate, s->warmup_ms, s->measure_ms, s->drain_ms, pass);
    }
    if (step == NULL)
        return false;
    json_array_append_new(tr->steps, step);
    if (*pass)
        set_knee(tr, res, rate, step);
    return true;
}

/* Multiplies the offered rate by SWEEP_FACTOR from start_rate until a
 * step fails, then halves the interval between the last pass and the
 * first failure SWEEP_REFINE_STEPS times. */
static vigil_err sweep(struct traffic *tr, json_t *res, char *err, size_t errcap)
{
    double lo = 0, hi = 0, rate = tr->s->start_rate;
    bool pass;

    json_object_set_new(res, "knee_offered_per_s", json_real(0));
    json_object_set_new(res, "knee_per_s", json_real(0));
    for (unsigned i = 0; i < SWEEP_MAX_STEPS && hi == 0; i++, rate *= SWEEP_FACTOR) {
        if (tr->s->max_rate > 0 && rate > tr->s->max_rate)
            break;
        if (!sweep_step(tr, res, "step", rate, &pass))
            goto died;
        if (pass)
            lo = rate;
        else
            hi = rate;
    }
    for (unsigned i = 0; hi > 0 && i < SWEEP_REFINE_STEPS; i++) {
        /* After a failing first step, one try far below it. */
        rate = lo > 0 ? (lo + hi) / 2 : hi / 4;
        if (lo == 0 && i > 0)
            break;
        if (reconnect(tr, err, errcap) != VIGIL_OK)
            return VIGIL_ERR_IO;
        if (!sweep_step(tr, res, "refine", rate, &pass))
            goto died;
        if (pass)
            lo = rate;
        else
            hi = rate;
    }
    return VIGIL_OK;
died:
    snprintf(err, errcap, "%s stopped during the sweep", tr->t->name);
    return VIGIL_ERR_IO;
}

static vigil_err fixed_rate(struct traffic *tr, json_t *res, char *err, size_t errcap)
{
    const struct bench_scenario *s = tr->s;
    json_t *step;
    bool pass;

    step = run_step(tr, "fixed", s->rate, s->warmup_ms, s->measure_ms, s->drain_ms, &pass);
    if (step == NULL) {
        snprintf(err, errcap, "%s stopped during the run", tr->t->name);
        return VIGIL_ERR_IO;
    }
    json_array_append_new(tr->steps, step);
    json_object_set_new(res, "pass", json_boolean(pass));
    return VIGIL_OK;
}

static json_t *params_json(const struct traffic *tr)
{
    const struct bench_scenario *s = tr->s;

    return json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:f, s:i, s:i, s:i, s:f, s:i, s:b}", "kind",
                     bench_kind_name(s->kind), "publishers", (int)s->publishers, "subscribers",
                     (int)s->subscribers, "qos", s->kind == BENCH_HOSPITAL ? -1 : (int)s->qos,
                     "payload", (int)s->payload, "fanout", (int)tr->fanout, "rate", s->rate,
                     "warmup_ms", (int)s->warmup_ms, "measure_ms", (int)s->measure_ms,
                     "threads", (int)tr->env->threads, "p99_limit_us", p99_limit(tr),
                     "coalesce_us", (int)s->coalesce_us, "durable", (int)s->durable_sub);
}

json_t *bench_run_traffic(const struct bench_scenario *scenario, const struct bench_target *t,
                          const struct bench_env *env, char *err, size_t errcap)
{
    struct bench_scenario sc = *scenario;
    const struct bench_scenario *s = &sc;
    struct traffic tr = {.s = s, .t = t, .env = env};
    struct lg_workload wl;
    json_t *res = json_pack("{s:s, s:s, s:[]}", "scenario", s->name, "broker", t->name, "steps");
    struct bench_proc_sample mem;
    vigil_err rc;

    tr.r = vigil_malloc(sizeof *tr.r);
    if (res == NULL || tr.r == NULL) {
        snprintf(err, errcap, "out of memory");
        rc = VIGIL_ERR_NOMEM;
        goto done;
    }
    if (sc.kind == BENCH_HOSPITAL && sc.rate <= 0)
        sc.rate = sc.publishers;
    tr.steps = json_object_get(res, "steps");
    snprintf(tr.prefix, sizeof tr.prefix, "b%d", (int)getpid());
    workload(&tr, &wl); /* sets tr.fanout for the parameters */
    json_object_set_new(res, "params", params_json(&tr));
    rc = start_lg(&tr, err, errcap);
    if (rc == VIGIL_OK)
        rc = s->rate > 0 ? fixed_rate(&tr, res, err, errcap) : sweep(&tr, res, err, errcap);
    if (rc == VIGIL_OK && t->pid > 0 && bench_proc_read(t->pid, &mem) == VIGIL_OK) {
        json_object_set_new(res, "broker_rss_kb", json_integer((json_int_t)mem.rss_kb));
        json_object_set_new(res, "broker_hwm_kb", json_integer((json_int_t)mem.hwm_kb));
    }
done:
    if (tr.lg != NULL) {
        lg_disconnect(tr.lg);
        lg_destroy(tr.lg);
    }
    vigil_free(tr.r);
    if (rc != VIGIL_OK) {
        json_decref(res);
        return NULL;
    }
    return res;
}
