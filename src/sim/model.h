/* Built-in physiological model: one simulated adult ICU patient per device,
 * deterministic for a given seed and device index.
 *
 * Each patient gets baselines drawn from the seeded generator (heart rate,
 * SpO2, respiratory rate, temperature, cuff pressures). Every step the
 * values follow a mean-reverting random walk around the baseline, plus
 * respiratory sinus arrhythmia on the heart rate and a 24-hour rhythm on heart
 * rate and temperature. Episodes make alarms happen: desaturations (SpO2
 * falls 8-16 points over about 20 s, holds 30-90 s, recovers, with a rise in
 * heart rate), tachycardia runs and slow-breathing spells. Cuff pressure is
 * measured every 15 minutes. The model has no invasive arterial line. */
#ifndef VIGIL_SIM_MODEL_H
#define VIGIL_SIM_MODEL_H

#include <stdint.h>

#include "sim/vitals.h"

/* splitmix64 state. */
struct model_rng {
    uint64_t state;
};

void model_rng_seed(struct model_rng *r, uint64_t seed);
uint64_t model_rng_next(struct model_rng *r);
/* Uniform in [0, 1). */
double model_rng_uniform(struct model_rng *r);
/* Standard normal (Box-Muller). */
double model_rng_normal(struct model_rng *r);

enum model_episode {
    EPISODE_NONE,
    EPISODE_DESATURATION,
    EPISODE_TACHYCARDIA,
    EPISODE_BRADYPNOEA,
};

struct model_patient {
    struct model_rng rng;
    /* Baselines. */
    double hr0, spo2_0, resp0, temp0, sys0, dia0;
    /* Slow deviations from the baselines (random-walk state). */
    double hr_dev, spo2_dev, resp_dev, temp_dev, bp_dev;
    double t;                 /* model time, seconds since the start */
    double phase_offset;      /* position in the 24-hour rhythm, seconds */
    double next_nbp;          /* model time of the next cuff measurement */
    enum model_episode episode;
    double episode_start, episode_len, episode_depth;
};

/* Initialises patient `index` of a fleet seeded with seed. */
void model_init(struct model_patient *p, uint64_t seed, uint32_t index);

/* Advances the patient by dt seconds (0 < dt <= 60) and writes one sample
 * per vital into values, rounded to the monitor's resolution; NaN where the
 * model produces no reading at this step (cuff pressure between
 * measurements, invasive pressure always). */
void model_step(struct model_patient *p, double dt, double values[VITAL_COUNT]);

#endif
