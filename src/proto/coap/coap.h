/* CoAP message codec (RFC 7252, with the Observe option of RFC 7641 and the
 * Block1/Block2/Size options of RFC 7959): pure functions over one UDP
 * datagram, no I/O and no global state.
 *
 * Decoding is zero-copy: the token, every option value and the payload of a
 * decoded struct coap_msg point into the input buffer, which must outlive
 * the message. The decoder checks the message format rules of RFC 7252
 * section 3 and 4.1. Whether an option is recognized depends on the
 * resource, so coap_check_critical() is a separate step. */
#ifndef VIGIL_PROTO_COAP_H
#define VIGIL_PROTO_COAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Message types (RFC 7252 section 3). */
enum coap_type {
    COAP_CON = 0,
    COAP_NON = 1,
    COAP_ACK = 2,
    COAP_RST = 3,
};

/* Code byte from class c (0..7) and detail d (0..31), written "c.dd". */
#define COAP_CODE(c, d) ((uint8_t)(((c) << 5) | (d)))
#define COAP_CODE_CLASS(code) ((uint8_t)((code) >> 5))
#define COAP_CODE_DETAIL(code) ((uint8_t)((code)&0x1F))

enum coap_code {
    COAP_EMPTY = COAP_CODE(0, 0),
    COAP_GET = COAP_CODE(0, 1),
    COAP_POST = COAP_CODE(0, 2),
    COAP_PUT = COAP_CODE(0, 3),
    COAP_DELETE = COAP_CODE(0, 4),
    COAP_CREATED = COAP_CODE(2, 1),
    COAP_DELETED = COAP_CODE(2, 2),
    COAP_VALID = COAP_CODE(2, 3),
    COAP_CHANGED = COAP_CODE(2, 4),
    COAP_CONTENT = COAP_CODE(2, 5),
    COAP_CONTINUE = COAP_CODE(2, 31),          /* RFC 7959 */
    COAP_BAD_REQUEST = COAP_CODE(4, 0),
    COAP_UNAUTHORIZED = COAP_CODE(4, 1),
    COAP_BAD_OPTION = COAP_CODE(4, 2),
    COAP_FORBIDDEN = COAP_CODE(4, 3),
    COAP_NOT_FOUND = COAP_CODE(4, 4),
    COAP_METHOD_NOT_ALLOWED = COAP_CODE(4, 5),
    COAP_NOT_ACCEPTABLE = COAP_CODE(4, 6),
    COAP_REQUEST_ENTITY_INCOMPLETE = COAP_CODE(4, 8), /* RFC 7959 */
    COAP_PRECONDITION_FAILED = COAP_CODE(4, 12),
    COAP_REQUEST_ENTITY_TOO_LARGE = COAP_CODE(4, 13),
    COAP_UNSUPPORTED_CONTENT_FORMAT = COAP_CODE(4, 15),
    COAP_INTERNAL_SERVER_ERROR = COAP_CODE(5, 0),
    COAP_NOT_IMPLEMENTED = COAP_CODE(5, 1),
    COAP_SERVICE_UNAVAILABLE = COAP_CODE(5, 3),
};

/* Option numbers registered by RFC 7252, 7641 and 7959. */
enum coap_option_number {
    COAP_OPT_IF_MATCH = 1,
    COAP_OPT_URI_HOST = 3,
    COAP_OPT_ETAG = 4,
    COAP_OPT_IF_NONE_MATCH = 5,
    COAP_OPT_OBSERVE = 6,
    COAP_OPT_URI_PORT = 7,
    COAP_OPT_LOCATION_PATH = 8,
    COAP_OPT_URI_PATH = 11,
    COAP_OPT_CONTENT_FORMAT = 12,
    COAP_OPT_MAX_AGE = 14,
    COAP_OPT_URI_QUERY = 15,
    COAP_OPT_ACCEPT = 17,
    COAP_OPT_LOCATION_QUERY = 20,
    COAP_OPT_BLOCK2 = 23,
    COAP_OPT_BLOCK1 = 27,
    COAP_OPT_SIZE2 = 28,
    COAP_OPT_PROXY_URI = 35,
    COAP_OPT_PROXY_SCHEME = 39,
    COAP_OPT_SIZE1 = 60,
};

