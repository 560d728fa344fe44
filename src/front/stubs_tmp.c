/* Placeholders for front ends not yet built: listeners of these transports
 * fail to start. Each function goes away when its front end lands. */
#include "broker/gateway.h"
#include "core/log.h"

vigil_err mqttsn_front_open(struct hub *hub, const struct config_listener *l, struct gw_front **out)
{
    (void)hub;
    (void)l;
    *out = NULL;
    log_error("the MQTT-SN front end is not built in");
    return VIGIL_ERR_CONFIG;
}
