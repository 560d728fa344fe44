/* The simulator's devices on UDP: CoAP wearables (wear-0001..) and MQTT-SN
 * sensors (sens-0001..). Each has a link of its own, plain UDP or DTLS 1.2
 * with the device id as identity. They are fed by the same recordings or
 * model as the MQTT monitors, and fleet_run() runs them on its loop. */
#ifndef VIGIL_SIM_UDP_FLEET_H
#define VIGIL_SIM_UDP_FLEET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "core/error.h"
#include "sim/coap_dev.h"
#include "sim/sn_dev.h"
#include "sim/udp_link_dtls.h"
#include "sim/udp_link.h"

#define SIMUDP_MAX_DEVICES 9999u

struct simudp_options {
    uint32_t coap_devices;             /* CoAP wearables wear-0001.. */
    uint32_t mqttsn_devices;           /* MQTT-SN sensors sens-0001.. */
    struct sockaddr_storage coap_addr; /* the hub's CoAP (or CoAPS) listener */
    struct sockaddr_storage mqttsn_addr;
    struct sim_dtls *dtls;             /* borrowed; NULL: plain UDP without identity */
    /* The hub's gateway.topic_base, for the topics a wearable names itself
     * under /ps; "%u" is the fleet's unit and "%t" coap_type. */
    const char *coap_topic_base;
    const char *coap_type;             /* device type of the wearables in the inventory */
    double mqttsn_sleep_s;             /* sensors sleep between reports; 0 stays active */
};

struct simudp_summary {
    uint32_t coap_devices;
    uint32_t mqttsn_devices;
    struct sim_link_counters links;    /* summed over every device */
    struct coap_dev_counters coap;
    struct sn_dev_counters mqttsn;
    uint64_t samples_offline;          /* measurements not sent: device offline or asleep */
    uint64_t alarms_raised;
    uint64_t alarms_cleared;
    uint64_t alarms_unsent;            /* alarm messages that could not be queued */
};

struct fleet_options;
struct simudp_fleet;

/* Creates the devices of opt->udp on loop; nothing is sent before
 * simudp_start(). Device i of each kind uses patient opt->devices + i
 * (wearables) or opt->devices + coap_devices + i (sensors), so no two
 * devices of the fleet show the same patient. Fails with a logged reason
 * when a device has no usable PSK or certificate. The caller releases the
 * fleet with simudp_close(), also after a failure here (*out is then
 * NULL or partly built). opt must outlive the fleet. */
vigil_err simudp_create(uv_loop_t *loop, const struct fleet_options *opt,
                        struct simudp_fleet **out);

/* Starts every link. start_ms is the fleet's monotonic start time and
 * start_epoch the Unix time of simulated second 0. */
void simudp_start(struct simudp_fleet *u, uint64_t start_ms, double start_epoch);

/* Takes the samples due up to simulated time sim_t, sends heartbeats and
 * runs the protocol timers. */
void simudp_tick(struct simudp_fleet *u, double sim_t, uint64_t now_ms);

/* Stops sampling and sends each online device's "offline" status. */
void simudp_stop(struct simudp_fleet *u);
/* True when no confirmable or QoS 1/2 message waits for its acknowledgement. */
bool simudp_drained(const struct simudp_fleet *u);
/* Ends the MQTT-SN connections with DISCONNECT. */
void simudp_finish(struct simudp_fleet *u);
/* Closes every link (close_notify on DTLS); u frees itself once libuv
 * released the handles. NULL is allowed. */
void simudp_close(struct simudp_fleet *u);

uint32_t simudp_online(const struct simudp_fleet *u);
uint64_t simudp_messages_sent(const struct simudp_fleet *u);
uint32_t simudp_active_alarms(const struct simudp_fleet *u);
void simudp_summary(const struct simudp_fleet *u, struct simudp_summary *s);

#endif
