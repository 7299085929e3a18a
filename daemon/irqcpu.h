/*
 * irqcpu.h -- which CPU takes a disk's interrupts.
 *
 * A thread that sleeps in fdatasync is woken by the disk's completion
 * interrupt. When that interrupt lands on another CPU, the wake-up is a
 * message between CPUs (on a virtual machine, an exit to the host each
 * way); on the same CPU it is a local wake-up. irqcpu finds the disk under
 * a path, its interrupts (sysfs), and, from their per-CPU counts, the CPU
 * that takes them, if one CPU takes nearly all of them.
 */
#ifndef STASHD_IRQCPU_H
#define STASHD_IRQCPU_H

#include <sys/types.h>

#include <stdint.h>

struct irqcpu;

/* One CPU took at least this share (percent) of the interrupts. */
#define IRQCPU_SHARE 90
/* Fewer interrupts than this since the last sample tell nothing. */
#define IRQCPU_MIN 64

/* irqcpu_sample's answers besides a CPU number. */
#define IRQCPU_SPREAD (-1) /* no CPU takes IRQCPU_SHARE of them */
#define IRQCPU_UNSURE (-2) /* too few interrupts to tell */

/*
 * The disk that holds path, or (irqcpu_open_dev) device dev; root
 * prefixes /sys ("" on a live system). NULL, and *cause, when it cannot be
 * told: a device with no interrupts of its own (a device-mapper or loop device,
 * a network or in-memory filesystem), no sysfs, no per-CPU counts.
 */
struct irqcpu *irqcpu_open(const char *root, const char *path, char **cause);
struct irqcpu *irqcpu_open_dev(const char *root, dev_t dev, char **cause);
/*
 * The CPU that took at least IRQCPU_SHARE percent of the disk's
 * interrupts since the last sample (since boot at the first),
 * IRQCPU_SPREAD or IRQCPU_UNSURE.
 */
int irqcpu_sample(struct irqcpu *ic);
/* How many interrupts of the disk were found. */
size_t irqcpu_nirqs(const struct irqcpu *ic);
void   irqcpu_free(struct irqcpu *ic);

/*
 * When a thread follows the interrupts: only while clients wait on its
 * syncs. A thread that mostly writes without syncing (async writes) does
 * work the scheduler should be free to move; one that syncs for
 * acknowledgements waits on the interrupt. Decided once a window of
 * IRQPLACE_WINDOW_MS: on the interrupts' CPU when at least
 * IRQPLACE_MIN_SYNCED groups, and half of the groups, in it were synced;
 * anywhere when not.
 */
#define IRQPLACE_WINDOW_MS  100
#define IRQPLACE_MIN_SYNCED 10

struct irqplace {
	int	 cpu;	   /* where the interrupts go: a CPU, or -1 */
	int	 want;	   /* where the thread runs: cpu, or -1 (anywhere) */
	uint64_t start_ms; /* of the window */
	unsigned groups;
	unsigned synced;
};

void irqplace_init(struct irqplace *p, uint64_t now_ms);
/* The interrupts go to cpu now (-1: no one CPU takes them all). */
void irqplace_set_cpu(struct irqplace *p, int cpu);
/* A group was written, synced for clients or not: where to run now. */
int irqplace_group(struct irqplace *p, int synced, uint64_t now_ms);

#endif /* STASHD_IRQCPU_H */
