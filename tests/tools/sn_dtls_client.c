/* A DTLS 1.2 client that relays plaintext UDP datagrams, for testing the
 * MQTT-SN over DTLS listener with tests/lib/snclient.py (Python's ssl
 * module has no DTLS). It completes the handshake with the gateway first,
 * then binds a plaintext UDP socket on 127.0.0.1 and relays each datagram
 * from the last local sender as one DTLS record, and each record from the
 * gateway back as one datagram.
 *
 * Usage: sn_dtls_client --connect HOST:PORT [--listen PORT] [--ca FILE]
 *          [--cert FILE --key FILE] [--psk-identity ID --psk HEX]
 *          [--session-in FILE] [--session-out FILE]
 * HOST is a numeric IPv4 address or an IPv6 address in brackets.
 * --session-in offers the session saved in FILE (PEM) for resumption, and
 * --session-out saves the session after the handshake. Prints
 * "handshake ok VERSION CIPHER new|resumed" and "listening 127.0.0.1:PORT"
 * on stdout,
 * or "handshake failed: REASON" on stderr with exit status 1. Runs until
 * its standard input closes, SIGTERM, or the gateway ends the session
 * (exit status 0 after a close_notify, 2 after an error); sends
 * close_notify on the way out. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

struct options {
    const char *connect;
    int listen_port;
    const char *ca, *cert, *key;
    const char *psk_identity, *psk_hex;
    const char *session_in, *session_out;
};

static struct options opts;
static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: sn_dtls_client --connect HOST:PORT [--listen PORT] [--ca FILE]\n"
                    "         [--cert FILE --key FILE] [--psk-identity ID --psk HEX]\n"
                    "         [--session-in FILE] [--session-out FILE]\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"connect", required_argument, NULL, 'c'}, {"listen", required_argument, NULL, 'l'},
        {"ca", required_argument, NULL, 'a'},      {"cert", required_argument, NULL, 'C'},
        {"key", required_argument, NULL, 'k'},     {"psk-identity", required_argument, NULL, 'i'},
        {"psk", required_argument, NULL, 'p'},     {"session-in", required_argument, NULL, 's'},
        {"session-out", required_argument, NULL, 'S'}, {NULL, 0, NULL, 0},
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': opts.connect = optarg; break;
        case 'l': opts.listen_port = atoi(optarg); break;
        case 'a': opts.ca = optarg; break;
        case 'C': opts.cert = optarg; break;
        case 'k': opts.key = optarg; break;
        case 'i': opts.psk_identity = optarg; break;
        case 'p': opts.psk_hex = optarg; break;
        case 's': opts.session_in = optarg; break;
        case 'S': opts.session_out = optarg; break;
        default: usage();
        }
    }
    if (opts.connect == NULL || (opts.cert == NULL) != (opts.key == NULL) ||
        (opts.psk_identity == NULL) != (opts.psk_hex == NULL))
        usage();
}

/* Parses "1.2.3.4:PORT" or "[v6]:PORT". */
static int parse_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[64];
    const char *colon = strrchr(spec, ':');
    size_t n;
    int port;

    if (colon == NULL || (port = atoi(colon + 1)) <= 0 || port > 65535)
        return -1;
    n = (size_t)(colon - spec);
    if (spec[0] == '[' && n >= 2 && spec[n - 1] == ']') {
        spec++;
        n -= 2;
    }
    if (n >= sizeof host)
        return -1;
    memcpy(host, spec, n);
    host[n] = '\0';
    memset(ss, 0, sizeof *ss);
    if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
        ((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
        *len = sizeof(struct sockaddr_in6);
        return 0;
    }
    if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
        ((struct sockaddr_in *)ss)->sin_family = AF_INET;
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
        *len = sizeof(struct sockaddr_in);
        return 0;
    }
    return -1;
}

static unsigned int psk_callback(SSL *ssl, const char *hint, char *identity,
                                 unsigned int max_identity, unsigned char *psk,
                                 unsigned int max_psk)
{
    long n = 0;
    unsigned char *key;

    (void)ssl;
    (void)hint;
    if (strlen(opts.psk_identity) >= max_identity)
        return 0;
    strcpy(identity, opts.psk_identity);
    key = OPENSSL_hexstr2buf(opts.psk_hex, &n);
    if (key == NULL || n <= 0 || (unsigned long)n > max_psk) {
        OPENSSL_free(key);
        return 0;
    }
    memcpy(psk, key, (size_t)n);
    OPENSSL_free(key);
    return (unsigned int)n;
}

static void print_errors(const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256];

    if (e == 0) {
        fprintf(stderr, "%s: %s\n", what, errno != 0 ? strerror(errno) : "no reason given");
        return;
    }
    ERR_error_string_n(e, buf, sizeof buf);
    fprintf(stderr, "%s: %s\n", what, buf);
}

static SSL_CTX *make_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(DTLS_client_method());

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION);
    if (opts.ca != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, opts.ca, NULL) != 1)
            goto fail;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (opts.cert != NULL && (SSL_CTX_use_certificate_chain_file(ctx, opts.cert) != 1 ||
                              SSL_CTX_use_PrivateKey_file(ctx, opts.key, SSL_FILETYPE_PEM) != 1))
        goto fail;
    if (opts.psk_identity != NULL) {
        SSL_CTX_set_psk_client_callback(ctx, psk_callback);
        if (opts.cert == NULL)
            SSL_CTX_set_cipher_list(ctx, "PSK");
    }
    return ctx;

fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Sets the session saved in opts.session_in on ssl; exits with status 2
 * when the file cannot be read. */
static void offer_session(SSL *ssl)
{
    FILE *f = fopen(opts.session_in, "r");
    SSL_SESSION *sess = f != NULL ? PEM_read_SSL_SESSION(f, NULL, NULL, NULL) : NULL;

    if (f != NULL)
        fclose(f);
    if (sess == NULL || SSL_set_session(ssl, sess) != 1) {
        fprintf(stderr, "cannot read a DTLS session from '%s'\n", opts.session_in);
        exit(2);
    }
    SSL_SESSION_free(sess);
}

/* Writes the session of ssl to opts.session_out; exits with status 2 on
 * failure. */
static void save_session(SSL *ssl)
{
    SSL_SESSION *sess = SSL_get_session(ssl);
    FILE *f = fopen(opts.session_out, "w");
    int ok = f != NULL && sess != NULL && PEM_write_SSL_SESSION(f, sess) == 1;

    if (f != NULL && fclose(f) != 0)
        ok = 0;
    if (!ok) {
        fprintf(stderr, "cannot write the DTLS session to '%s'\n", opts.session_out);
        exit(2);
    }
}

/* Connects the DTLS socket and runs the handshake (blocking, with
 * OpenSSL's retransmission timer). */
static SSL *handshake(SSL_CTX *ctx, int *fd_out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct timeval tv = {.tv_sec = 2};
    BIO *bio;
    SSL *ssl;
    int fd;

    if (parse_addr(opts.connect, &ss, &len) != 0) {
        fprintf(stderr, "invalid --connect address '%s'\n", opts.connect);
        exit(2);
    }
    fd = socket(ss.ss_family, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) != 0) {
        perror("socket");
        exit(2);
    }
    bio = BIO_new_dgram(fd, BIO_NOCLOSE);
    BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &ss);
    BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_RECV_TIMEOUT, 0, &tv);
    ssl = SSL_new(ctx);
    SSL_set_bio(ssl, bio, bio);
    if (opts.session_in != NULL)
        offer_session(ssl);
    if (SSL_connect(ssl) != 1) {
        print_errors("handshake failed");
        exit(1);
    }
    if (opts.session_out != NULL)
        save_session(ssl);
    printf("handshake ok %s %s %s\n", SSL_get_version(ssl), SSL_get_cipher_name(ssl),
           SSL_session_reused(ssl) ? "resumed" : "new");
    fflush(stdout);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    *fd_out = fd;
    return ssl;
}

static int open_local(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opts.listen_port)};
    socklen_t len = sizeof sin;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        perror("bind");
        exit(2);
    }
    printf("listening 127.0.0.1:%u\n", ntohs(sin.sin_port));
    fflush(stdout);
    return fd;
}

struct relay {
    SSL *ssl;
    int local;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    unsigned char buf[65536];
};

/* Reads every record the gateway sent; returns -1 when the session ended
 * (0 in *status after close_notify, 2 after an error). */
static int from_gateway(struct relay *r, int *status)
{
    for (;;) {
        int n = SSL_read(r->ssl, r->buf, sizeof r->buf);
        int err;

        if (n > 0) {
            if (r->peer_len > 0)
                sendto(r->local, r->buf, (size_t)n, 0, (struct sockaddr *)&r->peer, r->peer_len);
            continue;
        }
        err = SSL_get_error(r->ssl, n);
        if (err == SSL_ERROR_WANT_READ)
            return 0;
        if (err == SSL_ERROR_ZERO_RETURN) {
            fprintf(stderr, "session closed by the gateway\n");
            *status = 0;
        } else {
            print_errors("DTLS read failed");
            *status = 2;
        }
        return -1;
    }
}

static void from_local(struct relay *r)
{
    ssize_t n;

    r->peer_len = sizeof r->peer;
    n = recvfrom(r->local, r->buf, sizeof r->buf, 0, (struct sockaddr *)&r->peer, &r->peer_len);
    if (n > 0 && SSL_write(r->ssl, r->buf, (int)n) <= 0)
        print_errors("DTLS write failed");
}

static int relay_loop(struct relay *r, int dtls_fd)
{
    struct pollfd fds[3] = {
        {.fd = dtls_fd, .events = POLLIN},
        {.fd = r->local, .events = POLLIN},
        {.fd = STDIN_FILENO, .events = POLLIN},
    };
    int status = 0;
    char sink[256];

    while (!stopping) {
        if (poll(fds, 3, 1000) < 0) {
            if (errno == EINTR)
                continue;
            return 2;
        }
        if (fds[0].revents != 0 && from_gateway(r, &status) != 0)
            return status;
        if (fds[1].revents & POLLIN)
            from_local(r);
        if (fds[2].revents != 0 && read(STDIN_FILENO, sink, sizeof sink) <= 0)
            break;
    }
    SSL_shutdown(r->ssl);
    return 0;
}

int main(int argc, char **argv)
{
    static struct relay r;
    SSL_CTX *ctx;
    int dtls_fd, status;

    parse_args(argc, argv);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    ctx = make_ctx();
    if (ctx == NULL) {
        print_errors("cannot load the TLS files");
        return 2;
    }
    r.ssl = handshake(ctx, &dtls_fd);
    r.local = open_local();
    status = relay_loop(&r, dtls_fd);
    SSL_free(r.ssl);
    SSL_CTX_free(ctx);
    close(r.local);
    close(dtls_fd);
    return status;
}
