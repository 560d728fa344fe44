/* `vigil serve`: runs the hub on the embedded default, a YAML file, and
 * command-line overrides. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/log.h"

static void serve_usage(FILE *out)
{
    fputs("usage: vigil serve [options]\n"
          "\n"
          "Runs the hub. Without options it uses the embedded default: data in\n"
          "./vigil-data; plaintext on 127.0.0.1 and [::1] only: MQTT on TCP port\n"
          "1883, CoAP on UDP port 5683 and MQTT-SN on UDP port 1884; and with client\n"
          "certificates from the local CA: MQTT over TLS on [::]:8883, CoAP over\n"
          "DTLS on UDP [::]:5684 and MQTT-SN over DTLS on UDP [::]:1885 (IPv4 too\n"
          "where the system allows dual-stack sockets). No anonymous access: plaintext\n"
          "CoAP and MQTT-SN carry no credentials, so their clients need --anonymous.\n"
          "\n"
          "options:\n"
          "  -c, --config FILE     read the configuration from FILE (YAML)\n"
          "      --data-dir DIR    directory for the store, devices and events\n"
          "      --mqtt ADDR:PORT  MQTT listener; repeat for several; replaces the\n"
          "                        listeners of the configuration\n"
          "      --mqtts ADDR:PORT MQTT over TLS listener with mutual TLS; repeat for\n"
          "                        several; replaces the listeners of the configuration\n"
          "      --coap ADDR:PORT  plaintext CoAP listener (UDP, loopback only)\n"
          "      --coaps ADDR:PORT CoAP over DTLS listener with client certificates\n"
          "      --mqttsn ADDR:PORT  plaintext MQTT-SN listener (UDP, loopback only)\n"
          "      --mqttsn-dtls ADDR:PORT  MQTT-SN over DTLS listener with client\n"
          "                        certificates\n"
          "                        Each listener option may be repeated and, given at\n"
          "                        all, replaces the listeners of the configuration.\n"
          "                        ADDR is numeric IPv4 or bracketed IPv6 ([::1]).\n"
          "      --psk             also accept PSK on the TLS and DTLS listeners\n"
          "      --password-over-tls  also accept user name and password without a\n"
          "                        client certificate on the --mqtts listeners\n"
          "      --tls-cert FILE   server certificate chain (PEM); default: issued by\n"
          "                        the local CA in DATA-DIR/pki\n"
          "      --tls-key FILE    private key of --tls-cert\n"
          "      --tls-ca FILE     CA of client certificates; default: the local CA\n"
          "      --tls-crl FILE    CRL of that CA, reloaded when the file changes\n"
          "      --anonymous       allow clients without credentials on the plaintext\n"
          "                        listeners (loopback addresses only)\n"
          "      --sniff IFACE     also watch MQTT traffic between other hosts on the\n"
          "                        network interface IFACE (libpcap; root or\n"
          "                        CAP_NET_RAW); repeat for several; replaces the\n"
          "                        sniff interfaces of the configuration\n"
          "      --sniff-port N    server port of the watched MQTT traffic (default\n"
          "                        1883); repeat for several\n"
          "      --sniff-promiscuous  capture in promiscuous mode, for a mirror port\n"
          "      --io-threads N    I/O threads for plaintext MQTT connections (0 = one per\n"
          "                        online CPU but one, at most 8; 1 = none); sets\n"
          "                        limits.io_threads. The environment variable\n"
          "                        VIGIL_IO_THREADS sets a default that the\n"
          "                        configuration file and this option override\n"
          "      --log-level LEVEL error, warn, info (default) or debug\n"
          "  -h, --help            show this help\n",
          out);
}

struct serve_opts {
    const char *config;
    const char *data_dir;
    const char *log_level;
    const char *listen[CONFIG_MAX_LISTENERS];
    uint8_t listen_transport[CONFIG_MAX_LISTENERS];  /* enum config_transport */
    size_t n_listen;
    bool anonymous;
    bool psk;
    bool password_over_tls;
    const char *tls_cert, *tls_key, *tls_ca, *tls_crl;
    const char *sniff[CONFIG_MAX_SNIFF_INTERFACES];
    size_t n_sniff;
    uint16_t sniff_ports[CONFIG_MAX_SNIFF_PORTS];
    size_t n_sniff_ports;
    bool sniff_promiscuous;
    const char *io_threads;
};

/* Adds one --sniff interface or one --sniff-port; returns 0, or 2 after
 * printing a usage error. */
