/* Open-loop MQTT load generator: one to LG_MAX_THREADS threads, each with
 * its own epoll loop over many MQTT 3.1.1 connections (publishers,
 * subscribers and idle clients), never a process or thread per client.
 *
 * Publishing follows a fixed schedule: message j of a thread is due at
 * start + j / rate, whether or not earlier messages were acknowledged or
 * delivered, and its payload carries that due time (CLOCK_MONOTONIC ns). Latency is measured
 * from the due time to the delivery at a subscriber, so time a message
 * waits in the generator because the broker pushed back counts too (no
 * coordinated omission). Payload layout: due time (8 bytes, little
 * endian), publisher index (4), per-publisher sequence (4), filler. */
#ifndef VIGIL_BENCH_LOADGEN_H
#define VIGIL_BENCH_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bench/hist.h"
#include "core/error.h"

#define LG_MAX_THREADS 4
#define LG_PAYLOAD_MIN 16
#define LG_PAYLOAD_MAX 65536

/* Writes the topic of publisher index for messages of the given QoS, or
 * the filter of subscriber index (qos unused), into out. */
typedef void (*lg_topic_fn)(void *ctx, uint32_t index, uint8_t qos, char *out, size_t cap);
/* Returns the QoS of message seq of publisher index. */
typedef uint8_t (*lg_qos_fn)(void *ctx, uint32_t index, uint64_t seq);

struct lg_options {
    char host[64];            /* numeric IPv4 address of the broker */
    uint16_t port;
    unsigned threads;         /* 1 .. LG_MAX_THREADS */
    unsigned source_addrs;    /* connection i binds to 127.0.0.(1 + i % N); 0 or 1: no bind */
    uint16_t keep_alive;      /* seconds, sent in CONNECT; no PINGREQ is ever sent */
    uint16_t max_inflight;    /* unacknowledged QoS 1/2 publishes per publisher */
    uint32_t tx_limit;        /* bytes queued per connection before publishes are dropped */
    uint32_t connect_window;  /* connection attempts under way per thread */
    char client_prefix[32];   /* client ids PREFIX-p<i>, station-PREFIX-s<i>, PREFIX-i<i> */
    /* Publishes are emitted at the end of each period of this many
     * microseconds, so that one publisher's messages share a write; 0
     * emits each at its due time. Latency still counts from the due time. */
    uint32_t coalesce_us;
};

struct lg_workload {
    uint32_t n_pub, n_sub, n_idle;
    uint8_t pub_qos;          /* QoS of every publish unless msg_qos is set */
    uint8_t sub_qos;          /* requested QoS of every subscription */
    lg_qos_fn msg_qos;        /* NULL: pub_qos */
    lg_topic_fn pub_topic;    /* required when n_pub > 0 */
    lg_topic_fn sub_filter;   /* required when n_sub > 0 */
    void *ctx;                /* passed to the three callbacks */
    uint32_t payload;         /* bytes, LG_PAYLOAD_MIN .. LG_PAYLOAD_MAX */
    uint32_t fanout;          /* deliveries expected for each publish */
    bool sub_persistent;      /* subscribers connect with clean session 0 */
};

/* One step at a fixed offered rate. */
struct lg_step {
    double rate;              /* publishes per second, all publishers together */
    uint32_t warmup_ms;       /* published but not measured */
    uint32_t measure_ms;      /* messages due in this window are measured */
    uint32_t drain_ms;        /* wait for late deliveries after publishing ends */
    pid_t broker_pid;         /* CPU sampled over the window; 0 for none */
};

struct lg_result {
    double rate;              /* offered */
    double measure_s;
    uint64_t sent;            /* window messages handed to a socket */
    uint64_t gen_dropped;     /* window messages dropped by the generator (buffer full, connection down) */
    uint64_t expected;        /* sent x fanout */
    uint64_t received;        /* deliveries of window messages before the drain deadline */
    uint64_t conn_lost;       /* connections closed by the broker or the network during the step */
    uint64_t broker_cpu_ns;   /* user + system time of broker_pid over the window */
    uint64_t broker_sys_ns;   /* its system (kernel) part */
    uint64_t gen_cpu_ns;      /* the same for this process */
    uint64_t system_task_ns;  /* user + system time of every process over the window */
    uint64_t system_irq_ns;   /* interrupt and softirq time over the window */
    uint64_t system_steal_ns; /* time the hypervisor took over the window */
    struct bench_hist hist;   /* publish-to-delivery latency of window messages, ns */
};

struct lg;

/* Starts the threads; no connection is opened yet. Options and workload
 * are copied. Returns VIGIL_ERR_INVALID for out-of-range fields. */
vigil_err lg_create(const struct lg_options *opt, const struct lg_workload *wl, struct lg **out);
/* Opens every connection that is not open (CONNECT, and SUBSCRIBE for
 * subscribers) and waits until all are ready. On failure writes the reason
 * into err and returns VIGIL_ERR_IO or VIGIL_ERR_PROTOCOL. */
vigil_err lg_connect(struct lg *lg, uint32_t timeout_ms, char *err, size_t errcap);
/* Connections ready now. */
uint64_t lg_ready(struct lg *lg);
/* Runs one step and fills out. Takes warmup + measure + up to drain ms. */
vigil_err lg_run_step(struct lg *lg, const struct lg_step *step, struct lg_result *out);
/* Sends DISCONNECT on every open connection and closes it. */
void lg_disconnect(struct lg *lg);
/* Stops the threads and closes everything. NULL is ignored. */
void lg_destroy(struct lg *lg);

#endif
