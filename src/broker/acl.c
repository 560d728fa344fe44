/* Access control: a role's topic patterns, with "%d" standing for the
 * authenticated device id. Device ids cannot contain '+', '#' or '/', so the
 * substitution never widens a pattern. */
#include <stdio.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/topic.h"

size_t acl_expand_device(const char *pattern, const char *device, char *out, size_t cap)
{
    size_t n = 0, dlen = strlen(device);

    for (const char *p = pattern; *p != '\0'; p++) {
        if (p[0] == '%' && p[1] == 'd') {
            if (n + dlen >= cap || dlen == 0)
                return 0;
            memcpy(out + n, device, dlen);
            n += dlen;
            p++;
            continue;
        }
        if (n + 1 >= cap)
            return 0;
        out[n++] = *p;
    }
    out[n] = '\0';
    return n;
}

/* Checks the rules stored with `vigil acl` for the device and its role. */
struct acl_stored_ctx {
    const char *device;
    const char *topic;
    size_t len;
    bool subscribe;
    bool allowed;
};

static void acl_stored_pattern(void *ctx, const char *pattern)
{
    struct acl_stored_ctx *a = ctx;
    char pat[512];
    size_t n;

    if (a->allowed)
        return;
    n = acl_expand_device(pattern, a->device, pat, sizeof pat);
    if (n == 0)
        return;
    a->allowed = a->subscribe ? topic_filter_covers(pat, n, a->topic, a->len)
                              : topic_match(pat, n, a->topic, a->len);
}

static bool acl_stored_allows(const struct hub *hub, const struct config_role *role,
                              const char *device, const char *topic, size_t len, bool subscribe)
{
    struct acl_stored_ctx a = {device, topic, len, subscribe, false};

    if (hub->snap == NULL || device[0] == '\0')
        return false;
    device_snapshot_patterns(hub->snap, device, role->name,
                             subscribe ? ACL_SUBSCRIBE : ACL_PUBLISH, acl_stored_pattern, &a);
    return a.allowed;
}

bool acl_check_publish(const struct hub *hub, const struct config_role *role, const char *device,
                       const char *topic, size_t len)
{
    char pat[512];

    /* Topics starting with '$' belong to the server ($SYS). */
    if (len > 0 && topic[0] == '$')
        return false;
    if (role == NULL)
        return true;
    for (size_t i = 0; i < role->n_publish; i++) {
        size_t n = acl_expand_device(role->publish[i], device, pat, sizeof pat);

        if (n > 0 && topic_match(pat, n, topic, len))
            return true;
    }
    return acl_stored_allows(hub, role, device, topic, len, false);
}

bool acl_can_publish(const struct conn *c, const char *topic, size_t len)
{
    return acl_check_publish(c->hub, c->role, c->device, topic, len);
}

bool acl_can_subscribe(const struct conn *c, const char *filter, size_t len)
{
    return acl_check_subscribe(c->hub, c->role, c->device, filter, len);
}

bool acl_check_subscribe(const struct hub *hub, const struct config_role *role,
                         const char *device, const char *filter, size_t len)
{
    char pat[512];
    const char *group, *inner;
    size_t glen, ilen;

    if (topic_split_shared(filter, len, &group, &glen, &inner, &ilen) == VIGIL_OK) {
        filter = inner;
        len = ilen;
    }
    if (role == NULL)
        return true;
    for (size_t i = 0; i < role->n_subscribe; i++) {
        size_t n = acl_expand_device(role->subscribe[i], device, pat, sizeof pat);

        if (n > 0 && topic_filter_covers(pat, n, filter, len))
            return true;
    }
    return acl_stored_allows(hub, role, device, filter, len, true);
}

bool acl_client_id_names_device(const struct hub *hub, const char *client_id)
{
    char id[DEVICE_ID_MAX + 1];
    const char *colon = strchr(client_id, ':');
    size_t n = colon ? (size_t)(colon - client_id) : strlen(client_id);

    if (hub->snap == NULL || n == 0 || n > DEVICE_ID_MAX)
        return false;
    memcpy(id, client_id, n);
    id[n] = '\0';
    return device_snapshot_find(hub->snap, id) != NULL;
}