/* An option is critical when its number is odd (RFC 7252 section 5.4.6). */
#define COAP_OPT_IS_CRITICAL(num) (((num)&1u) != 0)

#define COAP_VERSION 1
#define COAP_MAX_TOKEN 8
/* Options kept per message. A message with more is rejected, because the
 * decoder keeps options in a fixed array. */
#define COAP_MAX_OPTIONS 32
/* Largest option value length the option header can express: 65535 + 269. */
#define COAP_MAX_OPTION_LEN 65804u

/* Suggested response to a message that failed decoding or the critical
 * option check, from RFC 7252 sections 4.2, 4.3 and 5.4.1. The front end
 * decides whether to follow it. */
enum coap_action {
    COAP_ACTION_NONE = 0,   /* the message is valid */
    COAP_ACTION_DROP,       /* silently ignore: malformed NON, ACK or RST, or too short to reply */
    COAP_ACTION_RST,        /* reject a CON with a Reset carrying its message ID */
    COAP_ACTION_BAD_OPTION, /* respond to a CON request with 4.02 Bad Option */
};

/* Reason for a rejected message. rule names the RFC and section, text is a
 * static description, option is the option number involved (or 0). */
struct coap_error {
    const char *rule;
    const char *text;
    enum coap_action action;
    uint16_t option;
};

/* One option. value points into the decoded datagram, or into caller memory
 * when encoding; it is not NUL-terminated. */
struct coap_option {
    uint16_t number;
    uint32_t len;
    const uint8_t *value;
};

struct coap_msg {
    uint8_t type;       /* enum coap_type */
    uint8_t code;       /* enum coap_code or any class.detail */
    uint16_t message_id;
    uint8_t token_len;  /* 0..COAP_MAX_TOKEN */
    const uint8_t *token;
    uint8_t n_options;
    struct coap_option options[COAP_MAX_OPTIONS]; /* decoded in ascending number */
    const uint8_t *payload; /* NULL when payload_len is 0 */
    size_t payload_len;
};

/* Block1/Block2 option value (RFC 7959 section 2.2). */
struct coap_block {
    uint32_t num;  /* block number, 0..2^20-1 */
    bool more;     /* M bit */
    uint8_t szx;   /* block size is 2^(szx+4) bytes, szx 0..6 */
};

/* Decodes one datagram of len bytes into *out. Returns VIGIL_OK, or
 * VIGIL_ERR_PROTOCOL with err filled and err->action set to the suggested
 * response, or VIGIL_ERR_LIMIT (err filled the same way) when the message
 * has more than COAP_MAX_OPTIONS options. */
vigil_err coap_decode(const uint8_t *buf, size_t len, struct coap_msg *out,
                      struct coap_error *err);

/* Returns true for a request code (class 0, detail not 0). */
bool coap_is_request(const struct coap_msg *msg);

/* Checks every critical option of msg against known (n_known numbers).
 * Returns VIGIL_OK when all are known, otherwise VIGIL_ERR_PROTOCOL with
 * err->option set to the first critical option that is not in known or
 * whose value length is out of range (coap_option_length_valid()), and
 * err->action set
 * as RFC 7252 section 5.4.1 requires: 4.02 for a CON request, RST for any
 * other CON, silent drop for NON, ACK and RST. Unknown elective options
 * (even numbers) are ignored. */
vigil_err coap_check_critical(const struct coap_msg *msg, const uint16_t *known, size_t n_known,
                              struct coap_error *err);

/* Returns the first unrecognized critical option number of msg, or 0 when
 * every critical option is in known and has a value length in its range. */
uint16_t coap_unknown_critical(const struct coap_msg *msg, const uint16_t *known,
                               size_t n_known);

/* Returns false when len is outside the value length range that RFC 7252,
 * 7641 or 7959 define for option num; true for unregistered options. */
bool coap_option_length_valid(uint16_t num, uint32_t len);

