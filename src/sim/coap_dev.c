/* CoAP requests of a simulated device: queue, retransmission, responses. */
#include "sim/coap_dev.h"

#include <string.h>

#include "core/alloc.h"
#include "proto/coap/coap.h"

void coap_dev_init(struct coap_dev *d, const struct coap_dev_config *cfg)
{
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    model_rng_seed(&d->rng, cfg->seed);
    d->next_mid = (uint16_t)model_rng_next(&d->rng);
    d->next_token = (uint32_t)model_rng_next(&d->rng);
}

static void release_request(struct coap_dev_request *r)
{
    vigil_free(r->payload);
    memset(r, 0, sizeof *r);
}

void coap_dev_free(struct coap_dev *d)
{
    if (d->active)
        release_request(&d->current);
    while (d->q_len > 0) {
        release_request(&d->queue[d->q_head]);
        d->q_head = (d->q_head + 1) % COAP_DEV_QUEUE;
        d->q_len--;
    }
    d->active = false;
}

/* Adds one Uri-Path option per segment of path; empty segments are not
 * allowed. */
static bool add_path(struct coap_msg *m, const char *path)
{
    const char *p = path;

    while (*p != '\0') {
        size_t n = strcspn(p, "/");

        if (n == 0 || coap_add_option(m, COAP_OPT_URI_PATH, (const uint8_t *)p, (uint32_t)n) !=
                          VIGIL_OK)
            return false;
        p += n;
        if (*p == '/')
            p++;
        if (*p == '\0' && p[-1] == '/')
            return false;
    }
    return m->n_options > 0;
}

size_t coap_dev_encode_post(uint8_t *out, size_t cap, uint8_t type, uint16_t mid,
                            const uint8_t *token, uint8_t token_len, const char *path,
                            uint16_t format, const uint8_t *payload, size_t len)
{
    struct coap_msg m;
    uint8_t cf[4];

    memset(&m, 0, sizeof m);
    m.type = type;
    m.code = COAP_POST;
    m.message_id = mid;
    m.token = token;
    m.token_len = token_len;
    if (strlen(path) >= COAP_DEV_MAX_PATH || !add_path(&m, path))
        return 0;
    if (coap_add_option(&m, COAP_OPT_CONTENT_FORMAT, cf, coap_uint_encode(format, cf)) != VIGIL_OK)
        return 0;
    m.payload = len > 0 ? payload : NULL;
    m.payload_len = len;
    return coap_encode(&m, out, cap);
}

static void new_token(struct coap_dev *d, uint8_t token[COAP_DEV_TOKEN_LEN])
{
    uint32_t t = d->next_token++;

    token[0] = (uint8_t)(t >> 24);
    token[1] = (uint8_t)(t >> 16);
    token[2] = (uint8_t)(t >> 8);
    token[3] = (uint8_t)t;
}

static void transmit(struct coap_dev *d)
{
    if (d->cfg.send(d->cfg.user, d->wire, d->wire_len) != VIGIL_OK)
        return; /* lost like any datagram; the retransmission timer covers it */
}

/* Sends the head of the queue when nothing is outstanding. */
static void send_next(struct coap_dev *d, uint64_t now_ms)
{
    struct coap_dev_request *r;

    while (!d->active && d->online && d->q_len > 0) {
        r = &d->queue[d->q_head];
        d->current = *r;
        memset(r, 0, sizeof *r);
        d->q_head = (d->q_head + 1) % COAP_DEV_QUEUE;
        d->q_len--;
        d->mid = d->next_mid++;
        new_token(d, d->token);
        d->wire_len = coap_dev_encode_post(d->wire, sizeof d->wire, COAP_CON, d->mid, d->token,
                                           COAP_DEV_TOKEN_LEN, d->current.path,
                                           d->current.format, d->current.payload,
                                           d->current.len);
        if (d->wire_len == 0) {
            release_request(&d->current);
            continue;
        }
        d->active = true;
        d->acked_empty = false;
        d->retries = 0;
        /* ACK_TIMEOUT * (1 + r * (ACK_RANDOM_FACTOR - 1)) with factor 1.5. */
        d->timeout_ms = COAP_DEV_ACK_TIMEOUT_MS +
                        (uint32_t)(model_rng_uniform(&d->rng) * COAP_DEV_ACK_TIMEOUT_MS / 2);
        d->due_ms = now_ms + d->timeout_ms;
        d->counters.con_sent++;
        transmit(d);
    }
}

static vigil_err send_non(struct coap_dev *d, const char *path, uint16_t format,
                          const uint8_t *payload, size_t len)
{
    uint8_t wire[COAP_DEV_MAX_PAYLOAD + 128];
    uint8_t token[COAP_DEV_TOKEN_LEN];
    size_t n;

    if (!d->online)
        return VIGIL_ERR_CLOSED;
    new_token(d, token);
    n = coap_dev_encode_post(wire, sizeof wire, COAP_NON, d->next_mid++, token, sizeof token,
                             path, format, payload, len);
    if (n == 0)
        return VIGIL_ERR_INVALID;
    d->counters.non_sent++;
    return d->cfg.send(d->cfg.user, wire, n);
}

