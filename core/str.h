/*
 * str.h - small string and time helpers shared by every layer.
 *
 * Allocation failure aborts the process: a reconciler that ran out of memory
 * mid-run cannot continue in a known state, and the journal (outbox, cursors
 * that trail committed work) makes the next run pick up cleanly.
 */
#ifndef DF_STR_H
#define DF_STR_H

#include <stdbool.h>
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);           /* NULL in, NULL out */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable, always NUL-terminated buffer. */
struct strbuf {
	char *buf;
	size_t len, cap;
};
void sb_init(struct strbuf *sb);
void sb_add(struct strbuf *sb, const char *s);
void sb_addn(struct strbuf *sb, const char *s, size_t n);
void sb_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *sb_detach(struct strbuf *sb);     /* caller owns the result */
void sb_free(struct strbuf *sb);

bool str_blank(const char *s);          /* NULL or only white space */
/* Whether the n bytes at s are well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF). */
bool str_utf8_valid(const char *s, size_t n);
bool str_eq(const char *a, const char *b); /* NULL equals "" */

/* Milliseconds since the epoch from ISO-8601 "YYYY-MM-DDTHH:MM:SS[.fff](Z|+hh:mm)"
 * or "YYYY-MM-DD HH:MM:SS"; -1 when the text is not a timestamp. */
long long time_parse_iso(const char *s);

/* A 128-bit digest in two different 64-bit hashes (FNV-1a, and a
 * multiply-xorshift): fast, not cryptographic. hash128_init, then
 * hash128_add the parts in order, then hash128_out (16 bytes). */
void hash128_init(unsigned long long h[2]);
void hash128_add(unsigned long long h[2], const void *data, size_t n);
void hash128_out(const unsigned long long h[2], unsigned char out[16]);
/* Writes "YYYY-MM-DDTHH:MM:SS.fffZ" into out (at least 25 bytes). */
void time_format_iso(long long ms, char *out, size_t n);
long long time_now_ms(void);

#endif