/* Option numbers of enum coap_option_number, for coap_check_critical(). */
extern const uint16_t coap_registered_options[];
extern const size_t coap_n_registered_options;

/* Returns the index-th option with number num (0 is the first), or NULL. */
const struct coap_option *coap_find_option(const struct coap_msg *msg, uint16_t num,
                                           unsigned index);

/* Reads an unsigned integer option value (RFC 7252 section 3.2) of up to 4
 * bytes. Returns VIGIL_ERR_INVALID when len is above 4. */
vigil_err coap_uint_decode(const uint8_t *value, uint32_t len, uint32_t *out);

/* Writes v in the shortest form to out and returns the length (0 for v 0). */
uint32_t coap_uint_encode(uint32_t v, uint8_t out[4]);

/* Reads the unsigned option num of msg. Returns VIGIL_ERR_NOT_FOUND when it
 * is absent and VIGIL_ERR_INVALID when its value is longer than max_len
 * bytes. */
vigil_err coap_get_uint(const struct coap_msg *msg, uint16_t num, uint32_t max_len,
                        uint32_t *out);

/* Content-Format (0..65535), Observe (0..2^24-1), Size1 and Size2; same
 * returns as coap_get_uint(). */
vigil_err coap_get_content_format(const struct coap_msg *msg, uint16_t *out);
vigil_err coap_get_observe(const struct coap_msg *msg, uint32_t *out);
vigil_err coap_get_size1(const struct coap_msg *msg, uint32_t *out);
vigil_err coap_get_size2(const struct coap_msg *msg, uint32_t *out);

/* Joins the Uri-Path segments of msg with '/' into out (capacity cap,
 * NUL-terminated) without a leading '/'; no Uri-Path gives "". Returns
 * VIGIL_ERR_LIMIT when out is too small and VIGIL_ERR_INVALID when a
 * segment contains '/' or NUL, because the joined path would be ambiguous. */
vigil_err coap_uri_path(const struct coap_msg *msg, char *out, size_t cap, size_t *out_len);

/* Decodes a Block1/Block2 value of 0 to 3 bytes. Returns VIGIL_ERR_INVALID
 * for a longer value or SZX 7, which RFC 7959 section 2.2 reserves. */
vigil_err coap_block_decode(const uint8_t *value, uint32_t len, struct coap_block *out);

/* Reads option num (COAP_OPT_BLOCK1 or COAP_OPT_BLOCK2) of msg; same returns
 * as coap_block_decode() plus VIGIL_ERR_NOT_FOUND. */
vigil_err coap_get_block(const struct coap_msg *msg, uint16_t num, struct coap_block *out);

/* Writes block in the shortest form to out and returns the length (0..3).
 * It also returns 0, writing nothing, when num or szx is out of range, so
 * callers check coap_block_valid() first. */
uint32_t coap_block_encode(const struct coap_block *block, uint8_t out[3]);
bool coap_block_valid(const struct coap_block *block);

/* Block size in bytes for szx 0..6. */
static inline uint32_t coap_block_size(uint8_t szx)
{
    return UINT32_C(1) << (szx + 4);
}

/* Appends an option to msg; the value is borrowed, not copied. Returns
 * VIGIL_ERR_LIMIT when msg has COAP_MAX_OPTIONS options already and
 * VIGIL_ERR_INVALID when len exceeds COAP_MAX_OPTION_LEN. */
vigil_err coap_add_option(struct coap_msg *msg, uint16_t num, const uint8_t *value,
                          uint32_t len);

/* Returns the encoded size of msg, or 0 when msg cannot be encoded (token
 * longer than 8, option value too long, more than COAP_MAX_OPTIONS
 * options, type above 3). */
size_t coap_encoded_size(const struct coap_msg *msg);

/* Encodes msg into out (capacity cap), options sorted by number with the
 * order of equal numbers kept. Returns the length written, or 0 when msg
 * cannot be encoded or does not fit. */
size_t coap_encode(const struct coap_msg *msg, uint8_t *out, size_t cap);

#endif
