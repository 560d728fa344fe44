/* I/O threads for plaintext MQTT connections: each runs its own libuv loop
 * that reads, frames packets and writes, while every piece of broker state
 * stays on the hub's loop. Internal to src/broker. */
#ifndef VIGIL_BROKER_IOTHREAD_H
#define VIGIL_BROKER_IOTHREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct hub;
struct conn;
struct mqtt_error;

/* Returns the number of I/O threads to run: limits.io_threads, or with 0
 * the online CPUs minus one, capped at 8. 1 means no I/O threads. */
unsigned iopool_configured(const struct hub *hub);
/* Starts n (>= 2) I/O threads and sets hub->io. */
vigil_err iopool_start(struct hub *hub, unsigned n);
/* True once every connection handed to the threads was closed by them. */
bool iopool_idle(const struct hub *hub);
/* Stops and joins the threads and closes the hub's handles of the pool;
 * iopool_free releases the rest after the hub's loop ran them out. */
void iopool_stop(struct hub *hub);
/* Resets the sockets of closing connections without writing what is left
 * (shutdown after limits.close_grace_ms). */
void iopool_abort_closing(struct hub *hub);
void iopool_free(struct hub *hub);

/* Moves the accepted socket of c to the next I/O thread. On success the
 * thread holds a reference on c until it reports the socket closed, and
 * c->tcp is closed on the hub. False leaves c on the hub's loop. */
bool iopool_adopt(struct conn *c);
/* Stages bytes for c's socket; VIGIL_ERR_LIMIT when the thread's queue
 * is full. */
vigil_err iopool_write(struct conn *c, const uint8_t *data, size_t len);
/* Lets c's thread read past the first packet (held until the hub handled
 * CONNECT). */
void iopool_resume(struct conn *c);
/* Asks c's thread to write what it has and close the socket. */
void iopool_close(struct conn *c);
/* Asks c's thread to reset c's socket if it is still writing after
 * iopool_close. The thread then reports the bytes left unwritten
 * (conn_io_aborted) before the close. */
void iopool_abort(struct conn *c);
/* Hands everything staged on the hub to the threads; once per loop
 * iteration. */
void iopool_push(struct hub *hub);
size_t iopool_threads(const struct hub *hub);
/* Connections the thread i owns now. */
uint64_t iopool_thread_conns(const struct hub *hub, size_t i);

/* conn.c: what the threads report about a connection. */
void conn_io_packets(struct conn *c, const uint8_t *data, size_t len);
void conn_io_activity(struct conn *c);
void conn_io_written(struct conn *c, size_t n);
/* A read or write error (uv error code) or end of stream. */
void conn_io_failed(struct conn *c, int status, bool writing);
void conn_io_malformed(struct conn *c, const struct mqtt_error *err, uint8_t type);
/* The thread reset c's socket with unwritten bytes of output left. */
void conn_io_aborted(struct conn *c, size_t unwritten);
void conn_io_closed(struct conn *c);

#endif
