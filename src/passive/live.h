/* Live capture for `vigil serve --sniff`: one libpcap capture thread per
 * interface feeds its own passive analyser, and the events it decodes go
 * into the hub's event sink marked as observed, so MQTT traffic between
 * devices and another broker reaches the same security engine. */
#ifndef VIGIL_PASSIVE_LIVE_H
#define VIGIL_PASSIVE_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/error.h"
#include "passive/passive.h"
#include "secmon/event.h"

/* Observed events carry conn_id = (interface index + 1) << 40 | flow id,
 * so they never share a connection id with the hub's own connections
 * (numbered from 1) and stay below 2^53 for JSON readers. */
#define LIVE_CONN_ID_SHIFT 40

struct live_capture;
struct live_sniffers;

/* Opens and activates a capture on iface with the BPF filter "tcp and (port
 * P1 or port P2 ...)" over ports, in immediate mode with a 65535-byte
 * snapshot and a kernel buffer of buffer_size bytes. Nothing runs until
 * live_capture_start(). On failure writes a message naming the interface and
 * the fix into err and returns VIGIL_ERR_NOT_FOUND (no such interface),
 * VIGIL_ERR_DENIED (capture not permitted) or VIGIL_ERR_IO. The caller owns
 * *out and frees it with live_capture_free(). */
vigil_err live_capture_open(const char *iface, const struct config_sniff *sniff,
                            char *err, size_t errcap, struct live_capture **out);
/* Starts the capture thread. Each decoded event is marked observed, given
 * a conn_id of interface index idx (see LIVE_CONN_ID_SHIFT) and passed to
 * on_event on that thread; on_event must be thread-safe. */
vigil_err live_capture_start(struct live_capture *lc, size_t idx, passive_event_fn on_event,
                             void *ctx);
/* Stops the thread (pcap_breakloop, then join), flushes the analyser, logs
 * the capture statistics and frees lc. NULL is a no-op. */
void live_capture_free(struct live_capture *lc);

/* Opens a capture on every interface of sniff and starts them all; events
 * go to sink with vigil_event_sink_emit(). The first interface that cannot
 * be opened stops the start: the ones already open are closed, the message
 * is written into err, and *out stays NULL. With no interface configured
 * *out is NULL and VIGIL_OK is returned. sink must outlive *out. */
vigil_err live_sniffers_start(const struct config_sniff *sniff, struct vigil_event_sink *sink,
                              char *err, size_t errcap, struct live_sniffers **out);
/* Stops and frees every capture of s. NULL is a no-op. */
void live_sniffers_stop(struct live_sniffers *s);

#endif
