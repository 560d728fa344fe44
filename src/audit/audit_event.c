/* Maps typed security events to audit records. */
#include <string.h>

#include "audit/audit_internal.h"

const char *audit_event_type(const struct vigil_event *ev)
{
    switch (ev->type) {
    case VIGIL_EV_AUTH_SUCCESS:
        return "auth_success";
    case VIGIL_EV_AUTH_FAILURE:
        return "auth_failure";
    case VIGIL_EV_ACL_DENY:
        return "acl_deny";
    case VIGIL_EV_ADMIN:
        return "admin_command";
    case VIGIL_EV_CERT:
        return "cert";
    case VIGIL_EV_RATE_LIMIT:
        return "rate_limit";
    default:
        return NULL;
    }
}

vigil_err audit_append_event(struct audit_log *log, const struct vigil_event *ev)
{
    const char *type = audit_event_type(ev);
    char text[VIGIL_EVENT_JSON_MAX];
    int len;
    json_t *fields;
    vigil_err rc;

    if (type == NULL)
        return VIGIL_ERR_INVALID;
    /* The event's own JSON form never contains a measured value. */
    len = vigil_event_to_json(ev, text, sizeof text);
    if (len < 0)
        return VIGIL_ERR_LIMIT;
    fields = json_loadb(text, (size_t)len, 0, NULL);
    if (fields == NULL)
        return VIGIL_ERR_NOMEM;
    json_object_set(fields, "event_ts", json_object_get(fields, "ts"));
    json_object_del(fields, "ts");
    json_object_del(fields, "type");
    rc = audit_append_deferred(log, type, fields);
    json_decref(fields);
    return rc;
}
