/* Non-blocking MQTT client: connection state machine, packet queueing,
 * QoS 1/2 inflight tracking, keep-alive and reconnect with backoff. */
#include "client/mqttc.h"

#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/time.h"

enum mqttc_state {
    ST_IDLE,        /* created or stopped, no socket */
    ST_CONNECTING,  /* TCP connect in progress */
    ST_WAIT_CONNACK,
    ST_CONNECTED,
    ST_STOPPING,    /* DISCONNECT queued, closing once it is written */
    ST_CLOSING,     /* uv_close called on the socket, waiting for its callback */
    ST_BACKOFF,     /* waiting before the next attempt */
};

enum slot_stage {
    STAGE_WAIT_ACK = 1, /* PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2) */
    STAGE_WAIT_COMP,    /* PUBREL sent, waiting for PUBCOMP */
};

/* One outgoing QoS 1/2 publish awaiting its acknowledgement. */
struct inflight {
    uint16_t packet_id; /* 0 marks a free slot */
    uint8_t qos;
    uint8_t stage;
    uint8_t *packet;    /* owned copy of the encoded PUBLISH, until PUBACK or PUBREC */
    size_t len;
};

#define READ_CHUNK 16384
#define QOS2_BITMAP_BYTES (65536 / 8)

struct mqttc {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uv_timer_t timer;        /* connect timeout, keep-alive or backoff, by state */
    enum mqttc_state state;
    bool tcp_open;           /* tcp initialised and uv_close not yet called */
    bool writing;            /* write_req in flight, wbuf in use by libuv */
    bool releasing;          /* mqttc_close() called */
    bool auto_reconnect;
    int open_handles;

    struct vigil_buf in;     /* bytes read and not yet decoded */
    struct vigil_buf out;    /* packets queued while a write is in flight */
    struct vigil_buf wbuf;   /* the buffer libuv is writing */

    /* Owned copies of the options' strings. */
    char *host, *client_id, *username, *password, *will_topic;
    uint8_t *will_payload;
    struct mqttc_options opt;

    struct inflight *slots;  /* opt.max_inflight entries */
    uint16_t n_used;
    uint16_t window;         /* min(max_inflight, server Receive Maximum) */
    uint16_t next_id;
    uint8_t *qos2_seen;      /* bitmap of incoming QoS 2 ids awaiting PUBREL, lazy */
    uint32_t server_max_packet;
    uint16_t keep_alive;     /* in force, after Server Keep Alive */

    uint64_t last_tx_ms;
    uint64_t ping_sent_ms;
    bool ping_outstanding;
    uint32_t backoff_ms;
    uint64_t jitter_state;

    struct mqttc_counters counters;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static void fail(struct mqttc *c, vigil_err why, const char *detail);
static void begin_connect(struct mqttc *c);
static void kick_write(struct mqttc *c);

static struct mqtt_str cstr(const char *s)
{
    struct mqtt_str m = {(const uint8_t *)s, s ? (uint32_t)strlen(s) : 0};

