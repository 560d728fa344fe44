/* Event sink: a bounded queue of events drained by one writer thread that
 * appends JSON lines to a file. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"
#include "secmon/event.h"

/* Queued events at which the writer takes them without waiting longer. */
#define SINK_BATCH_MAX 512
/* The writer wakes this often to take what was queued, so a busy hub
 * hands over events in batches instead of waking the writer (a futex call
 * and a context switch) for every event. */
#define SINK_WAKE_US 5000
/* Queued events at which an emitter wakes a sleeping writer at once, so
 * bursts do not wait for the next wake-up and the queue does not fill. */
#define SINK_KICK 256
/* Nice value of the writer thread above the rest of the process. */
#define SINK_NICE 5
/* Events per queue block (about 40 KiB). */
#define SINK_BLOCK_EVENTS 64
/* Blocks the writer takes at most per batch (about 320 KiB). Taking a
 * whole backlog kept it resident until the last of its events was
 * written and fed to the engine, and as spares after that. */
#define SINK_TAKE_BLOCKS (SINK_BATCH_MAX / SINK_BLOCK_EVENTS)

/* The queue is a list of blocks mapped as events arrive and unmapped as
 * the writer drains them. A ring of the full capacity (16,384 events of
 * 632 bytes by default) would be touched in full by any long run of
 * events and stay resident. Blocks from the heap would stay resident after
 * a burst too, because connections allocated meanwhile sit between them.
 * Mapped blocks go back to the system once drained, except for as many
 * spares as the last batch needed. */
struct sink_block {
    struct sink_block *next;
    struct vigil_event ev[SINK_BLOCK_EVENTS];
};

/* Events the writer took out of the queue: the blocks from first, whose
 * events run from ev[first_pos] of the first block to ev[last_len - 1] of
 * the last one. The writer owns them until it hands them back. */
struct sink_chain {
    struct sink_block *first;
    size_t first_pos, last_len, count;
};

struct vigil_event_sink {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* Queued events run from first->ev[first_pos] to last->ev[last_len - 1];
     * the blocks are owned and both pointers are NULL when none is held. */
    struct sink_block *first, *last;
    size_t first_pos, last_len;
    struct sink_block *spares;  /* owned; drained blocks kept for reuse, linked by next */
    size_t n_spares;
    size_t capacity;            /* maximum events queued and held by the writer */
    size_t count;
    size_t held;                /* events taken by the writer and not yet handed back */
    bool closing;
    bool paused;
    bool sleeping;              /* the writer waits on cond; guarded by mu */
    pthread_t thread;
    FILE *file;                 /* owned; opened with O_APPEND */
    char *line;                 /* owned; VIGIL_EVENT_JSON_MAX bytes */
    atomic_uint_fast64_t dropped;
    atomic_uint_fast64_t written;
    uint64_t dropped_reported;  /* writer thread only */
    struct vigil_event_consumer consumer; /* guarded by mu; feed NULL = none */
    uint64_t dropped_consumed;  /* writer thread only */
};

static void sink_blocks_free(struct sink_block *b)
{
    while (b != NULL) {
        struct sink_block *next = b->next;

        vigil_pages_free(b, sizeof *b);
        b = next;
    }
}

/* A block for sink_push: a spare one, or a newly mapped one. */
static struct sink_block *sink_block_get(struct vigil_event_sink *sink)
{
    struct sink_block *b = sink->spares;

    if (b == NULL)
        return vigil_pages_alloc(sizeof *b);
    sink->spares = b->next;
    sink->n_spares--;
    return b;
}

/* Appends a copy of ev; false when no block could be allocated. Called
 * with mu held and count below capacity. */
static bool sink_push(struct vigil_event_sink *sink, const struct vigil_event *ev)
{
    if (sink->last == NULL || sink->last_len == SINK_BLOCK_EVENTS) {
        struct sink_block *b = sink_block_get(sink);

        if (b == NULL)
            return false;
        b->next = NULL;
        if (sink->last != NULL) {
            sink->last->next = b;
        } else {
            sink->first = b;
            sink->first_pos = 0;
        }
        sink->last = b;
        sink->last_len = 0;
    }
    sink->last->ev[sink->last_len++] = *ev;
    sink->count++;
    return true;
}

