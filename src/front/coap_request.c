/* CoAP resources: /t (a SenML pack of the device) and /t/<metric> (one
 * measurement), /ps/<topic> (any MQTT topic), /.well-known/core, with
 * request bodies reassembled from Block1 blocks and responses to
 * confirmable publishes held until the store made them durable. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"
#include "front/coap_internal.h"

/* One request being handled. */
struct coap_req {
    struct coap_peer *cp;
    const struct coap_msg *msg;
    char path[COAP_PATH_MAX];
    size_t path_len;
    const uint8_t *body;
    size_t body_len;
    uint32_t format;          /* Content-Format, COAP_FORMAT_NONE when absent */
    bool has_block1;
    struct coap_block block1; /* last block of a reassembled body */
};

static void reply_error(struct coap_req *q, uint8_t code, const char *diagnostic)
{
    coap_reply_error(q->cp, q->msg, code, diagnostic);
}

/* Rules of the events of rejected requests. An unknown resource, method or
 * format, a proxy request and a broken block sequence are answered by the
 * response code sections; they show a peer probing the server. */
#define RULE_NOT_FOUND "RFC7252-5.9.2.5"
#define RULE_METHOD "RFC7252-5.9.2.6"
#define RULE_PROXY "RFC7252-5.9.3.6"
#define RULE_INCOMPLETE "RFC7959-2.9.2"
#define RULE_BLOCK "RFC7959-2.2"
#define RULE_URI_PATH "RFC7252-5.10.1"

/* Sends code with a diagnostic and leaves a malformed event naming rule. */
static void reject(struct coap_req *q, uint8_t code, const char *rule, const char *diagnostic)
{
    coap_emit(q->cp->front, q->cp->udp, VIGIL_EV_MALFORMED, rule, diagnostic,
              (uint32_t)q->msg->payload_len);
    reply_error(q, code, diagnostic);
}

static double now_seconds(void)
{
    return floor((double)vigil_time_now_us() / 1000.0) / 1000.0;
}

/* ---- responses after the store ---- */

void coap_durable_done(void *arg, vigil_err rc)
{
    struct coap_durable *d = arg;
    struct coap_front *f = d->front;
    struct coap_peer *cp = d->peer;

    if (cp != NULL) {
        struct coap_reply r;

        for (struct coap_durable **pp = &cp->durable; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == d) {
                *pp = d->next;
                break;
            }
        }
        coap_reply_init_raw(&r, COAP_ACK, d->mid, d->token, d->token_len,
                            rc == VIGIL_OK ? d->code : COAP_INTERNAL_SERVER_ERROR);
        if (d->has_block1)
            coap_reply_block(&r, COAP_OPT_BLOCK1, &d->block1);
        coap_reply_send(cp, &r);
    }
    vigil_free(d);
    f->n_durable--;
    coap_front_release(f);
}

/* Sends code now, or for a confirmable request once the store made what
 * was published durable. */
static void reply_changed(struct coap_req *q, uint8_t code)
{
    struct coap_front *f = q->cp->front;
    struct coap_durable *d;
    struct coap_reply r;

    if (q->msg->type == COAP_CON && COAP_CODE_CLASS(code) == 2) {
        d = vigil_calloc(1, sizeof *d);
        if (d == NULL) {
            reply_error(q, COAP_SERVICE_UNAVAILABLE, "no memory");
            return;
        }
        d->front = f;
        d->peer = q->cp;
        d->mid = q->msg->message_id;
        d->token_len = q->msg->token_len;
        if (q->msg->token_len > 0)
            memcpy(d->token, q->msg->token, q->msg->token_len);
        d->code = code;
        d->has_block1 = q->has_block1;
        d->block1 = q->block1;
        d->next = q->cp->durable;
        q->cp->durable = d;
        f->n_durable++;
        gw_when_durable(f->hub, coap_durable_done, d);
        return;
    }
    coap_reply_init(&r, q->cp, q->msg, code);
    if (q->has_block1)
        coap_reply_block(&r, COAP_OPT_BLOCK1, &q->block1);
    coap_reply_send(q->cp, &r);
}

/* ---- publishing ---- */

static uint8_t publish_result(enum gw_pub_result res, const char **diag)
{
    switch (res) {
    case GW_PUB_OK:
        return COAP_CHANGED;
    case GW_PUB_DENIED:
        *diag = "publish not allowed";
        return COAP_FORBIDDEN;
    case GW_PUB_BAD_TOPIC:
        *diag = "invalid topic";
        return COAP_BAD_REQUEST;
    default:
        *diag = "no memory";
        return COAP_SERVICE_UNAVAILABLE;
    }
}

