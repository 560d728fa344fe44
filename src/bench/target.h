/* Brokers under test: an external one given by address (and optionally its
 * PID), or vigil, mosquitto or the raw relay started here on a free
 * 127.0.0.1 port in a temporary directory and stopped by PID. */
#ifndef VIGIL_BENCH_TARGET_H
#define VIGIL_BENCH_TARGET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bench/procstat.h"
#include "core/error.h"

enum bench_broker {
    BENCH_BROKER_EXTERNAL = 0,
    BENCH_BROKER_VIGIL,
    BENCH_BROKER_VIGIL_NOENGINE, /* vigil with secmon.enabled: false */
    BENCH_BROKER_MOSQUITTO,
    BENCH_BROKER_RELAY,
};

/* Certificates for the TLS scenario, all issued by vigil's local CA. */
struct bench_tls_files {
    char data_dir[512];   /* vigil data directory that holds the CA and the device */
    char ca[600];         /* pki/ca.crt */
    char server_cert[600];
    char server_key[600];
    char client_cert[600];
    char client_key[600];
    char client_id[32];   /* device id, also the certificate's identity */
};

/* How to start brokers. Strings are borrowed for the call. */
struct bench_launch {
    const char *vigil_bin;
    const char *mosquitto_bin;
    const char *work_dir;      /* parent of each broker's directory */
    bool persistence;          /* mosquitto persistence; vigil's store is always on */
    const struct bench_tls_files *tls; /* NULL: no TLS listener */
    uint32_t max_connections;  /* vigil limits.max_connections */
};

struct bench_target {
    uint8_t kind;              /* enum bench_broker */
    char name[32];             /* vigil, vigil-engine-off, mosquitto, relay, external */
    char host[64];
    uint16_t port;             /* plaintext MQTT */
    uint16_t tls_port;         /* MQTT over TLS; 0 when none */
    pid_t pid;                 /* 0 when unknown */
    bool owned;                /* started by bench_target_start() */
    char dir[512];             /* working directory of an owned broker */
    const struct bench_tls_files *tls;
};

const char *bench_broker_name(uint8_t kind);
/* Parses "vigil", "vigil-engine-off", "mosquitto" or "relay"; -1 otherwise. */
int bench_broker_parse(const char *name);

/* Starts a broker of kind (not EXTERNAL) and waits until it accepts TCP
 * connections. On failure writes the reason into err. */
vigil_err bench_target_start(uint8_t kind, const struct bench_launch *l, struct bench_target *t,
                             char *err, size_t errcap);
/* Stops an owned broker with SIGTERM (SIGKILL after 10 s). Returns false
 * when it had already exited or did not exit cleanly. No-op otherwise. */
bool bench_target_stop(struct bench_target *t);
/* True while the broker process is running (always true when external). */
bool bench_target_alive(const struct bench_target *t);

/* Issues the CA, the server certificate and a device certificate with
 * vigil itself (`vigil device add`, then one start of `vigil serve`) in
 * work_dir/tls. */
vigil_err bench_tls_prepare(const char *vigil_bin, const char *work_dir,
                            struct bench_tls_files *out, char *err, size_t errcap);

/* Returns a loopback TCP port that was free a moment ago, 0 on failure. */
uint16_t bench_free_port(void);

#endif
