/* SUBSCRIBE and UNSUBSCRIBE: filter checks, access control, limits,
 * retained messages by Retain Handling. */
#include <string.h>

#include "broker/broker.h"
#include "broker/topic.h"
#include "core/alloc.h"

/* Decides the reason code for one subscription entry and applies it. */
static uint8_t subscribe_one(struct conn *c, const struct mqtt_sub_entry *e, uint32_t sub_id,
                             bool *send_retained)
{
    struct hub *hub = c->hub;
    const struct config_limits *lim = &hub->cfg.limits;
    const char *f = (const char *)e->filter.p, *group, *inner;
    size_t len = e->filter.len, glen, ilen;
    vigil_err split = topic_split_shared(f, len, &group, &glen, &inner, &ilen);
    bool existed = false;
    uint8_t fail = c->version == MQTT_V5 ? 0 : 0x80;
    struct vigil_event ev;

    *send_retained = false;
    if (split == VIGIL_ERR_INVALID || !topic_filter_valid(f, len)) {
        hub_emit(hub, c, VIGIL_EV_MALFORMED, f, len, "MQTT-4.7.1", "invalid topic filter");
        return fail ? fail : MQTT_RC_TOPIC_FILTER_INVALID;
    }
    if (len > lim->max_topic_length || topic_levels(f, len) > lim->max_topic_levels) {
        hub_emit(hub, c, VIGIL_EV_LIMIT, f, len, NULL, "topic filter exceeds the length or level limit");
        return fail ? fail : MQTT_RC_TOPIC_FILTER_INVALID;
    }
    if (!acl_can_subscribe(c, f, len)) {
        hub_emit(hub, c, VIGIL_EV_ACL_DENY, f, len, NULL, "subscribe not allowed");
        return fail ? fail : MQTT_RC_NOT_AUTHORIZED;
    }
    if (c->session->n_subs >= lim->max_subscriptions) {
        bool known = false;

        for (size_t i = 0; i < c->session->n_subs; i++)
            if (strlen(c->session->subs[i].filter) == len && memcmp(c->session->subs[i].filter, f, len) == 0)
                known = true;
        if (!known) {
            hub_emit(hub, c, VIGIL_EV_LIMIT, f, len, NULL, "subscription limit reached");
            return fail ? fail : MQTT_RC_QUOTA_EXCEEDED;
        }
    }
    if (session_add_sub(c->session, f, len, e->options, sub_id, &existed) != VIGIL_OK)
        return fail ? fail : MQTT_RC_UNSPECIFIED;
    vigil_event_init(&ev, VIGIL_EV_SUBSCRIBE);
    VIGIL_EVENT_SET(&ev, topic, f, len);
    ev.qos = MQTT_SUBOPT_QOS(e->options);
    hub_emit_ev(hub, c, &ev);
    if (split != VIGIL_OK) {
        uint8_t rh = c->version == MQTT_V5 ? MQTT_SUBOPT_RH(e->options) : 0;

        *send_retained = rh == 0 || (rh == 1 && !existed);
    }
    return MQTT_SUBOPT_QOS(e->options);
}

bool handle_subscribe(struct conn *c, const struct mqtt_packet *pkt)
{
    struct mqtt_packet ack = {.type = MQTT_SUBACK, .packet_id = pkt->packet_id};
    uint32_t sub_id = 0;
    uint8_t *codes = vigil_malloc(pkt->n_entries ? pkt->n_entries : 1);
    bool *retained = vigil_calloc(pkt->n_entries ? pkt->n_entries : 1, sizeof *retained);
    const uint8_t *cur = pkt->entries.p;
    struct mqtt_sub_entry e;
    uint32_t i = 0;

    if (codes == NULL || retained == NULL) {
        vigil_free(codes);
        vigil_free(retained);
        conn_close(c, MQTT_RC_UNSPECIFIED, "out of memory");
        return false;
    }
    if (pkt->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID))
        sub_id = pkt->props.sub_ids[0];
    while (i < pkt->n_entries && mqtt_sub_next(pkt, &cur, &e)) {
        if ((e.options & MQTT_SUBOPT_NO_LOCAL) &&
            topic_split_shared((const char *)e.filter.p, e.filter.len, &(const char *){0},
                               &(size_t){0}, &(const char *){0}, &(size_t){0}) == VIGIL_OK) {
            struct mqtt_error err = {MQTT_RC_PROTOCOL_ERROR, "MQTT-3.8.3-4",
                                     "No Local on a shared subscription"};

            vigil_free(codes);
            vigil_free(retained);
            conn_protocol_error(c, &err, MQTT_SUBSCRIBE);
            return false;
        }
        codes[i] = subscribe_one(c, &e, sub_id, &retained[i]);
        i++;
    }
    ack.entries = (struct mqtt_str){codes, i};
    ack.n_entries = i;
    conn_send(c, &ack);
    if (c->session->stored)
        conn_hold_until_durable(c);
    cur = pkt->entries.p;
    for (uint32_t j = 0; j < i && mqtt_sub_next(pkt, &cur, &e); j++)
        if (retained[j])
            router_send_retained(c->hub, c->session, (const char *)e.filter.p, e.filter.len,
                                 e.options, sub_id);
    vigil_free(codes);
    vigil_free(retained);
    return true;
}

bool handle_unsubscribe(struct conn *c, const struct mqtt_packet *pkt)
{
    struct mqtt_packet ack = {.type = MQTT_UNSUBACK, .packet_id = pkt->packet_id};
    uint8_t *codes = vigil_malloc(pkt->n_entries ? pkt->n_entries : 1);
    const uint8_t *cur = pkt->entries.p;
    struct mqtt_str f;
    uint32_t i = 0;

    if (codes == NULL) {
        conn_close(c, MQTT_RC_UNSPECIFIED, "out of memory");
        return false;
    }
    while (i < pkt->n_entries && mqtt_unsub_next(pkt, &cur, &f)) {
        bool removed = session_remove_sub(c->session, (const char *)f.p, f.len);

        codes[i++] = removed ? MQTT_RC_SUCCESS : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
        hub_emit(c->hub, c, VIGIL_EV_UNSUBSCRIBE, (const char *)f.p, f.len, NULL,
                 removed ? NULL : "no such subscription");
    }
    ack.entries = (struct mqtt_str){codes, i};
    ack.n_entries = i;
    conn_send(c, &ack);
    vigil_free(codes);
    return true;
}