/* Publishes each record on the device's topic of its metric, retained,
 * as SenML JSON in the form `vigil sim` publishes. uri_metric is the
 * metric of /t/<metric>, NULL for a pack to /t. */
static uint8_t publish_records(struct coap_peer *cp, struct senml_pack *pack,
                               const char *uri_metric, uint8_t qos, const char **diag)
{
    char topic[1024];
    /* Room for the longest record: a string value of SENML_TEXT_MAX - 1
     * bytes that all need \u escapes, with name, unit and time. */
    char payload[4096];

    for (size_t i = 0; i < pack->n; i++) {
        struct senml_record *rec = &pack->recs[i];
        size_t mlen, tlen, plen;
        const char *metric = senml_metric(rec->name, &mlen);
        uint8_t code;

        if (uri_metric != NULL) {
            if (mlen > 0 && (mlen != strlen(uri_metric) || memcmp(metric, uri_metric, mlen) != 0)) {
                *diag = "record name does not match the metric of the URI";
                return COAP_BAD_REQUEST;
            }
            metric = uri_metric;
            mlen = strlen(uri_metric);
        }
        if (!senml_metric_valid(metric, mlen)) {
            *diag = "metric must be 1-63 letters, digits, '_', '-' or '.'";
            return COAP_BAD_REQUEST;
        }
        senml_default_unit(rec, metric);
        plen = senml_format_record(payload, sizeof payload, cp->client.device, metric, rec);
        tlen = gw_device_topic(&cp->client, metric, mlen, topic, sizeof topic);
        if (plen == 0 || tlen == 0) {
            *diag = "measurement does not fit a topic and payload";
            return COAP_BAD_REQUEST;
        }
        code = publish_result(gw_publish(&cp->client, topic, tlen, (const uint8_t *)payload, plen,
                                         qos, true),
                              diag);
        if (code != COAP_CHANGED)
            return code;
    }
    return COAP_CHANGED;
}

/* Content-Format of a body that came without one. */
static uint32_t guess_measurement_format(const uint8_t *body, size_t len)
{
    if (len > 0 && body[0] == '[')
        return COAP_FORMAT_SENML_JSON;
    if (len > 0 && body[0] >= 0x80 && body[0] <= 0x9F)
        return COAP_FORMAT_SENML_CBOR; /* a CBOR array head */
    return COAP_FORMAT_TEXT;
}

static uint8_t parse_measurements(struct coap_req *q, const char *uri_metric,
                                  struct senml_pack *pack, const char **diag)
{
    uint32_t format = q->format;
    vigil_err rc;

    if (format == COAP_FORMAT_NONE)
        format = guess_measurement_format(q->body, q->body_len);
    if (format == COAP_FORMAT_TEXT && uri_metric != NULL) {
        rc = senml_from_text(q->body, q->body_len, uri_metric, now_seconds(), &pack->recs[0],
                             diag);
        pack->n = rc == VIGIL_OK ? 1 : 0;
    } else if (format == COAP_FORMAT_SENML_JSON) {
        rc = senml_parse_json(q->body, q->body_len, now_seconds(), pack, diag);
    } else if (format == COAP_FORMAT_SENML_CBOR) {
        rc = senml_parse_cbor(q->body, q->body_len, now_seconds(), pack, diag);
    } else {
        *diag = uri_metric != NULL ? "use text/plain (0), SenML JSON (110) or SenML CBOR (112)"
                                   : "use SenML JSON (110) or SenML CBOR (112)";
        return COAP_UNSUPPORTED_CONTENT_FORMAT;
    }
    if (rc != VIGIL_OK)
        return COAP_BAD_REQUEST;
    if (uri_metric != NULL && pack->n != 1) {
        *diag = "one measurement per /t/<metric>; POST packs to /t";
        return COAP_BAD_REQUEST;
    }
    return COAP_CHANGED;
}

