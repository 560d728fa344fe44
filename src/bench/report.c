/* Benchmark output files and the summary table (see report.h). */
#include "bench/report.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "bench/scenario.h"

struct metric_def {
    uint8_t kind;             /* enum bench_kind */
    const char *key;          /* field of the result, "steps.0.FIELD" for the first step */
    const char *label;
    bool higher_better;
};

static const struct metric_def metrics[] = {
    {BENCH_FANIN, "knee_per_s", "knee (deliveries/s, p99 <= limit, no loss)", true},
    {BENCH_FANIN, "knee_p99_us", "p99 at the knee (us)", false},
    {BENCH_FANIN, "knee_broker_cpu_pct", "broker CPU at the knee (%)", false},
    {BENCH_FANOUT, "knee_per_s", "knee (deliveries/s, p99 <= limit, no loss)", true},
    {BENCH_FANOUT, "knee_p99_us", "p99 at the knee (us)", false},
    {BENCH_FANOUT, "knee_broker_cpu_pct", "broker CPU at the knee (%)", false},
    {BENCH_STORM, "connects_per_s", "connections/s (CONNECT to CONNACK, closed loop)", true},
    {BENCH_STORM, "broker_cpu_us_per_conn", "broker CPU per connection (us)", false},
    {BENCH_IDLE, "bytes_per_connection", "broker memory per idle connection (bytes)", false},
    {BENCH_IDLE, "connections", "idle connections held", true},
    {BENCH_TLS, "handshakes_per_s", "full TLS handshakes + CONNACK /s", true},
    {BENCH_TLS, "broker_cpu_us_per_conn", "broker CPU per handshake (us)", false},
    {BENCH_HOSPITAL, "steps.0.p99_us", "p99 latency (us)", false},
    {BENCH_HOSPITAL, "steps.0.p999_us", "p99.9 latency (us)", false},
    {BENCH_HOSPITAL, "steps.0.lost", "messages lost", false},
    {BENCH_HOSPITAL, "steps.0.broker_cpu_pct", "broker CPU (%)", false},
    {BENCH_HOSPITAL, "broker_hwm_kb", "broker peak RSS (kB)", false},
};

static bool read_first_line(const char *path, const char *prefix, char *out, size_t cap)
{
    char line[512];
    FILE *f = fopen(path, "r");
    bool found = false;

    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            const char *v = strchr(line, ':');

            v = v != NULL ? v + 1 : line + strlen(prefix);
            while (*v == ' ' || *v == '\t')
                v++;
            snprintf(out, cap, "%s", v);
            out[strcspn(out, "\n")] = '\0';
            found = true;
        }
    }
    fclose(f);
    return found;
}

static int count_cpus(void)
{
    char line[256];
    int n = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "processor", 9) == 0)
            n++;
    fclose(f);
    return n;
}

static void mosquitto_version(const char *bin, char *out, size_t cap)
{
    char cmd[600];
    FILE *p;

    snprintf(out, cap, "unknown");
    snprintf(cmd, sizeof cmd, "'%s' -h 2>&1", bin);
    p = popen(cmd, "r");
    if (p == NULL)
        return;
    if (fgets(out, (int)cap, p) != NULL)
        out[strcspn(out, "\n")] = '\0';
    pclose(p);
}

json_t *bench_machine_info(const char *mosquitto_bin)
{
    char cpu[256] = "unknown", mem[64] = "0", mosq[128], kernel[600];
    struct utsname u;

    read_first_line("/proc/cpuinfo", "model name", cpu, sizeof cpu);
    read_first_line("/proc/meminfo", "MemTotal", mem, sizeof mem);
    mosquitto_version(mosquitto_bin, mosq, sizeof mosq);
    if (uname(&u) == 0)
        snprintf(kernel, sizeof kernel, "%s %s %s %s", u.sysname, u.release, u.version, u.machine);
    else
        snprintf(kernel, sizeof kernel, "unknown");
    return json_pack("{s:s, s:i, s:I, s:s, s:s}", "cpu", cpu, "cores", count_cpus(), "memory_kb",
                     (json_int_t)strtoll(mem, NULL, 10), "kernel", kernel, "mosquitto", mosq);
}