/* Takes the queued events of the first SINK_TAKE_BLOCKS blocks, or every
 * queued event when there are no more blocks; called with mu held. Only
 * the list moves, so the emitters, which wait for mu, wait for a few
 * stores and not for a copy of the events. The writer runs at a lower
 * priority, and a copy under the lock let a preempted writer stall the
 * I/O loop. The cap bounds what a batch keeps resident until
 * sink_chain_return(), and the spares kept after it. */
static struct sink_chain sink_take(struct vigil_event_sink *sink)
{
    struct sink_chain ch = {sink->first, sink->first_pos, sink->last_len, sink->count};
    struct sink_block *cut = sink->first;

    for (size_t i = 1; i < SINK_TAKE_BLOCKS && cut != NULL; i++)
        cut = cut->next;
    if (cut == NULL || cut->next == NULL) {
        sink->first = sink->last = NULL;
        sink->first_pos = sink->last_len = 0;
        sink->count = 0;
        sink->held = ch.count;
        return ch;
    }
    /* Every block up to cut has a successor, so each is full. */
    ch.last_len = SINK_BLOCK_EVENTS;
    ch.count = SINK_TAKE_BLOCKS * SINK_BLOCK_EVENTS - sink->first_pos;
    sink->first = cut->next;
    sink->first_pos = 0;
    cut->next = NULL;
    sink->count -= ch.count;
    sink->held = ch.count;
    return ch;
}

/* The event after *ev in ch, or NULL; *b and *i track the position. */
static const struct vigil_event *sink_chain_next(const struct sink_chain *ch,
                                                 struct sink_block **b, size_t *i)
{
    size_t end;

    if (*b == NULL) {
        *b = ch->first;
        *i = ch->first_pos;
    } else {
        (*i)++;
    }
    while (*b != NULL) {
        end = (*b)->next != NULL ? SINK_BLOCK_EVENTS : ch->last_len;
        if (*i < end)
            return &(*b)->ev[*i];
        *b = (*b)->next;
        *i = 0;
    }
    return NULL;
}

/* Hands the blocks of ch back. While events keep coming, as many blocks
 * as ch used, plus one, stay as spares, so a steady flow maps nothing.
 * Once the queue is empty, one stays. The rest are unmapped after mu is
 * released. */
static void sink_chain_return(struct vigil_event_sink *sink, struct sink_chain *ch)
{
    size_t keep = (ch->count + SINK_BLOCK_EVENTS - 1) / SINK_BLOCK_EVENTS + 1;
    struct sink_block *b = ch->first, *extra = NULL;

    pthread_mutex_lock(&sink->mu);
    sink->held = 0;
    if (sink->count == 0)
        keep = 1;
    while (b != NULL) {
        struct sink_block *next = b->next;

        b->next = sink->spares;
        sink->spares = b;
        sink->n_spares++;
        b = next;
    }
    while (sink->n_spares > keep) {
        b = sink->spares;
        sink->spares = b->next;
        sink->n_spares--;
        b->next = extra;
        extra = b;
    }
    pthread_mutex_unlock(&sink->mu);
    sink_blocks_free(extra);
    ch->first = NULL;
}

static void sink_write_batch(struct vigil_event_sink *sink, const struct sink_chain *ch)
{
    uint64_t dropped = atomic_load(&sink->dropped);
    uint64_t ok = 0;
    struct sink_block *b = NULL;
    size_t i = 0;
    const struct vigil_event *ev;

    while ((ev = sink_chain_next(ch, &b, &i)) != NULL) {
        int len = vigil_event_to_json(ev, sink->line, VIGIL_EVENT_JSON_MAX - 1);

        if (len < 0) {
            log_error("event sink: %s event skipped because its JSON exceeds %d bytes",
                      vigil_event_type_name((enum vigil_event_type)ev->type),
                      VIGIL_EVENT_JSON_MAX);
            continue;
        }
        sink->line[len] = '\n';
        if (fwrite(sink->line, 1, (size_t)len + 1, sink->file) != (size_t)len + 1) {
            log_error("event sink: write failed: %s", strerror(errno));
            break;
        }
        ok++;
    }
    if (fflush(sink->file) != 0)
        log_error("event sink: flush failed: %s", strerror(errno));
    atomic_fetch_add(&sink->written, ok);
    if (dropped != sink->dropped_reported) {
        log_warn("event sink: queue full or out of memory, %llu events dropped since open",
                 (unsigned long long)dropped);
        sink->dropped_reported = dropped;
    }
}

