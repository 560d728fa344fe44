/* Benchmark scenarios: what each one offers the broker and how it is
 * measured. Each run returns its result as a JSON object (jansson). */
#ifndef VIGIL_BENCH_SCENARIO_H
#define VIGIL_BENCH_SCENARIO_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench/target.h"

enum bench_kind {
    BENCH_FANIN = 0,   /* N publishers -> 1 subscriber with a wildcard filter */
    BENCH_FANOUT,      /* 1 publisher -> N subscribers of one topic */
    BENCH_STORM,       /* connect, CONNECT, CONNACK, DISCONNECT in a closed loop */
    BENCH_IDLE,        /* N idle connections: broker memory per connection */
    BENCH_TLS,         /* the storm over mutual TLS: full handshakes per second */
    BENCH_HOSPITAL,    /* devices at 1 msg/s: QoS 0 vitals, QoS 1 status, QoS 2 alarms */
};

struct bench_scenario {
    char name[32];            /* unique in a run, such as "fanin-q0" */
    uint8_t kind;             /* enum bench_kind */
    uint32_t publishers;      /* fan-in; devices of the hospital profile */
    uint32_t subscribers;     /* fan-out; central stations of the hospital profile */
    uint32_t connections;     /* storm, idle, TLS */
    uint32_t concurrency;     /* storm, TLS: attempts under way per load thread */
    uint8_t qos;
    uint32_t payload;         /* bytes */
    double rate;              /* publishes per second; 0 = sweep to find the knee, or for
                               * the hospital profile one per device and second */
    double start_rate;        /* sweep: offered publishes per second of the first step */
    double max_rate;          /* sweep: no step above this; 0 for no cap */
    uint32_t warmup_ms, measure_ms, drain_ms;
    double p99_limit_us;      /* sweep: a step passes only with p99 at or below this */
    bool persistence;         /* the peer broker keeps a persistence file */
    /* Fan-in: publishes due within one period of this many microseconds
     * leave together, one write per publisher; 0 sends each when due. */
    uint32_t coalesce_us;
    /* Fan-in: the subscriber connects with a persistent session (clean
     * session 0), so the broker has to keep each QoS 1/2 message for it
     * until it acknowledges. */
    bool durable_sub;
};

/* Settings shared by every scenario of a run. */
struct bench_env {
    unsigned threads;         /* load generator threads */
    double p99_limit_us;      /* overrides each scenario's p99 limit when above 0 */
    unsigned source_addrs;    /* loopback source addresses for many connections */
    uint32_t max_connections; /* idle scenarios are capped here (RLIMIT_NOFILE) */
    bool verbose;             /* print each step on stderr */
    bool no_wait;             /* measure at once, without waiting for other processes */
};

/* Parses a kind name ("fan-in", "fan-out", "storm", "idle", "tls",
 * "hospital"); -1 when unknown. */
int bench_kind_parse(const char *name);
const char *bench_kind_name(uint8_t kind);
/* Fills s with the defaults of kind; quick shortens the run. */
void bench_scenario_defaults(struct bench_scenario *s, uint8_t kind, bool quick);

/* Runs s against t. Returns a new JSON object (the caller owns it) with
 * "scenario", "broker", "params" and the measurements, or NULL with the
 * reason in err. */
json_t *bench_run(const struct bench_scenario *s, const struct bench_target *t,
                  const struct bench_env *env, char *err, size_t errcap);

/* scenario_sweep.c: the fan-in, fan-out and hospital runs. */
json_t *bench_run_traffic(const struct bench_scenario *s, const struct bench_target *t,
                          const struct bench_env *env, char *err, size_t errcap);
/* scenario_conn.c: the storm, idle and TLS runs. */
json_t *bench_run_connections(const struct bench_scenario *s, const struct bench_target *t,
                              const struct bench_env *env, char *err, size_t errcap);

#endif
