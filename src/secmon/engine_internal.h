/* State shared by the security engine's files: tracked keys with
 * least-recently-seen eviction, window counters, and alert raising. */
#ifndef VIGIL_SECMON_ENGINE_INTERNAL_H
#define VIGIL_SECMON_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secmon/engine.h"
#include "secmon/stats.h"

#define ENGINE_KEY_MAX 200
#define ENGINE_TOPICS_MAX 16      /* topics remembered per device */
/* Kinds of message tracked (device id prefix and last topic level). A
 * table smaller than the number of kinds in use evicts and allocates an
 * entry on nearly every publish, as 256 did for 1,000 publishers on
 * topics of their own. Entries take about 130 bytes each and are
 * allocated as kinds appear. */
#define ENGINE_TYPES_MAX 4096
#define ENGINE_PEERS_MAX 4        /* source addresses remembered per device */
#define ENGINE_IDENTS_MAX 32      /* client ids remembered per source and window */
#define ENGINE_ALERTS_MAX 1024    /* open alerts; the least recent closes first */
#define ENGINE_MIN_SAMPLES 8      /* publishes a baseline needs besides its time */

struct secmon_engine;

/* Head of every tracked object: its place in the recency list and in its
 * hash bucket. The key follows the object in the same allocation. */
struct engine_node {
    struct engine_node *prev, *next;     /* prev is more recent */
    struct engine_node *hnext;           /* next node of the same bucket */
    uint32_t hash;                       /* low 32 bits of vigil_hash_bytes() of the key */
    uint16_t key_len;                    /* below ENGINE_KEY_MAX */
    uint16_t key_off;                    /* bytes from the node to its key */
};

/* The NUL-terminated key of n. */
const char *engine_node_key(const struct engine_node *n);

/* Keys per bucket at which the bucket array doubles. Chains are then one
 * to two nodes long on average, each compared by its 32-bit hash first,
 * and a tracked key costs 4 to 8 bytes of bucket array. */
#define ENGINE_BUCKET_LOAD 2

/* Chained hash table plus recency list with a cap: adding a key to a full
 * table evicts the least recently touched one, after calling on_evict for
 * it. Chaining through the nodes keeps the bucket array between one
 * pointer per key and one per ENGINE_BUCKET_LOAD keys, where a map of key
 * copies cost 60 bytes or more per key. release, when set, frees what an object owns
 * besides itself, before the object is freed for any reason. */
struct engine_table {
    struct engine_node **buckets;        /* owned; n_buckets heads, a power of two */
    size_t n_buckets;
    struct engine_node *head, *tail;     /* most and least recent */
    size_t count, cap, obj_size;
    void (*on_evict)(struct secmon_engine *e, struct engine_node *n);
    void (*release)(struct engine_node *n);
};

void engine_table_init(struct engine_table *t, size_t cap, size_t obj_size,
                       void (*on_evict)(struct secmon_engine *, struct engine_node *));
void engine_table_free(struct engine_table *t);
/* Returns the object with that key and makes it the most recent, or NULL. */
void *engine_table_get(struct engine_table *t, const char *key, size_t len);
/* Like engine_table_get, but creates a zeroed object when absent; NULL only
 * when memory runs out or the key is longer than ENGINE_KEY_MAX - 1. */
void *engine_table_touch(struct secmon_engine *e, struct engine_table *t, const char *key,
                         size_t len, bool *created);
/* Writes the decimal key of connection id into out (at least 21 bytes)
 * and returns its length. */
size_t engine_conn_key(char *out, uint64_t id);
/* Removes and frees n without calling on_evict. */
void engine_table_remove(struct engine_table *t, struct engine_node *n);

/* Sliding window counter: the current fixed window plus the previous one
 * weighted by how much of it still overlaps the sliding window. */
struct engine_window {
    int64_t start_us;
    uint32_t cur, prev;
    int64_t first_us;    /* first event since the counter was last empty */
};

/* Counts one event at now_us and returns the events within the last len_us. */
double engine_window_add(struct engine_window *w, int64_t now_us, int64_t len_us);
double engine_window_read(const struct engine_window *w, int64_t now_us, int64_t len_us);

