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
 * The wall clock in Unix milliseconds, what key expiries count in. Read
 * with clock_gettime, not time(): on Linux time() reads a clock updated
 * at each tick, which for a millisecond or more after a second turns
 * still gives the one before.
 */
static inline int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif /* STASHD_MONOTIME_H */
