/* Clinical alarms derived from a device's vital signs: a threshold that must
 * be crossed for a sustain window before the alarm is raised, and that
 * clears on the first sample back in range. */
#ifndef VIGIL_SIM_ALARM_H
#define VIGIL_SIM_ALARM_H

#include <stdbool.h>
#include <stddef.h>

#include "sim/vitals.h"

enum alarm_kind {
    ALARM_SPO2_LOW,  /* SpO2 < 90 % */
    ALARM_HR_HIGH,   /* heart rate > 130 /min */
    ALARM_HR_LOW,    /* heart rate < 40 /min */
    ALARM_RESP_HIGH, /* respiratory rate > 30 /min */
    ALARM_RESP_LOW,  /* respiratory rate < 8 /min */
    ALARM_COUNT
};

struct alarm_rule {
    const char *name;   /* "spo2_low", ... */
    enum vital metric;
    bool below;         /* true: value < threshold violates; false: value > threshold */
    double threshold;   /* clinical unit of metric */
};

/* Per device and rule. Zero-initialised means "in range, nothing pending". */
struct alarm_state {
    bool raised;
    bool pending;       /* out of range since onset_s, not yet sustained */
    double onset_s;     /* time of the first out-of-range sample of this episode */
    double raised_s;
    double worst;       /* most extreme value of the episode */
    double last;        /* value of the sample that raised or cleared */
};

enum alarm_event {
    ALARM_EVENT_NONE,
    ALARM_EVENT_RAISED,
    ALARM_EVENT_CLEARED,
};

const struct alarm_rule *alarm_rule(enum alarm_kind k);
/* Returns the rule with that name, or -1. */
int alarm_from_name(const char *name);

/* Feeds one sample taken at t seconds that stands for period_s seconds of
 * signal (1 for 1 Hz data, 60 for per-minute data). The episode counts as
 * sustained once t - onset + period_s >= sustain_s. A NaN value (no
 * reading) ends a pending episode, because a gap cannot prove the condition
 * lasted, but does not clear a raised alarm. */
enum alarm_event alarm_feed(struct alarm_state *st, const struct alarm_rule *rule, double t,
                            double period_s, double value, double sustain_s);

/* Formats the alarm message published on ".../alarm" as JSON:
 * {"alarm":..,"state":"raised"|"cleared","device":..,"metric":..,"value":..,
 *  "unit":..,"condition":"<"|">","threshold":..,"sustain_s":..,"onset":..,
 *  "time":..,"worst":..[,"duration_s":..]}. Times are Unix seconds.
 * Returns the length, or 0 when out is too small. */
size_t alarm_format(char *out, size_t cap, const struct alarm_rule *rule,
                    const struct alarm_state *st, enum alarm_event ev, const char *device,
                    double t_epoch, double epoch_offset, double sustain_s);

#endif