/* Reads key from result; "steps.0.X" reads X of the first step. Returns
 * false when absent. */
static bool metric_value(json_t *result, const char *key, double *out)
{
    json_t *v;

    if (strncmp(key, "steps.0.", 8) == 0) {
        v = json_array_get(json_object_get(result, "steps"), 0);
        v = json_object_get(v, key + 8);
    } else {
        v = json_object_get(result, key);
    }
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return true;
}

static uint8_t result_kind(json_t *result)
{
    const char *kind = json_string_value(json_object_get(json_object_get(result, "params"), "kind"));
    int k = kind != NULL ? bench_kind_parse(kind) : -1;

    return k < 0 ? 255 : (uint8_t)k;
}

static json_t *find_result(json_t *results, const char *scenario, const char *broker)
{
    size_t i;
    json_t *r;

    json_array_foreach(results, i, r) {
        const char *s = json_string_value(json_object_get(r, "scenario"));
        const char *b = json_string_value(json_object_get(r, "broker"));

        if (s != NULL && b != NULL && strcmp(s, scenario) == 0 && strcmp(b, broker) == 0)
            return r;
    }
    return NULL;
}

static json_t *metric_row(json_t *results, const char *scenario, const struct metric_def *m)
{
    static const char *const brokers[] = {"vigil", "mosquitto", "relay", "vigil-engine-off"};
    json_t *values = json_object();
    double v, vigil = 0, mosq = 0;
    bool have_vigil = false, have_mosq = false;

    for (size_t i = 0; i < sizeof brokers / sizeof brokers[0]; i++) {
        json_t *r = find_result(results, scenario, brokers[i]);

        if (r == NULL || !metric_value(r, m->key, &v))
            continue;
        json_object_set_new(values, brokers[i], json_real(v));
        if (i == 0)
            vigil = v, have_vigil = true;
        if (i == 1)
            mosq = v, have_mosq = true;
    }
    return json_pack("{s:s, s:s, s:s, s:o, s:o}", "scenario", scenario, "metric", m->label,
                     "better", m->higher_better ? "higher" : "lower", "values", values, "ratio",
                     have_vigil && have_mosq && mosq > 0 ? json_real(vigil / mosq) : json_null());
}

static json_t *engine_row(const char *scenario, const char *metric, double on, double off,
                          double cost)
{
    return json_pack("{s:s, s:s, s:s, s:{s:f, s:f}, s:f}", "scenario", scenario, "metric", metric,
                     "better", "lower", "values", "vigil", on, "vigil-engine-off", off, "ratio",
                     cost);
}

/* True when step passed and is the counted attempt at its rate. */
static bool counted_pass(json_t *step)
{
    return json_is_true(json_object_get(step, "pass")) &&
           !json_is_true(json_object_get(step, "retried"));
}

/* Broker CPU of the passing step of result at rate, or -1. */
static double cpu_at_rate(json_t *result, double rate)
{
    json_t *step;
    size_t i;

    json_array_foreach(json_object_get(result, "steps"), i, step) {
        if (counted_pass(step) &&
            json_number_value(json_object_get(step, "offered_per_s")) == rate)
            return json_number_value(json_object_get(step, "broker_cpu_pct"));
    }
    return -1;
}

/* Extra broker CPU with the engine at the highest offered rate that both
 * runs passed. */
static void engine_cpu_row(json_t *on, json_t *off, const char *scenario, json_t *rows)
{
    double best = 0, con = 0, coff = 0;
    char metric[96];
    json_t *step;
    size_t i;

    json_array_foreach(json_object_get(on, "steps"), i, step) {
        double rate = json_number_value(json_object_get(step, "offered_per_s"));
        double c_off = cpu_at_rate(off, rate);

        if (counted_pass(step) && rate > best && c_off > 0) {
            best = rate;
            con = json_number_value(json_object_get(step, "broker_cpu_pct"));
            coff = c_off;
        }
    }
    if (best <= 0)
        return;
    snprintf(metric, sizeof metric, "engine cost: extra broker CPU at %.0f/s (%%)", best);
    json_array_append_new(rows, engine_row(scenario, metric, con, coff, (con - coff) / coff * 100));
}

