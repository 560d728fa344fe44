/* Connection churn: a closed loop that keeps `concurrency` connection
 * attempts under way per thread, each doing TCP connect, an optional full
 * TLS handshake, CONNECT, CONNACK and DISCONNECT, then closing. Measures
 * completed connections per second and the time from connect() to CONNACK. */
#ifndef VIGIL_BENCH_CHURN_H
#define VIGIL_BENCH_CHURN_H

#include <stdint.h>

#include "bench/hist.h"
#include "core/error.h"

struct bench_tls_files;

struct churn_options {
    char host[64];            /* numeric IPv4 address */
    uint16_t port;
    unsigned threads;         /* 1 .. 4 */
    uint32_t total;           /* connections to complete, all threads together */
    uint32_t concurrency;     /* attempts under way per thread */
    uint32_t timeout_ms;      /* the run stops here even if total is not reached */
    unsigned source_addrs;    /* bind to 127.0.0.1 .. 127.0.0.N in turn */
    const struct bench_tls_files *tls; /* NULL: plaintext; else client certificate and CA */
    char client_prefix[32];   /* client ids PREFIX:<n> (vigil accepts DEVICE:<suffix>) */
};

struct churn_result {
    uint64_t completed;       /* CONNACK with return code 0 received */
    uint64_t failed;          /* refused, reset, timed out or TLS failure */
    double elapsed_s;         /* first connect() to last completion */
    uint64_t gen_cpu_ns;      /* this process over the run */
    char first_error[128];
    struct bench_hist hist;   /* connect() to CONNACK, ns */
};

/* Runs the loop; out is filled even when the run was cut short.
 * Returns VIGIL_ERR_INVALID for bad options, VIGIL_ERR_IO when the TLS
 * files cannot be loaded. */
vigil_err churn_run(const struct churn_options *opt, struct churn_result *out);

#endif
