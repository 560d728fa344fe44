/* Event sink: a bounded queue of events drained by one writer thread that
 * appends JSON lines to a file, rotated by size and reopened on request. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
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
/* Period over which the writer tracks the peak of queue blocks in use. */
#define SINK_SPARE_WINDOW_US 250000
/* Output buffer of the writer. A batch of 512 publish events is about
 * 130 KB of JSON, which thus goes out in about 8 writes. */
#define SINK_OUT (16 * 1024)
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
 * Drained blocks stay mapped as spares up to the most blocks in use at
 * once during the last one or two windows of SINK_SPARE_WINDOW_US, so a
 * steady flow maps and unmaps nothing. A burst's blocks go back to the
 * system once that peak has aged out. */
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
    size_t n_mapped;            /* blocks queued, held by the writer or spare */
    size_t peak_used, peak_prev; /* most blocks queued or held: this window, the last */
    int64_t window_us;          /* monotonic start of the current peak window */
    size_t capacity;            /* maximum events queued and held by the writer */
    size_t count;
    size_t held;                /* events taken by the writer and not yet handed back */
    bool closing;
    bool paused;
    bool sleeping;              /* the writer waits on cond; guarded by mu */
    pthread_t thread;
    char *path;                 /* owned; the file's name, for rotating and reopening */
    int fd;                     /* owned; opened with O_APPEND, -1 when closed */
    /* Rotation state, used by the writer thread only. size is the file's
     * size at open plus the bytes written since, so no write needs a stat. */
    uint64_t size;
    uint64_t max_bytes;         /* 0: never rotate */
    uint32_t keep;              /* rotated files kept, path.1 (newest) to path.keep */
    uint64_t rotate_at;         /* size that triggers a rotation: max_bytes, or max_bytes
                                 * past the size at a failed rotation */
    bool regular;               /* fd is a regular file, the only kind that rotates */
    bool rotate_failed;         /* the last rotation failed; logged once until one works */
    atomic_bool reopen;         /* a reopen was requested (vigil_event_sink_reopen) */
    char *out;                  /* owned; SINK_OUT bytes of JSON lines not yet written */
    size_t out_len;
    bool write_failed;          /* the last write failed; logged once until one succeeds */
    bool cut_line;              /* the file ends in part of a line, cut by a failure */
    uint64_t lost_lines;        /* lines dropped since writing began to fail */
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

    if (b == NULL) {
        b = vigil_pages_alloc(sizeof *b);
        if (b == NULL)
            return NULL;
        sink->n_mapped++;
    } else {
        sink->spares = b->next;
        sink->n_spares--;
    }
    if (sink->n_mapped - sink->n_spares > sink->peak_used)
        sink->peak_used = sink->n_mapped - sink->n_spares;
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

static int64_t sink_monotonic_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Hands the blocks of ch back as spares and unmaps, after mu is released,
 * those beyond the peak of blocks in use over the current and the last
 * window. Once the queue has been empty for two windows one spare stays.
 * Returning only as many spares as the last batch used, and one once the
 * queue was empty, mapped and unmapped blocks all the time at 100,000
 * events a second, because the writer often empties the queue. */
static void sink_chain_return(struct vigil_event_sink *sink, struct sink_chain *ch)
{
    int64_t now = sink_monotonic_us();
    struct sink_block *b = ch->first, *extra = NULL;
    size_t used, keep;

    pthread_mutex_lock(&sink->mu);
    sink->held = 0;
    while (b != NULL) {
        struct sink_block *next = b->next;

        b->next = sink->spares;
        sink->spares = b;
        sink->n_spares++;
        b = next;
    }
    used = sink->n_mapped - sink->n_spares;
    if (now - sink->window_us >= SINK_SPARE_WINDOW_US) {
        sink->peak_prev = sink->peak_used;
        sink->peak_used = used;
        sink->window_us = now;
    }
    keep = sink->peak_used > sink->peak_prev ? sink->peak_used : sink->peak_prev;
    keep = keep > used ? keep - used : 0;
    if (keep < 1)
        keep = 1;
    while (sink->n_spares > keep) {
        b = sink->spares;
        sink->spares = b->next;
        sink->n_spares--;
        sink->n_mapped--;
        b->next = extra;
        extra = b;
    }
    pthread_mutex_unlock(&sink->mu);
    sink_blocks_free(extra);
    ch->first = NULL;
}

