/*
 * monotime.h -- the monotonic clock, in the units the daemon counts in,
 * and the wall clock's second.
 *
 * clock_gettime(CLOCK_MONOTONIC) and (CLOCK_REALTIME) fail only for a
 * clock the kernel does not have, and every Linux has these: their
 * result is not checked.
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

/*
 * The wall clock's current second, what key expiries count in. Not
 * time(): on Linux it reads a clock updated at each tick, which for a
 * millisecond or more after a second turns still gives the one before,
 * and an expiry of EX 1 set then would be over at once.
 */
static inline int64_t
wall_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

#endif /* STASHD_MONOTIME_H */