static int64_t sink_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Hands the batch, lost events and the passing time to the consumer. */
static void sink_consume(struct vigil_event_sink *sink, const struct vigil_event_consumer *cons,
                         const struct sink_chain *ch)
{
    uint64_t dropped = atomic_load(&sink->dropped);
    struct sink_block *b = NULL;
    size_t i = 0;
    const struct vigil_event *ev;

    if (cons->feed == NULL)
        return;
    if (dropped != sink->dropped_consumed && cons->dropped != NULL) {
        cons->dropped(cons->ctx, dropped - sink->dropped_consumed, sink_now_us());
        sink->dropped_consumed = dropped;
    }
    while ((ev = sink_chain_next(ch, &b, &i)) != NULL)
        cons->feed(cons->ctx, ev);
    if (cons->tick != NULL)
        cons->tick(cons->ctx, sink_now_us());
}

/* Waits for events, called with mu held: up to SINK_WAKE_US while some
 * are queued, so more can join the batch; otherwise until an emitter wakes
 * the writer, or a second at most when a consumer needs its tick. */
static void sink_wait(struct vigil_event_sink *sink)
{
    struct timespec until;
    int64_t wait_us = sink->count > 0 ? SINK_WAKE_US : 1000000;

    /* With a consumer, wake at least once a second for its tick. */
    clock_gettime(CLOCK_REALTIME, &until);
    until = vigil_timespec_add_us(until, (uint64_t)wait_us);
    sink->sleeping = true;
    if (sink->consumer.feed == NULL && sink->count == 0)
        pthread_cond_wait(&sink->cond, &sink->mu);
    else
        pthread_cond_timedwait(&sink->cond, &sink->mu, &until);
    sink->sleeping = false;
}

/* Lowers the writer's priority below the I/O loop's, because events may
 * wait in the queue while deliveries may not. Failure keeps the defaults. */
static void sink_lower_priority(void)
{
    struct sched_param sp = {.sched_priority = 0};
    int process_nice;

    /* SCHED_BATCH keeps the writer's wake-ups from preempting the loop. */
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    errno = 0;
    process_nice = getpriority(PRIO_PROCESS, 0);
    if (errno == 0)
        (void)setpriority(PRIO_PROCESS, (id_t)gettid(), process_nice + SINK_NICE);
}

static void *sink_main(void *arg)
{
    struct vigil_event_sink *sink = arg;

    sink_lower_priority();

    pthread_mutex_lock(&sink->mu);
    for (;;) {
        struct vigil_event_consumer cons;
        struct sink_chain ch = {0};

        if (!sink->closing && (sink->count < SINK_BATCH_MAX || sink->paused))
            sink_wait(sink);
        if (sink->count == 0 && sink->closing)
            break; /* closing and drained */
        if (!sink->paused || sink->closing)
            ch = sink_take(sink);
        cons = sink->consumer;
        pthread_mutex_unlock(&sink->mu);
        if (ch.count > 0)
            sink_write_batch(sink, &ch);
        sink_consume(sink, &cons, &ch);
        sink_chain_return(sink, &ch);
        pthread_mutex_lock(&sink->mu);
    }
    pthread_mutex_unlock(&sink->mu);
    return NULL;
}