/* Writes the name of rotated file k ("events.jsonl.3") into out, or
 * returns false when it does not fit. */
static bool sink_rotated_name(const struct vigil_event_sink *sink, uint32_t k, char *out,
                              size_t cap)
{
    int n = snprintf(out, cap, "%s.%u", sink->path, (unsigned)k);

    return n > 0 && (size_t)n < cap;
}

/* A newly opened event file and what the writer reads from it once. */
struct sink_file {
    int fd;
    uint64_t size;
    bool regular;
    bool cut;       /* ends in part of a line, which a full disk or a crash left */
};

/* Opens path for appending (created 0600) and reads its size with one
 * fstat. On failure errno is set by open. */
static bool sink_file_open(const char *path, struct sink_file *f)
{
    struct stat st;
    char last;
    int rfd;

    f->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    f->size = 0;
    f->regular = false;
    f->cut = false;
    if (f->fd < 0)
        return false;
    if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode))
        return true;
    f->regular = true;
    f->size = (uint64_t)st.st_size;
    if (st.st_size == 0)
        return true;
    /* The writer's descriptor is write-only, so the last byte is read
     * through a second one. */
    rfd = open(path, O_RDONLY | O_CLOEXEC);
    if (rfd < 0)
        return true;
    f->cut = pread(rfd, &last, 1, st.st_size - 1) == 1 && last != '\n';
    close(rfd);
    return true;
}

/* Makes f the file the writer appends to. The caller closes the old one. */
static void sink_file_use(struct vigil_event_sink *sink, const struct sink_file *f)
{
    sink->fd = f->fd;
    sink->size = f->size;
    sink->regular = f->regular;
    sink->cut_line = f->cut;
    sink->rotate_at = sink->max_bytes;
}

/* Ends a line cut short in the current file there, where it began, closes
 * that file and makes f current. */
static void sink_file_switch(struct vigil_event_sink *sink, const struct sink_file *f)
{
    if (sink->cut_line && write(sink->fd, "\n", 1) == 1)
        sink->cut_line = false;
    close(sink->fd);
    sink_file_use(sink, f);
}

/* Opens the file anew at its path, for a log rotation that moved the old
 * one away and then sent SIGHUP. The old descriptor stays in use when the
 * open fails, so no event is lost. */
static void sink_reopen(struct vigil_event_sink *sink)
{
    struct sink_file f;

    if (!sink_file_open(sink->path, &f)) {
        log_error("event sink: reopening %s failed: %s; events go on to the file open before "
                  "until the next SIGHUP",
                  sink->path, strerror(errno));
        return;
    }
    sink_file_switch(sink, &f);
    log_info("event sink: reopened %s (%llu bytes)", sink->path, (unsigned long long)f.size);
}

/* Deletes the rotated files numbered above keep, which an earlier run with
 * a larger keep left. The directory is read, so a number missing between
 * them (a crash between two renames, a file deleted by hand) leaves none
 * behind. Failures are ignored: such a file only takes space. */
static void sink_delete_beyond_keep(const struct vigil_event_sink *sink)
{
    const char *slash = strrchr(sink->path, '/');
    const char *base = slash != NULL ? slash + 1 : sink->path;
    size_t base_len = strlen(base);
    char dir[4096];
    struct dirent *e;
    DIR *d;

    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == sink->path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - sink->path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - sink->path), sink->path);
    else
        return;
    d = opendir(dir);
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        const char *num;
        size_t digits;

        if (strncmp(e->d_name, base, base_len) != 0 || e->d_name[base_len] != '.')
            continue;
        num = e->d_name + base_len + 1;
        digits = strspn(num, "0123456789");
        /* Only names the writer makes: path.N, N without leading zeros. */
        if (digits == 0 || num[digits] != '\0' || num[0] == '0')
            continue;
        if (digits > 10 || strtoull(num, NULL, 10) > sink->keep)
            (void)unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

/* True when path no longer names the open file: it was deleted or moved
 * away (by hand, or by a log rotation that has not sent SIGHUP yet). */
