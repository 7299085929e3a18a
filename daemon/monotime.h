/*
 * monotime.h -- the monotonic clock, in the units the daemon counts in.
 *
 * clock_gettime(CLOCK_MONOTONIC) fails only for a clock the kernel does
 * not have, and every Linux has this one: its result is not checked.
 */
#ifndef STASHD_MONOTIME_H
#define STASHD_MONOTIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t
monotime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t
monotime_us(void)
{
	return monotime_ns() / 1000;
}

static inline uint64_t
monotime_ms(void)
{
	return monotime_ns() / 1000000;
}

#endif /* STASHD_MONOTIME_H */
