/* The vital-sign source of one simulated device. It replays a recording
 * from a row offset or runs the built-in model, takes body temperature
 * from the model every 10 simulated seconds, and derives the clinical
 * alarms from the samples. The MQTT monitors and the CoAP and MQTT-SN
 * devices share it. */
#ifndef VIGIL_SIM_SAMPLER_H
#define VIGIL_SIM_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "sim/alarm.h"
#include "sim/model.h"
#include "sim/recording.h"
#include "sim/vitals.h"

#define SAMPLER_TEMPERATURE_PERIOD_S 10.0
/* Samples a device may lag behind the clock before it skips ahead, so a
 * stalled loop does not send a burst of old measurements. */
#define SAMPLER_MAX_CATCH_UP 600

struct sampler {
    const struct recording *rec; /* borrowed; NULL: the model supplies every vital */
    size_t row_offset;
    uint64_t sample_no;
    double next_sample_t;        /* simulated seconds since the start */
    double next_temp_t;
    struct model_patient model;  /* also the temperature source with recordings */
    struct alarm_state alarms[ALARM_COUNT];
};

/* Callbacks that receive a device's samples. values contains NaN where
 * nothing was measured at t, and st is the alarm's state after the event. */
struct sampler_hooks {
    void (*sample)(void *user, double t, const double values[VITAL_COUNT]);
    void (*alarm)(void *user, enum alarm_kind k, enum alarm_event ev,
                  const struct alarm_state *st, double t);
};

/* Prepares device index of a fleet of n_devices seeded with seed. Device
 * i replays recording i mod set->n; devices that share a recording start
 * at evenly spread rows. set may be NULL or empty (model only) and must
 * outlive s. The first sample is due one simulated second in. */
void sampler_init(struct sampler *s, const struct recording_set *set, uint64_t seed,
                  uint32_t index, uint32_t n_devices);

/* Seconds of signal one sample stands for: 1, or 60 for MIMIC rows. */
double sampler_period(const struct sampler *s);

/* Takes every sample due up to simulated time now_t (at most
 * SAMPLER_MAX_CATCH_UP, older ones are skipped), calling h->sample for
 * each and then h->alarm for each alarm it raises or clears. */
void sampler_advance(struct sampler *s, double now_t, double sustain_s,
                     const struct sampler_hooks *h, void *user);

/* Number of alarms raised and not yet cleared. */
uint32_t sampler_active_alarms(const struct sampler *s);

/* Name of the source for status messages: the recording's file name or
 * "model". */
const char *sampler_source_name(const struct sampler *s);

#endif
