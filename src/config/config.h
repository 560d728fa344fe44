/* Configuration: the embedded default, the command line overrides of
 * `vigil serve`, and the YAML file given with -c. Unknown keys and values of
 * the wrong type are rejected with file:line and the expected form. */
#ifndef VIGIL_CONFIG_CONFIG_H
#define VIGIL_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "secmon/engine.h"

#define CONFIG_MAX_LISTENERS 16
#define CONFIG_MAX_ROLES 16
#define CONFIG_MAX_PATTERNS 16
#define CONFIG_MAX_SNIFF_INTERFACES 8
#define CONFIG_MAX_SNIFF_PORTS 16
#define CONFIG_MAX_SECMON_PROFILES 16    /* equal to SECMON_PROFILES_MAX */

#define CONFIG_MAX_PREDEFINED_TOPICS 64

enum config_transport {
    CONFIG_TRANSPORT_MQTT = 0,    /* plaintext MQTT over TCP */
    CONFIG_TRANSPORT_MQTTS,       /* MQTT over TLS 1.2/1.3 */
    CONFIG_TRANSPORT_COAP,        /* plaintext CoAP over UDP; default port 5683 */
    CONFIG_TRANSPORT_COAPS,       /* CoAP over DTLS 1.2; default port 5684 */
    CONFIG_TRANSPORT_MQTTSN,      /* plaintext MQTT-SN over UDP; default port 1884 */
    CONFIG_TRANSPORT_MQTTSN_DTLS, /* MQTT-SN over DTLS 1.2; default port 1885 */
};

struct config_listener {
    char host[64];          /* numeric IPv4 or IPv6 address */
    uint16_t port;
    bool allow_anonymous;   /* only ever true on loopback listeners */
    uint8_t transport;      /* enum config_transport */
    /* MQTTS, CoAPS and MQTT-SN over DTLS. require_client_cert: mutual TLS, the device identity comes
     * from the certificate (default true). allow_psk: TLS-PSK with the
     * device id as PSK identity (default false). allow_password: user name
     * and password over TLS without a client certificate (default false). */
    bool require_client_cert;
    bool allow_psk;
    bool allow_password;
    /* Plaintext MQTT on an address other than loopback is refused unless
     * this is set; vigil then warns at every start. */
    bool plaintext_public;
};

/* TLS material and certificate policy. Empty file names mean vigil's local
 * CA (created in <data-dir>/pki on first start) and what it issues. */
struct config_tls {
    char cert_file[512];            /* server chain, PEM */
    char key_file[512];             /* server key, PEM */
    char ca_file[512];              /* CA of client certificates */
    char crl_file[512];             /* CRL of that CA, reloaded when it changes */
    uint8_t identity;               /* enum tls_identity_source: 0 URI SAN (default), 1 CN */
    uint32_t device_cert_days;      /* validity of device certificates; default 365 */
    uint32_t rotation_overlap_s;    /* old certificate stays valid after a rotation; default 7 days */
    uint32_t expiry_warning_days;   /* expiry events this long before; default 30 */
};

/* An MQTT-SN predefined topic id; "%d" in topic is the device id. */
struct config_predefined_topic {
    uint16_t id;
    char topic[256];
};

/* The UDP front ends (CoAP and MQTT-SN) and what they share. */
struct config_gateway {
    /* Topic prefix of a device's measurements: "%d" device id, "%t" device
     * type ("device" if unset), "%u" care unit ("unassigned" if unset).
     * Default "hospital/%u/%t/%d/", so the device id is the fourth level as
     * the default device role expects. */
    char topic_base[128];
    uint32_t max_peers;             /* peers per UDP listener; default 10000 */
    uint32_t handshake_burst;       /* DTLS handshakes at once per source address; default 10 */
    uint32_t handshakes_per_minute; /* refill of that budget; default 60 */
    uint32_t coap_max_body;         /* block-wise total size, both directions; default 64 KiB */
    uint32_t coap_idle_s;           /* CoAP peer without observations kept; default 300 */
    uint32_t mqttsn_sleep_queue;    /* messages buffered for a sleeping client; default 100 */
    uint32_t mqttsn_gateway_id;     /* GwId of ADVERTISE and GWINFO; default 1 */
    uint32_t mqttsn_advertise_s;    /* ADVERTISE period to known peers, 0 = never; default 900 */
    struct config_predefined_topic predefined[CONFIG_MAX_PREDEFINED_TOPICS]; /* none by default */
    size_t n_predefined;
};

