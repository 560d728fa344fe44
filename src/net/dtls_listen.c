/* The stateless cookie exchange of a DTLS endpoint (RFC 6347 4.2.1). One
 * SSL object per endpoint runs DTLSv1_listen over each datagram from an
 * unknown source. It becomes a peer's session only once a ClientHello
 * carries a cookie that the address could only have read from our
 * HelloVerifyRequest. */
#include <netinet/in.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "core/alloc.h"
#include "net/dtls_internal.h"

#define COOKIE_SECRET_LEN 32
/* Family, port and an IPv6 address. */
#define COOKIE_INPUT_MAX (2 + 2 + 16)

struct dtls_listener {
    struct dtls_server *srv;        /* borrowed */
    struct dtls_session *pending;   /* runs DTLSv1_listen; NULL until needed */
    BIO_ADDR *client;               /* DTLSv1_listen output, unused */
    /* Secrets: [0] current, [1] previous. */
    uint8_t secret[2][COOKIE_SECRET_LEN];
    uint64_t rotated_ms;
    bool have_secret;
    bool accepted;                  /* pending contains an accepted ClientHello */
    /* The source of the datagram being handled, for the cookie callbacks. */
    const struct sockaddr *addr;
    socklen_t addr_len;
};

/* Writes family, port and address of the current source into out. */
static size_t cookie_input(const struct dtls_listener *l, uint8_t out[COOKIE_INPUT_MAX])
{
    if (l->addr == NULL)
        return 0;
    if (l->addr->sa_family == AF_INET && l->addr_len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)l->addr;

        out[0] = 0;
        out[1] = 4;
        memcpy(out + 2, &a->sin_port, 2);
        memcpy(out + 4, &a->sin_addr, 4);
        return 8;
    }
    if (l->addr->sa_family == AF_INET6 && l->addr_len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)l->addr;

        out[0] = 0;
        out[1] = 6;
        memcpy(out + 2, &a->sin6_port, 2);
        memcpy(out + 4, &a->sin6_addr, 16);
        return 20;
    }
    return 0;
}

static bool compute_cookie(const struct dtls_listener *l, int which, uint8_t out[DTLS_COOKIE_LEN])
{
    uint8_t input[COOKIE_INPUT_MAX];
    size_t n = cookie_input(l, input);
    unsigned int len = 0;

    if (n == 0)
        return false;
    return HMAC(EVP_sha256(), l->secret[which], COOKIE_SECRET_LEN, input, n, out, &len) != NULL &&
           len == DTLS_COOKIE_LEN;
}

static struct dtls_listener *listener_of(SSL *ssl)
{
    struct dtls_session *s = dtls_session_of(ssl);

    return s != NULL ? s->listener : NULL;
}

static int generate_cookie(SSL *ssl, unsigned char *cookie, unsigned int *len)
{
    struct dtls_listener *l = listener_of(ssl);

    if (l == NULL || !compute_cookie(l, 0, cookie))
        return 0;
    *len = DTLS_COOKIE_LEN;
    return 1;
}

/* Called by DTLSv1_listen, and again by the handshake of the accepted
 * session for the same ClientHello, which then compares with the cookie
 * the listener verified. */
static int verify_cookie(SSL *ssl, const unsigned char *cookie, unsigned int len)
{
    struct dtls_session *s = dtls_session_of(ssl);
    uint8_t expected[DTLS_COOKIE_LEN];

    if (s == NULL || len != DTLS_COOKIE_LEN)
        return 0;
    if (s->listener == NULL)
        return s->cookie_verified && CRYPTO_memcmp(s->cookie, cookie, DTLS_COOKIE_LEN) == 0;
    for (int which = 0; which < 2; which++) {
        if (compute_cookie(s->listener, which, expected) &&
            CRYPTO_memcmp(expected, cookie, DTLS_COOKIE_LEN) == 0) {
            memcpy(s->cookie, cookie, DTLS_COOKIE_LEN);
            s->cookie_verified = true;
            return 1;
        }
    }
    return 0;
}

void dtls_cookie_install(SSL_CTX *ctx)
{
    SSL_CTX_set_cookie_generate_cb(ctx, generate_cookie);
    SSL_CTX_set_cookie_verify_cb(ctx, verify_cookie);
}

/* Makes a new current secret every DTLS_COOKIE_ROTATE_MS; a cookie stays
 * valid for one to two periods. */
