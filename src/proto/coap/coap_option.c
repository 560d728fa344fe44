/* CoAP option helpers: lookup, unsigned values, Uri-Path, Block1/Block2
 * (RFC 7959), and the critical option check (RFC 7252 section 5.4.1). */
#include <string.h>

#include "proto/coap/coap.h"

const uint16_t coap_registered_options[] = {
    COAP_OPT_IF_MATCH,      COAP_OPT_URI_HOST,       COAP_OPT_ETAG,       COAP_OPT_IF_NONE_MATCH,
    COAP_OPT_OBSERVE,       COAP_OPT_URI_PORT,       COAP_OPT_LOCATION_PATH, COAP_OPT_URI_PATH,
    COAP_OPT_CONTENT_FORMAT, COAP_OPT_MAX_AGE,       COAP_OPT_URI_QUERY,  COAP_OPT_ACCEPT,
    COAP_OPT_LOCATION_QUERY, COAP_OPT_BLOCK2,        COAP_OPT_BLOCK1,     COAP_OPT_SIZE2,
    COAP_OPT_PROXY_URI,     COAP_OPT_PROXY_SCHEME,   COAP_OPT_SIZE1,
};
const size_t coap_n_registered_options =
    sizeof coap_registered_options / sizeof coap_registered_options[0];

/* Value length range of a registered option (RFC 7252 table 4, RFC 7641
 * section 2, RFC 7959 section 2.1 and 4). */
struct option_range {
    uint16_t number;
    uint16_t min;
    uint16_t max;
};

static const struct option_range ranges[] = {
    {COAP_OPT_IF_MATCH, 0, 8},         {COAP_OPT_URI_HOST, 1, 255},
    {COAP_OPT_ETAG, 1, 8},             {COAP_OPT_IF_NONE_MATCH, 0, 0},
    {COAP_OPT_OBSERVE, 0, 3},          {COAP_OPT_URI_PORT, 0, 2},
    {COAP_OPT_LOCATION_PATH, 0, 255},  {COAP_OPT_URI_PATH, 0, 255},
    {COAP_OPT_CONTENT_FORMAT, 0, 2},   {COAP_OPT_MAX_AGE, 0, 4},
    {COAP_OPT_URI_QUERY, 0, 255},      {COAP_OPT_ACCEPT, 0, 2},
    {COAP_OPT_LOCATION_QUERY, 0, 255}, {COAP_OPT_BLOCK2, 0, 3},
    {COAP_OPT_BLOCK1, 0, 3},           {COAP_OPT_SIZE2, 0, 4},
    {COAP_OPT_PROXY_URI, 1, 1034},     {COAP_OPT_PROXY_SCHEME, 1, 255},
    {COAP_OPT_SIZE1, 0, 4},
};

bool coap_option_length_valid(uint16_t num, uint32_t len)
{
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        if (ranges[i].number == num)
            return len >= ranges[i].min && len <= ranges[i].max;
    }
    return true;
}

static bool is_known(uint16_t num, const uint16_t *known, size_t n_known)
{
    for (size_t i = 0; i < n_known; i++) {
        if (known[i] == num)
            return true;
    }
    return false;
}

uint16_t coap_unknown_critical(const struct coap_msg *msg, const uint16_t *known,
                               size_t n_known)
{
    for (unsigned i = 0; i < msg->n_options; i++) {
        uint16_t num = msg->options[i].number;

        /* A value length outside the option's range makes the option
         * unrecognized (RFC 7252 section 5.4.3). */
        if (!COAP_OPT_IS_CRITICAL(num))
            continue;
        if (!is_known(num, known, n_known) ||
            !coap_option_length_valid(num, msg->options[i].len))
            return num;
    }
    return 0;
}

vigil_err coap_check_critical(const struct coap_msg *msg, const uint16_t *known, size_t n_known,
                              struct coap_error *err)
{
    uint16_t num = coap_unknown_critical(msg, known, n_known);

    if (num == 0)
        return VIGIL_OK;
    if (err != NULL) {
        err->rule = "RFC7252-5.4.1";
        err->text = "unrecognized critical option";
        err->option = num;
        if (msg->type == COAP_CON && coap_is_request(msg))
            err->action = COAP_ACTION_BAD_OPTION;
        else if (msg->type == COAP_CON)
            err->action = COAP_ACTION_RST;
        else
            err->action = COAP_ACTION_DROP;
    }
    return VIGIL_ERR_PROTOCOL;
}

