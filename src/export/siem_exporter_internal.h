/* State shared by the SIEM exporter thread (siem_exporter.c) and its
 * transports (siem_link.c). Everything here is touched only on the
 * exporter thread, except the fields marked "lock". */
#ifndef VIGIL_EXPORT_SIEM_EXPORTER_INTERNAL_H
#define VIGIL_EXPORT_SIEM_EXPORTER_INTERNAL_H

#include <openssl/ssl.h>
#include <uv.h>

#include "export/siem.h"

/* Rows read from the outbox per write. */
#define SIEM_BATCH_ROWS 64
/* Completed writes waiting for the settle time before their rows are deleted. */
#define SIEM_SETTLE_SLOTS 64
/* A TCP or TLS write counts as accepted when the connection stayed up this
 * long after the kernel took the bytes. */
#define SIEM_SETTLE_MS 300
#define SIEM_BACKOFF_MIN_MS 100

enum siem_link_state {
    SIEM_LINK_IDLE = 0,    /* not connected; the retry timer may be armed */
    SIEM_LINK_CONNECTING,  /* TCP connect in progress */
    SIEM_LINK_HANDSHAKE,   /* TLS handshake in progress */
    SIEM_LINK_READY,
};

struct siem_link;

/* One TCP or TLS connection; freed in its close callback. */
struct siem_conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    struct siem_link *link;   /* NULL once the link let go of it */
    SSL *ssl;
    BIO *rbio, *wbio;         /* owned by ssl */
    char rbuf[16384];         /* read buffer; each read is consumed at once */
};

struct siem_settle {
    uint64_t seq;             /* last seq of a completed write */
    uint64_t done_ms;
};

struct siem_link {
    struct siem_exporter *exp;
    struct siem_dest dest;
    struct siem_outbox *outbox;
    struct siem_dest_stats stats;        /* lock: copied to readers */
    enum siem_link_state state;
    struct siem_conn *conn;
    uv_udp_t udp;
    bool udp_open;
    bool handles_open;        /* retry (and udp) were initialised on the loop */
    uv_timer_t retry;
    struct sockaddr_storage addr;
    SSL_CTX *ssl_ctx;
    uint64_t sent_upto;       /* highest seq handed to the transport */
    bool writing;             /* a batch write is in flight */
    struct siem_settle settle[SIEM_SETTLE_SLOTS];
    size_t settle_head, settle_len;
    uint32_t backoff_ms;
    uint32_t jitter_state;    /* xorshift32 state, seeded per link and process */
    uint32_t failures;        /* consecutive connect failures */
    uint64_t full_logged;     /* outbox_dropped when "outbox full" was last logged */
};

/* Fields read by siem_link.c. */
struct siem_exporter_view {
    uv_loop_t *loop;
    bool stopping;
};

struct siem_exporter_view *siem_exporter_view(struct siem_exporter *exp);
/* Copies link->stats to what siem_exporter_stats() returns. */
void siem_exporter_publish(struct siem_link *link);

/* Transports (siem_link.c). */
vigil_err siem_link_init(struct siem_link *link, uv_loop_t *loop);
/* Sends what the outbox holds if the link can; connects when it is idle. */
void siem_link_pump(struct siem_link *link);
/* Deletes rows of writes that settled; called from a periodic timer. */
void siem_link_tick(struct siem_link *link, uint64_t now_ms);
/* Closes the connection and the handles; the loop ends once they closed. */
void siem_link_close(struct siem_link *link);

#endif