/* POST /t, and PUT or POST /t/<metric>. */
static void publish_measurements(struct coap_req *q, const char *uri_metric)
{
    struct senml_pack pack = {.cap = SENML_MAX_RECORDS};
    const char *diag = NULL;
    uint8_t qos = q->msg->type == COAP_CON ? 1 : 0;
    uint8_t code;

    pack.recs = vigil_calloc(SENML_MAX_RECORDS, sizeof *pack.recs);
    if (pack.recs == NULL) {
        reply_error(q, COAP_SERVICE_UNAVAILABLE, "no memory");
        return;
    }
    code = parse_measurements(q, uri_metric, &pack, &diag);
    if (code == COAP_CHANGED)
        code = publish_records(q->cp, &pack, uri_metric, qos, &diag);
    vigil_free(pack.recs);
    if (code != COAP_CHANGED) {
        if (code == COAP_BAD_REQUEST)
            coap_emit(q->cp->front, q->cp->udp, VIGIL_EV_MALFORMED, "RFC8428",
                      diag != NULL ? diag : "invalid measurement", (uint32_t)q->body_len);
        reply_error(q, code, diag);
        return;
    }
    reply_changed(q, code);
}

/* ---- reading ---- */

/* Checks If-Match and If-None-Match (RFC 7252 section 5.10.8) against the
 * retained message m (NULL when none). */
static bool preconditions_hold(const struct coap_msg *msg, const struct msg *m)
{
    const struct coap_option *o;
    uint8_t tag[4];
    uint32_t etag;

    if (coap_find_option(msg, COAP_OPT_IF_NONE_MATCH, 0) != NULL && m != NULL)
        return false;
    if (coap_find_option(msg, COAP_OPT_IF_MATCH, 0) == NULL)
        return true;
    if (m == NULL)
        return false;
    etag = coap_etag(m->payload, m->payload_len);
    tag[0] = (uint8_t)(etag >> 24);
    tag[1] = (uint8_t)(etag >> 16);
    tag[2] = (uint8_t)(etag >> 8);
    tag[3] = (uint8_t)etag;
    for (unsigned i = 0; (o = coap_find_option(msg, COAP_OPT_IF_MATCH, i)) != NULL; i++)
        if (o->len == 0 || (o->len == 4 && memcmp(o->value, tag, 4) == 0))
            return true;
    return false;
}

/* Checks the conditions of a PUT, POST or DELETE against the retained
 * message of topic (len 0: a resource without one); false when 4.12
 * Precondition Failed went out and the method must not be performed. */
static bool conditions_met(struct coap_req *q, const char *topic, size_t len)
{
    const struct msg *m = len > 0 ? gw_retained(q->cp->front->hub, topic, len) : NULL;

    if (preconditions_hold(q->msg, m))
        return true;
    reply_error(q, COAP_PRECONDITION_FAILED, "precondition failed");
    return false;
}

static bool read_allowed(struct coap_req *q, const char *topic, size_t len)
{
    if (gw_can_subscribe(&q->cp->client, topic, len))
        return true;
    gw_emit(&q->cp->client, VIGIL_EV_ACL_DENY, topic, len, NULL, "read not allowed");
    reply_error(q, COAP_FORBIDDEN, "read not allowed");
    return false;
}

/* GET of a topic: Observe registration and deregistration, a later block
 * of the last large representation, or the retained message. */
static void get_topic(struct coap_req *q, const char *topic, size_t len)
{
    struct coap_block b2;
    uint32_t observe;
    struct msg *m;

    if (coap_get_observe(q->msg, &observe) == VIGIL_OK && observe <= 1) {
        coap_observe_request(q->cp, q->msg, q->path, topic, len, observe);
        return;
    }
    if (coap_get_block(q->msg, COAP_OPT_BLOCK2, &b2) == VIGIL_OK && b2.num > 0 &&
        q->cp->b2_path != NULL && strcmp(q->cp->b2_path, q->path) == 0) {
        coap_send_cached_block(q->cp, q->msg, &b2);
        return;
    }
    if (memchr(topic, '+', len) != NULL || memchr(topic, '#', len) != NULL) {
        reply_error(q, COAP_BAD_REQUEST, "a topic filter can only be observed");
        return;
    }
    if (!read_allowed(q, topic, len))
        return;
    m = gw_retained(q->cp->front->hub, topic, len);
    if (m == NULL) {
        reply_error(q, COAP_NOT_FOUND, "no retained message");
        return;
    }
    coap_send_message(q->cp, q->msg, q->path, m, false, 0);
}

/* PUT, POST or DELETE of /ps/<topic>: PUT sets the retained message that
 * GET returns, POST publishes without retaining, DELETE clears it. */