/* Adds "engine cost" rows where vigil also ran with secmon.enabled: false. */
static void engine_rows(json_t *results, const char *scenario, uint8_t kind, json_t *rows)
{
    json_t *on = find_result(results, scenario, "vigil");
    json_t *off = find_result(results, scenario, "vigil-engine-off");
    double von, voff;

    if (on == NULL || off == NULL)
        return;
    if (kind == BENCH_HOSPITAL) {
        if (metric_value(on, "steps.0.broker_cpu_pct", &von) &&
            metric_value(off, "steps.0.broker_cpu_pct", &voff) && voff > 0)
            json_array_append_new(rows, engine_row(scenario, "engine cost: extra broker CPU (%)",
                                                   von, voff, (von - voff) / voff * 100));
        return;
    }
    if (metric_value(on, "knee_per_s", &von) && metric_value(off, "knee_per_s", &voff) &&
        voff > 0)
        json_array_append_new(rows, engine_row(scenario, "engine cost: knee lost to the engine (%)",
                                               von, voff, (voff - von) / voff * 100));
    engine_cpu_row(on, off, scenario, rows);
}

json_t *bench_summarize(json_t *results)
{
    json_t *rows = json_array(), *seen = json_object(), *r;
    size_t i;

    json_array_foreach(results, i, r) {
        const char *scenario = json_string_value(json_object_get(r, "scenario"));
        uint8_t kind = result_kind(r);

        if (scenario == NULL || kind == 255 || json_object_get(seen, scenario) != NULL)
            continue;
        json_object_set_new(seen, scenario, json_true());
        for (size_t m = 0; m < sizeof metrics / sizeof metrics[0]; m++)
            if (metrics[m].kind == kind)
                json_array_append_new(rows, metric_row(results, scenario, &metrics[m]));
        engine_rows(results, scenario, kind, rows);
    }
    json_decref(seen);
    return rows;
}

static void print_number(FILE *out, json_t *v)
{
    double d = json_number_value(v);

    if (!json_is_number(v))
        fputs(" - |", out);
    else if (d >= 100 || d <= -100)
        fprintf(out, " %.0f |", d);
    else if (d >= 10 || d <= -10)
        fprintf(out, " %.1f |", d);
    else
        fprintf(out, " %.2f |", d);
}

void bench_print_summary(FILE *out, json_t *summary)
{
    static const char *const brokers[] = {"vigil", "mosquitto", "relay", "vigil-engine-off"};
    json_t *row;
    size_t i;

    fputs("| scenario | metric | vigil | mosquitto | relay | vigil, engine off | "
          "vigil/mosquitto (engine rows: cost %) |\n",
          out);
    fputs("| --- | --- | ---: | ---: | ---: | ---: | ---: |\n", out);
    json_array_foreach(summary, i, row) {
        json_t *values = json_object_get(row, "values");

        fprintf(out, "| %s | %s |", json_string_value(json_object_get(row, "scenario")),
                json_string_value(json_object_get(row, "metric")));
        for (size_t b = 0; b < sizeof brokers / sizeof brokers[0]; b++)
            print_number(out, json_object_get(values, brokers[b]));
        print_number(out, json_object_get(row, "ratio"));
        fputc('\n', out);
    }
}

