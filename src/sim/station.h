/* Central station: subscribes to the ward's topics and $SYS, keeps the
 * latest vital signs and active alarms per bed, and renders a text view. */
#ifndef VIGIL_SIM_STATION_H
#define VIGIL_SIM_STATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "sim/alarm.h"
#include "sim/vitals.h"

#define STATION_MAX_BEDS 20000
/* A device counts as online when it sent anything this recently. */
#define STATION_ONLINE_MS 10000

struct station_alarm {
    bool active;
    double value;       /* value that raised the alarm, clinical unit */
    double worst;
    double onset;       /* Unix seconds */
};

struct station_bed {
    char device[65];
    char room[65];
    double values[VITAL_COUNT];   /* latest reading, NaN before the first */
    uint64_t last_seen_ms;        /* monotonic ms of the last message, 0 = never */
    bool offline;                 /* the last status message had state "offline" */
    struct station_alarm alarms[ALARM_COUNT];
};

/* Latest state of the ward, fed with messages and rendered as text. */
struct station_state {
    struct station_bed *beds;     /* owned hash table of cap slots, device "" = empty */
    size_t cap;
    size_t n_beds;
    uint64_t messages;            /* every message received */
    uint64_t ignored;             /* messages that were not understood */
    uint64_t dropped_beds;        /* messages from devices past STATION_MAX_BEDS */
    long sys_clients_connected;   /* $SYS/broker/clients/connected, -1 when not seen */
    uint64_t rate_messages;       /* messages at the last rate update */
    uint64_t rate_ms;
    double rate;                  /* messages per second */
};

vigil_err station_state_init(struct station_state *st);
void station_state_free(struct station_state *st);

/* Applies one message received at monotonic time now_ms. Topics of the form
 * <site>/<unit>/<room>/<device>/<metric> carry SenML (or plain numbers) for
 * vital metrics, JSON on "status" and "alarm"; $SYS/broker/clients/connected
 * carries a number. Anything else is counted in ignored. */
void station_state_message(struct station_state *st, const char *topic, size_t topic_len,
                           const char *payload, size_t payload_len, uint64_t now_ms);

/* Updates the message rate over the time since the previous call. */
void station_state_tick(struct station_state *st, uint64_t now_ms);

/* Writes the view: header, one row per bed sorted by room and device (at
 * most max_rows, 0 = all) and the active alarms. title is the first line. */
void station_state_render(const struct station_state *st, FILE *out, const char *title,
                          uint64_t now_ms, size_t max_rows);

#endif