static bool rotate_secret(struct dtls_listener *l, uint64_t now_ms)
{
    if (l->have_secret && now_ms - l->rotated_ms < DTLS_COOKIE_ROTATE_MS)
        return true;
    if (l->have_secret)
        memcpy(l->secret[1], l->secret[0], COOKIE_SECRET_LEN);
    if (RAND_bytes(l->secret[0], COOKIE_SECRET_LEN) != 1)
        return false;
    if (!l->have_secret)
        memcpy(l->secret[1], l->secret[0], COOKIE_SECRET_LEN);
    l->have_secret = true;
    l->rotated_ms = now_ms;
    return true;
}

vigil_err dtls_listener_new(struct dtls_server *srv, struct dtls_listener **out)
{
    struct dtls_listener *l = vigil_calloc(1, sizeof *l);

    *out = NULL;
    if (l == NULL)
        return VIGIL_ERR_NOMEM;
    l->client = BIO_ADDR_new();
    if (l->client == NULL) {
        vigil_free(l);
        return VIGIL_ERR_NOMEM;
    }
    l->srv = srv;
    *out = l;
    return VIGIL_OK;
}

void dtls_listener_free(struct dtls_listener *l)
{
    if (l == NULL)
        return;
    dtls_session_free(l->pending);
    BIO_ADDR_free(l->client);
    OPENSSL_cleanse(l->secret, sizeof l->secret);
    vigil_free(l);
}

void dtls_listener_set_server(struct dtls_listener *l, struct dtls_server *srv)
{
    dtls_session_free(l->pending);
    l->pending = NULL;
    l->accepted = false;
    l->srv = srv;
}

/* Runs DTLSv1_listen over one datagram on the listener's session. */
static enum dtls_listen_result run_listen(struct dtls_listener *l, const uint8_t *data,
                                          size_t len)
{
    struct dtls_session *s = l->pending;
    int r;

    s->in = data;
    s->in_len = len;
    s->cookie_verified = false;
    r = DTLSv1_listen(s->ts.ssl, l->client);
    s->in = NULL;
    s->in_len = 0;
    if (r == 1) {
        memcpy(s->client_random, data + DTLS_RECORD_HEADER_LEN + DTLS_HANDSHAKE_HEADER_LEN + 2,
               DTLS_RANDOM_LEN);
        l->accepted = true;
        return DTLS_LISTEN_ACCEPTED;
    }
    if (r < 0) {
        /* A fatal error leaves the SSL object unusable; a fresh one is
         * made for the next datagram. */
        dtls_session_free(s);
        l->pending = NULL;
    }
    return DTLS_LISTEN_DROPPED;
}

/* Sends through the caller's callback and notes that something was sent. */
struct listen_send {
    dtls_send_fn send;
    void *ctx;
    bool sent;
};

static void listen_send(void *ctx, const uint8_t *data, size_t len)
{
    struct listen_send *ls = ctx;

    ls->sent = true;
    ls->send(ls->ctx, data, len);
}

enum dtls_listen_result dtls_listen(struct dtls_listener *l, const struct sockaddr *addr,
                                    socklen_t addr_len, const uint8_t *data, size_t len,
                                    uint64_t now_ms, dtls_send_fn send, void *send_ctx)
{
    struct listen_send ls = {send, send_ctx, false};
    enum dtls_listen_result result;

    ERR_clear_error();
    if (l->accepted) {
        /* The last accepted ClientHello was never taken. */
        dtls_session_free(l->pending);
        l->pending = NULL;
        l->accepted = false;
    }
    /* DTLSv1_listen accepts the ClientHello only from a complete first
     * fragment, so shorter datagrams cannot be one. */
    if (!dtls_is_client_hello(data, len) || !rotate_secret(l, now_ms))
        return DTLS_LISTEN_DROPPED;
    if (l->pending == NULL) {
        if (dtls_session_create(l->srv, &l->pending) != VIGIL_OK)
            return DTLS_LISTEN_DROPPED;
        l->pending->listener = l;
    }
    l->addr = addr;
    l->addr_len = addr_len;
    l->pending->io = (struct dtls_session_io){.send = listen_send, .ctx = &ls};
    result = run_listen(l, data, len);
    if (l->pending != NULL)
        l->pending->io = (struct dtls_session_io){0};
    l->addr = NULL;
    l->addr_len = 0;
    ERR_clear_error();
    if (result == DTLS_LISTEN_DROPPED && ls.sent)
        result = DTLS_LISTEN_VERIFY_SENT;
    return result;
}

vigil_err dtls_listener_accept(struct dtls_listener *l, const struct dtls_session_io *io,
                               struct dtls_session **out)
{
    *out = NULL;
    if (!l->accepted || l->pending == NULL)
        return VIGIL_ERR_INVALID;
    l->pending->listener = NULL;
    l->pending->io = *io;
    *out = l->pending;
    l->pending = NULL;
    l->accepted = false;
    return VIGIL_OK;
}
