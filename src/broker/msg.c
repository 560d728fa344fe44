/* Reference-counted application messages. */
#include <string.h>

#include "broker/broker.h"
#include "core/alloc.h"

struct msg *msg_new(const char *topic, size_t topic_len, const uint8_t *payload,
                    size_t payload_len, const uint8_t *props, size_t props_len)
{
    struct msg *m;

    if (topic_len > UINT16_MAX || payload_len > UINT32_MAX || props_len > UINT32_MAX)
        return NULL;
    m = vigil_malloc(sizeof *m + topic_len + 1 + payload_len + props_len);
    if (m == NULL)
        return NULL;
    memset(m, 0, sizeof *m);
    m->refs = 1;
    m->topic_len = (uint16_t)topic_len;
    m->payload_len = (uint32_t)payload_len;
    m->props_len = (uint32_t)props_len;
    m->topic = (char *)m->data;
    memcpy(m->topic, topic, topic_len);
    m->topic[topic_len] = '\0';
    m->payload = m->data + topic_len + 1;
    if (payload_len > 0)
        memcpy(m->payload, payload, payload_len);
    m->props = m->payload + payload_len;
    if (props_len > 0)
        memcpy(m->props, props, props_len);
    return m;
}

struct msg *msg_ref(struct msg *m)
{
    m->refs++;
    return m;
}

void msg_unref(struct msg *m)
{
    if (m != NULL && --m->refs == 0)
        vigil_free(m);
}

bool msg_expired(const struct msg *m, int64_t now_s)
{
    return m->expiry_at != 0 && now_s >= m->expiry_at;
}
