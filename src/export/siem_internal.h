/* Helpers shared by the SIEM formatters: a bounded output cursor and text
 * cleaning, plus the split of a peer string into address and port. */
#ifndef VIGIL_EXPORT_SIEM_INTERNAL_H
#define VIGIL_EXPORT_SIEM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Writes past cap are counted in len but not stored, so the caller learns
 * whether the buffer was large enough. */
struct siem_out {
    char *buf;
    size_t cap;
    size_t len;
};

void siem_out_init(struct siem_out *o, char *buf, size_t cap);
void siem_out_byte(struct siem_out *o, char c);
void siem_out_str(struct siem_out *o, const char *s);
void siem_out_fmt(struct siem_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* NUL-terminates; returns the length, or -1 when the text did not fit. */
int siem_out_finish(struct siem_out *o);

/* Writes n bytes of s as valid UTF-8. Invalid bytes become U+FFFD and
 * control characters a space. Each byte listed in escape gets a backslash
 * before it. When newlines is nonzero, CR and LF become "\r" and "\n". */
void siem_out_text(struct siem_out *o, const char *s, size_t n, const char *escape, int newlines);

/* Copies s into out (cap bytes) as valid UTF-8 without control characters. */
void siem_clean_text(const char *s, char *out, size_t cap);

/* Splits "a.b.c.d:port" or "[v6]:port" into address text and port; returns
 * 0 on success, -1 when peer has neither form. */
int siem_split_peer(const char *peer, char *addr, size_t cap, unsigned *port);

const char *siem_alert_severity_name(uint8_t severity);

#endif
