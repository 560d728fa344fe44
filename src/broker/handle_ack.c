/* Acknowledgements of messages the broker sent: PUBACK, PUBREC, PUBCOMP. */
#include "broker/broker.h"
#include "core/log.h"

static void ack_unknown(struct conn *c, const struct mqtt_packet *pkt)
{
    log_debug("conn %llu client '%s': %s for unknown packet id %u", (unsigned long long)c->id,
              c->client_id, mqtt_type_name(pkt->type), pkt->packet_id);
}

bool handle_puback(struct conn *c, const struct mqtt_packet *pkt)
{
    struct delivery *d = session_find_inflight(c->session, pkt->packet_id);

    if (d == NULL || d->qos != 1) {
        ack_unknown(c, pkt);
        return true;
    }
    session_complete(c->session, d);
    return true;
}

bool handle_pubrec(struct conn *c, const struct mqtt_packet *pkt)
{
    struct delivery *d = session_find_inflight(c->session, pkt->packet_id);
    struct mqtt_packet rel = {.type = MQTT_PUBREL, .packet_id = pkt->packet_id};

    if (d == NULL || d->qos != 2) {
        ack_unknown(c, pkt);
        rel.reason_code = MQTT_RC_PACKET_ID_NOT_FOUND;
    } else if (pkt->reason_code >= 0x80) {
        /* The receiver refused the message: the exchange ends here. */
        session_complete(c->session, d);
        return true;
    } else if (d->state != STORE_Q_PUBREL) {
        d->state = STORE_Q_PUBREL;
        if (d->seq != 0 && c->session->stored)
            persist_queue(c->session, d, STORE_QUEUE_UPDATE);
    }
    /* Once the PUBREL is out the PUBLISH must never be sent again (MQTT
     * 4.3.3). In a stored session it waits until the new state is durable,
     * so a restart resends the PUBREL, not the PUBLISH. Every PUBREL of
     * such a session takes that queue, also the one for an unknown packet
     * id, so that PUBRELs leave in the order of their PUBRECs (MQTT
     * 4.6.0). */
    if (c->session->stored)
        conn_send_when_durable(c, MQTT_PUBREL, pkt->packet_id, rel.reason_code);
    else
        conn_send(c, &rel);
    return true;
}

bool handle_pubcomp(struct conn *c, const struct mqtt_packet *pkt)
{
    struct delivery *d = session_find_inflight(c->session, pkt->packet_id);

    if (d == NULL || d->qos != 2 || d->state != STORE_Q_PUBREL) {
        ack_unknown(c, pkt);
        return true;
    }
    session_complete(c->session, d);
    return true;
}
