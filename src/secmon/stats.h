/* Damped incremental statistics: a weight, mean and variance in which each
 * sample's weight halves every half-life, updated in O(1) per sample (the
 * damped windows of Kitsune's incremental statistics). */
#ifndef VIGIL_SECMON_STATS_H
#define VIGIL_SECMON_STATS_H

#include <stdint.h>

/* Half-lives of the three windows every tracked quantity keeps. */
#define SECMON_WINDOWS 3
#define SECMON_WIN_SHORT 0   /* 10 s */
#define SECMON_WIN_MID 1     /* 60 s */
#define SECMON_WIN_LONG 2    /* 600 s */

extern const double secmon_half_life_s[SECMON_WINDOWS];

/* One damped window. Zero-initialised means empty. */
struct secmon_damped {
    double weight;      /* decayed sample count */
    double mean;        /* weighted mean */
    double m2;          /* weighted sum of squared deviations from the mean */
    int64_t last_us;    /* time of the last decay */
    int64_t first_us;   /* time of the first sample, 0 before it */
};

/* Decays s to now_us; a time before the last decay leaves s unchanged. */
void secmon_damped_decay(struct secmon_damped *s, double half_life_s, int64_t now_us);
/* Decays s to now_us, then adds sample x with weight 1. */
void secmon_damped_add(struct secmon_damped *s, double half_life_s, int64_t now_us, double x);
double secmon_damped_mean(const struct secmon_damped *s);
/* Weighted population variance; 0 with less than one sample of weight. */
double secmon_damped_var(const struct secmon_damped *s);
double secmon_damped_std(const struct secmon_damped *s);
/* Samples per second at now_us: the decayed count divided by the decayed
 * length of the time observed since the first sample, so a steady stream
 * reads its true rate from the start. Does not modify s. */
double secmon_damped_rate(const struct secmon_damped *s, double half_life_s, int64_t now_us);

/* The same quantity over all SECMON_WINDOWS half-lives. */
struct secmon_multi {
    struct secmon_damped win[SECMON_WINDOWS];
};

void secmon_multi_add(struct secmon_multi *m, int64_t now_us, double x);

#endif