static void publish_topic(struct coap_req *q, const char *topic, size_t len)
{
    uint8_t qos = q->msg->type == COAP_CON ? 1 : 0;
    uint8_t code = q->msg->code;
    bool retain = code != COAP_POST;
    const char *diag = NULL;
    size_t body_len = code == COAP_DELETE ? 0 : q->body_len;
    uint8_t result;

    if (!conditions_met(q, topic, len))
        return;
    result = publish_result(gw_publish(&q->cp->client, topic, len, q->body, body_len, qos, retain),
                            &diag);
    if (result != COAP_CHANGED) {
        reply_error(q, result, diag);
        return;
    }
    reply_changed(q, code == COAP_DELETE ? COAP_DELETED : COAP_CHANGED);
}

/* ---- routing ---- */

static bool has_device(struct coap_req *q)
{
    if (q->cp->client.device[0] != '\0')
        return true;
    gw_emit(&q->cp->client, VIGIL_EV_ACL_DENY, q->path, q->path_len, NULL,
            "no device identity for /t");
    reply_error(q, COAP_FORBIDDEN, "no device identity");
    return false;
}

static void route_t(struct coap_req *q)
{
    const char *metric = q->path + 2;
    char topic[1024];
    size_t tlen;

    if (!has_device(q))
        return;
    if (q->path_len == 1) {
        if (q->msg->code == COAP_POST && conditions_met(q, NULL, 0))
            publish_measurements(q, NULL);
        else if (q->msg->code != COAP_POST)
            reject(q, COAP_METHOD_NOT_ALLOWED, RULE_METHOD, "POST a SenML pack to /t");
        return;
    }
    if (!senml_metric_valid(metric, q->path_len - 2)) {
        reject(q, COAP_NOT_FOUND, RULE_NOT_FOUND, "no such resource");
        return;
    }
    if (q->msg->code != COAP_GET && q->msg->code != COAP_PUT && q->msg->code != COAP_POST) {
        reject(q, COAP_METHOD_NOT_ALLOWED, RULE_METHOD, "use GET, PUT or POST");
        return;
    }
    tlen = gw_device_topic(&q->cp->client, metric, q->path_len - 2, topic, sizeof topic);
    if (tlen == 0) {
        reply_error(q, COAP_BAD_REQUEST, "metric does not fit a topic");
        return;
    }
    if (q->msg->code == COAP_GET)
        get_topic(q, topic, tlen);
    else if (conditions_met(q, topic, tlen))
        publish_measurements(q, metric);
}

static void route_ps(struct coap_req *q)
{
    const char *topic;
    size_t len;

    if (!coap_ps_topic(q->path, q->path_len, &topic, &len)) {
        reject(q, COAP_NOT_FOUND, RULE_NOT_FOUND, "name a topic below /ps/");
        return;
    }
    if (q->msg->code == COAP_GET)
        get_topic(q, topic, len);
    else
        publish_topic(q, topic, len);
}

static void route_well_known(struct coap_req *q)
{
    char links[1024];
    size_t n;

    if (q->msg->code != COAP_GET) {
        reject(q, COAP_METHOD_NOT_ALLOWED, RULE_METHOD, "use GET");
        return;
    }
    n = coap_core_links(links, sizeof links);
    coap_send_body(q->cp, q->msg, q->path, (const uint8_t *)links, n, COAP_FORMAT_LINK);
}

static void route(struct coap_req *q)
{
    const char *p = q->path;

    if (strcmp(p, ".well-known/core") == 0)
        route_well_known(q);
    else if (strcmp(p, "t") == 0 || strncmp(p, "t/", 2) == 0)
        route_t(q);
    else if (strcmp(p, "ps") == 0 || strncmp(p, "ps/", 3) == 0)
        route_ps(q);
    else
        reject(q, COAP_NOT_FOUND, RULE_NOT_FOUND, "no such resource");
}

/* ---- request bodies ---- */

/* Adds the Block1 block of q to the peer's reassembly; true with q->body
 * set once the body is complete, false when a response went out. */