static int serve_add_sniff(struct serve_opts *o, const char *iface, const char *port)
{
    char *end;
    long v;

    if (iface != NULL) {
        if (o->n_sniff == CONFIG_MAX_SNIFF_INTERFACES) {
            fprintf(stderr, "vigil serve: at most %d --sniff interfaces\n",
                    CONFIG_MAX_SNIFF_INTERFACES);
            return 2;
        }
        o->sniff[o->n_sniff++] = iface;
        return 0;
    }
    v = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || v < 1 || v > 65535) {
        fprintf(stderr, "vigil serve: invalid --sniff-port '%s'; expected 1 to 65535\n", port);
        return 2;
    }
    if (o->n_sniff_ports == CONFIG_MAX_SNIFF_PORTS) {
        fprintf(stderr, "vigil serve: at most %d --sniff-port options\n", CONFIG_MAX_SNIFF_PORTS);
        return 2;
    }
    o->sniff_ports[o->n_sniff_ports++] = (uint16_t)v;
    return 0;
}

static int serve_parse(int argc, char **argv, struct serve_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},  {"data-dir", required_argument, NULL, 'd'},
        {"mqtt", required_argument, NULL, 'm'},    {"anonymous", no_argument, NULL, 'a'},
        {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {"mqtts", required_argument, NULL, 'M'},   {"psk", no_argument, NULL, 'P'},
        {"password-over-tls", no_argument, NULL, 'W'},
        {"tls-cert", required_argument, NULL, 1},  {"tls-key", required_argument, NULL, 2},
        {"tls-ca", required_argument, NULL, 3},    {"tls-crl", required_argument, NULL, 4},
        {"sniff", required_argument, NULL, 5},     {"sniff-port", required_argument, NULL, 6},
        {"sniff-promiscuous", no_argument, NULL, 7},
        {"io-threads", required_argument, NULL, 8},
        {"coap", required_argument, NULL, 20 + CONFIG_TRANSPORT_COAP},
        {"coaps", required_argument, NULL, 20 + CONFIG_TRANSPORT_COAPS},
        {"mqttsn", required_argument, NULL, 20 + CONFIG_TRANSPORT_MQTTSN},
        {"mqttsn-dtls", required_argument, NULL, 20 + CONFIG_TRANSPORT_MQTTSN_DTLS},
        {NULL, 0, NULL, 0},
    };
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'd': o->data_dir = optarg; break;
        case 'l': o->log_level = optarg; break;
        case 'a': o->anonymous = true; break;
        case 'm':
        case 'M':
        case 20 + CONFIG_TRANSPORT_COAP:
        case 20 + CONFIG_TRANSPORT_COAPS:
        case 20 + CONFIG_TRANSPORT_MQTTSN:
        case 20 + CONFIG_TRANSPORT_MQTTSN_DTLS:
            if (o->n_listen == CONFIG_MAX_LISTENERS) {
                fprintf(stderr, "vigil serve: at most %d listener options\n",
                        CONFIG_MAX_LISTENERS);
                return 2;
            }
            o->listen_transport[o->n_listen] = ch == 'm'   ? CONFIG_TRANSPORT_MQTT
                                               : ch == 'M' ? CONFIG_TRANSPORT_MQTTS
                                                           : (uint8_t)(ch - 20);
            o->listen[o->n_listen++] = optarg;
            break;
        case 'P': o->psk = true; break;
        case 'W': o->password_over_tls = true; break;
        case 1: o->tls_cert = optarg; break;
        case 2: o->tls_key = optarg; break;
        case 3: o->tls_ca = optarg; break;
        case 4: o->tls_crl = optarg; break;
        case 5:
        case 6:
            if (serve_add_sniff(o, ch == 5 ? optarg : NULL, ch == 6 ? optarg : NULL) != 0)
                return 2;
            break;
        case 7: o->sniff_promiscuous = true; break;
        case 8: o->io_threads = optarg; break;
        case 'h': serve_usage(stdout); return 0;
        default: serve_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vigil serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return -1;
}

static void serve_tls_files(const struct serve_opts *o, struct vigil_config *cfg)
{
    struct config_tls *t = &cfg->tls;

    if (o->tls_cert != NULL)
        snprintf(t->cert_file, sizeof t->cert_file, "%s", o->tls_cert);
    if (o->tls_key != NULL)
        snprintf(t->key_file, sizeof t->key_file, "%s", o->tls_key);
    if (o->tls_ca != NULL)
        snprintf(t->ca_file, sizeof t->ca_file, "%s", o->tls_ca);
    if (o->tls_crl != NULL)
        snprintf(t->crl_file, sizeof t->crl_file, "%s", o->tls_crl);
}

/* Applies --sniff, --sniff-port and --sniff-promiscuous; each list given
 * replaces the one of the configuration. Returns 0, or 2 on a name that
 * does not fit. */
