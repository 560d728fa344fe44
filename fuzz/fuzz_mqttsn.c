/* libFuzzer harness for the MQTT-SN codec: decodes one datagram. For an
 * accepted one, the encoder must reproduce the input bytes exactly, because
 * every flag bit and the Length form are kept, and the result must decode
 * to the same message. The inner message of an Encapsulated one is
 * decoded the same way. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mqttsn/mqttsn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool str_eq(struct sn_str a, struct sn_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static void check_equal(const struct sn_msg *a, const struct sn_msg *b)
{
    if (a->type != b->type || a->long_length != b->long_length ||
        memcmp(&a->flags, &b->flags, sizeof a->flags) != 0 || a->gw_id != b->gw_id ||
        a->radius != b->radius || a->protocol_id != b->protocol_id ||
        a->return_code != b->return_code || a->has_duration != b->has_duration ||
        a->duration != b->duration || a->topic_id != b->topic_id || a->msg_id != b->msg_id ||
        a->empty_will != b->empty_will)
        abort();
    if (!str_eq(a->client_id, b->client_id) || !str_eq(a->topic_name, b->topic_name) ||
        !str_eq(a->data, b->data) || !str_eq(a->gw_add, b->gw_add) ||
        !str_eq(a->node_id, b->node_id) || !str_eq(a->inner, b->inner))
        abort();
}

static void check_datagram(const uint8_t *data, size_t size, int depth)
{
    struct sn_msg msg, again;
    struct sn_error err;
    uint8_t *buf;
    size_t n;

    if (sn_decode(data, size, &msg, &err) != VIGIL_OK) {
        if (err.rule == NULL || err.text == NULL)
            abort();
        return;
    }
    if (sn_type_name(msg.type) == NULL)
        abort();

    buf = malloc(size + 1);
    if (sn_encoded_size(&msg) != size)
        abort();
    n = sn_encode(&msg, buf, size);
    if (n != size || memcmp(buf, data, size) != 0)
        abort();
    if (sn_decode(buf, n, &again, &err) != VIGIL_OK)
        abort();
    check_equal(&msg, &again);
    free(buf);

    if (msg.type == SN_ENCAPSULATED && depth < 4)
        check_datagram(msg.inner.p, msg.inner.len, depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_datagram(data, size, 0);
    return 0;
}
