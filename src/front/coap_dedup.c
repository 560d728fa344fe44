/* Message deduplication per peer (RFC 7252 section 4.5): the message IDs
 * of recent requests, and for confirmable ones the response, which a
 * retransmission gets again instead of being processed twice. */
#include <string.h>

#include "core/alloc.h"
#include "front/coap_internal.h"

static uint64_t dedup_lifetime(const struct coap_dedup_entry *e)
{
    return e->type == COAP_CON ? COAP_EXCHANGE_LIFETIME_MS : COAP_NON_LIFETIME_MS;
}

static void dedup_drop_response(struct coap_dedup *d, struct coap_dedup_entry *e)
{
    if (e->response != NULL) {
        d->bytes -= e->response_len;
        vigil_free(e->response);
        e->response = NULL;
        e->response_len = 0;
    }
}

static void dedup_clear(struct coap_dedup *d, struct coap_dedup_entry *e)
{
    dedup_drop_response(d, e);
    memset(e, 0, sizeof *e);
}

void coap_dedup_expire(struct coap_dedup *d, uint64_t now_ms)
{
    for (size_t i = 0; i < COAP_DEDUP_SLOTS; i++) {
        struct coap_dedup_entry *e = &d->slots[i];

        if (e->used && now_ms - e->at_ms >= dedup_lifetime(e))
            dedup_clear(d, e);
    }
}

struct coap_dedup_entry *coap_dedup_find(struct coap_dedup *d, uint16_t mid, uint64_t now_ms)
{
    coap_dedup_expire(d, now_ms);
    for (size_t i = 0; i < COAP_DEDUP_SLOTS; i++)
        if (d->slots[i].used && d->slots[i].mid == mid)
            return &d->slots[i];
    return NULL;
}

/* The entry of mid if there is one, else a free slot, else the oldest. */
static struct coap_dedup_entry *dedup_slot_for(struct coap_dedup *d, uint16_t mid)
{
    struct coap_dedup_entry *free_slot = NULL, *oldest = NULL;

    for (size_t i = 0; i < COAP_DEDUP_SLOTS; i++) {
        struct coap_dedup_entry *e = &d->slots[i];

        if (e->used && e->mid == mid)
            return e;
        if (!e->used) {
            if (free_slot == NULL)
                free_slot = e;
        } else if (oldest == NULL || e->at_ms < oldest->at_ms) {
            oldest = e;
        }
    }
    return free_slot != NULL ? free_slot : oldest;
}

struct coap_dedup_entry *coap_dedup_add(struct coap_dedup *d, uint16_t mid, uint8_t type,
                                        uint64_t now_ms)
{
    struct coap_dedup_entry *e = dedup_slot_for(d, mid);

    dedup_clear(d, e);
    e->used = true;
    e->type = type;
    e->mid = mid;
    e->at_ms = now_ms;
    return e;
}

/* Drops the response of the oldest entry other than keep; false when no
 * other entry has one. */
static bool dedup_evict_oldest(struct coap_dedup *d, const struct coap_dedup_entry *keep)
{
    struct coap_dedup_entry *old = NULL;

    for (size_t i = 0; i < COAP_DEDUP_SLOTS; i++) {
        struct coap_dedup_entry *e = &d->slots[i];

        if (e != keep && e->response != NULL && (old == NULL || e->at_ms < old->at_ms))
            old = e;
    }
    if (old == NULL)
        return false;
    dedup_drop_response(d, old);
    return true;
}

void coap_dedup_set_response(struct coap_dedup *d, uint16_t mid, const uint8_t *resp,
                             size_t len)
{
    struct coap_dedup_entry *e = NULL;

    for (size_t i = 0; i < COAP_DEDUP_SLOTS && e == NULL; i++)
        if (d->slots[i].used && d->slots[i].mid == mid)
            e = &d->slots[i];
    if (e == NULL || len > COAP_DEDUP_BYTES || len > UINT16_MAX)
        return;
    dedup_drop_response(d, e);
    while (d->bytes + len > COAP_DEDUP_BYTES)
        if (!dedup_evict_oldest(d, e))
            return;
    e->response = vigil_memdup(resp, len);
    if (e->response == NULL)
        return;
    e->response_len = (uint16_t)len;
    d->bytes += len;
}

void coap_dedup_free(struct coap_dedup *d)
{
    for (size_t i = 0; i < COAP_DEDUP_SLOTS; i++)
        dedup_clear(d, &d->slots[i]);
    d->bytes = 0;
}