    return m;
}

static char *dup_or_null(const char *s)
{
    return s ? vigil_strdup(s) : NULL;
}

/* ---- Options and lifetime ---------------------------------------------- */

static void apply_defaults(struct mqttc_options *o)
{
    if (o->version == 0)
        o->version = MQTT_V5;
    if (o->max_inflight == 0)
        o->max_inflight = 32;
    if (o->max_packet_size == 0)
        o->max_packet_size = 256 * 1024;
    if (o->max_output == 0)
        o->max_output = 1024 * 1024;
    if (o->reconnect_min_ms == 0)
        o->reconnect_min_ms = 500;
    if (o->reconnect_max_ms < o->reconnect_min_ms)
        o->reconnect_max_ms = o->reconnect_min_ms > 30000 ? o->reconnect_min_ms : 30000;
    if (o->connect_timeout_ms == 0)
        o->connect_timeout_ms = 10000;
}

static vigil_err copy_options(struct mqttc *c, const struct mqttc_options *opt)
{
    c->opt = *opt;
    apply_defaults(&c->opt);
    c->host = vigil_strdup(opt->host ? opt->host : "127.0.0.1");
    c->client_id = vigil_strdup(opt->client_id);
    c->username = dup_or_null(opt->username);
    c->password = dup_or_null(opt->password);
    c->will_topic = dup_or_null(opt->will_topic);
    if (opt->will_topic && opt->will_len > 0)
        c->will_payload = vigil_memdup(opt->will_payload, opt->will_len);
    if (!c->host || !c->client_id || (opt->username && !c->username) ||
        (opt->password && !c->password) || (opt->will_topic && !c->will_topic) ||
        (opt->will_topic && opt->will_len > 0 && !c->will_payload))
        return VIGIL_ERR_NOMEM;
    /* The copies replace the caller's pointers, which need not outlive create. */
    c->opt.host = c->host;
    c->opt.client_id = c->client_id;
    c->opt.username = c->username;
    c->opt.password = c->password;
    c->opt.will_topic = c->will_topic;
    c->opt.will_payload = c->will_payload;
    return VIGIL_OK;
}

static void free_memory(struct mqttc *c)
{
    for (uint16_t i = 0; c->slots && i < c->opt.max_inflight; i++)
        vigil_free(c->slots[i].packet);
    vigil_free(c->slots);
    vigil_free(c->qos2_seen);
    vigil_buf_release(&c->in);
    vigil_buf_release(&c->out);
    vigil_buf_release(&c->wbuf);
    vigil_free(c->host);
    vigil_free(c->client_id);
    vigil_free(c->username);
    if (c->password)
        memset(c->password, 0, strlen(c->password));
    vigil_free(c->password);
    vigil_free(c->will_topic);
    vigil_free(c->will_payload);
    vigil_free(c);
}

vigil_err mqttc_create(uv_loop_t *loop, const struct mqttc_options *opt, struct mqttc **out)
{
    struct mqttc *c;
    vigil_err rc;

    *out = NULL;
    if (opt->client_id == NULL || opt->client_id[0] == '\0' || strlen(opt->client_id) > 64 ||
        (opt->version != 0 && opt->version != MQTT_V311 && opt->version != MQTT_V5) ||
        opt->will_qos > 2)
        return VIGIL_ERR_INVALID;
    c = vigil_calloc(1, sizeof *c);
    if (c == NULL)
        return VIGIL_ERR_NOMEM;
    rc = copy_options(c, opt);
    if (rc != VIGIL_OK)
        goto fail;
    c->slots = vigil_calloc(c->opt.max_inflight, sizeof *c->slots);
    if (c->slots == NULL) {
        rc = VIGIL_ERR_NOMEM;
        goto fail;
    }
    c->loop = loop;
    c->state = ST_IDLE;
    c->next_id = 1;
    c->jitter_state = (uint64_t)(uintptr_t)c ^ vigil_time_mono_ms();
    vigil_buf_init(&c->in, c->opt.max_packet_size + READ_CHUNK);
    vigil_buf_init(&c->out, c->opt.max_output);
    vigil_buf_init(&c->wbuf, c->opt.max_output);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 1;
    *out = c;
    return VIGIL_OK;

fail:
    free_memory(c);
    return rc;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct mqttc *c = h->data;
    void (*cb)(void *);
    void *arg;

    if (--c->open_handles > 0 || !c->releasing)
        return;
    cb = c->on_closed;
    arg = c->closed_arg;
    free_memory(c);
    if (cb)
        cb(arg);
}

/* ---- Inflight window ---------------------------------------------------- */

static struct inflight *slot_find(struct mqttc *c, uint16_t id, uint8_t qos, uint8_t stage)
{
    for (uint16_t i = 0; i < c->opt.max_inflight; i++) {
        struct inflight *s = &c->slots[i];

        if (s->packet_id == id && s->qos == qos && s->stage == stage)
            return s;
    }
    return NULL;
}

static bool id_in_use(const struct mqttc *c, uint16_t id)
{
    for (uint16_t i = 0; i < c->opt.max_inflight; i++)
        if (c->slots[i].packet_id == id)
            return true;
    return false;
}

static uint16_t next_packet_id(struct mqttc *c)
{
    uint16_t id;

    do {
        id = c->next_id++;
        if (c->next_id == 0)
            c->next_id = 1;
    } while (id == 0 || id_in_use(c, id));
    return id;
}

static void slot_finish(struct mqttc *c, struct inflight *s, enum mqttc_outcome outcome)
{
    uint16_t id = s->packet_id;
    uint8_t qos = s->qos;

    if (outcome == MQTTC_DELIVERED)
        c->counters.delivered[qos]++;
    else if (outcome == MQTTC_REJECTED)
        c->counters.rejected++;
    else
        c->counters.lost++;
    vigil_free(s->packet);
    memset(s, 0, sizeof *s);
    c->n_used--;
    if (c->opt.on_publish_done && !c->releasing)
        c->opt.on_publish_done(c, id, qos, outcome, c->opt.user);
}

static void slots_lose_all(struct mqttc *c)
{
    for (uint16_t i = 0; i < c->opt.max_inflight; i++)
        if (c->slots[i].packet_id != 0)
            slot_finish(c, &c->slots[i], MQTTC_LOST);
}

/* ---- Output ----------------------------------------------------------- */

static vigil_err queue_bytes(struct mqttc *c, const uint8_t *p, size_t n)
{
    vigil_err rc = vigil_buf_append(&c->out, p, n);

    if (rc == VIGIL_OK) {
        c->last_tx_ms = vigil_time_mono_ms();
        kick_write(c);
    }
    return rc;
}

/* Encodes pkt at the end of the output buffer; *at receives its offset. */
static vigil_err encode_packet(struct mqttc *c, const struct mqtt_packet *pkt, size_t *at)
{
    size_t size = mqtt_encoded_size(pkt, c->opt.version);
    size_t n;
    vigil_err rc;

    if (size == 0)
        return VIGIL_ERR_INVALID;
    if (size > c->server_max_packet)
        return VIGIL_ERR_LIMIT;
    rc = vigil_buf_reserve(&c->out, size);
    if (rc != VIGIL_OK)
        return rc;
    n = mqtt_encode(pkt, c->opt.version, c->out.data + c->out.len, size);
    if (n == 0)
        return VIGIL_ERR_INVALID;
    *at = c->out.len;
    c->out.len += n;
    return VIGIL_OK;
}

static vigil_err send_packet(struct mqttc *c, const struct mqtt_packet *pkt)
{
    size_t at;
    vigil_err rc = encode_packet(c, pkt, &at);

    if (rc == VIGIL_OK) {
        c->last_tx_ms = vigil_time_mono_ms();
        kick_write(c);
    }
    return rc;
}

static vigil_err send_ack(struct mqttc *c, uint8_t type, uint16_t id)
{
    struct mqtt_packet pkt;

    memset(&pkt, 0, sizeof pkt);
    pkt.type = type;
    pkt.flags = type == MQTT_PUBREL ? 0x02 : 0;
    pkt.packet_id = id;
    pkt.reason_code = MQTT_RC_SUCCESS;
    return send_packet(c, &pkt);
}

static void on_write(uv_write_t *req, int status)
{
    struct mqttc *c = req->data;

    c->writing = false;
    c->wbuf.len = 0;
    if (status < 0) {
        if (status != UV_ECANCELED)
            fail(c, VIGIL_ERR_IO, uv_strerror(status));
        return;
    }
    if (c->state == ST_STOPPING && c->out.len == 0) {
        fail(c, VIGIL_ERR_CLOSED, "stopped");
        return;
    }
    kick_write(c);
}

/* Starts writing the queued packets unless a write is in flight. The two
 * buffers swap roles, so neither is reallocated in steady state. */
static void kick_write(struct mqttc *c)
{
    struct vigil_buf tmp;
    uv_buf_t b;
    int err;

    if (c->writing || c->out.len == 0 || !c->tcp_open)
        return;
    tmp = c->wbuf;
    c->wbuf = c->out;
    c->out = tmp;
    c->out.len = 0;
    b = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
    c->write_req.data = c;
    err = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (err < 0) {
        c->wbuf.len = 0;
        fail(c, VIGIL_ERR_IO, uv_strerror(err));
        return;
    }
    c->writing = true;
}

/* ---- Connection teardown and backoff ---------------------------------- */

static void on_backoff(uv_timer_t *t)
{
    struct mqttc *c = t->data;

    if (c->state == ST_BACKOFF)
        begin_connect(c);
}

static uint32_t jitter(struct mqttc *c, uint32_t range)
{
    c->jitter_state ^= c->jitter_state << 13;
    c->jitter_state ^= c->jitter_state >> 7;
    c->jitter_state ^= c->jitter_state << 17;
    return range ? (uint32_t)(c->jitter_state % range) : 0;
}

static void schedule_reconnect(struct mqttc *c)
{
    uint32_t delay;

    if (c->backoff_ms == 0)
        c->backoff_ms = c->opt.reconnect_min_ms;
    delay = c->backoff_ms + jitter(c, c->backoff_ms / 4 + 1);
    c->backoff_ms = c->backoff_ms > c->opt.reconnect_max_ms / 2 ? c->opt.reconnect_max_ms
                                                                  : c->backoff_ms * 2;
    c->state = ST_BACKOFF;
    uv_timer_start(&c->timer, on_backoff, delay, 0);
}

static void on_tcp_closed(uv_handle_t *h)
{
    struct mqttc *c = h->data;

    if (c->releasing) {
        on_handle_closed(h);
        return;
    }
    c->open_handles--;
    if (c->auto_reconnect)
        schedule_reconnect(c);
    else
        c->state = ST_IDLE;
}

/* Ends the current connection attempt or connection. A reconnect follows
 * once the socket is closed, unless the client was stopped. */
static void fail(struct mqttc *c, vigil_err why, const char *detail)
{
    bool was_connected = c->state == ST_CONNECTED || c->state == ST_STOPPING;

    if (!c->tcp_open)
        return;
    if (why != VIGIL_ERR_CLOSED)
        c->counters.errors++;
    if (was_connected)
        c->counters.disconnects++;
    log_debug("mqtt client %s: connection to %s:%u ended: %s", c->client_id, c->host,
              (unsigned)c->opt.port, detail);
    uv_timer_stop(&c->timer);
    c->tcp_open = false;
    uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
    c->in.len = 0;
    c->out.len = 0;
    c->ping_outstanding = false;
    c->state = ST_CLOSING;
    if (c->opt.clean_start)
        slots_lose_all(c);
    if (c->opt.on_disconnect && !c->releasing)
        c->opt.on_disconnect(c, why, detail, c->opt.user);
}

/* ---- Connecting ------------------------------------------------------- */

static void on_timeout(uv_timer_t *t)
{
    struct mqttc *c = t->data;

    fail(c, VIGIL_ERR_IO, c->state == ST_STOPPING ? "DISCONNECT not written in time"
                                                   : "connect timed out");
}

static vigil_err send_connect(struct mqttc *c)
{
    struct mqtt_packet pkt;
    struct mqtt_connect *cn = &pkt.connect;

    memset(&pkt, 0, sizeof pkt);
    pkt.type = MQTT_CONNECT;
    cn->protocol_name = cstr("MQTT");
    cn->version = c->opt.version;
    cn->clean_start = c->opt.clean_start;
    cn->keep_alive = c->opt.keep_alive;
    cn->client_id = cstr(c->client_id);
    cn->has_username = c->username != NULL;
    cn->username = cstr(c->username);
    cn->has_password = c->password != NULL;
    cn->password = cstr(c->password);
    if (c->will_topic) {
        cn->will = true;
        cn->will_qos = c->opt.will_qos;
        cn->will_retain = c->opt.will_retain;
        cn->will_topic = cstr(c->will_topic);
        cn->will_payload.p = c->will_payload;
        cn->will_payload.len = (uint32_t)c->opt.will_len;
    }
    cn->flags = (uint8_t)((cn->clean_start ? 0x02 : 0) | (cn->will ? 0x04 : 0) |
                          (cn->will_qos << 3) | (cn->will_retain ? 0x20 : 0) |
                          (cn->has_password ? 0x40 : 0) | (cn->has_username ? 0x80 : 0));
    pkt.props.present = MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE);
    pkt.props.max_packet_size = c->opt.max_packet_size;
    if (c->opt.session_expiry) {
        pkt.props.present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
        pkt.props.session_expiry = c->opt.session_expiry;
    }
    return send_packet(c, &pkt);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct mqttc *c = h->data;
    size_t want = READ_CHUNK;

