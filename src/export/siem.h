/* SIEM export. Security events and alerts become RFC 5424 syslog messages
 * (structured data, CEF or OCSF JSON in MSG) and wait in a durable SQLite
 * outbox per destination. An exporter thread with its own libuv loop sends
 * them over UDP, TCP (RFC 6587 octet counting) or TLS (RFC 5425).
 * Delivery is at least once, and every message carries its outbox sequence
 * number so that a receiver can drop duplicates. */
#ifndef VIGIL_EXPORT_SIEM_H
#define VIGIL_EXPORT_SIEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "secmon/engine.h"
#include "secmon/event.h"

#define SIEM_MAX_DESTINATIONS 8
/* Largest formatted message. A longer one is not stored but logged and
 * counted as dropped. RFC 5424 receivers must accept 480 bytes and should
 * accept 2048; rsyslog 8.2302 accepts 8 KiB unless maxMessageSize is set. */
#define SIEM_MSG_MAX 8192
/* Private enterprise number used in the structured-data id "vigil@32473".
 * 32473 is the number RFC 5612 reserves for documentation examples. */
#define SIEM_SD_ID "vigil@32473"

enum siem_transport {
    SIEM_TRANSPORT_UDP = 0,  /* one message per datagram, best effort */
    SIEM_TRANSPORT_TCP,      /* octet-counting framing, RFC 6587 */
    SIEM_TRANSPORT_TLS,      /* RFC 5425: octet counting over TLS 1.2/1.3 */
};

enum siem_format {
    SIEM_FORMAT_RFC5424 = 0, /* fields in [vigil@32473 ...], text in MSG */
    SIEM_FORMAT_CEF,         /* RFC 5424 header, CEF:0 in MSG */
    SIEM_FORMAT_OCSF_JSON,   /* RFC 5424 header, one OCSF JSON object in MSG */
};

/* One destination. Strings are NUL-terminated; empty means unset. */
struct siem_dest {
    char name[32];           /* [A-Za-z0-9_-]; names the outbox file */
    uint8_t transport;       /* enum siem_transport; default tcp */
    char host[64];           /* numeric IPv4 or IPv6 address (no DNS lookups) */
    uint16_t port;
    uint8_t format;          /* enum siem_format; default rfc5424 */
    uint8_t facility;        /* syslog facility 0..23; default 20 (local4) */
    char ca_file[512];       /* TLS: PEM CA that signed the receiver's certificate */
    char server_name[256];   /* TLS: name expected in the certificate; empty = host
                              * checked as an IP address SAN */
    uint64_t max_rows;       /* outbox cap; new messages past it are dropped and
                              * counted; default 1000000 */
    uint32_t backoff_max_ms; /* reconnect backoff cap; default 30000 */
};

struct siem_config {
    char data_dir[512];      /* outbox-<name>.db files go here */
    char hostname[256];      /* HOSTNAME field; empty = gethostname() */
    size_t queue_capacity;   /* in-memory queue between submit and the exporter
                              * thread; full means dropped and counted; default 1024 */
    struct siem_dest dests[SIEM_MAX_DESTINATIONS];
    size_t n_dests;
};

/* Fills d with the defaults above (name "default", tcp, 127.0.0.1:6514, rfc5424,
 * local4). */
void siem_dest_defaults(struct siem_dest *d);
void siem_config_defaults(struct siem_config *cfg);
/* Sets one key of a destination from its configuration text: name,
 * transport (udp|tcp|tls), address ("host:port", "[v6]:port"), format
 * (rfc5424|cef|ocsf-json), ca_file, server_name, facility (0..23 or a name
 * such as "local4", "auth"), max_rows, backoff_max_ms. On an unknown key or
 * an invalid value writes a message into err and returns VIGIL_ERR_CONFIG. */
vigil_err siem_dest_set(struct siem_dest *d, const char *key, const char *value, char *err,
                        size_t errcap);
/* Checks a complete destination (address set, TLS has ca_file). */
vigil_err siem_dest_validate(const struct siem_dest *d, char *err, size_t errcap);
/* Reads the top-level data_dir and the siem section of a vigil.yaml file
 * over the values in cfg (keys: queue_capacity, hostname, destinations, and
 * per destination the keys of siem_dest_set). Other top-level keys are
 * skipped. On failure writes "file:line: message" into err, leaves cfg
 * unchanged and returns VIGIL_ERR_CONFIG (VIGIL_ERR_IO when unreadable). */
vigil_err siem_config_load_file(struct siem_config *cfg, const char *path, char *err,
                                size_t errcap);

/* ---- Formatting: pure functions ---- */

/* Values of the RFC 5424 header that do not come from the message. */
struct siem_header {
    uint8_t facility;
    const char *hostname;    /* printable ASCII; "-" when NULL or empty */
    const char *procid;      /* "-" when NULL or empty */
    const char *version;     /* vigil version for CEF and OCSF metadata */
};

/* Syslog severity (0 emergency .. 7 debug) of an event or an alert. */
uint8_t siem_event_severity(const struct vigil_event *ev);
uint8_t siem_alert_severity(const struct secmon_alert *a);

/* Each writes one NUL-terminated message, without framing or newline, into
 * out and returns its length, or -1 when it does not fit in cap bytes (use
 * SIEM_MSG_MAX). seq is the outbox sequence number (the stable message id). */
int siem_format_event(enum siem_format fmt, const struct siem_header *h,
                      const struct vigil_event *ev, uint64_t seq, char *out, size_t cap);
