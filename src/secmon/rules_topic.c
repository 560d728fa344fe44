/* Topic rules: $SYS and wildcard probing, suspicious characters, and
 * topics outside the device's own subtree. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "secmon/engine_internal.h"

#define LEVEL_MAX 64   /* longer topic levels are suspicious */

/* True when id starts with one of the comma-separated prefixes. */
static bool is_monitor(const struct secmon_engine *e, const char *id)
{
    const char *p = e->cfg.monitor_prefixes;

    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        if (len > 0 && strncmp(id, p, len) == 0)
            return true;
        p = end != NULL ? end + 1 : NULL;
    }
    return false;
}

/* Describes the first suspicious feature of a topic, or returns NULL. */
static const char *topic_suspicion(const char *t)
{
    size_t level = 0;

    if (t[0] == '/')
        return "a leading '/' (empty first level)";
    if (strstr(t, "..") != NULL)
        return "a '..' path component";
    if (strchr(t, '%') != NULL)
        return "a '%' (URL or format escape)";
    if (strchr(t, '\\') != NULL)
        return "a backslash";
    for (const char *p = t; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return "a control character";
        level = *p == '/' ? 0 : level + 1;
        if (level > LEVEL_MAX)
            return "a level longer than 64 bytes";
    }
    return NULL;
}

static void raise_topic(struct secmon_engine *e, const struct vigil_event *ev, const char *src,
                        const char *rule, uint8_t sev, const char *what, const char *policy)
{
    const char *id = engine_event_identity(ev);
    struct engine_finding f;

    engine_finding_init(&f, rule, sev, id, src, id[0] != '\0' ? id : src);
    f.deviation = 1;
    snprintf(f.observation, sizeof f.observation, "%s '%s' by '%s' from %s: %s",
             vigil_event_type_name((enum vigil_event_type)ev->type), ev->topic, id, src, what);
    snprintf(f.expectation, sizeof f.expectation, "policy: %s", policy);
    engine_raise(e, ev, &f);
}

static void check_filter(struct secmon_engine *e, const struct vigil_event *ev, const char *src)
{
    const char *t = ev->topic;
    bool monitor = is_monitor(e, engine_event_identity(ev));

    if (strncmp(t, "$SYS", 4) == 0) {
        raise_topic(e, ev, src, SECMON_RULE_SYS_PROBE, SECMON_SEV_MEDIUM, "subscription to broker internals",
                    "devices do not read $SYS topics");
    } else if ((t[0] == '#' || t[0] == '+') && !monitor) {
        raise_topic(e, ev, src, SECMON_RULE_SYS_PROBE, SECMON_SEV_MEDIUM,
                    "a leading wildcard covers every site", "only monitoring clients subscribe across sites");
    } else if ((strchr(t, '#') != NULL || strchr(t, '+') != NULL) && !monitor) {
        raise_topic(e, ev, src, SECMON_RULE_WILDCARD_PROBE, SECMON_SEV_MEDIUM, "wildcard subscription",
                    "devices subscribe to exact topics");
    }
}

/* Level index (0-based) of a topic, as a span; false when absent. */
static bool topic_level(const char *t, int index, const char **start, size_t *len)
{
    for (int i = 0; i < index; i++) {
        t = strchr(t, '/');
        if (t == NULL)
            return false;
        t++;
    }
    *start = t;
    *len = strchr(t, '/') != NULL ? (size_t)(strchr(t, '/') - t) : strlen(t);
    return true;
}

/* In passive mode no broker enforced access control, so a publish whose
 * fourth level is not the publisher's client id (topics follow
 * <site>/<unit>/<room>/<device>/<metric>) is outside its subtree. */
static void check_owner(struct secmon_engine *e, const struct vigil_event *ev, const char *src)
{
    const char *id = engine_event_identity(ev);
    const char *level;
    size_t len;

    if (!e->cfg.passive || id[0] == '\0' || is_monitor(e, id) || ev->topic[0] == '$')
        return;
    if (!topic_level(ev->topic, 4, &level, &len))
        return;
    topic_level(ev->topic, 3, &level, &len);
    if (len == strlen(id) && memcmp(level, id, len) == 0)
        return;
    raise_topic(e, ev, src, SECMON_RULE_TOPIC_OUTSIDE, SECMON_SEV_HIGH,
                "the device level of the topic names another device",
                "a device publishes only under <site>/<unit>/<room>/<its id>/");
}

void engine_rules_topic(struct secmon_engine *e, const struct vigil_event *ev, const char *src)
{
    const char *why = topic_suspicion(ev->topic);

    if (why != NULL)
        raise_topic(e, ev, src, SECMON_RULE_TOPIC_CHARS, SECMON_SEV_MEDIUM, why,
                    "topics are plain level names without path, escape or control characters");
    if (ev->type == VIGIL_EV_ACL_DENY) {
        raise_topic(e, ev, src, SECMON_RULE_TOPIC_OUTSIDE, SECMON_SEV_HIGH, "denied by access control",
                    "a device uses only its own subtree");
        /* The hub emits no subscribe event for a denied filter, so probing
         * is read from the denial itself. */
        if (strstr(ev->detail, "subscribe") != NULL)
            check_filter(e, ev, src);
    } else if (ev->type == VIGIL_EV_SUBSCRIBE)
        check_filter(e, ev, src);
    else if (ev->type == VIGIL_EV_PUBLISH && strncmp(ev->topic, "$SYS", 4) == 0)
        raise_topic(e, ev, src, SECMON_RULE_SYS_PROBE, SECMON_SEV_HIGH, "publish into broker internals",
                    "only the broker publishes $SYS topics");
    else if (ev->type == VIGIL_EV_PUBLISH)
        check_owner(e, ev, src);
}