static bool sink_file_gone(const struct vigil_event_sink *sink)
{
    struct stat open_st, path_st;

    if (fstat(sink->fd, &open_st) != 0)
        return false;
    if (stat(sink->path, &path_st) != 0)
        return errno == ENOENT || errno == ENOTDIR;
    return path_st.st_dev != open_st.st_dev || path_st.st_ino != open_st.st_ino;
}

/* Creates the next file under the name path.new, before any rename, so
 * that a failure (no descriptor or inode left) leaves every file where it
 * was. A leftover of an interrupted rotation is replaced. */
static bool sink_next_open(const char *name, struct sink_file *f)
{
    if (unlink(name) != 0 && errno != ENOENT)
        return false;
    f->fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    f->size = 0;
    f->regular = true;
    f->cut = false;
    return f->fd >= 0;
}

/* Switches to the new file f and logs the end of a run of failed
 * rotations. */
static bool sink_rotated(struct vigil_event_sink *sink, const struct sink_file *f)
{
    sink_file_switch(sink, f);
    if (sink->rotate_failed)
        log_info("event sink: rotating %s works again", sink->path);
    sink->rotate_failed = false;
    return true;
}

/* Rotates the file: creates path.new, deletes path.keep (and any higher
 * number that a larger keep left), renames path.k to path.k+1 from
 * keep - 1 down to 1, renames path to path.1 and path.new to path. When
 * path no longer names the open file, which was deleted or moved away, a
 * new path is opened instead and no rotated file is touched. On failure
 * the current file stays open for the next lines, and the first failure is
 * logged. The next attempt comes after max_bytes more bytes, so the
 * renames stay rare. */
static bool sink_rotate(struct vigil_event_sink *sink)
{
    char from[4096], to[4096], next[4096];
    const char *step = "opening a new", *file = next;
    struct sink_file f;
    uint32_t k;
    int err = ENAMETOOLONG;

    /* Every name is path.N, so one fitting path.(keep + 1) fits them all. */
    if (!sink_rotated_name(sink, sink->keep + 1, to, sizeof to) ||
        snprintf(next, sizeof next, "%s.new", sink->path) >= (int)sizeof next) {
        step = "naming the rotated files of";
        file = sink->path;
        goto fail;
    }
    if (sink_file_gone(sink)) {
        if (!sink_file_open(sink->path, &f)) {
            file = sink->path;
            goto fail_errno;
        }
        log_warn("event sink: %s was deleted or moved away; writing to a new one",
                 sink->path);
        return sink_rotated(sink, &f);
    }
    if (!sink_next_open(next, &f))
        goto fail_errno;
    step = "deleting";
    file = to;
    sink_rotated_name(sink, sink->keep, to, sizeof to);
    if (unlink(to) != 0 && errno != ENOENT)
        goto fail_next;
    sink_delete_beyond_keep(sink);
    step = "renaming to";
    for (k = sink->keep - 1; k >= 1; k--) {
        sink_rotated_name(sink, k, from, sizeof from);
        sink_rotated_name(sink, k + 1, to, sizeof to);
        if (rename(from, to) != 0 && errno != ENOENT)
            goto fail_next;
    }
    sink_rotated_name(sink, 1, to, sizeof to);
    if (rename(sink->path, to) != 0)
        goto fail_next;
    if (rename(next, sink->path) != 0) {
        file = sink->path;
        err = errno;
        /* The file goes back to its name. If that fails too, it still
         * takes the next lines under the new name. */
        (void)rename(to, sink->path);
        goto fail_close;
    }
    return sink_rotated(sink, &f);

fail_next:
    err = errno;
fail_close:
    close(f.fd);
    (void)unlink(next);
    goto fail;
fail_errno:
    err = errno;
fail:
    if (!sink->rotate_failed)
        log_error("event sink: rotating %s failed (%s %s: %s); appending to it and trying "
                  "again after %llu more bytes",
                  sink->path, step, file, strerror(err), (unsigned long long)sink->max_bytes);
    sink->rotate_failed = true;
    sink->rotate_at = sink->size + sink->max_bytes;
    return false;
}

/* Returns how many bytes of the buffer, from done on, go into the current
 * file: all of them when no rotation is due, else the whole lines that fit
 * under the limit, and 0 when the file must rotate first. A line already
 * begun is finished, and an empty file takes at least one line however
 * long, so a rotation falls between lines and always makes progress. */
