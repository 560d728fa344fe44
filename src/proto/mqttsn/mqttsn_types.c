/* MQTT-SN message types: names, defining sections and body lengths. */
#include <stddef.h>

#include "proto/mqttsn/mqttsn_internal.h"

#define ANY (-1)

static const struct sn_layout layouts[] = {
    {SN_ADVERTISE, "ADVERTISE", "MQTT-SN-1.2:5.4.1", 3, 3},
    {SN_SEARCHGW, "SEARCHGW", "MQTT-SN-1.2:5.4.2", 1, 1},
    {SN_GWINFO, "GWINFO", "MQTT-SN-1.2:5.4.3", 1, ANY},
    {SN_CONNECT, "CONNECT", "MQTT-SN-1.2:5.4.4", 5, 4 + SN_MAX_CLIENT_ID},
    {SN_CONNACK, "CONNACK", "MQTT-SN-1.2:5.4.5", 1, 1},
    {SN_WILLTOPICREQ, "WILLTOPICREQ", "MQTT-SN-1.2:5.4.6", 0, 0},
    {SN_WILLTOPIC, "WILLTOPIC", "MQTT-SN-1.2:5.4.7", 0, ANY},
    {SN_WILLMSGREQ, "WILLMSGREQ", "MQTT-SN-1.2:5.4.8", 0, 0},
    {SN_WILLMSG, "WILLMSG", "MQTT-SN-1.2:5.4.9", 0, ANY},
    {SN_REGISTER, "REGISTER", "MQTT-SN-1.2:5.4.10", 4, ANY},
    {SN_REGACK, "REGACK", "MQTT-SN-1.2:5.4.11", 5, 5},
    {SN_PUBLISH, "PUBLISH", "MQTT-SN-1.2:5.4.12", 5, ANY},
    {SN_PUBACK, "PUBACK", "MQTT-SN-1.2:5.4.13", 5, 5},
    {SN_PUBCOMP, "PUBCOMP", "MQTT-SN-1.2:5.4.14", 2, 2},
    {SN_PUBREC, "PUBREC", "MQTT-SN-1.2:5.4.14", 2, 2},
    {SN_PUBREL, "PUBREL", "MQTT-SN-1.2:5.4.14", 2, 2},
    {SN_SUBSCRIBE, "SUBSCRIBE", "MQTT-SN-1.2:5.4.15", 3, ANY},
    {SN_SUBACK, "SUBACK", "MQTT-SN-1.2:5.4.16", 6, 6},
    {SN_UNSUBSCRIBE, "UNSUBSCRIBE", "MQTT-SN-1.2:5.4.17", 3, ANY},
    {SN_UNSUBACK, "UNSUBACK", "MQTT-SN-1.2:5.4.18", 2, 2},
    {SN_PINGREQ, "PINGREQ", "MQTT-SN-1.2:5.4.19", 0, SN_MAX_CLIENT_ID},
    {SN_PINGRESP, "PINGRESP", "MQTT-SN-1.2:5.4.20", 0, 0},
    {SN_DISCONNECT, "DISCONNECT", "MQTT-SN-1.2:5.4.21", 0, 2},
    {SN_WILLTOPICUPD, "WILLTOPICUPD", "MQTT-SN-1.2:5.4.22", 0, ANY},
    {SN_WILLMSGUPD, "WILLMSGUPD", "MQTT-SN-1.2:5.4.23", 0, ANY},
    {SN_WILLTOPICRESP, "WILLTOPICRESP", "MQTT-SN-1.2:5.4.24", 1, 1},
    {SN_WILLMSGRESP, "WILLMSGRESP", "MQTT-SN-1.2:5.4.25", 1, 1},
    {SN_ENCAPSULATED, "Encapsulated", "MQTT-SN-1.2:5.5", 1, ANY},
};

const struct sn_layout *sn_layout_of(unsigned type)
{
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        if (layouts[i].type == type)
            return &layouts[i];
    }
    return NULL;
}

const char *sn_type_name(unsigned type)
{
    const struct sn_layout *layout = sn_layout_of(type);

    return layout != NULL ? layout->name : NULL;
}

const char *sn_type_rule(unsigned type)
{
    const struct sn_layout *layout = sn_layout_of(type);

    return layout != NULL ? layout->rule : "MQTT-SN-1.2:5.2.2";
}
