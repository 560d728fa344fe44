/* Built-in physiological model of an adult ICU patient. */
#include "sim/model.h"

#include <math.h>

#define DAY_S 86400.0
#define NBP_INTERVAL_S 900.0

/* Mean episode rates per patient-second. With 50 patients, desaturations
 * start about once a minute across the fleet (one per patient per ~45 min). */
#define DESAT_RATE (1.0 / 2700.0)
#define TACHY_RATE (1.0 / 7200.0)
#define BRADYPNOEA_RATE (1.0 / 7200.0)

void model_rng_seed(struct model_rng *r, uint64_t seed)
{
    r->state = seed;
}

uint64_t model_rng_next(struct model_rng *r)
{
    uint64_t z = (r->state += UINT64_C(0x9E3779B97F4A7C15));

    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

double model_rng_uniform(struct model_rng *r)
{
    return (double)(model_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

double model_rng_normal(struct model_rng *r)
{
    double u1 = model_rng_uniform(r);
    double u2 = model_rng_uniform(r);

    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static double clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static double round_to(double v, int decimals)
{
    double f = decimals == 1 ? 10.0 : 1.0;

    return round(v * f) / f;
}

void model_init(struct model_patient *p, uint64_t seed, uint32_t index)
{
    struct model_rng *r = &p->rng;

    *p = (struct model_patient){0};
    /* Mixing the index through the generator gives unrelated streams for
     * neighbouring patients. */
    model_rng_seed(r, seed ^ (UINT64_C(0xD1B54A32D192ED03) * (index + 1)));
    model_rng_next(r);
    p->hr0 = clamp(82.0 + 12.0 * model_rng_normal(r), 55.0, 115.0);
    p->spo2_0 = clamp(97.0 + 1.5 * model_rng_normal(r), 93.0, 99.5);
    p->resp0 = clamp(16.0 + 3.0 * model_rng_normal(r), 10.0, 24.0);
    p->temp0 = clamp(36.9 + 0.35 * model_rng_normal(r), 36.1, 38.2);
    p->sys0 = clamp(122.0 + 15.0 * model_rng_normal(r), 90.0, 165.0);
    p->dia0 = clamp(p->sys0 * 0.58 + 5.0 * model_rng_normal(r), 50.0, 100.0);
    p->phase_offset = model_rng_uniform(r) * DAY_S;
    p->next_nbp = model_rng_uniform(r) * NBP_INTERVAL_S;
}

/* Mean-reverting random walk (Ornstein-Uhlenbeck): pulled back to 0 with
 * time constant tau seconds, noise of stationary standard deviation sd. */
static double walk(struct model_rng *r, double x, double dt, double tau, double sd)
{
    double a = exp(-dt / tau);

    return x * a + sd * sqrt(1.0 - a * a) * model_rng_normal(r);
}

static void maybe_start_episode(struct model_patient *p, double dt)
{
    struct model_rng *r = &p->rng;
    double u = model_rng_uniform(r);

    if (p->episode != EPISODE_NONE)
        return;
    if (u < DESAT_RATE * dt) {
        p->episode = EPISODE_DESATURATION;
        p->episode_len = 50.0 + 70.0 * model_rng_uniform(r);
        p->episode_depth = 8.0 + 8.0 * model_rng_uniform(r);
    } else if (u < (DESAT_RATE + TACHY_RATE) * dt) {
        p->episode = EPISODE_TACHYCARDIA;
        p->episode_len = 40.0 + 120.0 * model_rng_uniform(r);
        p->episode_depth = 135.0 + 20.0 * model_rng_uniform(r) - p->hr0;
    } else if (u < (DESAT_RATE + TACHY_RATE + BRADYPNOEA_RATE) * dt) {
        p->episode = EPISODE_BRADYPNOEA;
        p->episode_len = 30.0 + 60.0 * model_rng_uniform(r);
        p->episode_depth = p->resp0 - 5.0 - 2.0 * model_rng_uniform(r);
    } else {
        return;
    }
    p->episode_start = p->t;
}

/* Shape of an episode in [0, 1]: a 20 s ramp in, a plateau, a 20 s ramp out. */
static double episode_shape(const struct model_patient *p)
{
    double e = p->t - p->episode_start;
    double ramp = 20.0;

    if (e < ramp)
        return e / ramp;
    if (e < p->episode_len + ramp)
        return 1.0;
    return clamp(1.0 - (e - p->episode_len - ramp) / ramp, 0.0, 1.0);
}

static void apply_episode(struct model_patient *p, double *hr, double *spo2, double *resp)
{
    double s;

    if (p->episode == EPISODE_NONE)
        return;
    s = episode_shape(p);
    if (p->episode == EPISODE_DESATURATION) {
        *spo2 -= p->episode_depth * s;
        *hr += 12.0 * s;
    } else if (p->episode == EPISODE_TACHYCARDIA) {
        *hr += p->episode_depth * s;
    } else {
        *resp -= p->episode_depth * s;
    }
    if (p->t - p->episode_start > p->episode_len + 40.0)
        p->episode = EPISODE_NONE;
}

static void step_pressure(struct model_patient *p, double values[VITAL_COUNT])
{
    double sys, dia;

    if (p->t < p->next_nbp)
        return;
    p->next_nbp += NBP_INTERVAL_S;
    sys = p->sys0 + p->bp_dev + 4.0 * model_rng_normal(&p->rng);
    dia = p->dia0 + 0.5 * p->bp_dev + 3.0 * model_rng_normal(&p->rng);
    values[VITAL_NBP_SYS] = round(sys);
    values[VITAL_NBP_DIA] = round(dia);
    values[VITAL_NBP_MEAN] = round(dia + (sys - dia) / 3.0);
}

void model_step(struct model_patient *p, double dt, double values[VITAL_COUNT])
{
    struct model_rng *r = &p->rng;
    double circ, resp, hr, spo2, temp;

    if (!(dt > 0.0))
        dt = 1.0;
    p->t += dt;
    p->hr_dev = walk(r, p->hr_dev, dt, 600.0, 4.0);
    p->spo2_dev = walk(r, p->spo2_dev, dt, 300.0, 0.8);
    p->resp_dev = walk(r, p->resp_dev, dt, 300.0, 1.5);
    p->temp_dev = walk(r, p->temp_dev, dt, 3600.0, 0.15);
    p->bp_dev = walk(r, p->bp_dev, dt, 1800.0, 6.0);
    maybe_start_episode(p, dt);

    circ = sin(2.0 * M_PI * (p->t + p->phase_offset) / DAY_S);
    resp = p->resp0 + p->resp_dev;
    /* Respiratory sinus arrhythmia: heart rate follows the breathing cycle. */
    hr = p->hr0 + p->hr_dev + 4.0 * circ + 2.0 * sin(2.0 * M_PI * p->t * resp / 60.0);
    spo2 = p->spo2_0 + p->spo2_dev;
    temp = p->temp0 + p->temp_dev + 0.3 * circ;
    apply_episode(p, &hr, &spo2, &resp);

    for (int i = 0; i < VITAL_COUNT; i++)
        values[i] = NAN;
    values[VITAL_HR] = round_to(clamp(hr + 0.7 * model_rng_normal(r), 30.0, 220.0), 0);
    values[VITAL_PULSE] = round_to(clamp(hr + 1.2 * model_rng_normal(r), 30.0, 220.0), 0);
    values[VITAL_RESP] = round_to(clamp(resp + 0.6 * model_rng_normal(r), 3.0, 50.0), 0);
    values[VITAL_SPO2] = round_to(clamp(spo2 + 0.4 * model_rng_normal(r), 60.0, 100.0), 0);
    values[VITAL_TEMP] = round_to(clamp(temp, 34.0, 41.0), 1);
    step_pressure(p, values);
}