    (void)suggested;
    if (c->in.len + want > c->in.limit)
        want = c->in.limit - c->in.len;
    if (want == 0 || vigil_buf_reserve(&c->in, want) != VIGIL_OK) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)c->in.data + c->in.len, (unsigned)want);
}

static void process_input(struct mqttc *c);

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct mqttc *c = s->data;

    (void)buf;
    if (nread == UV_EOF) {
        fail(c, VIGIL_ERR_CLOSED, "connection closed by the server");
        return;
    }
    if (nread == UV_ENOBUFS) {
        fail(c, VIGIL_ERR_LIMIT, "input buffer full");
        return;
    }
    if (nread < 0) {
        fail(c, VIGIL_ERR_IO, uv_strerror((int)nread));
        return;
    }
    c->in.len += (size_t)nread;
    process_input(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct mqttc *c = req->data;
    int err;

    if (status == UV_ECANCELED || !c->tcp_open)
        return;
    if (status < 0) {
        fail(c, VIGIL_ERR_IO, uv_strerror(status));
        return;
    }
    err = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (err < 0) {
        fail(c, VIGIL_ERR_IO, uv_strerror(err));
        return;
    }
    c->state = ST_WAIT_CONNACK;
    c->server_max_packet = MQTT_VBI_MAX + 5;
    if (send_connect(c) != VIGIL_OK)
        fail(c, VIGIL_ERR_INVALID, "CONNECT could not be encoded");
}

