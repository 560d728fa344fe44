/* libFuzzer harness for the CoAP codec: decodes one datagram. For an
 * accepted one, the encoder must reproduce the input bytes exactly, because
 * each option header form covers its own value range, and the result must
 * decode to the same message. Runs the option helpers on every accepted message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/coap/coap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_equal(const struct coap_msg *a, const struct coap_msg *b)
{
    if (a->type != b->type || a->code != b->code || a->message_id != b->message_id ||
        a->token_len != b->token_len || a->n_options != b->n_options ||
        a->payload_len != b->payload_len)
        abort();
    if (a->token_len > 0 && memcmp(a->token, b->token, a->token_len) != 0)
        abort();
    for (unsigned i = 0; i < a->n_options; i++) {
        const struct coap_option *x = &a->options[i], *y = &b->options[i];

        if (x->number != y->number || x->len != y->len)
            abort();
        if (x->len > 0 && memcmp(x->value, y->value, x->len) != 0)
            abort();
    }
    if (a->payload_len > 0 && memcmp(a->payload, b->payload, a->payload_len) != 0)
        abort();
}

static void run_helpers(const struct coap_msg *msg)
{
    char path[128];
    size_t path_len;
    struct coap_block block;
    struct coap_error err;
    uint16_t format;
    uint32_t v;

    coap_uri_path(msg, path, sizeof path, &path_len);
    coap_get_content_format(msg, &format);
    coap_get_observe(msg, &v);
    coap_get_size1(msg, &v);
    coap_get_size2(msg, &v);
    if (coap_get_block(msg, COAP_OPT_BLOCK2, &block) == VIGIL_OK) {
        uint8_t out[3];
        uint32_t len = coap_block_encode(&block, out);
        struct coap_block back;

        if (coap_block_decode(out, len, &back) != VIGIL_OK || back.num != block.num ||
            back.more != block.more || back.szx != block.szx)
            abort();
    }
    if (coap_check_critical(msg, coap_registered_options, coap_n_registered_options, &err) !=
        VIGIL_OK) {
        if (err.option == 0 || !COAP_OPT_IS_CRITICAL(err.option) || err.action == COAP_ACTION_NONE)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct coap_msg msg, again;
    struct coap_error err;
    uint8_t *buf;
    size_t n;

    if (coap_decode(data, size, &msg, &err) != VIGIL_OK) {
        if (err.rule == NULL || err.text == NULL || err.action == COAP_ACTION_NONE)
            abort();
        return 0;
    }
    run_helpers(&msg);

    buf = malloc(size + 1);
    if (coap_encoded_size(&msg) != size)
        abort();
    n = coap_encode(&msg, buf, size);
    if (n != size || memcmp(buf, data, size) != 0)
        abort();
    if (coap_decode(buf, n, &again, &err) != VIGIL_OK)
        abort();
    check_equal(&msg, &again);
    free(buf);
    return 0;
}
