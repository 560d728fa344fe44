/* PINGREQ, DISCONNECT and AUTH. */
#include "broker/broker.h"

bool handle_pingreq(struct conn *c, const struct mqtt_packet *pkt)
{
    struct mqtt_packet p = {.type = MQTT_PINGRESP};

    (void)pkt;
    conn_send(c, &p);
    return true;
}

bool handle_disconnect(struct conn *c, const struct mqtt_packet *pkt)
{
    struct session *s = c->session;

    if (c->version == MQTT_V5 && (pkt->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY))) {
        if (s->expiry_interval == 0 && pkt->props.session_expiry != 0) {
            struct mqtt_error err = {MQTT_RC_PROTOCOL_ERROR, "MQTT-3.14.2-2",
                                     "session expiry set in DISCONNECT after 0 in CONNECT"};

            conn_protocol_error(c, &err, MQTT_DISCONNECT);
            return false;
        }
        s->expiry_interval = pkt->props.session_expiry;
        if (s->expiry_interval > c->hub->cfg.limits.max_session_expiry)
            s->expiry_interval = c->hub->cfg.limits.max_session_expiry;
        s->persistent = s->expiry_interval > 0;
    }
    /* A normal DISCONNECT discards the will; reason 0x04 asks to keep it. */
    if (!(c->version == MQTT_V5 && pkt->reason_code == MQTT_RC_DISCONNECT_WITH_WILL) &&
        s->cold != NULL) {
        msg_unref(s->cold->will);
        s->cold->will = NULL;
    }
    conn_close(c, 0xFF, "client sent DISCONNECT");
    return false;
}

bool handle_auth(struct conn *c, const struct mqtt_packet *pkt)
{
    struct mqtt_error err = {MQTT_RC_PROTOCOL_ERROR, "MQTT-4.12.0-1",
                             "AUTH without an authentication method in CONNECT"};

    (void)pkt;
    conn_protocol_error(c, &err, MQTT_AUTH);
    return false;
}
