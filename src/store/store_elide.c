/* Elision within one batch. A QoS 1/2 message queued for a persistent
 * session that the subscriber acknowledges before the writer commits costs
 * four statements (message, queue entry, its update when sent, its
 * removal) whose net effect is nothing. The writer finds such entries in
 * the batch it took and writes none of them. A batch left with no write
 * needs no transaction and no fsync. */
#include <string.h>

#include "core/alloc.h"
#include "store/store_internal.h"

/* Makes t empty with room for at least 2 * n keys. A table more than
 * four times that size is replaced, so that clearing it stays in
 * proportion to the batch. */
static bool table_reset(struct store_elide_table *t, size_t n)
{
    size_t cap = 64;

    while (cap < 2 * n)
        cap *= 2;
    if (cap > t->cap || t->cap > 4 * cap) {
        struct store_elide_slot *slots = vigil_calloc(cap, sizeof *slots);

        if (slots == NULL)
            return false;
        vigil_free(t->slots);
        t->slots = slots;
        t->cap = cap;
        return true;
    }
    memset(t->slots, 0, t->cap * sizeof *t->slots);
    return true;
}

static size_t slot_index(const struct store_elide_table *t, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (t->cap - 1);
}

/* Returns the slot of key, or the empty slot where it belongs. */
static struct store_elide_slot *table_slot(struct store_elide_table *t, uint64_t key)
{
    size_t i = slot_index(t, key);

    while (t->slots[i].key != 0 && t->slots[i].key != key)
        i = (i + 1) & (t->cap - 1);
    return &t->slots[i];
}

static struct store_elide_slot *table_find(struct store_elide_table *t, uint64_t key)
{
    struct store_elide_slot *slot = table_slot(t, key);

    return slot->key == key ? slot : NULL;
}

static bool same_client(const struct store_op *a, const struct store_op *b)
{
    return strcmp(a->client_id != NULL ? a->client_id : "",
                  b->client_id != NULL ? b->client_id : "") == 0;
}

/* Returns the STORE_QUEUE_PUT of this batch that op (an update or removal
 * of the same entry) follows, if it is still to be written; else NULL. */
static struct store_op *queued_put(struct store *st, const struct store_op *op)
{
    struct store_elide_slot *slot;

    if (op->seq == 0)
        return NULL;
    slot = table_find(&st->elide_queue, op->seq);
    if (slot == NULL || slot->op == NULL || slot->op->elided != STORE_APPLY ||
        !same_client(slot->op, op))
        return NULL;
    return slot->op;
}

static void note_put(struct store *st, struct store_op *op)
{
    struct store_elide_slot *slot;

    if (op->seq != 0) {
        slot = table_slot(&st->elide_queue, op->seq);
        slot->key = op->seq;
        slot->op = op;
    }
    if (op->msg_id != 0 && (slot = table_find(&st->elide_msgs, op->msg_id)) != NULL)
        slot->live++;
}

static void note_del(struct store *st, struct store_op *del)
{
    struct store_op *put = queued_put(st, del);
    struct store_elide_slot *msg;

    if (put == NULL)
        return;
    put->elided = STORE_SKIP;
    msg = del->msg_id != 0 ? table_find(&st->elide_msgs, del->msg_id) : NULL;
    if (msg != NULL) {
        msg->live--;
        msg->elided++;
        del->elided = STORE_SKIP;
    } else {
        del->elided = STORE_GC_ONLY;
    }
}

size_t store_elide(struct store *st, struct store_op *batch, size_t count)
{
    size_t writes = 0, elided = 0;

    for (struct store_op *op = batch; op != NULL; op = op->next)
        op->elided = STORE_APPLY;
    /* Without memory for the tables the batch is written as it is. */
    if (!table_reset(&st->elide_queue, count) || !table_reset(&st->elide_msgs, count))
        goto count;
    for (struct store_op *op = batch; op != NULL; op = op->next) {
        struct store_op *put;
        struct store_elide_slot *slot;

        switch (op->kind) {
        case STORE_MSG_PUT:
            if (op->msg_id == 0)
                break;
            slot = table_slot(&st->elide_msgs, op->msg_id);
            *slot = (struct store_elide_slot){.key = op->msg_id, .op = op};
            break;
        case STORE_QUEUE_PUT:
            note_put(st, op);
            break;
        case STORE_QUEUE_UPDATE:
            put = queued_put(st, op);
            if (put != NULL) {
                put->state = op->state;
                put->packet_id = op->packet_id;
                op->elided = STORE_SKIP;
            }
            break;
        case STORE_QUEUE_DEL:
            note_del(st, op);
            break;
        default:
            break;
        }
    }
    /* A message row of this batch goes unwritten when every queue entry of
     * this batch that refers to it was elided. Entries of later batches
     * cannot refer to it (see store_internal.h). */
    for (size_t i = 0; i < st->elide_msgs.cap; i++) {
        struct store_elide_slot *slot = &st->elide_msgs.slots[i];

        if (slot->key != 0 && slot->live == 0 && slot->elided > 0)
            slot->op->elided = STORE_SKIP;
    }
count:
    for (struct store_op *op = batch; op != NULL; op = op->next) {
        if (op->kind == STORE_BARRIER)
            continue;
        if (op->elided == STORE_SKIP)
            elided++;
        else
            writes++;
    }
    atomic_fetch_add(&st->ops_elided, elided);
    return writes;
}

void store_elide_free(struct store *st)
{
    vigil_free(st->elide_queue.slots);
    vigil_free(st->elide_msgs.slots);
    st->elide_queue = (struct store_elide_table){0};
    st->elide_msgs = (struct store_elide_table){0};
}