const struct coap_option *coap_find_option(const struct coap_msg *msg, uint16_t num,
                                           unsigned index)
{
    for (unsigned i = 0; i < msg->n_options; i++) {
        if (msg->options[i].number != num)
            continue;
        if (index == 0)
            return &msg->options[i];
        index--;
    }
    return NULL;
}

vigil_err coap_uint_decode(const uint8_t *value, uint32_t len, uint32_t *out)
{
    uint32_t v = 0;

    if (len > 4)
        return VIGIL_ERR_INVALID;
    for (uint32_t i = 0; i < len; i++)
        v = v << 8 | value[i];
    *out = v;
    return VIGIL_OK;
}

uint32_t coap_uint_encode(uint32_t v, uint8_t out[4])
{
    uint32_t len = 0;

    for (uint32_t t = v; t != 0; t >>= 8)
        len++;
    for (uint32_t i = 0; i < len; i++)
        out[i] = (uint8_t)(v >> (8 * (len - 1 - i)));
    return len;
}

vigil_err coap_get_uint(const struct coap_msg *msg, uint16_t num, uint32_t max_len,
                        uint32_t *out)
{
    const struct coap_option *opt = coap_find_option(msg, num, 0);

    if (opt == NULL)
        return VIGIL_ERR_NOT_FOUND;
    if (opt->len > max_len)
        return VIGIL_ERR_INVALID;
    return coap_uint_decode(opt->value, opt->len, out);
}

vigil_err coap_get_content_format(const struct coap_msg *msg, uint16_t *out)
{
    uint32_t v;
    vigil_err rc = coap_get_uint(msg, COAP_OPT_CONTENT_FORMAT, 2, &v);

    if (rc == VIGIL_OK)
        *out = (uint16_t)v;
    return rc;
}

vigil_err coap_get_observe(const struct coap_msg *msg, uint32_t *out)
{
    return coap_get_uint(msg, COAP_OPT_OBSERVE, 3, out);
}

vigil_err coap_get_size1(const struct coap_msg *msg, uint32_t *out)
{
    return coap_get_uint(msg, COAP_OPT_SIZE1, 4, out);
}

vigil_err coap_get_size2(const struct coap_msg *msg, uint32_t *out)
{
    return coap_get_uint(msg, COAP_OPT_SIZE2, 4, out);
}

vigil_err coap_uri_path(const struct coap_msg *msg, char *out, size_t cap, size_t *out_len)
{
    size_t n = 0;
    bool first = true;

    if (cap == 0)
        return VIGIL_ERR_LIMIT;
    for (unsigned i = 0; i < msg->n_options; i++) {
        const struct coap_option *opt = &msg->options[i];

        if (opt->number != COAP_OPT_URI_PATH)
            continue;
        if (opt->len > 0 && (memchr(opt->value, '/', opt->len) != NULL ||
                             memchr(opt->value, '\0', opt->len) != NULL))
            return VIGIL_ERR_INVALID;
        if (n + (first ? 0 : 1) + opt->len >= cap)
            return VIGIL_ERR_LIMIT;
        if (!first)
            out[n++] = '/';
        if (opt->len > 0)
            memcpy(out + n, opt->value, opt->len);
        n += opt->len;
        first = false;
    }
    out[n] = '\0';
    if (out_len != NULL)
        *out_len = n;
    return VIGIL_OK;
}

bool coap_block_valid(const struct coap_block *block)
{
    return block->num < (UINT32_C(1) << 20) && block->szx < 7;
}

vigil_err coap_block_decode(const uint8_t *value, uint32_t len, struct coap_block *out)
{
    uint32_t v;

    if (len > 3 || coap_uint_decode(value, len, &v) != VIGIL_OK)
        return VIGIL_ERR_INVALID;
    out->num = v >> 4;
    out->more = (v & 0x08) != 0;
    out->szx = (uint8_t)(v & 0x07);
    if (out->szx == 7)
        return VIGIL_ERR_INVALID;
    return VIGIL_OK;
}

vigil_err coap_get_block(const struct coap_msg *msg, uint16_t num, struct coap_block *out)
{
    const struct coap_option *opt = coap_find_option(msg, num, 0);

    if (opt == NULL)
        return VIGIL_ERR_NOT_FOUND;
    return coap_block_decode(opt->value, opt->len, out);
}

uint32_t coap_block_encode(const struct coap_block *block, uint8_t out[3])
{
    uint8_t tmp[4];
    uint32_t v, len;

    if (!coap_block_valid(block))
        return 0;
    v = block->num << 4 | (block->more ? 0x08u : 0u) | block->szx;
    len = coap_uint_encode(v, tmp);
    memcpy(out, tmp, len);
    return len;
}