static size_t sink_piece(const struct vigil_event_sink *sink, size_t done)
{
    size_t len = sink->out_len - done, room, n = 0;
    const char *p = sink->out + done, *nl;

    if (sink->max_bytes == 0 || !sink->regular || sink->size + len <= sink->rotate_at)
        return len;
    room = sink->size < sink->rotate_at ? (size_t)(sink->rotate_at - sink->size) : 0;
    if (room > 0 && (nl = memrchr(p, '\n', room < len ? room : len)) != NULL)
        n = (size_t)(nl - p) + 1;
    if (n == 0 && (sink->size == 0 || (done > 0 && sink->out[done - 1] != '\n'))) {
        nl = memchr(p, '\n', len);
        n = nl != NULL ? (size_t)(nl - p) + 1 : len;
    }
    return n;
}

static uint64_t sink_count_lines(const char *p, size_t len)
{
    uint64_t n = 0;
    const char *end = p + len;

    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

/* Writes out the buffered lines, of which there are lines, and returns how
 * many were written. A failed write drops the rest, because the writer
 * must not stall the queue behind a full or broken disk. The first failure
 * of a run is logged, and so is the number of lines dropped once writing
 * works again. A line cut short by a failure is ended before the next
 * write, so it cannot run into the next event's line. When the file
 * reaches its size limit, the lines that fit go to it, it rotates, and the
 * rest go to the new file. */
static uint64_t sink_out_flush(struct vigil_event_sink *sink, uint64_t lines)
{
    size_t done = 0;
    uint64_t lines_done = 0;
    bool may_rotate = true;

    if (sink->cut_line && sink->out_len > 0) {
        if (write(sink->fd, "\n", 1) != 1) {
            sink->out_len = 0; /* still failing; logged when the failure began */
            sink->lost_lines += lines;
            return 0;
        }
        sink->size++;
        sink->cut_line = false;
    }
    while (done < sink->out_len) {
        size_t start = done, end = sink->out_len;

        if (may_rotate) {
            size_t piece = sink_piece(sink, done);

            /* After a failed rotation the rest of the buffer goes to the
             * current file, and a later flush tries again. */
            if (piece == 0) {
                may_rotate = sink_rotate(sink);
                continue;
            }
            end = done + piece;
        }
        while (done < end) {
            ssize_t n = write(sink->fd, sink->out + done, end - done);

            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                if (!sink->write_failed)
                    log_error("event sink: write failed: %s",
                              n < 0 ? strerror(errno) : "no progress");
                sink->write_failed = true;
                if (done > 0 && sink->out[done - 1] != '\n')
                    sink->cut_line = true;
                sink->out_len = 0;
                sink->lost_lines += lines - lines_done;
                return lines_done;
            }
            done += (size_t)n;
            sink->size += (uint64_t)n;
        }
        /* Lines are counted only when a rotation splits the buffer. */
        if (end < sink->out_len)
            lines_done += sink_count_lines(sink->out + start, end - start);
    }
    if (sink->write_failed)
        log_warn("event sink: writing events works again; events not written: %llu",
                 (unsigned long long)sink->lost_lines);
    sink->write_failed = false;
    sink->lost_lines = 0;
    sink->out_len = 0;
    return lines;
}

