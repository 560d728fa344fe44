/* Per-device-type security engine profiles: the keys a profile may set and
 * the merge of a profile over the secmon section. */
#include <stddef.h>
#include <string.h>

#include "config/config.h"
#include "config/config_internal.h"

#define PROFILE_KEY(field, is_decimal) {#field, offsetof(struct secmon_config, field), is_decimal}

/* The thresholds of per-device rules. Per-source rules (brute force, churn,
 * identities, slow connections, malformed packets) count events of many
 * devices from one address, so a device type does not apply to them. */
static const struct config_profile_key profile_keys[] = {
    PROFILE_KEY(learning_s, false),
    PROFILE_KEY(flood_msgs_per_s, false),
    PROFILE_KEY(qos_flood_msgs_per_s, false),
    PROFILE_KEY(silence_factor, false),
    PROFILE_KEY(baseline_z, true),
    PROFILE_KEY(vital_max_msgs_per_s, false),
};

const struct config_profile_key *config_profile_keys(size_t *count)
{
    *count = sizeof profile_keys / sizeof profile_keys[0];
    return profile_keys;
}

int config_profile_key_find(const char *key)
{
    for (size_t i = 0; i < sizeof profile_keys / sizeof profile_keys[0]; i++)
        if (strcmp(profile_keys[i].key, key) == 0)
            return (int)i;
    return -1;
}

void config_secmon_profile(const struct vigil_config *cfg, size_t i, struct secmon_config *out)
{
    const struct config_secmon_profile *p = &cfg->secmon_profiles[i];

    config_secmon(cfg, out);
    for (size_t k = 0; k < sizeof profile_keys / sizeof profile_keys[0]; k++) {
        size_t size = profile_keys[k].decimal ? sizeof(double) : sizeof(uint32_t);

        if ((p->set_mask & (UINT32_C(1) << k)) != 0)
            memcpy((char *)out + profile_keys[k].offset, (const char *)&p->cfg + profile_keys[k].offset,
                   size);
    }
}
