/* Internals shared by the UDP fleet and its two device kinds: the common
 * device state, the operations each kind implements, and pure helpers. */
#ifndef VIGIL_SIM_UDP_FLEET_INTERNAL_H
#define VIGIL_SIM_UDP_FLEET_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/device.h"
#include "sim/alarm.h"
#include "sim/fleet.h"
#include "sim/sampler.h"
#include "sim/udp_fleet.h"
#include "sim/udp_link.h"

/* The metrics a wearable or sensor measures. */
#define SIMUDP_DEVICE_N_METRICS 4
extern const enum vital simudp_device_metrics[SIMUDP_DEVICE_N_METRICS];

struct simudp_device;

enum simudp_kind {
    SIMUDP_COAP,
    SIMUDP_MQTTSN,
    SIMUDP_KINDS,
};

struct simudp_device_ops {
    enum simudp_kind kind;
    const char *protocol;  /* "CoAP" or "MQTT-SN", for messages */
    void (*up)(struct simudp_device *d);
    void (*down)(struct simudp_device *d, bool was_up);
    void (*datagram)(struct simudp_device *d, const uint8_t *data, size_t len);
    void (*sample)(struct simudp_device *d, double t, const double values[VITAL_COUNT]);
    /* JSON of an alarm (QoS 2 / confirmable) or a status (QoS 1 /
     * confirmable). Returns false when it could not be queued. */
    bool (*alarm)(struct simudp_device *d, const char *json, size_t len);
    bool (*status)(struct simudp_device *d, const char *json, size_t len);
    void (*tick)(struct simudp_device *d);
    bool (*online)(const struct simudp_device *d);
    bool (*drained)(const struct simudp_device *d);
    void (*finish)(struct simudp_device *d);
    void (*collect)(const struct simudp_device *d, struct simudp_summary *s);
    /* Frees the device, its link already closed. */
    void (*destroy)(struct simudp_device *d);
};

struct simudp_fleet {
    uv_loop_t *loop;
    const struct fleet_options *opt;
    struct simudp_device **devices;  /* owned, n of them */
    uint32_t n;
    uint32_t open_links;
    uint64_t start_ms;
    uint64_t now_ms;              /* monotonic time of the current tick */
    double start_epoch;
    bool stopping;
    bool closing;
    bool problem_logged[SIMUDP_KINDS]; /* the first link problem was logged */
};

struct simudp_device {
    const struct simudp_device_ops *ops;
    struct simudp_fleet *fleet;
    const struct sockaddr_storage *hub; /* the hub's listener, in the fleet's options */
    uint32_t patient;             /* model index */
    char id[DEVICE_ID_MAX + 1];
    char base_name[DEVICE_ID_MAX + 2]; /* SenML base name "<device>/" */
    char prefix[256];             /* topic prefix ending in '/' */
    struct sampler src;
    struct sim_link *link;
    uint64_t next_status_ms;
    bool reject_logged;
    uint64_t samples_offline;
    uint64_t alarms_raised;
    uint64_t alarms_cleared;
    uint64_t alarms_unsent;
};

/* Fills the common part of d and creates its link to addr; d->ops and
 * the kind's own state are set by the caller. */
vigil_err simudp_device_setup(struct simudp_fleet *u, struct simudp_device *d, const char *id,
                              uint32_t patient, const struct sockaddr_storage *addr);

/* Formats the status message of d, as the MQTT monitors send it. */
size_t simudp_device_status_json(const struct simudp_device *d, const char *state,
                                 const char *reason, char *out, size_t cap);

/* Logs a rejection from the hub once per device. */
void simudp_device_log_reject(struct simudp_device *d, const char *what);

/* Constructors of the two kinds; index counts from 0 within the kind. */
vigil_err coap_wearable_new(struct simudp_fleet *u, uint32_t index, uint32_t patient,
                            struct simudp_device **out);
vigil_err sn_sensor_new(struct simudp_fleet *u, uint32_t index, uint32_t patient,
                        struct simudp_device **out);

/* ---- Pure helpers, unit-tested ---- */

/* Expands a gateway.topic_base pattern: "%d" id, "%t" type ("device" when
 * empty), "%u" unit ("unassigned" when empty). Returns the length, or 0
 * for another '%' sequence or when out (capacity cap) is too small. */
size_t simudp_expand_topic_base(const char *pattern, const char *unit, const char *type,
                                const char *id, char *out, size_t cap);

/* Formats a SenML JSON pack (RFC 8428) with one record per metric of
 * metrics that has a value: the first record carries the base name and
 * base time, every record its name, SenML unit and value. Returns the
 * length, or 0 when no metric has a value or out is too small. */
size_t simudp_senml_pack(char *out, size_t cap, const char *base_name, double time_s,
                         const double values[VITAL_COUNT], const enum vital *metrics,
                         size_t n_metrics);

#endif