static int resolve(const struct mqttc *c, struct sockaddr_storage *ss)
{
    const char *host = strcmp(c->host, "localhost") == 0 ? "127.0.0.1" : c->host;

    if (strchr(host, ':'))
        return uv_ip6_addr(host, c->opt.port, (struct sockaddr_in6 *)ss);
    return uv_ip4_addr(host, c->opt.port, (struct sockaddr_in *)ss);
}

static void begin_connect(struct mqttc *c)
{
    struct sockaddr_storage ss;
    int err;

    memset(&ss, 0, sizeof ss);
    err = resolve(c, &ss);
    if (err < 0) {
        log_error("mqtt client %s: invalid address '%s' (use a numeric IPv4 or IPv6 address)",
                  c->client_id, c->host);
        c->state = ST_IDLE;
        c->counters.errors++;
        return;
    }
    uv_tcp_init(c->loop, &c->tcp);
    c->tcp.data = c;
    c->tcp_open = true;
    c->open_handles++;
    c->state = ST_CONNECTING;
    uv_tcp_nodelay(&c->tcp, 1);
    c->connect_req.data = c;
    err = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&ss, on_connect);
    if (err < 0) {
        fail(c, VIGIL_ERR_IO, uv_strerror(err));
        return;
    }
    uv_timer_start(&c->timer, on_timeout, c->opt.connect_timeout_ms, 0);
}

