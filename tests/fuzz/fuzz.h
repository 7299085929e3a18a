/*
 * fuzz.h -- what the fuzz targets of tests/fuzz/ share.
 *
 * Each target is one file defining LLVMFuzzerTestOneInput(). It is linked
 * two ways: with libFuzzer (clang, ./configure --enable-fuzz, make fuzz),
 * which generates inputs; and with replay.c (any compiler, make check),
 * which feeds it every file of its corpus, tests/fuzz/corpus/<target>/.
 *
 * A target sets itself up on its first call (no LLVMFuzzerInitialize),
 * so that both ways run it alike.
 *
 * A target checks invariants with FUZZ_CHECK, which aborts: libFuzzer
 * saves the input as a crash, and the replay fails the test.
 */
#ifndef STASHD_FUZZ_H
#define STASHD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond))                                                   \
			fuzz_fail(__FILE__, __LINE__, #cond);                  \
	} while (0)

static inline void __attribute__((noreturn))
fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* STASHD_FUZZ_H */
