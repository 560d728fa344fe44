/* Damped incremental statistics with a numerically stable weighted update. */
#include "secmon/stats.h"

#include <math.h>

const double secmon_half_life_s[SECMON_WINDOWS] = {10.0, 60.0, 600.0};

/* Recent decay factors of this thread. A publish decays a device's
 * statistics over the same interval for each half-life, so most of the
 * dozen factors an event needs were just computed. */
#define DECAY_MEMO 4
static _Thread_local struct {
    double half_life_s;
    int64_t dt_us;
    double factor;
} decay_memo[DECAY_MEMO];
static _Thread_local unsigned decay_memo_next;

static double decay_factor(double half_life_s, int64_t dt_us)
{
    double f;

    for (int i = 0; i < DECAY_MEMO; i++)
        if (decay_memo[i].dt_us == dt_us && decay_memo[i].half_life_s == half_life_s)
            return decay_memo[i].factor;
    f = exp2(-((double)dt_us / 1e6) / half_life_s);
    decay_memo[decay_memo_next].half_life_s = half_life_s;
    decay_memo[decay_memo_next].dt_us = dt_us;
    decay_memo[decay_memo_next].factor = f;
    decay_memo_next = (decay_memo_next + 1) % DECAY_MEMO;
    return f;
}

void secmon_damped_decay(struct secmon_damped *s, double half_life_s, int64_t now_us)
{
    double f;

    if (s->first_us == 0 || now_us <= s->last_us)
        return;
    f = decay_factor(half_life_s, now_us - s->last_us);
    s->weight *= f;
    s->m2 *= f;
    s->last_us = now_us;
}

/* West's weighted incremental algorithm: with weights that all decay by the
 * same factor, the mean is unchanged by decay and m2 scales with the weight,
 * so the result equals the variance computed from all decayed samples. */
void secmon_damped_add(struct secmon_damped *s, double half_life_s, int64_t now_us, double x)
{
    double delta;

    if (s->first_us == 0) {
        s->first_us = now_us != 0 ? now_us : 1;
        s->last_us = now_us;
    }
    secmon_damped_decay(s, half_life_s, now_us);
    s->weight += 1.0;
    delta = x - s->mean;
    s->mean += delta / s->weight;
    s->m2 += delta * (x - s->mean);
    if (s->m2 < 0)
        s->m2 = 0;
}

double secmon_damped_mean(const struct secmon_damped *s)
{
    return s->weight > 0 ? s->mean : 0.0;
}

double secmon_damped_var(const struct secmon_damped *s)
{
    return s->weight >= 1.0 ? s->m2 / s->weight : 0.0;
}

double secmon_damped_std(const struct secmon_damped *s)
{
    return sqrt(secmon_damped_var(s));
}

double secmon_damped_rate(const struct secmon_damped *s, double half_life_s, int64_t now_us)
{
    double weight;
    double observed_s;
    double span_s;

    if (s->first_us == 0)
        return 0.0;
    weight = s->weight;
    if (now_us > s->last_us)
        weight *= decay_factor(half_life_s, now_us - s->last_us);
    observed_s = (double)(now_us - s->first_us) / 1e6;
    /* Integral of 2^(-t/h) from 0 to the observed time; a minimum of one
     * second keeps the first samples from reading as an infinite rate. */
    if (observed_s < 1.0)
        observed_s = 1.0;
    span_s = half_life_s / M_LN2 * (1.0 - exp2(-observed_s / half_life_s));
    return weight / span_s;
}

void secmon_multi_add(struct secmon_multi *m, int64_t now_us, double x)
{
    for (int i = 0; i < SECMON_WINDOWS; i++)
        secmon_damped_add(&m->win[i], secmon_half_life_s[i], now_us, x);
}
