/* DTLS 1.2 client contexts for the simulator's CoAP and MQTT-SN devices.
 * The device id is the identity: as PSK identity with the key from a keys
 * file, or as the subject of the device's certificate from the local CA,
 * in which case the hub's certificate is checked against a CA file. */
#ifndef VIGIL_SIM_UDP_LINK_DTLS_H
#define VIGIL_SIM_UDP_LINK_DTLS_H

#include <openssl/ssl.h>

#include "core/error.h"
#include "sim/credentials.h"

/* The path MTU a device assumes (IPv6 minimum link MTU), so records stay
 * small as on a constrained network. */
#define SIM_DTLS_LINK_MTU 1280
/* Longest PSK accepted, as on the hub. */
#define SIM_DTLS_PSK_MAX 64

struct sim_dtls;

/* PSK mode. keys maps a device id to its key in hex, the form `vigil device
 * add ID --psk` prints; it is borrowed and must outlive the context. */
vigil_err sim_dtls_new_psk(const struct credentials *keys, struct sim_dtls **out);

/* Certificate mode. cert_dir contains <id>.crt and <id>.key as `vigil device
 * add` writes them (<data-dir>/provision); ca_file (PEM) verifies the hub.
 * Fails with a logged reason when ca_file cannot be loaded. */
vigil_err sim_dtls_new_cert(const char *cert_dir, const char *ca_file, struct sim_dtls **out);

void sim_dtls_free(struct sim_dtls *d);

/* Checks that identity can log in before anything starts: a PSK of 1 to
 * SIM_DTLS_PSK_MAX bytes, or readable certificate and key files that
 * match. Logs what is missing and returns VIGIL_ERR_NOT_FOUND or
 * VIGIL_ERR_INVALID. */
vigil_err sim_dtls_check_identity(const struct sim_dtls *d, const char *identity);

/* Creates a client SSL for identity (borrowed; must outlive the SSL),
 * expecting a server certificate for server_ip in certificate mode. The
 * caller owns the SSL and attaches the BIO. NULL on failure (logged). */
SSL *sim_dtls_new_ssl(struct sim_dtls *d, const char *identity, const char *server_ip);

/* Decodes hex (an even number of hex digits) into out (capacity cap).
 * Returns the length, or 0 for invalid text or a key longer than cap. */
size_t sim_dtls_hex_decode(const char *hex, uint8_t *out, size_t cap);

/* A short reason for the last OpenSSL error of this thread, or fallback. */
const char *sim_dtls_error_reason(const char *fallback, char *buf, size_t cap);

#endif