vigil_err coap_dev_post(struct coap_dev *d, bool confirmable, const char *path, uint16_t format,
                        const uint8_t *payload, size_t len, uint64_t now_ms)
{
    struct coap_dev_request *r;

    if (len > COAP_DEV_MAX_PAYLOAD || path[0] == '\0' || strlen(path) >= COAP_DEV_MAX_PATH)
        return VIGIL_ERR_INVALID;
    if (!confirmable)
        return send_non(d, path, format, payload, len);
    if (d->q_len == COAP_DEV_QUEUE) {
        d->counters.dropped++;
        return VIGIL_ERR_LIMIT;
    }
    r = &d->queue[(d->q_head + d->q_len) % COAP_DEV_QUEUE];
    r->payload = len > 0 ? vigil_memdup(payload, len) : NULL;
    if (len > 0 && r->payload == NULL)
        return VIGIL_ERR_NOMEM;
    memcpy(r->path, path, strlen(path) + 1);
    r->format = format;
    r->len = len;
    d->q_len++;
    send_next(d, now_ms);
    return VIGIL_OK;
}

static void complete(struct coap_dev *d, enum coap_dev_outcome outcome, uint8_t code,
                     uint64_t now_ms)
{
    if (outcome == COAP_DEV_ACKNOWLEDGED)
        d->counters.acknowledged++;
    else if (outcome == COAP_DEV_REJECTED)
        d->counters.rejected++;
    else
        d->counters.timed_out++;
    d->active = false;
    if (d->cfg.done)
        d->cfg.done(d->cfg.user, outcome, code, d->current.path);
    release_request(&d->current);
    send_next(d, now_ms);
}

static enum coap_dev_outcome outcome_of(uint8_t code)
{
    return COAP_CODE_CLASS(code) == 2 ? COAP_DEV_ACKNOWLEDGED : COAP_DEV_REJECTED;
}

static bool token_matches(const struct coap_dev *d, const struct coap_msg *m)
{
    return d->active && m->token_len == COAP_DEV_TOKEN_LEN &&
           memcmp(m->token, d->token, COAP_DEV_TOKEN_LEN) == 0;
}

static void send_empty(struct coap_dev *d, uint8_t type, uint16_t mid)
{
    struct coap_msg m;
    uint8_t wire[8];
    size_t n;

    memset(&m, 0, sizeof m);
    m.type = type;
    m.code = COAP_EMPTY;
    m.message_id = mid;
    n = coap_encode(&m, wire, sizeof wire);
    if (n > 0)
        d->cfg.send(d->cfg.user, wire, n);
}

/* A response carried in a CON or NON message of its own. */
static void handle_separate(struct coap_dev *d, const struct coap_msg *m, uint64_t now_ms)
{
    if (m->type == COAP_CON)
        send_empty(d, COAP_ACK, m->message_id);
    if (token_matches(d, m)) {
        complete(d, outcome_of(m->code), m->code, now_ms);
        return;
    }
    /* A response to a non-confirmable request: only errors matter. */
    if (m->type == COAP_NON && COAP_CODE_CLASS(m->code) >= 4) {
        d->counters.rejected++;
        if (d->cfg.done)
            d->cfg.done(d->cfg.user, COAP_DEV_REJECTED, m->code, "");
    }
}

void coap_dev_input(struct coap_dev *d, const uint8_t *data, size_t len, uint64_t now_ms)
{
    struct coap_error err;
    struct coap_msg m;

    if (coap_decode(data, len, &m, &err) != VIGIL_OK)
        return;
    switch (m.type) {
    case COAP_ACK:
        if (!d->active || m.message_id != d->mid)
            return;
        if (m.code != COAP_EMPTY) {
            if (token_matches(d, &m))
                complete(d, outcome_of(m.code), m.code, now_ms);
        } else if (!d->acked_empty) {
            /* Retransmission stops; the response follows separately. */
            d->acked_empty = true;
            d->due_ms = now_ms + COAP_DEV_SEPARATE_WAIT_MS;
        }
        break;
    case COAP_RST:
        if (d->active && m.message_id == d->mid)
            complete(d, COAP_DEV_REJECTED, 0, now_ms);
        break;
    default:
        if (COAP_CODE_CLASS(m.code) >= 2)
            handle_separate(d, &m, now_ms);
        else if (m.type == COAP_CON)
            /* A request or a CoAP ping: this client serves no resources. */
            send_empty(d, COAP_RST, m.message_id);
        break;
    }
}

void coap_dev_tick(struct coap_dev *d, uint64_t now_ms)
{
    if (!d->active || !d->online || now_ms < d->due_ms)
        return;
    if (d->acked_empty || d->retries >= COAP_DEV_MAX_RETRANSMIT) {
        complete(d, COAP_DEV_TIMED_OUT, 0, now_ms);
        return;
    }
    d->retries++;
    d->timeout_ms *= 2;
    d->due_ms = now_ms + d->timeout_ms;
    d->counters.retransmissions++;
    transmit(d);
}

/* Puts the outstanding request back at the head of the queue. */
static void requeue_current(struct coap_dev *d)
{
    if (!d->active)
        return;
    if (d->q_len == COAP_DEV_QUEUE) {
        /* The queue filled up behind it: the newest waiting one goes, as
         * coap_dev_post() refuses new requests when the queue is full. */
        d->counters.dropped++;
        d->q_len--;
        release_request(&d->queue[(d->q_head + d->q_len) % COAP_DEV_QUEUE]);
    }
    d->q_head = (d->q_head + COAP_DEV_QUEUE - 1) % COAP_DEV_QUEUE;
    d->queue[d->q_head] = d->current;
    d->q_len++;
    memset(&d->current, 0, sizeof d->current);
    d->active = false;
}

void coap_dev_set_online(struct coap_dev *d, bool online, uint64_t now_ms)
{
    d->online = online;
    if (!online)
        requeue_current(d);
    else
        send_next(d, now_ms);
}

bool coap_dev_idle(const struct coap_dev *d)
{
    return !d->active && d->q_len == 0;
}
