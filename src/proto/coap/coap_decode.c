/* CoAP datagram decoder: header, token, options and payload (RFC 7252
 * section 3), with the response RFC 7252 section 4 suggests for each error.
 *
 * Rule names in struct coap_error.rule are "RFC<number>-<section>". */
#include <string.h>

#include "proto/coap/coap.h"

/* Cursor over the datagram and the error being built. */
struct coap_dec {
    const uint8_t *p;
    const uint8_t *end;
    uint8_t type;
    bool header_read; /* type and message ID are known, so a CON can be reset */
    struct coap_error *err;
};

static vigil_err dec_fail(struct coap_dec *d, const char *rule, const char *text)
{
    if (d->err != NULL) {
        d->err->rule = rule;
        d->err->text = text;
        d->err->option = 0;
        if (d->header_read && d->type == COAP_CON)
            d->err->action = COAP_ACTION_RST;
        else
            d->err->action = COAP_ACTION_DROP;
    }
    return VIGIL_ERR_PROTOCOL;
}

static vigil_err dec_header(struct coap_dec *d, struct coap_msg *out)
{
    uint8_t first;

    if (d->end - d->p < 4)
        return dec_fail(d, "RFC7252-3", "message is shorter than the 4-byte header");
    first = d->p[0];
    out->type = (uint8_t)((first >> 4) & 3);
    out->token_len = first & 0x0F;
    out->code = d->p[1];
    out->message_id = (uint16_t)(d->p[2] << 8 | d->p[3]);
    d->p += 4;

    /* A message of another version is ignored, never reset (section 3). */
    if ((first >> 6) != COAP_VERSION)
        return dec_fail(d, "RFC7252-3", "version is not 1");
    d->type = out->type;
    d->header_read = true;
    if (out->token_len > COAP_MAX_TOKEN)
        return dec_fail(d, "RFC7252-3", "token length 9-15 is a message format error");
    if (d->end - d->p < out->token_len)
        return dec_fail(d, "RFC7252-3", "token runs past the end of the message");
    out->token = out->token_len > 0 ? d->p : NULL;
    d->p += out->token_len;
    return VIGIL_OK;
}

/* Reads the extension of a delta or length nibble (section 3.1). */
static vigil_err dec_nibble(struct coap_dec *d, uint8_t nibble, bool is_delta, uint32_t *out)
{
    if (nibble < 13) {
        *out = nibble;
        return VIGIL_OK;
    }
    if (nibble == 13) {
        if (d->end - d->p < 1)
            return dec_fail(d, "RFC7252-3.1", "option header extension runs past the end");
        *out = 13u + d->p[0];
        d->p += 1;
        return VIGIL_OK;
    }
    if (nibble == 14) {
        if (d->end - d->p < 2)
            return dec_fail(d, "RFC7252-3.1", "option header extension runs past the end");
        *out = 269u + (uint32_t)(d->p[0] << 8 | d->p[1]);
        d->p += 2;
        return VIGIL_OK;
    }
    if (is_delta)
        return dec_fail(d, "RFC7252-3.1",
                        "option delta 15 without payload marker is a message format error");
    return dec_fail(d, "RFC7252-3.1", "option length 15 is a message format error");
}

static vigil_err dec_option(struct coap_dec *d, struct coap_msg *out, uint32_t *number)
{
    uint8_t byte = d->p[0];
    uint32_t delta, len;
    vigil_err rc;

    d->p += 1;
    rc = dec_nibble(d, byte >> 4, true, &delta);
    if (rc != VIGIL_OK)
        return rc;
    rc = dec_nibble(d, byte & 0x0F, false, &len);
    if (rc != VIGIL_OK)
        return rc;
    *number += delta;
    if (*number > UINT16_MAX)
        return dec_fail(d, "RFC7252-3.1", "option number exceeds 65535");
    if ((size_t)(d->end - d->p) < len)
        return dec_fail(d, "RFC7252-3.1", "option value runs past the end of the message");
    if (out->n_options == COAP_MAX_OPTIONS) {
        dec_fail(d, "RFC7252-3.1", "more options than vigil accepts (32)");
        return VIGIL_ERR_LIMIT;
    }
    out->options[out->n_options++] = (struct coap_option){
        .number = (uint16_t)*number, .len = len, .value = len > 0 ? d->p : NULL};
    d->p += len;
    return VIGIL_OK;
}

static vigil_err dec_options_payload(struct coap_dec *d, struct coap_msg *out)
{
    uint32_t number = 0;
    vigil_err rc;

    while (d->p < d->end) {
        if (d->p[0] == 0xFF) {
            d->p += 1;
            if (d->p == d->end)
                return dec_fail(d, "RFC7252-3",
                                "payload marker followed by a zero-length payload");
            out->payload = d->p;
            out->payload_len = (size_t)(d->end - d->p);
            return VIGIL_OK;
        }
        rc = dec_option(d, out, &number);
        if (rc != VIGIL_OK)
            return rc;
    }
    return VIGIL_OK;
}

vigil_err coap_decode(const uint8_t *buf, size_t len, struct coap_msg *out,
                      struct coap_error *err)
{
    struct coap_dec d = {.p = buf, .end = buf + len, .err = err};
    vigil_err rc;

    memset(out, 0, sizeof *out);
    rc = dec_header(&d, out);
    if (rc != VIGIL_OK)
        return rc;

    /* An Empty message is the 4-byte header alone (section 4.1). */
    if (out->code == COAP_EMPTY) {
        if (out->token_len != 0 || d.p != d.end)
            return dec_fail(&d, "RFC7252-4.1",
                            "Empty message has a token, options or payload");
        if (err != NULL)
            *err = (struct coap_error){.action = COAP_ACTION_NONE};
        return VIGIL_OK;
    }
    rc = dec_options_payload(&d, out);
    if (rc == VIGIL_OK && err != NULL)
        *err = (struct coap_error){.action = COAP_ACTION_NONE};
    return rc;
}

bool coap_is_request(const struct coap_msg *msg)
{
    return COAP_CODE_CLASS(msg->code) == 0 && msg->code != COAP_EMPTY;
}