int siem_format_alert(enum siem_format fmt, const struct siem_header *h,
                      const struct secmon_alert *a, uint64_t seq, char *out, size_t cap);

/* Parts of the formats, exposed for tests. Each returns the length written
 * (NUL-terminated) or -1 when cap is too small. */
int siem_sd_escape(const char *s, char *out, size_t cap);  /* '"' '\' ']' */
int siem_cef_escape_header(const char *s, char *out, size_t cap); /* '|' '\' */
int siem_cef_escape_ext(const char *s, char *out, size_t cap);    /* '=' '\' CR LF */
int siem_cef_event(const struct siem_header *h, const struct vigil_event *ev, uint64_t seq,
                   char *out, size_t cap);
int siem_cef_alert(const struct siem_header *h, const struct secmon_alert *a, uint64_t seq,
                   char *out, size_t cap);
int siem_ocsf_event(const struct siem_header *h, const struct vigil_event *ev, uint64_t seq,
                    char *out, size_t cap);
int siem_ocsf_alert(const struct siem_header *h, const struct secmon_alert *a, uint64_t seq,
                    char *out, size_t cap);

/* RFC 6587 octet counting: writes "LEN SP MSG" into out. Returns the frame
 * length, or -1 when cap is too small. */
int siem_frame_octet(const char *msg, size_t len, char *out, size_t cap);

/* ---- Durable outbox: one SQLite WAL file per destination ---- */

struct siem_outbox;

struct siem_outbox_row {
    uint64_t seq;
    int64_t created_us;
    char *payload;           /* owned by the row array; NUL-terminated */
    size_t len;
};

/* Opens or creates path (WAL mode, synchronous=FULL). max_rows caps the
 * rows kept. The caller owns *out and closes it with siem_outbox_close(). */
vigil_err siem_outbox_open(const char *path, uint64_t max_rows, struct siem_outbox **out);
void siem_outbox_close(struct siem_outbox *ob);
/* Appending in a transaction: begin, then one append per message, then
 * commit (one fsync for the batch). append reserves the next sequence
 * number, calls format(ctx, seq, buf, cap) to build the payload with that
 * number in it, and stores the result. It returns VIGIL_ERR_LIMIT (nothing
 * stored) when the outbox holds max_rows rows, and VIGIL_ERR_INVALID when
 * format returns a negative length. */
typedef int (*siem_outbox_format_fn)(void *ctx, uint64_t seq, char *buf, size_t cap);
vigil_err siem_outbox_begin(struct siem_outbox *ob);
vigil_err siem_outbox_append(struct siem_outbox *ob, int64_t created_us,
                             siem_outbox_format_fn format, void *ctx, uint64_t *seq_out);
vigil_err siem_outbox_commit(struct siem_outbox *ob);
/* Reads up to max rows with seq > after, in seq order, into rows (caller
 * array of max entries); *n receives the count. Free with
 * siem_outbox_rows_free(). */
vigil_err siem_outbox_read(struct siem_outbox *ob, uint64_t after, size_t max,
                           struct siem_outbox_row *rows, size_t *n);
void siem_outbox_rows_free(struct siem_outbox_row *rows, size_t n);
/* Deletes every row with seq <= upto (the receiver accepted them). */
vigil_err siem_outbox_delete_upto(struct siem_outbox *ob, uint64_t upto);
uint64_t siem_outbox_count(struct siem_outbox *ob);
/* The highest sequence number stored so far, 0 when none. */
uint64_t siem_outbox_last_seq(struct siem_outbox *ob);

/* ---- The exporter thread ---- */

struct siem_exporter;

/* Counters of one destination, read with siem_exporter_stats(). */
struct siem_dest_stats {
    uint64_t stored;          /* messages appended to the outbox */
    uint64_t sent;            /* messages the receiver accepted (deleted) */
    uint64_t outbox_dropped;  /* messages dropped because the outbox was full */
    uint64_t pending;         /* rows in the outbox now */
    uint64_t connects;        /* successful connections (TCP/TLS) */
    uint64_t connect_failures;
    bool connected;
};

struct siem_stats {
    uint64_t submitted;       /* events and alerts accepted by submit */
    uint64_t queue_dropped;   /* rejected by submit because the queue was full */
    size_t n_dests;
    struct siem_dest_stats dests[SIEM_MAX_DESTINATIONS];
};

/* Validates config, opens every outbox and starts the exporter thread.
 * Rows left in the outboxes by an earlier run are sent first. The caller
 * owns *out and releases it with siem_exporter_stop(). config is copied. */
vigil_err siem_exporter_start(const struct siem_config *config, struct siem_exporter **out);
/* Both copy the struct into the bounded queue and return at once; any
 * thread may call them. VIGIL_ERR_LIMIT when the queue is full (the item is
 * dropped, counted and logged), VIGIL_ERR_CLOSED after stop began. */
vigil_err siem_exporter_submit_event(struct siem_exporter *exp, const struct vigil_event *ev);
vigil_err siem_exporter_submit_alert(struct siem_exporter *exp, const struct secmon_alert *alert);
void siem_exporter_stats(struct siem_exporter *exp, struct siem_stats *out);
/* Waits until the queue is empty and every outbox is empty, up to
 * timeout_ms. VIGIL_OK when drained, VIGIL_ERR_AGAIN on timeout. */
vigil_err siem_exporter_flush(struct siem_exporter *exp, uint32_t timeout_ms);
/* Moves what is queued into the outboxes, closes the connections, stops the
 * thread and frees exp. Unsent rows stay in the outboxes for the next start. */
void siem_exporter_stop(struct siem_exporter *exp);

#endif