/* Failed-login limits, per peer address and per identity. */
struct config_auth {
    uint32_t failure_burst;         /* failures allowed at once; default 5 */
    uint32_t failures_per_minute;   /* failures forgiven per minute; default 6 */
};

/* Topic patterns of a role; "%d" stands for the authenticated device id. */
struct config_role {
    char name[32];
    char publish[CONFIG_MAX_PATTERNS][256];
    size_t n_publish;
    char subscribe[CONFIG_MAX_PATTERNS][256];
    size_t n_subscribe;
};

struct config_limits {
    uint32_t max_packet_size;       /* bytes, both directions; default 256 KiB */
    uint16_t receive_maximum;       /* inflight QoS 1/2 from a client; default 64 */
    uint16_t max_inflight_out;      /* inflight QoS 1/2 to a client, capped by its Receive Maximum; default 64 */
    uint32_t max_queued_messages;   /* per session, offline or over inflight; default 1000 */
    uint32_t max_subscriptions;     /* per client; default 100 */
    uint16_t max_topic_length;      /* bytes; default 1024 */
    uint16_t max_topic_levels;      /* default 16 */
    uint32_t max_connections;       /* default 10000 */
    uint16_t max_keep_alive;        /* seconds; larger requests get Server Keep Alive; default 600 */
    uint16_t topic_alias_maximum;   /* aliases a client may set; default 32 */
    uint32_t max_session_expiry;    /* seconds; default 7 days */
    uint32_t max_client_id_length;  /* default 128 */
    uint32_t connect_timeout_ms;    /* time allowed between accept and CONNECT; default 10000 */
    uint32_t max_output_bytes;      /* unsent output per connection before QoS 0 messages are
                                     * dropped and QoS 1/2 wait; default 4 MiB */
    uint64_t output_budget_bytes;   /* unsent output of all connections before those over
                                     * their share are held the same way; default 64 MiB */
    uint32_t close_grace_ms;        /* time a closing connection has to write its last
                                     * output before its socket is reset; default 5000 */
    uint32_t io_threads;            /* I/O loops for plaintext MQTT; 0 = online CPUs minus
                                     * one, capped at 8; 1 = everything on the hub's loop;
                                     * default 0 */
    uint32_t sched_slice_us;        /* time slice the hub's and I/O threads request from
                                     * the kernel; 0 = the kernel's default; default 100 */
};

/* Live capture of MQTT traffic between devices and other brokers, fed
 * through passive analysis into the security engine. */
struct config_sniff {
    char interfaces[CONFIG_MAX_SNIFF_INTERFACES][64]; /* capture interfaces; none by default */
    size_t n_interfaces;
    uint16_t ports[CONFIG_MAX_SNIFF_PORTS];          /* server ports; default 1883 */
    size_t n_ports;
    bool promiscuous;               /* capture frames for other hosts too; default false */
    uint32_t buffer_size;           /* kernel capture buffer per interface, bytes; default 4 MiB */
};

/* The audit log's rotation and checkpoint settings (struct audit_opts). */
struct config_audit {
    uint32_t checkpoint_every;      /* records between signed checkpoints; default 1000 */
    uint32_t checkpoint_interval_s; /* time before unsigned records get a checkpoint; default 60 */
    uint64_t segment_max_bytes;     /* a segment is closed at this size; default 64 MiB */
};

/* Security engine thresholds of one device type (secmon.profiles.TYPE).
 * Only the fields named in set_mask are read: config_secmon_profile()
 * takes every other threshold from the secmon section. */
struct config_secmon_profile {
    char type[32];                  /* as in `vigil device add --type` */
    struct secmon_config cfg;
    uint32_t set_mask;              /* bit 1 << i per key i of config_profile_keys() */
};