static bool block1_step(struct coap_req *q, uint32_t max_body, uint32_t size1)
{
    struct coap_peer *cp = q->cp;
    struct coap_block echo = q->block1;
    enum coap_block1_status st;
    struct coap_reply r;

    st = coap_reassembly_feed(&cp->block1, q->path, q->msg->code, &q->block1, q->msg->payload,
                              q->msg->payload_len, max_body, size1, coap_now_ms(cp->front));
    switch (st) {
    case COAP_B1_CONTINUE:
        coap_reply_init(&r, cp, q->msg, COAP_CONTINUE);
        echo.more = true;
        coap_reply_block(&r, COAP_OPT_BLOCK1, &echo);
        coap_reply_send(cp, &r);
        return false;
    case COAP_B1_DONE:
        q->body = cp->block1.body.data;
        q->body_len = cp->block1.body.len;
        q->has_block1 = true;
        q->block1.more = false;
        return true;
    case COAP_B1_TOO_LARGE:
        coap_reply_init(&r, cp, q->msg, COAP_REQUEST_ENTITY_TOO_LARGE);
        coap_reply_uint(&r, COAP_OPT_SIZE1, max_body);
        coap_reply_send(cp, &r);
        return false;
    case COAP_B1_INCOMPLETE:
        reject(q, COAP_REQUEST_ENTITY_INCOMPLETE, RULE_INCOMPLETE, "block out of sequence");
        return false;
    case COAP_B1_BAD:
        reject(q, COAP_BAD_REQUEST, RULE_BLOCK,
               "block with M set shorter than its size, or payload longer than the block");
        return false;
    default:
        reply_error(q, COAP_SERVICE_UNAVAILABLE, "no memory");
        return false;
    }
}

/* Takes the body of q, reassembling Block1 blocks; false when a response
 * was sent instead (2.31 Continue or an error). */
static bool take_body(struct coap_req *q)
{
    struct coap_peer *cp = q->cp;
    uint32_t max_body = cp->front->hub->cfg.gateway.coap_max_body;
    uint32_t size1 = 0;
    struct coap_reply r;
    vigil_err rc;

    q->body = q->msg->payload;
    q->body_len = q->msg->payload_len;
    rc = coap_get_block(q->msg, COAP_OPT_BLOCK1, &q->block1);
    if (rc == VIGIL_ERR_NOT_FOUND || (q->msg->code != COAP_POST && q->msg->code != COAP_PUT)) {
        if (q->body_len <= max_body)
            return true;
        coap_reply_init(&r, cp, q->msg, COAP_REQUEST_ENTITY_TOO_LARGE);
        coap_reply_uint(&r, COAP_OPT_SIZE1, max_body);
        coap_reply_send(cp, &r);
        return false;
    }
    if (rc != VIGIL_OK) {
        reject(q, COAP_BAD_REQUEST, RULE_BLOCK, "invalid Block1 option (SZX 7 is reserved)");
        return false;
    }
    coap_get_size1(q->msg, &size1);
    return block1_step(q, max_body, size1);
}

void coap_handle_request(struct coap_peer *cp, const struct coap_msg *msg)
{
    struct coap_req q = {.cp = cp, .msg = msg};
    uint16_t format;
    vigil_err rc;

    if (coap_find_option(msg, COAP_OPT_PROXY_URI, 0) != NULL ||
        coap_find_option(msg, COAP_OPT_PROXY_SCHEME, 0) != NULL) {
        reject(&q, COAP_CODE(5, 5), RULE_PROXY, "this server is no proxy");
        return;
    }
    /* RFC 7252 section 5.8: a method this server does not know (FETCH,
     * PATCH and any other) gets 4.05. */
    if (msg->code > COAP_DELETE) {
        reject(&q, COAP_METHOD_NOT_ALLOWED, RULE_METHOD, "use GET, POST, PUT or DELETE");
        return;
    }
    rc = coap_uri_path(msg, q.path, sizeof q.path, &q.path_len);
    if (rc != VIGIL_OK) {
        reject(&q, COAP_BAD_REQUEST, RULE_URI_PATH,
               rc == VIGIL_ERR_LIMIT ? "Uri-Path longer than vigil accepts"
                                     : "Uri-Path segment has '/' or NUL");
        return;
    }
    if (!coap_peer_login(cp)) {
        reply_error(&q, COAP_UNAUTHORIZED,
                    cp->front->dtls ? "device not accepted" : "credentials required: use CoAPS");
        return;
    }
    q.format = coap_get_content_format(msg, &format) == VIGIL_OK ? format : COAP_FORMAT_NONE;
    if (!take_body(&q))
        return;
    route(&q);
    if (q.has_block1)
        coap_reassembly_reset(&cp->block1);
}