/* Short-lived distinct set of hashes, reset every window. */
struct engine_idset {
    int64_t start_us;
    uint64_t hash[ENGINE_IDENTS_MAX];
    uint32_t count;
};

/* Adds hash; returns the number of distinct hashes in the window. */
uint32_t engine_idset_add(struct engine_idset *s, uint64_t hash, int64_t now_us, int64_t len_us);

/* Statistics of a device's publishes, allocated at its first publish, so a
 * device that only logs in costs a struct engine_device alone. */
struct engine_baseline {
    int64_t last_pub_us;
    uint64_t publishes;
    bool learned;
    bool silent_reported;
    struct secmon_multi size;            /* payload bytes */
    struct secmon_multi iat;             /* seconds between publishes */
    struct secmon_multi count;           /* publish times, read as rates */
    struct secmon_damped rate_short;     /* short-window rate sampled per publish, long half-life */
    uint64_t topic_hash[ENGINE_TOPICS_MAX];
    struct engine_window topic_rate[ENGINE_TOPICS_MAX];
    /* Payload bytes per topic (long window): a device sends measurements,
     * heartbeats and alarms of very different sizes on different topics. */
    struct secmon_damped topic_size[ENGINE_TOPICS_MAX];
    uint32_t topic_publishes[ENGINE_TOPICS_MAX];
    uint8_t n_topics;
    bool topics_full;                    /* more topics than remembered */
    uint8_t qos_seen;                    /* bit per QoS level */
    struct engine_window pub_sec, qos_sec;
    char source[64];                     /* last source address */
    /* Thresholds of the device's type profile, or the engine's own; NULL
     * until the first event resolves it. Points into the engine. */
    const struct secmon_config *cfg;
    uint32_t cfg_generation;             /* secmon_engine.profile_generation when resolved */
    char device_type[SECMON_DEVICE_TYPE_MAX];  /* the type cfg was resolved for */
};

/* A tracked device: what logins teach (first seen, addresses, hours of
 * activity) and, once it has published, its baseline. A device that only
 * logs in costs this struct and its key: 72 bytes on x86-64 plus the key. */
struct engine_device {
    struct engine_node node;             /* key: device or client id */
    int64_t first_seen_us;               /* first login or publish */
    struct engine_baseline *base;        /* owned; NULL until the first publish */
    /* engine_peer_hash() of each source address seen, in order of first
     * use. The hashes are 32-bit, so a new address whose hash equals a
     * learned one's goes unreported: by chance with probability about
     * n_peers / 2^32 per new address. Searching for such an address
     * offline takes the engine's random seed, which never leaves the
     * process. */
    uint32_t peer_hash[ENGINE_PEERS_MAX];
    uint32_t hours;                      /* bit h: a publish or login in UTC hour h */
    uint8_t n_peers;
};
/* The baseline of d, allocated at the first call; NULL only when memory
 * runs out. src is the source address of the publish. */
struct engine_baseline *engine_device_baseline(struct engine_device *d, const char *src);

struct engine_type {
    struct engine_node node;             /* key: id prefix up to its first '-', '|', last topic level */
    int64_t first_seen_us;
    uint64_t publishes;
    struct secmon_damped size;           /* long window */
    uint8_t qos_seen;                    /* bit per QoS level */
};

struct engine_source {
    struct engine_node node;             /* key: address without port */
    struct engine_window auth_fail, connects, malformed, no_connect, pub_sec, qos_sec;
    struct engine_idset idents;
    uint32_t slow_open;                  /* open connections with a long keep-alive */
};

struct engine_ident {
    struct engine_node node;             /* key: client or device id */
    struct engine_window auth_fail;
};

/* A connection the engine still needs to follow: one that has not logged
 * in yet, or one holding a long keep-alive (slow_connection). Others are
 * forgotten at their auth_success, because nothing reads their record
 * after it. */
struct engine_conn {
    struct engine_node node;             /* key: connection id, decimal */
    bool started;                        /* its connect_attempt was seen */
    bool authenticated;
    bool slow;
    bool churn_counted;                  /* counted by connection_churn (live) */
    char source[64];
};

struct engine_alert {
    struct engine_node node;             /* key: rule, subject */
    struct secmon_alert pub;
    int64_t last_callback_us;
    bool dirty;                          /* updated since the last callback */
};

