/*
 * hexdigit.h -- the value of one hexadecimal digit, for the parsers of
 * both protocols (\uXXXX in JSON strings, \xHH in inline RESP).
 */
#ifndef STASHD_HEXDIGIT_H
#define STASHD_HEXDIGIT_H

/* The value of hex digit c (either case), -1 for anything else. */
static inline int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif /* STASHD_HEXDIGIT_H */
