/* Shared between the MQTT-SN decoder and encoder: the per-type layout table. */
#ifndef VIGIL_PROTO_MQTTSN_INTERNAL_H
#define VIGIL_PROTO_MQTTSN_INTERNAL_H

#include "proto/mqttsn/mqttsn.h"

/* Layout of one message type. Body lengths exclude Length and MsgType, and
 * a max_body of -1 means the body may run to SN_MAX_LENGTH. */
struct sn_layout {
    uint8_t type;
    const char *name;
    const char *rule; /* section that defines the format */
    int min_body;
    int max_body;
};

/* Returns the layout of type, or NULL for a reserved MsgType. */
const struct sn_layout *sn_layout_of(unsigned type);

/* Flags byte bits (section 5.3.4). */
#define SN_FLAG_DUP 0x80u
#define SN_FLAG_QOS_SHIFT 5
#define SN_FLAG_RETAIN 0x10u
#define SN_FLAG_WILL 0x08u
#define SN_FLAG_CLEAN 0x04u
#define SN_FLAG_TOPIC_MASK 0x03u

#endif
