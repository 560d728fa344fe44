/* Small pure helpers of the CoAP front end: retransmission timeouts,
 * Observe numbers, Content-Format guessing, ETags, /ps/ paths and the
 * /.well-known/core document. */
#include <stdio.h>
#include <string.h>

#include "front/coap_internal.h"
#include "proto/mqtt/mqtt.h"
#include "sim/vitals.h"

uint32_t coap_initial_timeout_ms(uint32_t random)
{
    uint32_t spread = COAP_ACK_TIMEOUT_MS * (COAP_ACK_RANDOM_PERMILLE - 1000u) / 1000u;

    return COAP_ACK_TIMEOUT_MS + (uint32_t)(((uint64_t)random * spread) >> 32);
}

uint32_t coap_observe_next(uint32_t seq)
{
    return (seq + 1) & 0xFFFFFFu;
}

uint16_t coap_guess_format(const uint8_t *payload, size_t len)
{
    size_t i = 0;

    if (len > 0 && !mqtt_utf8_valid(payload, len))
        return COAP_FORMAT_OCTETS;
    while (i < len && (payload[i] == ' ' || payload[i] == '\n' || payload[i] == '\r' ||
                       payload[i] == '\t'))
        i++;
    return i < len && payload[i] == '[' ? COAP_FORMAT_SENML_JSON : COAP_FORMAT_TEXT;
}

uint32_t coap_etag(const uint8_t *payload, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++) {
        h ^= payload[i];
        h *= 16777619u;
    }
    return h;
}

bool coap_ps_topic(const char *path, size_t path_len, const char **topic, size_t *len)
{
    if (path_len < 4 || memcmp(path, "ps/", 3) != 0)
        return false;
    *topic = path + 3;
    *len = path_len - 3;
    return true;
}

/* Appends text to out at *n; false when it does not fit. */
static bool links_put(char *out, size_t cap, size_t *n, const char *text)
{
    size_t len = strlen(text);

    if (len >= cap - *n)
        return false;
    memcpy(out + *n, text, len + 1);
    *n += len;
    return true;
}

size_t coap_core_links(char *out, size_t cap)
{
    char link[160];
    size_t n = 0;
    bool ok;

    if (cap == 0)
        return 0;
    out[0] = '\0';
    ok = links_put(out, cap, &n,
                   "</t>;ct=\"110 112\";title=\"SenML pack of this device\","
                   "</ps>;rt=\"core.ps\";ct=\"0 42 110 112\";title=\"MQTT topics\"");
    /* One observable resource per vital sign of `vigil sim`. A device may
     * use any other metric name as well. */
    for (int v = 0; ok && v < VITAL_COUNT; v++) {
        snprintf(link, sizeof link, ",</t/%s>;obs;ct=\"0 110 112\";rt=\"senml\"",
                 vital_info((enum vital)v)->name);
        ok = links_put(out, cap, &n, link);
    }
    return ok ? n : 0;
}