void vigil_event_sink_set_consumer(struct vigil_event_sink *sink,
                                   const struct vigil_event_consumer *consumer)
{
    pthread_mutex_lock(&sink->mu);
    if (consumer != NULL)
        sink->consumer = *consumer;
    else
        memset(&sink->consumer, 0, sizeof sink->consumer);
    pthread_mutex_unlock(&sink->mu);
    pthread_cond_signal(&sink->cond);
}

static FILE *sink_open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    FILE *f;

    if (fd < 0) {
        log_error("event sink: open of %s failed: %s", path, strerror(errno));
        return NULL;
    }
    f = fdopen(fd, "a");
    if (f == NULL) {
        log_error("event sink: fdopen of %s failed: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

static void sink_free(struct vigil_event_sink *sink)
{
    if (sink->file != NULL)
        fclose(sink->file);
    sink_blocks_free(sink->first);
    sink_blocks_free(sink->spares);
    vigil_free(sink->line);
    vigil_free(sink);
}

vigil_err vigil_event_sink_open(const char *path, size_t capacity, struct vigil_event_sink **out)
{
    struct vigil_event_sink *sink;
    vigil_err rc = VIGIL_ERR_NOMEM;

    *out = NULL;
    if (capacity == 0)
        return VIGIL_ERR_INVALID;
    sink = vigil_calloc(1, sizeof *sink);
    if (sink == NULL)
        return VIGIL_ERR_NOMEM;
    sink->capacity = capacity;
    sink->line = vigil_malloc(VIGIL_EVENT_JSON_MAX);
    if (sink->line == NULL)
        goto fail;
    sink->file = sink_open_file(path);
    if (sink->file == NULL) {
        rc = VIGIL_ERR_IO;
        goto fail;
    }
    pthread_mutex_init(&sink->mu, NULL);
    pthread_cond_init(&sink->cond, NULL);
    if (pthread_create(&sink->thread, NULL, sink_main, sink) != 0) {
        log_error("event sink: starting the writer thread failed");
        pthread_cond_destroy(&sink->cond);
        pthread_mutex_destroy(&sink->mu);
        rc = VIGIL_ERR_IO;
        goto fail;
    }
    *out = sink;
    return VIGIL_OK;

fail:
    sink_free(sink);
    return rc;
}

void vigil_event_sink_emit(struct vigil_event_sink *sink, const struct vigil_event *ev)
{
    bool kick;

    pthread_mutex_lock(&sink->mu);
    /* Out of memory for a block counts as a full queue. */
    if (sink->count + sink->held >= sink->capacity || sink->closing || !sink_push(sink, ev)) {
        pthread_mutex_unlock(&sink->mu);
        atomic_fetch_add(&sink->dropped, 1);
        return;
    }
    /* The first event wakes a writer waiting on an empty queue; later ones
     * join the batch it gathers, unless a burst reaches SINK_KICK. */
    kick = sink->sleeping && (sink->count == 1 || sink->count == SINK_KICK ||
                              sink->count * 2 >= sink->capacity);
    pthread_mutex_unlock(&sink->mu);
    if (kick)
        pthread_cond_signal(&sink->cond);
}

uint64_t vigil_event_sink_dropped(const struct vigil_event_sink *sink)
{
    return atomic_load(&((struct vigil_event_sink *)sink)->dropped);
}

uint64_t vigil_event_sink_written(const struct vigil_event_sink *sink)
{
    return atomic_load(&((struct vigil_event_sink *)sink)->written);
}

void vigil_event_sink_set_paused(struct vigil_event_sink *sink, bool paused)
{
    pthread_mutex_lock(&sink->mu);
    sink->paused = paused;
    pthread_mutex_unlock(&sink->mu);
    pthread_cond_signal(&sink->cond);
}

void vigil_event_sink_close(struct vigil_event_sink *sink)
{
    if (sink == NULL)
        return;
    pthread_mutex_lock(&sink->mu);
    sink->closing = true;
    pthread_mutex_unlock(&sink->mu);
    pthread_cond_signal(&sink->cond);
    pthread_join(sink->thread, NULL);
    pthread_cond_destroy(&sink->cond);
    pthread_mutex_destroy(&sink->mu);
    sink_free(sink);
}