static void csv_step(FILE *f, const char *scenario, const char *broker, json_t *st)
{
    static const char *const fields[] = {"offered_per_s", "offered_deliveries_per_s",
                                         "delivered_per_s", "p50_us", "p99_us", "p999_us",
                                         "max_us", "lost", "gen_dropped", "conn_lost",
                                         "broker_cpu_pct", "gen_cpu_pct", "other_cpu_pct"};
    json_t *sys = json_object_get(st, "broker_sys_cpu_pct");

    fprintf(f, "%s,%s", scenario, broker);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        fprintf(f, ",%.1f", json_number_value(json_object_get(st, fields[i])));
    fprintf(f, ",%d,%d", json_is_true(json_object_get(st, "pass")) ? 1 : 0,
            json_is_true(json_object_get(st, "retried")) ? 1 : 0);
    /* A results.json written before the kernel CPU was measured has no
     * value, which an empty cell shows rather than 0. */
    json_is_number(sys) ? fprintf(f, ",%.1f\n", json_number_value(sys)) : fputs(",\n", f);
}

void bench_write_steps_csv(FILE *f, json_t *result, int with_header)
{
    const char *scenario = json_string_value(json_object_get(result, "scenario"));
    const char *broker = json_string_value(json_object_get(result, "broker"));
    json_t *st;
    size_t i;

    if (with_header)
        fputs("scenario,broker,offered_per_s,offered_deliveries_per_s,delivered_per_s,"
              "p50_us,p99_us,p999_us,max_us,lost,gen_dropped,conn_lost,broker_cpu_pct,"
              "gen_cpu_pct,other_cpu_pct,pass,retried,broker_sys_cpu_pct\n",
              f);
    if (scenario == NULL || broker == NULL)
        return;
    json_array_foreach(json_object_get(result, "steps"), i, st)
        csv_step(f, scenario, broker, st);
}

static void write_summary_csv(FILE *f, json_t *summary)
{
    static const char *const brokers[] = {"vigil", "mosquitto", "relay", "vigil-engine-off"};
    json_t *row;
    size_t i;

    fputs("scenario,metric,better,vigil,mosquitto,relay,vigil_engine_off,ratio\n", f);
    json_array_foreach(summary, i, row) {
        json_t *values = json_object_get(row, "values");

        fprintf(f, "%s,\"%s\",%s", json_string_value(json_object_get(row, "scenario")),
                json_string_value(json_object_get(row, "metric")),
                json_string_value(json_object_get(row, "better")));
        for (size_t b = 0; b < sizeof brokers / sizeof brokers[0]; b++) {
            json_t *v = json_object_get(values, brokers[b]);

            json_is_number(v) ? fprintf(f, ",%.3f", json_number_value(v)) : fputs(",", f);
        }
        json_t *ratio = json_object_get(row, "ratio");
        json_is_number(ratio) ? fprintf(f, ",%.4f\n", json_number_value(ratio)) : fputs(",\n", f);
    }
}

static FILE *open_out(const char *dir, const char *name, char *err, size_t errcap)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f == NULL)
        snprintf(err, errcap, "cannot write %s", path);
    return f;
}

vigil_err bench_write_outputs(const char *dir, json_t *doc, char *err, size_t errcap)
{
    json_t *results = json_object_get(doc, "results"), *r;
    json_t *summary = json_object_get(doc, "summary");
    char path[1024];
    FILE *f;
    size_t i;

    snprintf(path, sizeof path, "%s/results.json", dir);
    if (json_dump_file(doc, path, JSON_INDENT(1) | JSON_REAL_PRECISION(8)) != 0) {
        snprintf(err, errcap, "cannot write %s", path);
        return VIGIL_ERR_IO;
    }
    if ((f = open_out(dir, "steps.csv", err, errcap)) == NULL)
        return VIGIL_ERR_IO;
    bench_write_steps_csv(f, NULL, 1);
    json_array_foreach(results, i, r)
        bench_write_steps_csv(f, r, 0);
    fclose(f);
    if ((f = open_out(dir, "summary.csv", err, errcap)) == NULL)
        return VIGIL_ERR_IO;
    write_summary_csv(f, summary);
    fclose(f);
    if ((f = open_out(dir, "summary.md", err, errcap)) == NULL)
        return VIGIL_ERR_IO;
    bench_print_summary(f, summary);
    fclose(f);
    return VIGIL_OK;
}