/* Thresholds of one device type (secmon_engine_set_profile). */
struct engine_profile {
    char type[SECMON_DEVICE_TYPE_MAX];
    struct secmon_config cfg;
};

struct secmon_engine {
    struct secmon_config cfg;
    struct engine_profile profiles[SECMON_PROFILES_MAX];
    size_t n_profiles;
    /* Changes with every profile set, so devices resolve their profile
     * again. */
    uint32_t profile_generation;
    secmon_alert_fn fn;
    void *ctx;
    struct engine_table devices, types, sources, idents, conns, alerts;
    uint8_t peer_seed[16];               /* random; hashed ahead of each source address */
    int64_t now_us;                      /* latest event or tick time */
    int64_t silence_checked_us;          /* time of the last pass over every device */
    uint64_t events, alerts_opened, dropped;
};

/* What a rule found; engine_raise() opens or updates its alert. */
struct engine_finding {
    const char *rule;
    uint8_t severity;
    const char *device;                  /* "" when unknown */
    const char *source;                  /* "" when unknown */
    const char *subject;                 /* dedup key beside the rule */
    double deviation;
    uint64_t count;                      /* events this finding adds to an open alert */
    uint64_t open_count;                 /* events counted when it opens; 0: count */
    int64_t first_event_us;              /* 0: the event time */
    char observation[160];
    char expectation[160];
    char evidence[128];                  /* used when there is no event */
};

void engine_finding_init(struct engine_finding *f, const char *rule, uint8_t severity,
                         const char *device, const char *source, const char *subject);
/* Writes "a|b" into out (ENGINE_KEY_MAX bytes), truncated to fit, and
 * returns its length. alen bytes of a are used. */
size_t engine_key_join(char *out, const char *a, size_t alen, const char *b);
/* Counts one more event into the open alert of rule and subject when it
 * exists, is not quiet and already shows a deviation of at least
 * deviation, and returns true. Otherwise returns false and changes
 * nothing: the caller builds the finding and calls engine_raise. Rules
 * that fire on every event of a sustained episode use it to skip
 * formatting texts the alert would not show. */
bool engine_raise_repeat(struct secmon_engine *e, const struct vigil_event *ev, const char *rule,
                         const char *subject, uint8_t severity, double deviation);
/* ev may be NULL (tick findings); then f->evidence is the evidence line. */
void engine_raise(struct secmon_engine *e, const struct vigil_event *ev, struct engine_finding *f);
/* Closes alerts quiet for alert_quiet_s and sends throttled updates. */
void engine_alerts_tick(struct secmon_engine *e);
void engine_alert_evicted(struct secmon_engine *e, struct engine_node *n);

/* Source address of a peer "ip:port" or "[ip6]:port". */
void engine_peer_address(const char *peer, char *out, size_t cap);
/* Seeded 32-bit hash of a source address, as kept in engine_device.peer_hash. */
uint32_t engine_peer_hash(const struct secmon_engine *e, const char *src);
/* Thresholds for d: the profile of its type, else the engine's own. ev
 * may be NULL (ticks); then the last resolved profile stays. d must have
 * its baseline. */
const struct secmon_config *engine_device_config(struct secmon_engine *e, struct engine_device *d,
                                                 const struct vigil_event *ev);
/* Identity of the event's client: device if set, else client id. */
const char *engine_event_identity(const struct vigil_event *ev);

/* Rule groups, each in its own file. */
void engine_rules_connection(struct secmon_engine *e, const struct vigil_event *ev, const char *src);
void engine_rules_topic(struct secmon_engine *e, const struct vigil_event *ev, const char *src);
void engine_rules_publish(struct secmon_engine *e, const struct vigil_event *ev, const char *src);
/* slot: the topic's index in d->topic_hash, or -1 when the set is full. */
void engine_baseline_publish(struct secmon_engine *e, struct engine_device *d,
                             const struct vigil_event *ev, const char *src, int slot);
void engine_baseline_new_topic(struct secmon_engine *e, struct engine_device *d,
                               const struct vigil_event *ev, const char *src);
void engine_baseline_login(struct secmon_engine *e, struct engine_device *d,
                           const struct vigil_event *ev, const char *src);
void engine_silence_tick(struct secmon_engine *e);

#endif
