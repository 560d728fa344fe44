/* The fleet simulator: N bedside monitors, each an MQTT client on one libuv
 * loop, publishing vital signs as SenML, a heartbeat on ".../status" and
 * clinical alarms on ".../alarm"; beside them, on the same loop, the CoAP
 * wearables and MQTT-SN sensors of sim/udp_fleet.h. */
#ifndef VIGIL_SIM_FLEET_H
#define VIGIL_SIM_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "sim/credentials.h"
#include "sim/recording.h"
#include "sim/udp_fleet.h"

struct fleet_options {
    const char *host;                      /* broker address, numeric or "localhost" */
    uint16_t port;
    uint8_t version;                       /* MQTT_V311 or MQTT_V5 */
    uint8_t qos;                           /* QoS of vital-sign messages, 0 or 1 */
    uint32_t devices;                      /* mon-0001 ..; 0 when only UDP devices run */
    double duration_s;                     /* wall-clock run time; 0 = until SIGINT/SIGTERM */
    double speed;                          /* simulated seconds per wall-clock second */
    const char *site;
    const char *unit;
    uint32_t first_room;                   /* device i is in room<first_room + i> */
    const struct credentials *credentials; /* NULL connects without user name */
    const struct recording_set *recordings; /* NULL or empty: built-in model */
    uint64_t seed;                         /* model seed */
    uint16_t keep_alive;                   /* seconds */
    double status_interval_s;              /* heartbeat period, wall clock */
    double sustain_s;                      /* alarm sustain window, simulated seconds */
    double progress_interval_s;            /* progress line period; 0 = none */
    struct simudp_options udp;          /* CoAP and MQTT-SN devices; none when zeroed */
};

struct fleet_summary {
    uint64_t published[3];    /* PUBLISH packets sent, by QoS */
    uint64_t delivered[3];    /* QoS 1/2 publishes acknowledged */
    uint64_t rejected;        /* QoS 1/2 publishes the broker refused */
    uint64_t lost;            /* QoS 1/2 publishes lost with a connection */
    uint64_t samples_offline; /* measurements not sent because the device was offline */
    uint64_t alarms_raised;
    uint64_t alarms_cleared;
    uint64_t alarms_unsent;   /* alarm messages that could not be queued */
    uint64_t publish_failed;  /* publishes refused locally (window or buffer full) */
    uint64_t connects;
    uint64_t refused;         /* CONNACKs refusing the connection */
    uint64_t connection_errors;
    uint32_t devices_connected_at_end; /* when the stop was requested */
    double simulated_s;
    double elapsed_s;
    struct simudp_summary udp;
};

/* Runs the fleet until duration_s has passed or SIGINT/SIGTERM arrives,
 * then lets queued QoS 1/2 and confirmable messages finish (up to 3 s),
 * disconnects and fills *summary. Fails before starting for an invalid
 * option, when a monitor has no password in credentials, or when a UDP
 * device has no usable PSK or certificate. */
vigil_err fleet_run(const struct fleet_options *opt, struct fleet_summary *summary);

#endif
