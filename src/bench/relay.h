/* The raw reference relay run by `vigil bench --relay HOST:PORT` (see
 * relay.c for what it does and what it leaves out). */
#ifndef VIGIL_BENCH_RELAY_H
#define VIGIL_BENCH_RELAY_H

#include <stdint.h>

/* Serves until SIGTERM or SIGINT. host is a numeric IPv4 address. Returns
 * the exit status: 0 after a signal, 1 when the listener cannot open. */
int bench_relay_run(const char *host, uint16_t port);

#endif