vigil_err mqttc_start(struct mqttc *c)
{
    if (c->releasing)
        return VIGIL_ERR_CLOSED;
    /* In ST_CLOSING the socket's close callback starts the next attempt. */
    c->auto_reconnect = true;
    if (c->state == ST_IDLE)
        begin_connect(c);
    return VIGIL_OK;
}

/* ---- Keep-alive ------------------------------------------------------- */

static void on_keepalive(uv_timer_t *t)
{
    struct mqttc *c = t->data;
    uint64_t now = vigil_time_mono_ms();
    uint64_t period = (uint64_t)c->keep_alive * 1000;
    struct mqtt_packet pkt;

    if (c->state != ST_CONNECTED)
        return;
    if (c->ping_outstanding && now - c->ping_sent_ms > period) {
        fail(c, VIGIL_ERR_IO, "keep-alive timed out (no PINGRESP)");
        return;
    }
    if (!c->ping_outstanding && now - c->last_tx_ms >= period * 3 / 4) {
        memset(&pkt, 0, sizeof pkt);
        pkt.type = MQTT_PINGREQ;
        if (send_packet(c, &pkt) == VIGIL_OK) {
            c->ping_outstanding = true;
            c->ping_sent_ms = now;
        }
    }
}

/* ---- Incoming packets ------------------------------------------------- */

/* Resends unacknowledged publishes (with DUP set) and PUBRELs after the
 * server resumed the session. */
