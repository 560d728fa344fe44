/* One error type for the whole of vigil. */
#ifndef VIGIL_CORE_ERROR_H
#define VIGIL_CORE_ERROR_H

typedef enum vigil_err {
    VIGIL_OK = 0,
    VIGIL_ERR_NOMEM,     /* allocation failed or the memory cap was reached */
    VIGIL_ERR_INVALID,   /* invalid argument or input */
    VIGIL_ERR_AGAIN,     /* more input is needed before the operation can finish */
    VIGIL_ERR_PROTOCOL,  /* a peer violated the protocol */
    VIGIL_ERR_LIMIT,     /* a configured limit was reached */
    VIGIL_ERR_IO,        /* a system call failed; errno-based detail is logged */
    VIGIL_ERR_NOT_FOUND, /* the named object does not exist */
    VIGIL_ERR_EXISTS,    /* the named object exists already */
    VIGIL_ERR_AUTH,      /* authentication failed */
    VIGIL_ERR_DENIED,    /* access control denied the operation */
    VIGIL_ERR_CONFIG,    /* the configuration is invalid */
    VIGIL_ERR_STORE,     /* the durable store failed */
    VIGIL_ERR_CLOSED,    /* the object was closed or is shutting down */
    VIGIL_ERR_COUNT
} vigil_err;

/* Returns a static, human-readable description of err. */
const char *vigil_strerror(vigil_err err);

#endif
