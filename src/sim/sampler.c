/* Sampling clock, recording or model values, and alarms of one device. */
#include "sim/sampler.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

void sampler_init(struct sampler *s, const struct recording_set *set, uint64_t seed,
                  uint32_t index, uint32_t n_devices)
{
    memset(s, 0, sizeof *s);
    model_init(&s->model, seed, index);
    /* The first sample is due one second in, once the clients had time to
     * connect. */
    s->next_sample_t = 1.0;
    s->next_temp_t = 1.0;
    if (set == NULL || set->n == 0)
        return;
    s->rec = &set->items[index % set->n];
    if (n_devices > set->n) {
        /* Devices that share a recording start at evenly spread rows. */
        uint32_t rounds = (uint32_t)((n_devices + set->n - 1) / set->n);
        uint32_t round = (uint32_t)(index / set->n);

        s->row_offset = s->rec->n_rows * round / rounds;
    }
}

double sampler_period(const struct sampler *s)
{
    return s->rec ? s->rec->period_s : 1.0;
}

/* Fills values with the sample due at simulated time t. */
static void take_sample(struct sampler *s, double t, double values[VITAL_COUNT])
{
    double model_values[VITAL_COUNT];
    bool temp_due = t >= s->next_temp_t;

    if (s->rec) {
        for (int i = 0; i < VITAL_COUNT; i++)
            values[i] = recording_value(s->rec, s->row_offset + s->sample_no, (enum vital)i);
        values[VITAL_TEMP] = NAN;
        /* Neither data set has a temperature, so the model supplies it. */
        if (temp_due) {
            model_step(&s->model, SAMPLER_TEMPERATURE_PERIOD_S, model_values);
            values[VITAL_TEMP] = model_values[VITAL_TEMP];
        }
    } else {
        model_step(&s->model, 1.0, values);
        if (!temp_due)
            values[VITAL_TEMP] = NAN;
    }
    if (temp_due)
        s->next_temp_t += SAMPLER_TEMPERATURE_PERIOD_S;
    s->sample_no++;
}

static void feed_alarms(struct sampler *s, const double values[VITAL_COUNT], double t,
                        double sustain_s, const struct sampler_hooks *h, void *user)
{
    for (int k = 0; k < ALARM_COUNT; k++) {
        const struct alarm_rule *r = alarm_rule((enum alarm_kind)k);
        enum alarm_event ev = alarm_feed(&s->alarms[k], r, t, sampler_period(s),
                                         values[r->metric], sustain_s);

        if (ev != ALARM_EVENT_NONE && h->alarm)
            h->alarm(user, (enum alarm_kind)k, ev, &s->alarms[k], t);
    }
}

void sampler_advance(struct sampler *s, double now_t, double sustain_s,
                     const struct sampler_hooks *h, void *user)
{
    double values[VITAL_COUNT];
    double period = sampler_period(s);
    unsigned done = 0;

    if (now_t - s->next_sample_t > SAMPLER_MAX_CATCH_UP * period) {
        uint64_t skip = (uint64_t)((now_t - s->next_sample_t) / period);

        s->sample_no += skip;
        s->next_sample_t += (double)skip * period;
    }
    while (s->next_sample_t <= now_t && done++ < SAMPLER_MAX_CATCH_UP) {
        double t = s->next_sample_t;

        take_sample(s, t, values);
        if (h->sample)
            h->sample(user, t, values);
        feed_alarms(s, values, t, sustain_s, h, user);
        s->next_sample_t += period;
    }
}

uint32_t sampler_active_alarms(const struct sampler *s)
{
    uint32_t n = 0;

    for (int k = 0; k < ALARM_COUNT; k++)
        n += s->alarms[k].raised ? 1 : 0;
    return n;
}

const char *sampler_source_name(const struct sampler *s)
{
    return s->rec ? s->rec->name : "model";
}