static void resend_inflight(struct mqttc *c)
{
    for (uint16_t i = 0; i < c->opt.max_inflight; i++) {
        struct inflight *s = &c->slots[i];
        vigil_err rc = VIGIL_OK;

        if (s->packet_id == 0)
            continue;
        if (s->stage == STAGE_WAIT_ACK) {
            s->packet[0] |= 0x08;
            rc = queue_bytes(c, s->packet, s->len);
        } else {
            rc = send_ack(c, MQTT_PUBREL, s->packet_id);
        }
        if (rc != VIGIL_OK)
            slot_finish(c, s, MQTTC_LOST);
    }
}

static void handle_connack(struct mqttc *c, const struct mqtt_packet *pkt)
{
    const struct mqtt_props *p = &pkt->props;
    uint32_t repeat;

    if (pkt->reason_code != 0) {
        c->counters.refused++;
        if (c->opt.on_connack)
            c->opt.on_connack(c, pkt->reason_code, false, c->opt.user);
        fail(c, VIGIL_ERR_AUTH, "connection refused by the server");
        return;
    }
    c->state = ST_CONNECTED;
    c->counters.connects++;
    c->backoff_ms = 0;
    c->window = c->opt.max_inflight;
    if ((p->present & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX)) && p->receive_max < c->window)
        c->window = p->receive_max;
    if (p->present & MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE))
        c->server_max_packet = p->max_packet_size;
    c->keep_alive = c->opt.keep_alive;
    if (p->present & MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE))
        c->keep_alive = p->server_keep_alive;
    uv_timer_stop(&c->timer);
    if (c->keep_alive > 0) {
        repeat = c->keep_alive * 1000u / 4;
        uv_timer_start(&c->timer, on_keepalive, repeat, repeat < 250 ? 250 : repeat);
    }
    if (pkt->session_present && !c->opt.clean_start)
        resend_inflight(c);
    else
        slots_lose_all(c);
    if (c->opt.on_connack)
        c->opt.on_connack(c, 0, pkt->session_present, c->opt.user);
}

static bool qos2_seen(struct mqttc *c, uint16_t id, int set)
{
    bool was;

    if (c->qos2_seen == NULL) {
        if (set <= 0)
            return false;
        c->qos2_seen = vigil_calloc(1, QOS2_BITMAP_BYTES);
        if (c->qos2_seen == NULL)
            return false;
    }
    was = (c->qos2_seen[id >> 3] >> (id & 7)) & 1;
    if (set > 0)
        c->qos2_seen[id >> 3] |= (uint8_t)(1u << (id & 7));
    else if (set == 0)
        c->qos2_seen[id >> 3] &= (uint8_t)~(1u << (id & 7));
    return was;
}

static void handle_publish(struct mqttc *c, const struct mqtt_packet *pkt)
{
    const struct mqtt_publish *m = &pkt->publish;
    bool duplicate = false;

    c->counters.received++;
    if (m->qos == 2)
        duplicate = qos2_seen(c, pkt->packet_id, 1);
    if (!duplicate && c->opt.on_message)
        c->opt.on_message(c, m, c->opt.user);
    if (c->state != ST_CONNECTED)
        return;
    if (m->qos == 1)
        send_ack(c, MQTT_PUBACK, pkt->packet_id);
    else if (m->qos == 2)
        send_ack(c, MQTT_PUBREC, pkt->packet_id);
}

static void handle_ack(struct mqttc *c, const struct mqtt_packet *pkt)
{
    struct inflight *s;
    bool ok = pkt->reason_code < 0x80;

    switch (pkt->type) {
    case MQTT_PUBACK:
        s = slot_find(c, pkt->packet_id, 1, STAGE_WAIT_ACK);
        if (s)
            slot_finish(c, s, ok ? MQTTC_DELIVERED : MQTTC_REJECTED);
        break;
    case MQTT_PUBREC:
        s = slot_find(c, pkt->packet_id, 2, STAGE_WAIT_ACK);
        if (s && !ok) {
            slot_finish(c, s, MQTTC_REJECTED);
        } else if (s) {
            s->stage = STAGE_WAIT_COMP;
            vigil_free(s->packet);
            s->packet = NULL;
            s->len = 0;
            send_ack(c, MQTT_PUBREL, pkt->packet_id);
        }
        break;
    case MQTT_PUBCOMP:
        s = slot_find(c, pkt->packet_id, 2, STAGE_WAIT_COMP);
        if (s)
            slot_finish(c, s, ok ? MQTTC_DELIVERED : MQTTC_REJECTED);
        break;
    case MQTT_PUBREL:
        qos2_seen(c, pkt->packet_id, 0);
        send_ack(c, MQTT_PUBCOMP, pkt->packet_id);
        break;
    default:
        break;
    }
}

