/* Alarm rules, the sustain/clear state machine and the alarm message. */
#include "sim/alarm.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Thresholds follow common adult bedside-monitor defaults. */
static const struct alarm_rule rules[ALARM_COUNT] = {
    [ALARM_SPO2_LOW] = {"spo2_low", VITAL_SPO2, true, 90.0},
    [ALARM_HR_HIGH] = {"hr_high", VITAL_HR, false, 130.0},
    [ALARM_HR_LOW] = {"hr_low", VITAL_HR, true, 40.0},
    [ALARM_RESP_HIGH] = {"resp_high", VITAL_RESP, false, 30.0},
    [ALARM_RESP_LOW] = {"resp_low", VITAL_RESP, true, 8.0},
};

const struct alarm_rule *alarm_rule(enum alarm_kind k)
{
    return (unsigned)k < ALARM_COUNT ? &rules[k] : NULL;
}

int alarm_from_name(const char *name)
{
    for (int i = 0; i < ALARM_COUNT; i++)
        if (strcmp(rules[i].name, name) == 0)
            return i;
    return -1;
}

static bool violates(const struct alarm_rule *r, double v)
{
    return r->below ? v < r->threshold : v > r->threshold;
}

static bool more_extreme(const struct alarm_rule *r, double v, double than)
{
    return r->below ? v < than : v > than;
}

enum alarm_event alarm_feed(struct alarm_state *st, const struct alarm_rule *rule, double t,
                            double period_s, double value, double sustain_s)
{
    if (isnan(value)) {
        st->pending = false;
        return ALARM_EVENT_NONE;
    }
    if (!violates(rule, value)) {
        st->pending = false;
        if (!st->raised)
            return ALARM_EVENT_NONE;
        st->raised = false;
        st->last = value;
        return ALARM_EVENT_CLEARED;
    }
    if (st->raised) {
        if (more_extreme(rule, value, st->worst))
            st->worst = value;
        return ALARM_EVENT_NONE;
    }
    if (!st->pending) {
        st->pending = true;
        st->onset_s = t;
        st->worst = value;
    } else if (more_extreme(rule, value, st->worst)) {
        st->worst = value;
    }
    if (t - st->onset_s + period_s < sustain_s)
        return ALARM_EVENT_NONE;
    st->pending = false;
    st->raised = true;
    st->raised_s = t;
    st->last = value;
    return ALARM_EVENT_RAISED;
}

size_t alarm_format(char *out, size_t cap, const struct alarm_rule *rule,
                    const struct alarm_state *st, enum alarm_event ev, const char *device,
                    double t_epoch, double epoch_offset, double sustain_s)
{
    const struct vital_info *info = vital_info(rule->metric);
    bool cleared = ev == ALARM_EVENT_CLEARED;
    int n;

    n = snprintf(out, cap,
                 "{\"alarm\":\"%s\",\"state\":\"%s\",\"device\":\"%s\",\"metric\":\"%s\","
                 "\"value\":%.10g,\"unit\":\"%s\",\"condition\":\"%s\",\"threshold\":%.10g,"
                 "\"sustain_s\":%.10g,\"onset\":%.3f,\"time\":%.3f,\"worst\":%.10g",
                 rule->name, cleared ? "cleared" : "raised", device, info->name, st->last,
                 info->unit, rule->below ? "<" : ">", rule->threshold, sustain_s,
                 st->onset_s + epoch_offset, t_epoch, st->worst);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    if (cleared)
        n += snprintf(out + n, cap - (size_t)n, ",\"duration_s\":%.3f}",
                      t_epoch - (st->onset_s + epoch_offset));
    else
        n += snprintf(out + n, cap - (size_t)n, "}");
    if ((size_t)n >= cap)
        return 0;
    return (size_t)n;
}