static int serve_sniff(const struct serve_opts *o, struct vigil_config *cfg)
{
    struct config_sniff *sn = &cfg->sniff;

    if (o->n_sniff > 0)
        sn->n_interfaces = 0;
    for (size_t i = 0; i < o->n_sniff; i++) {
        if (strlen(o->sniff[i]) >= sizeof sn->interfaces[0]) {
            fprintf(stderr, "vigil serve: --sniff '%s': interface name longer than %zu bytes\n",
                    o->sniff[i], sizeof sn->interfaces[0] - 1);
            return 2;
        }
        snprintf(sn->interfaces[sn->n_interfaces++], sizeof sn->interfaces[0], "%s", o->sniff[i]);
    }
    if (o->n_sniff_ports > 0) {
        memcpy(sn->ports, o->sniff_ports, o->n_sniff_ports * sizeof o->sniff_ports[0]);
        sn->n_ports = o->n_sniff_ports;
    }
    if (o->sniff_promiscuous)
        sn->promiscuous = true;
    return 0;
}

/* Sets limits.io_threads from value (from where, for the error) unless
 * value is NULL or empty; returns 0, or 2 after printing an error. */
static int serve_io_threads(const char *value, const char *where, struct vigil_config *cfg)
{
    char *end;
    long v;

    if (value == NULL || *value == '\0')
        return 0;
    v = strtol(value, &end, 10);
    if (*end != '\0' || v < 0 || v > 64) {
        fprintf(stderr, "vigil serve: invalid %s '%s'; expected 0 to 64\n", where, value);
        return 2;
    }
    cfg->limits.io_threads = (uint32_t)v;
    return 0;
}

/* Builds the configuration; returns an exit status, or -1 to go on. */
static int serve_config(const struct serve_opts *o, struct vigil_config *cfg)
{
    char err[512];

    config_defaults(cfg);
    /* The environment sets a default that the file and the option override. */
    if (serve_io_threads(getenv("VIGIL_IO_THREADS"), "VIGIL_IO_THREADS", cfg) != 0)
        return 2;
    if (o->config != NULL && config_load_file(cfg, o->config, err, sizeof err) != VIGIL_OK) {
        fprintf(stderr, "vigil serve: %s\n", err);
        return 1;
    }
    if (o->config != NULL)
        snprintf(cfg->source_path, sizeof cfg->source_path, "%s", o->config);
    if (o->data_dir != NULL)
        snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", o->data_dir);
    if (o->log_level != NULL)
        snprintf(cfg->log_level, sizeof cfg->log_level, "%s", o->log_level);
    if (o->n_listen > 0)
        cfg->n_listeners = 0;
    for (size_t i = 0; i < o->n_listen; i++) {
        struct config_listener *l = &cfg->listeners[cfg->n_listeners];

        memset(l, 0, sizeof *l);
        l->transport = o->listen_transport[i];
        if (config_parse_listener(o->listen[i], l, err, sizeof err) != VIGIL_OK) {
            fprintf(stderr, "vigil serve: --%s %s: %s\n", config_transport_name(l->transport),
                    o->listen[i], err);
            return 2;
        }
        if (config_listener_is_tls(l)) {
            l->require_client_cert = true;
            l->allow_psk = o->psk;
            l->allow_password = o->password_over_tls && !config_listener_is_udp(l);
        } else {
            l->allow_anonymous = o->anonymous;
        }
        cfg->n_listeners++;
    }
    serve_tls_files(o, cfg);
    if (serve_sniff(o, cfg) != 0 || serve_io_threads(o->io_threads, "--io-threads", cfg) != 0)
        return 2;
    if (o->anonymous && o->n_listen == 0)
        for (size_t i = 0; i < cfg->n_listeners; i++)
            if (!config_listener_is_tls(&cfg->listeners[i]))
                cfg->listeners[i].allow_anonymous = true;
    if (o->psk && o->n_listen == 0)
        for (size_t i = 0; i < cfg->n_listeners; i++)
            if (config_listener_is_tls(&cfg->listeners[i]))
                cfg->listeners[i].allow_psk = true;
    if (config_validate(cfg, err, sizeof err) != VIGIL_OK) {
        fprintf(stderr, "vigil serve: %s\n", err);
        return 1;
    }
    if (vigil_log_parse_level(cfg->log_level) < 0) {
        fprintf(stderr, "vigil serve: invalid log level '%s': use error, warn, info or debug\n",
                cfg->log_level);
        return 2;
    }
    vigil_log_set_level((enum vigil_log_level)vigil_log_parse_level(cfg->log_level));
    return -1;
}

int cli_serve(int argc, char **argv)
{
    struct serve_opts o = {0};
    static struct vigil_config cfg;
    struct hub *hub;
    int rc = serve_parse(argc, argv, &o);

    if (rc >= 0)
        return rc;
    rc = serve_config(&o, &cfg);
    if (rc >= 0)
        return rc;
    if (hub_create(&cfg, &hub) != VIGIL_OK) {
        fprintf(stderr, "vigil serve: could not start; see the messages above\n");
        return 1;
    }
    log_info("vigil started: data in %s", cfg.data_dir);
    hub_run(hub);
    hub_destroy(hub);
    log_info("vigil stopped");
    return 0;
}