static void handle_packet(struct mqttc *c, const struct mqtt_packet *pkt)
{
    if (c->state == ST_WAIT_CONNACK) {
        if (pkt->type == MQTT_CONNACK)
            handle_connack(c, pkt);
        else
            fail(c, VIGIL_ERR_PROTOCOL, "packet before CONNACK");
        return;
    }
    switch (pkt->type) {
    case MQTT_PUBLISH:
        handle_publish(c, pkt);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        handle_ack(c, pkt);
        break;
    case MQTT_SUBACK:
        if (c->opt.on_suback)
            c->opt.on_suback(c, pkt->packet_id, pkt->entries.p, pkt->n_entries, c->opt.user);
        break;
    case MQTT_PINGRESP:
        c->ping_outstanding = false;
        break;
    case MQTT_UNSUBACK:
        break;
    case MQTT_DISCONNECT:
        fail(c, VIGIL_ERR_CLOSED, "DISCONNECT from the server");
        break;
    default:
        fail(c, VIGIL_ERR_PROTOCOL, "unexpected packet from the server");
        break;
    }
}

static bool connection_live(const struct mqttc *c)
{
    return c->tcp_open && (c->state == ST_WAIT_CONNACK || c->state == ST_CONNECTED ||
                           c->state == ST_STOPPING);
}

/* Decodes and handles every complete packet in the input buffer. */
static void process_input(struct mqttc *c)
{
    size_t off = 0;

    while (connection_live(c)) {
        struct mqtt_packet pkt;
        struct mqtt_error err;
        size_t header_len;
        uint32_t remaining;
        vigil_err rc;

        rc = mqtt_frame(c->in.data + off, c->in.len - off, &header_len, &remaining, &err);
        if (rc == VIGIL_ERR_AGAIN)
            break;
        if (rc != VIGIL_OK) {
            fail(c, VIGIL_ERR_PROTOCOL, err.text ? err.text : "malformed packet");
            return;
        }
        if (header_len + remaining > c->opt.max_packet_size) {
            fail(c, VIGIL_ERR_LIMIT, "packet larger than Maximum Packet Size");
            return;
        }
        if (c->in.len - off < header_len + remaining)
            break;
        rc = mqtt_decode(c->in.data + off, header_len + remaining, c->opt.version, false, &pkt,
                         &err);
        if (rc != VIGIL_OK) {
            log_debug("mqtt client %s: invalid packet from server: %s (%s)", c->client_id,
                      err.text ? err.text : "?", err.rule ? err.rule : "?");
            fail(c, VIGIL_ERR_PROTOCOL, "invalid packet from the server");
            return;
        }
        handle_packet(c, &pkt);
        off += header_len + remaining;
    }
    if (c->tcp_open)
        vigil_buf_consume(&c->in, off);
}

/* ---- Public operations ------------------------------------------------ */

static vigil_err queue_qos_publish(struct mqttc *c, struct mqtt_packet *pkt, uint16_t *packet_id)
{
    struct inflight *s = NULL;
    size_t at;
    vigil_err rc;

    if (c->n_used >= c->window)
        return VIGIL_ERR_LIMIT;
    for (uint16_t i = 0; i < c->opt.max_inflight && s == NULL; i++)
        if (c->slots[i].packet_id == 0)
            s = &c->slots[i];
    if (s == NULL)
        return VIGIL_ERR_LIMIT;
    pkt->packet_id = next_packet_id(c);
    rc = encode_packet(c, pkt, &at);
    if (rc != VIGIL_OK)
        return rc;
    s->packet = vigil_memdup(c->out.data + at, c->out.len - at);
    if (s->packet == NULL) {
        c->out.len = at;
        return VIGIL_ERR_NOMEM;
    }
    s->len = c->out.len - at;
    s->packet_id = pkt->packet_id;
    s->qos = pkt->publish.qos;
    s->stage = STAGE_WAIT_ACK;
    c->n_used++;
    if (packet_id)
        *packet_id = pkt->packet_id;
    return VIGIL_OK;
}

