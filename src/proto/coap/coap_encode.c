/* CoAP message encoder: header, token, options in ascending number with
 * delta and length extensions (RFC 7252 section 3.1), payload. */
#include <string.h>

#include "proto/coap/coap.h"

vigil_err coap_add_option(struct coap_msg *msg, uint16_t num, const uint8_t *value,
                          uint32_t len)
{
    if (msg->n_options >= COAP_MAX_OPTIONS)
        return VIGIL_ERR_LIMIT;
    if (len > COAP_MAX_OPTION_LEN)
        return VIGIL_ERR_INVALID;
    msg->options[msg->n_options++] =
        (struct coap_option){.number = num, .len = len, .value = value};
    return VIGIL_OK;
}

/* Fills order with option indices sorted by number; insertion sort keeps
 * equal numbers in their given order, which repeatable options need. */
static void sort_options(const struct coap_msg *msg, uint8_t *order)
{
    for (unsigned i = 0; i < msg->n_options; i++) {
        unsigned j = i;

        while (j > 0 && msg->options[order[j - 1]].number > msg->options[i].number) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = (uint8_t)i;
    }
}

/* Size of the extension bytes for a delta or length value. */
static size_t ext_size(uint32_t v)
{
    if (v < 13)
        return 0;
    return v < 269 ? 1 : 2;
}

static uint8_t nibble_of(uint32_t v)
{
    if (v < 13)
        return (uint8_t)v;
    return v < 269 ? 13 : 14;
}

static uint8_t *put_ext(uint8_t *p, uint32_t v)
{
    if (v >= 269) {
        *p++ = (uint8_t)((v - 269) >> 8);
        *p++ = (uint8_t)(v - 269);
    } else if (v >= 13) {
        *p++ = (uint8_t)(v - 13);
    }
    return p;
}

static bool encodable(const struct coap_msg *msg)
{
    if (msg->type > COAP_RST || msg->token_len > COAP_MAX_TOKEN ||
        msg->n_options > COAP_MAX_OPTIONS)
        return false;
    for (unsigned i = 0; i < msg->n_options; i++) {
        if (msg->options[i].len > COAP_MAX_OPTION_LEN)
            return false;
    }
    return true;
}

size_t coap_encoded_size(const struct coap_msg *msg)
{
    uint8_t order[COAP_MAX_OPTIONS];
    size_t size;
    uint32_t prev = 0;

    if (!encodable(msg))
        return 0;
    size = 4u + msg->token_len;
    sort_options(msg, order);
    for (unsigned i = 0; i < msg->n_options; i++) {
        const struct coap_option *opt = &msg->options[order[i]];

        size += 1 + ext_size(opt->number - prev) + ext_size(opt->len) + opt->len;
        prev = opt->number;
    }
    if (msg->payload_len > 0)
        size += 1 + msg->payload_len;
    return size;
}

static uint8_t *put_options(const struct coap_msg *msg, uint8_t *p)
{
    uint8_t order[COAP_MAX_OPTIONS];
    uint32_t prev = 0;

    sort_options(msg, order);
    for (unsigned i = 0; i < msg->n_options; i++) {
        const struct coap_option *opt = &msg->options[order[i]];
        uint32_t delta = opt->number - prev;

        *p++ = (uint8_t)(nibble_of(delta) << 4 | nibble_of(opt->len));
        p = put_ext(p, delta);
        p = put_ext(p, opt->len);
        if (opt->len > 0)
            memcpy(p, opt->value, opt->len);
        p += opt->len;
        prev = opt->number;
    }
    return p;
}

size_t coap_encode(const struct coap_msg *msg, uint8_t *out, size_t cap)
{
    size_t size = coap_encoded_size(msg);
    uint8_t *p = out;

    if (size == 0 || size > cap)
        return 0;
    *p++ = (uint8_t)(COAP_VERSION << 6 | msg->type << 4 | msg->token_len);
    *p++ = msg->code;
    *p++ = (uint8_t)(msg->message_id >> 8);
    *p++ = (uint8_t)msg->message_id;
    if (msg->token_len > 0)
        memcpy(p, msg->token, msg->token_len);
    p += msg->token_len;
    p = put_options(msg, p);
    if (msg->payload_len > 0) {
        *p++ = 0xFF;
        memcpy(p, msg->payload, msg->payload_len);
        p += msg->payload_len;
    }
    return (size_t)(p - out);
}
