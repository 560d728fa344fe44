/* A datagram BIO over memory: OpenSSL reads the one datagram being fed,
 * and every write it makes (one record or one flight part) leaves as one
 * datagram through the session's send callback, so boundaries are kept
 * without a socket. OpenSSL 3.0 has no such BIO (BIO_s_dgram_mem came in
 * 3.2). */
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <openssl/bio.h>

#include "net/dtls_internal.h"

static BIO_METHOD *method;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

static int bio_read(BIO *b, char *out, int cap)
{
    struct dtls_session *s = BIO_get_data(b);
    size_t n;

    BIO_clear_retry_flags(b);
    if (s == NULL || s->in == NULL || cap <= 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    /* A datagram longer than the read is cut, as recv() cuts it. */
    n = s->in_len < (size_t)cap ? s->in_len : (size_t)cap;
    memcpy(out, s->in, n);
    s->in = NULL;
    s->in_len = 0;
    return (int)n;
}

static int bio_write(BIO *b, const char *data, int len)
{
    struct dtls_session *s = BIO_get_data(b);

    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (s != NULL && s->io.send != NULL)
        s->io.send(s->io.ctx, (const uint8_t *)data, (size_t)len);
    /* A datagram the socket could not take counts as lost on the way, as
     * UDP loses datagrams; DTLS retransmits handshake flights. */
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct dtls_session *s = BIO_get_data(b);

    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return s != NULL && s->in != NULL && s->in_len <= LONG_MAX ? (long)s->in_len : 0;
    default:
        /* Peer addresses, MTU queries and overhead, timeouts: unknown here,
         * and OpenSSL treats 0 as "not supported". */
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void make_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "vigil datagram");

    if (m == NULL)
        return;
    if (BIO_meth_set_read(m, bio_read) != 1 || BIO_meth_set_write(m, bio_write) != 1 ||
        BIO_meth_set_ctrl(m, bio_ctrl) != 1 || BIO_meth_set_create(m, bio_create) != 1) {
        BIO_meth_free(m);
        return;
    }
    /* Kept for the life of the process: every session's BIO uses it. */
    method = m;
}

BIO *dtls_bio_new(struct dtls_session *s)
{
    BIO *b;

    if (pthread_once(&method_once, make_method) != 0 || method == NULL)
        return NULL;
    b = BIO_new(method);
    if (b != NULL)
        BIO_set_data(b, s);
    return b;
}