struct vigil_config {
    char data_dir[512];                               /* default "./vigil-data" */
    struct config_listener listeners[CONFIG_MAX_LISTENERS];
    size_t n_listeners;                               /* default: 127.0.0.1:1883 MQTT,
                                                       * 0.0.0.0:8883 MQTTS with mutual TLS */
    struct config_role roles[CONFIG_MAX_ROLES];       /* default: "device" and "monitor" */
    size_t n_roles;
    struct config_limits limits;
    struct config_tls tls;
    struct config_auth auth;
    struct config_sniff sniff;
    uint32_t store_commit_interval_us;                /* group commit window; default 2000 */
    uint32_t sys_interval_s;                          /* $SYS publish period; default 10, 0 = off */
    size_t event_queue_capacity;                      /* default 16384 */
    uint64_t event_file_max_bytes;                    /* events.jsonl rotates before it passes
                                                       * this; 0 = never; default 256 MiB */
    uint32_t event_files_kept;                        /* rotated events.jsonl.N kept; default 8 */
    char log_level[16];                               /* default "info" */
    char source_path[512];                            /* the -c file, "" for the default */
    /* Security engine thresholds; defaults from secmon_config_defaults().
     * secmon.monitor_prefixes is not read from here: config_secmon() points
     * it at secmon_monitor_prefixes, which a copy of the struct carries. */
    struct secmon_config secmon;
    char secmon_monitor_prefixes[256];                /* default "station,monitor-station,central" */
    /* Per-device-type thresholds; none by default. */
    struct config_secmon_profile secmon_profiles[CONFIG_MAX_SECMON_PROFILES];
    size_t n_secmon_profiles;
    struct config_audit audit;
    struct config_gateway gateway;
    /* secmon.enabled; default true. false: MQTT connections and UDP clients emit no
     * security events (nothing reaches events.jsonl, the engine, the alert
     * store or the audit log), which is how the engine's cost is measured. */
    bool secmon_enabled;
};

/* Fills cfg with the embedded default. */
void config_defaults(struct vigil_config *cfg);
/* Reads a YAML file over the values already in cfg. On failure writes
 * "file:line: message" into err and returns VIGIL_ERR_CONFIG (VIGIL_ERR_IO
 * when the file cannot be read, VIGIL_ERR_NOMEM); cfg is then unchanged. */
vigil_err config_load_file(struct vigil_config *cfg, const char *path, char *err, size_t errcap);
/* Same as config_load_file for YAML text in memory; name is the file name
 * used in error messages. data need not be NUL-terminated. */
vigil_err config_load_buffer(struct vigil_config *cfg, const char *name, const uint8_t *data,
                             size_t len, char *err, size_t errcap);
/* Parses "host:port" or "[v6]:port" into l->host and l->port; the
 * transport and the other fields stay as the caller set them. */
vigil_err config_parse_listener(const char *spec, struct config_listener *l, char *err,
                                size_t errcap);
/* Checks cross-field rules (anonymous only on loopback and never on MQTTS,
 * plaintext off loopback only with plaintext_public, TLS files that fit
 * together, limits in range). Writes the first problem into err. */
vigil_err config_validate(const struct vigil_config *cfg, char *err, size_t errcap);
bool config_host_is_loopback(const char *host);
/* True for an MQTTS, CoAPS or MQTT-SN over DTLS listener. */
bool config_listener_is_tls(const struct config_listener *l);
/* True for the UDP transports (coap, coaps, mqttsn, mqttsn-dtls). */
bool config_listener_is_udp(const struct config_listener *l);
/* Name of a transport as the configuration writes it ("mqtts", "coaps"). */
const char *config_transport_name(uint8_t transport);
/* Fills out with cfg->secmon, its monitor_prefixes pointing into cfg, so
 * cfg must outlive every user of out. */
void config_secmon(const struct vigil_config *cfg, struct secmon_config *out);
/* Fills out with the thresholds of profile cfg->secmon_profiles[i]: the
 * keys it sets over config_secmon(cfg), with the same lifetime rule. */
void config_secmon_profile(const struct vigil_config *cfg, size_t i, struct secmon_config *out);
const struct config_role *config_find_role(const struct vigil_config *cfg, const char *name);

#endif