vigil_err mqttc_publish(struct mqttc *c, const char *topic, const void *payload, size_t len,
                        uint8_t qos, bool retain, uint16_t *packet_id)
{
    struct mqtt_packet pkt;
    size_t at;
    vigil_err rc;

    if (c->state != ST_CONNECTED)
        return VIGIL_ERR_CLOSED;
    if (qos > 2 || topic == NULL || topic[0] == '\0' || len > MQTT_VBI_MAX)
        return VIGIL_ERR_INVALID;
    memset(&pkt, 0, sizeof pkt);
    pkt.type = MQTT_PUBLISH;
    pkt.flags = (uint8_t)((qos << 1) | (retain ? 1 : 0));
    pkt.publish.qos = qos;
    pkt.publish.retain = retain;
    pkt.publish.topic = cstr(topic);
    pkt.publish.payload.p = payload;
    pkt.publish.payload.len = (uint32_t)len;
    if (qos > 0)
        rc = queue_qos_publish(c, &pkt, packet_id);
    else
        rc = encode_packet(c, &pkt, &at);
    if (rc != VIGIL_OK)
        return rc;
    c->counters.published[qos]++;
    c->last_tx_ms = vigil_time_mono_ms();
    kick_write(c);
    return VIGIL_OK;
}

vigil_err mqttc_subscribe(struct mqttc *c, const char *const *filters, size_t n, uint8_t options,
                          uint16_t *packet_id)
{
    uint8_t payload[4096];
    size_t used = 0;
    struct mqtt_packet pkt;
    vigil_err rc;

    if (c->state != ST_CONNECTED)
        return VIGIL_ERR_CLOSED;
    if (n == 0)
        return VIGIL_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        size_t w = mqtt_encode_sub_entry(filters[i], options, payload + used,
                                         sizeof payload - used);

        if (w == 0)
            return VIGIL_ERR_LIMIT;
        used += w;
    }
    memset(&pkt, 0, sizeof pkt);
    pkt.type = MQTT_SUBSCRIBE;
    pkt.flags = 0x02;
    pkt.packet_id = next_packet_id(c);
    pkt.entries.p = payload;
    pkt.entries.len = (uint32_t)used;
    pkt.n_entries = (uint32_t)n;
    rc = send_packet(c, &pkt);
    if (rc == VIGIL_OK && packet_id)
        *packet_id = pkt.packet_id;
    return rc;
}

void mqttc_stop(struct mqttc *c)
{
    struct mqtt_packet pkt;

    c->auto_reconnect = false;
    if (c->state == ST_BACKOFF) {
        uv_timer_stop(&c->timer);
        c->state = ST_IDLE;
        return;
    }
    if (c->state != ST_CONNECTED) {
        fail(c, VIGIL_ERR_CLOSED, "stopped");
        return;
    }
    memset(&pkt, 0, sizeof pkt);
    pkt.type = MQTT_DISCONNECT;
    pkt.reason_code = MQTT_RC_SUCCESS;
    c->state = ST_STOPPING;
    if (send_packet(c, &pkt) != VIGIL_OK) {
        fail(c, VIGIL_ERR_CLOSED, "stopped");
        return;
    }
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, on_timeout, 2000, 0);
}

void mqttc_close(struct mqttc *c, void (*on_closed)(void *arg), void *arg)
{
    c->releasing = true;
    c->auto_reconnect = false;
    c->on_closed = on_closed;
    c->closed_arg = arg;
    uv_timer_stop(&c->timer);
    if (c->tcp_open) {
        c->tcp_open = false;
        uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
    }
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

bool mqttc_connected(const struct mqttc *c)
{
    return c->state == ST_CONNECTED;
}

size_t mqttc_inflight(const struct mqttc *c)
{
    return c->n_used;
}

size_t mqttc_pending_output(const struct mqttc *c)
{
    return c->out.len + c->wbuf.len;
}

const struct mqttc_counters *mqttc_counters(const struct mqttc *c)
{
    return &c->counters;
}

const char *mqttc_client_id(const struct mqttc *c)
{
    return c->client_id;
}