static void sink_write_batch(struct vigil_event_sink *sink, const struct sink_chain *ch)
{
    uint64_t dropped = atomic_load(&sink->dropped);
    uint64_t ok = 0, pending = 0;
    struct sink_block *b = NULL;
    size_t i = 0;
    const struct vigil_event *ev;

    while ((ev = sink_chain_next(ch, &b, &i)) != NULL) {
        int len;

        if (SINK_OUT - sink->out_len < VIGIL_EVENT_JSON_MAX) {
            ok += sink_out_flush(sink, pending);
            pending = 0;
        }
        len = vigil_event_to_json(ev, sink->out + sink->out_len, VIGIL_EVENT_JSON_MAX - 1);
        if (len < 0) {
            log_error("event sink: %s event skipped because its JSON exceeds %d bytes",
                      vigil_event_type_name((enum vigil_event_type)ev->type),
                      VIGIL_EVENT_JSON_MAX);
            continue;
        }
        sink->out[sink->out_len + (size_t)len] = '\n';
        sink->out_len += (size_t)len + 1;
        pending++;
    }
    ok += sink_out_flush(sink, pending);
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
 * the writer, one spare window at most while spare blocks wait to be given
 * back, or a second at most when a consumer needs its tick. */
static void sink_wait(struct vigil_event_sink *sink)
{
    struct timespec until;
    int64_t wait_us = sink->count > 0     ? SINK_WAKE_US
                      : sink->n_spares > 1 ? SINK_SPARE_WINDOW_US
                                           : 1000000;

    /* With a consumer, wake at least once a second for its tick. */
    clock_gettime(CLOCK_REALTIME, &until);
    until = vigil_timespec_add_us(until, (uint64_t)wait_us);
    sink->sleeping = true;
    /* Spares beyond one are given back after the last burst, so the
     * writer wakes for that too. */
    if (sink->consumer.feed == NULL && sink->count == 0 && sink->n_spares <= 1)
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

        if (!sink->closing && (sink->count < SINK_BATCH_MAX || sink->paused) &&
            !atomic_load(&sink->reopen)) {
            bool was_empty = sink->count == 0;

            sink_wait(sink);
            /* The first event into an empty queue woke the writer. Waiting
             * one more period lets a trickle of events form a batch, so
             * 10,000 events a second cost 200 wake-ups instead of one each. */
            if (was_empty && sink->count > 0 && sink->count < SINK_KICK && !sink->closing &&
                !sink->paused)
                sink_wait(sink);
        }
        if (sink->count == 0 && sink->closing)
            break; /* closing and drained */
        if (!sink->paused || sink->closing)
            ch = sink_take(sink);
        cons = sink->consumer;
        pthread_mutex_unlock(&sink->mu);
        /* One atomic load per batch. The file is reopened before the batch
         * is written, so its lines go to the new file. */
        if (atomic_load(&sink->reopen) && atomic_exchange(&sink->reopen, false))
            sink_reopen(sink);
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

static void sink_free(struct vigil_event_sink *sink)
{
    if (sink->fd >= 0)
        close(sink->fd);
    sink_blocks_free(sink->first);
    sink_blocks_free(sink->spares);
    vigil_free(sink->out);
    vigil_free(sink->path);
    vigil_free(sink);
}

vigil_err vigil_event_sink_open_rotating(const char *path, size_t capacity,
                                         const struct vigil_event_rotation *rotation,
                                         struct vigil_event_sink **out)
{
    struct vigil_event_sink *sink;
    struct sink_file f;
    vigil_err rc = VIGIL_ERR_NOMEM;

    *out = NULL;
    if (capacity == 0 || (rotation != NULL && rotation->max_bytes > 0 &&
                          (rotation->keep == 0 || rotation->keep > VIGIL_EVENT_KEEP_MAX)))
        return VIGIL_ERR_INVALID;
    sink = vigil_calloc(1, sizeof *sink);
    if (sink == NULL)
        return VIGIL_ERR_NOMEM;
    sink->capacity = capacity;
    sink->fd = -1;
    if (rotation != NULL && rotation->max_bytes > 0) {
        sink->max_bytes = rotation->max_bytes;
        sink->keep = rotation->keep;
    }
    atomic_init(&sink->reopen, false);
    sink->out = vigil_malloc(SINK_OUT);
    sink->path = vigil_malloc(strlen(path) + 1);
    if (sink->out == NULL || sink->path == NULL)
        goto fail;
    memcpy(sink->path, path, strlen(path) + 1);
    if (!sink_file_open(path, &f)) {
        log_error("event sink: open of %s failed: %s", path, strerror(errno));
        rc = VIGIL_ERR_IO;
        goto fail;
    }
    sink_file_use(sink, &f);
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

vigil_err vigil_event_sink_open(const char *path, size_t capacity, struct vigil_event_sink **out)
{
    return vigil_event_sink_open_rotating(path, capacity, NULL, out);
}

void vigil_event_sink_reopen(struct vigil_event_sink *sink)
{
    /* Set under mu, so a writer about to wait either reads the flag as set or
     * receives the signal. */
    pthread_mutex_lock(&sink->mu);
    atomic_store(&sink->reopen, true);
    pthread_mutex_unlock(&sink->mu);
    pthread_cond_signal(&sink->cond);
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
