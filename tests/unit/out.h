/*
 * Transcripts for table-driven parser tests: what a parser produced,
 * printable and escaped, compared against the expected text at every
 * split point (out_same names the case and the split on failure).
 */
#ifndef TESTS_UNIT_OUT_H
#define TESTS_UNIT_OUT_H

#include <stdbool.h>
#include <stddef.h>

#define OUT_MAX		8192

struct out {
	char	 s[OUT_MAX];
	size_t	 len;
};

/* Appends, escaping bytes outside printable ASCII as \xNN. */
void	out_add(struct out *, const char *, size_t);
void	out_str(struct out *, const char *);
/* The same, but LF shown as "/" (multi-line replies stay readable). */
void	out_add_lines(struct out *, const char *, size_t);
void	out_str_lines(struct out *, const char *);
void	out_reset(struct out *);
/* Counts a check; on mismatch prints both texts with case and split. */
bool	out_same(const char *got, const char *want, size_t i, size_t split);

#endif
