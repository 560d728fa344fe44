/* Passive analysis: reads packet captures, reassembles the TCP streams of
 * MQTT connections and turns them into the same typed security events the
 * broker emits, decoded by the broker's own codec.
 *
 * Everything runs on capture time (the timestamps of the frames), never on
 * the wall clock, so the same capture always gives the same events. Memory is
 * bounded whatever the input: the flow table, the out-of-order buffers and
 * the partial-packet buffers all have caps set in struct passive_config. */
#ifndef VIGIL_PASSIVE_PASSIVE_H
#define VIGIL_PASSIVE_PASSIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "secmon/event.h"

#define PASSIVE_MAX_PORTS 16

/* Link-layer types (LINKTYPE_* values of pcap files; libpcap reports the
 * same numbers as DLT_* for all of these except raw IP, which it maps to
 * DLT_RAW 12 or 14 depending on the platform). */
enum passive_link {
    PASSIVE_LINK_NULL = 0,       /* BSD loopback: 4-byte host-order family */
    PASSIVE_LINK_ETHERNET = 1,
    PASSIVE_LINK_RAW_DLT = 12,
    PASSIVE_LINK_RAW_DLT_BSD = 14,
    PASSIVE_LINK_RAW = 101,
    PASSIVE_LINK_LOOP = 108,     /* OpenBSD loopback: 4-byte network-order family */
    PASSIVE_LINK_SLL = 113,      /* Linux cooked capture v1 */
    PASSIVE_LINK_IPV4 = 228,
    PASSIVE_LINK_IPV6 = 229,
    PASSIVE_LINK_SLL2 = 276,     /* Linux cooked capture v2 */
};

struct passive_addr {
    uint8_t family;              /* 4 or 6 */
    uint8_t ip[16];              /* IPv4 in the first 4 bytes */
};

/* One TCP segment taken from a captured frame. payload points into the frame. */
struct passive_segment {
    struct passive_addr src, dst;
    uint16_t sport, dport;
    uint32_t seq;
    uint8_t flags;               /* TCP flags byte: PASSIVE_TCP_* */
    const uint8_t *payload;
    size_t len;
};

#define PASSIVE_TCP_FIN 0x01
#define PASSIVE_TCP_SYN 0x02
#define PASSIVE_TCP_RST 0x04
#define PASSIVE_TCP_ACK 0x10

/* Parses the link, IP (v4 or v6, extension headers skipped) and TCP headers
 * of one frame. Returns VIGIL_OK with out filled, VIGIL_ERR_NOT_FOUND for a
 * frame that is not an unfragmented TCP segment (ARP, UDP, IP fragments), and
 * VIGIL_ERR_INVALID for a truncated or inconsistent frame or an unsupported
 * link type. */
vigil_err passive_parse_frame(int link, const uint8_t *frame, size_t caplen,
                              struct passive_segment *out);

struct passive_config {
    uint16_t ports[PASSIVE_MAX_PORTS]; /* server ports; a segment to or from one is analysed */
    size_t n_ports;
    size_t max_flows;            /* flows tracked at once; the least recently active is evicted */
    size_t ooo_dir_cap;          /* out-of-order bytes held per flow direction */
    size_t ooo_total_cap;        /* out-of-order bytes held over all flows */
    size_t ooo_dir_segments;     /* out-of-order segments held per flow direction */
    uint32_t ooo_hold_ms;        /* longest wait for a missing segment before skipping it */
    size_t packet_cap;           /* largest MQTT packet reassembled; larger ones are skipped */
    uint32_t idle_timeout_s;     /* an open flow silent this long is dropped */
    uint32_t closed_linger_s;    /* a closed flow is kept this long to absorb late segments */
    uint32_t connect_timeout_s;  /* a connection without CONNECT after this long raises a limit event */
};

/* Fills cfg with the defaults: port 1883, 16384 flows, 256 KiB and 256
 * segments out of order per direction, 64 MiB out of order in total, a 2 s
 * wait for a missing segment, 1 MiB packets, an idle timeout of 900 s, a
 * closed linger of 10 s and a connect timeout of 10 s. */
void passive_config_defaults(struct passive_config *cfg);

struct passive_stats {
    uint64_t frames;             /* frames read */
    uint64_t frames_invalid;     /* truncated or unsupported frames */
    uint64_t segments;           /* TCP segments to or from a configured port */
    uint64_t flows;              /* flows seen in all */
    uint64_t flows_evicted;      /* flows dropped because the table was full or idle */
    uint64_t mqtt_packets;       /* MQTT packets decoded, both directions */
    uint64_t events;             /* events emitted */
    uint64_t malformed;          /* client packets the codec rejected */
    uint64_t server_malformed;   /* server packets the codec rejected (no event) */
    uint64_t gaps;               /* stream gaps: lost bytes or over-cap out-of-order data */
    uint64_t retransmissions;    /* segments whose bytes were all delivered already */
    uint64_t overlaps;           /* segments partly delivered already, trimmed */
    uint64_t skipped_bytes;      /* stream bytes dropped while waiting to resynchronize */
    size_t ooo_bytes;            /* out-of-order bytes held now */
    size_t ooo_bytes_peak;
};

/* Called for every event; ev is valid only during the call. */
typedef void (*passive_event_fn)(void *ctx, const struct vigil_event *ev);
/* Called as capture time advances: at least once per second of capture
 * time while frames arrive, and once from passive_finish(). */
typedef void (*passive_tick_fn)(void *ctx, int64_t now_us);

struct passive;

/* Creates an analyser. on_event is required, on_tick may be NULL. The
 * caller owns *out and frees it with passive_free(). */
vigil_err passive_new(const struct passive_config *cfg, passive_event_fn on_event,
                      passive_tick_fn on_tick, void *ctx, struct passive **out);
void passive_free(struct passive *p);

/* Feeds one captured frame. Capture time never goes backwards: a frame
 * older than one already seen is handled at the newest time seen. */
void passive_feed_frame(struct passive *p, int link, int64_t ts_us, const uint8_t *frame,
                        size_t caplen);
/* Advances capture time: connect timeouts, idle flows and ticks. */
void passive_advance(struct passive *p, int64_t now_us);
/* Delivers what the out-of-order buffers still hold and sends the last
 * tick; call once after the last frame. Open flows stay open. */
void passive_finish(struct passive *p);

const struct passive_stats *passive_get_stats(const struct passive *p);
/* Capture time of the first and of the newest frame, 0 before any. */
int64_t passive_first_us(const struct passive *p);
int64_t passive_now_us(const struct passive *p);

/* Reads a pcap or pcapng file and feeds every frame, then calls
 * passive_finish(). Returns VIGIL_ERR_IO when the file cannot be opened or
 * read (the reason in errbuf), VIGIL_OK otherwise. */
vigil_err passive_read_file(struct passive *p, const char *path, char *errbuf, size_t errcap);
/* The same for an open stream (for example fmemopen); fp is closed. */
vigil_err passive_read_stream(struct passive *p, FILE *fp, char *errbuf, size_t errcap);

#endif
