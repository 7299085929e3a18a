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
/* How many interrupts the disk has (for messages). */
size_t irqcpu_nirqs(const struct irqcpu *ic);
void   irqcpu_free(struct irqcpu *ic);

#endif /* STASHD_IRQCPU_H */
