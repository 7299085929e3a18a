/*
 * irqcpu.c -- which CPU takes a disk's interrupts.
 *
 * The device: /sys/dev/block/MAJOR:MINOR links to the disk (or partition)
 * in the device tree, for instance
 *
 *   /sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda/vda1
 *
 * and the first directory up that tree with an msi_irqs folder (the PCI
 * function: one entry per MSI or MSI-X vector) names its interrupts; a
 * device without MSI has an irq file instead. A device-mapper, md, loop
 * or zram device sits under /sys/devices/virtual and has none: no answer.
 *
 * The counts: /sys/kernel/irq/N/per_cpu_count holds one count per possible
 * CPU, comma-separated; a sample sums them over the device's interrupts
 * and compares with the sums of the sample before. A disk with one queue
 * (virtio-blk, AHCI) takes its interrupts on one CPU, the one the kernel
 * (or irqbalance) chose, and the sample names it; a disk with a queue per
 * CPU (NVMe) completes each request on the CPU that sent it, its counts
 * are spread, and the sample says so.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "irqcpu.h"
#include "xmalloc.h"

/*
 * Most interrupts a device may have here. A device with more has a queue
 * for each CPU or few (NVMe), and completes a request on a CPU that sent
 * it: no CPU to follow, and a sample would read a file for each.
 */
#define IRQCPU_MAX_IRQS 16
/* Most CPUs counted. */
#define IRQCPU_MAX_CPUS 8192

struct irqcpu {
	char	 *root;
	unsigned *irqs;
	size_t	  nirqs;
	uint64_t *prev; /* the sums of the sample before, per CPU */
	uint64_t *now;
	size_t	  ncpus; /* length of prev and now */
	char	 *buf;	 /* a file read whole */
	size_t	  cap;
};

static int
parse_uint(const char *s, unsigned *v)
{
	char	     *end;
	unsigned long n;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	n = strtoul(s, &end, 10);
	if (errno != 0 || (*end != '\0' && *end != '\n') || n > UINT_MAX)
		return -1;
	*v = (unsigned)n;
	return 0;
}

static void
add_irq(struct irqcpu *ic, unsigned irq)
{
	if (ic->nirqs > IRQCPU_MAX_IRQS)
		return; /* too many: refused by the caller */
	ic->irqs = xreallocarray(ic->irqs, ic->nirqs + 1, sizeof(*ic->irqs));
	ic->irqs[ic->nirqs++] = irq;
}

/* The numbered entries of dir/msi_irqs; 0 when there are none. */
static size_t
find_msi(struct irqcpu *ic, const char *dir)
{
	struct dirent *de;
	DIR	      *d;
	char	      *path;
	unsigned       irq;

	xasprintf(&path, "%s/msi_irqs", dir);
	d = opendir(path);
	free(path);
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (parse_uint(de->d_name, &irq) == 0)
			add_irq(ic, irq);
	}
	closedir(d);
	return ic->nirqs;
}

/*
 * Read path whole into ic->buf, NUL-terminated; -1 when it cannot be
 * read. No allocation once the buffer is large enough: the journal thread
 * samples while the daemon runs, and must not fail for want of memory.
 */
static int
read_file(struct irqcpu *ic, const char *path)
{
	size_t	len = 0;
	ssize_t n;
	int	fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	for (;;) {
		if (ic->cap - len < 2) {
			ic->cap = ic->cap ? ic->cap * 2 : 256;
			ic->buf = xreallocarray(ic->buf, ic->cap, 1);
		}
		n = read(fd, ic->buf + len, ic->cap - len - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (n == -1)
		return -1;
	ic->buf[len] = '\0';
	return 0;
}

/* The interrupt in dir/irq, when there is one (not 0); 0 when not. */
static size_t
find_intx(struct irqcpu *ic, const char *dir)
{
	char	*path;
	unsigned irq;
	int	 rc;

	xasprintf(&path, "%s/irq", dir);
	rc = read_file(ic, path);
	free(path);
	if (rc == 0 && parse_uint(ic->buf, &irq) == 0 && irq != 0)
		add_irq(ic, irq);
	return ic->nirqs;
}

/* Make room for counts of cpu + 1 CPUs. */
static void
grow_cpus(struct irqcpu *ic, size_t cpu)
{
	if (cpu < ic->ncpus)
		return;
	ic->now = xreallocarray(ic->now, cpu + 1, sizeof(*ic->now));
	ic->prev = xreallocarray(ic->prev, cpu + 1, sizeof(*ic->prev));
	for (; ic->ncpus <= cpu; ic->ncpus++)
		ic->now[ic->ncpus] = ic->prev[ic->ncpus] = 0;
}

/*
 * Read the per-CPU counts of every interrupt of the device into ic->now,
 * summed; -1 when one cannot be read.
 */
static int
read_counts(struct irqcpu *ic)
{
	char		   path[PATH_MAX], *p, *end;
	size_t		   i, cpu;
	unsigned long long n;
	int		   len;

	if (ic->ncpus > 0)
		memset(ic->now, 0, ic->ncpus * sizeof(*ic->now));
	for (i = 0; i < ic->nirqs; i++) {
		len = snprintf(path, sizeof(path),
		    "%s/sys/kernel/irq/%u/per_cpu_count", ic->root,
		    ic->irqs[i]);
		if (len < 0 || (size_t)len >= sizeof(path) ||
		    read_file(ic, path) == -1)
			return -1;
		for (p = ic->buf, cpu = 0;; p = end + 1, cpu++) {
			if (!isdigit((unsigned char)*p) ||
			    cpu >= IRQCPU_MAX_CPUS)
				return -1;
			errno = 0;
			n = strtoull(p, &end, 10);
			if (errno != 0)
				return -1;
			grow_cpus(ic, cpu);
			ic->now[cpu] += n;
			if (*end != ',')
				break;
		}
		if (*end != '\n' && *end != '\0')
			return -1;
	}
	return 0;
}

struct irqcpu *
irqcpu_open_dev(const char *root, dev_t dev, char **cause)
{
	struct irqcpu *ic;
	char	      *link, *real, *top, *slash;
	size_t	       toplen;

	xasprintf(
	    &link, "%s/sys/dev/block/%u:%u", root, major(dev), minor(dev));
	real = realpath(link, NULL);
	if (real == NULL) {
		xasprintf(cause, "%s: %s", link, strerror(errno));
		free(link);
		return NULL;
	}
	free(link);
	ic = xcalloc(1, sizeof(*ic));
	ic->root = xstrdup(root);
	/* Up the device tree, not past /sys/devices. */
	top = realpath(root[0] != '\0' ? root : "/", NULL);
	xasprintf(&link, "%s/sys/devices",
	    top != NULL && strcmp(top, "/") != 0 ? top : "");
	free(top);
	toplen = strlen(link);
	while (strncmp(real, link, toplen) == 0 && strlen(real) > toplen) {
		if (find_msi(ic, real) > 0 || find_intx(ic, real) > 0)
			break;
		if ((slash = strrchr(real, '/')) == NULL)
			break;
		*slash = '\0';
	}
	free(link);
	free(real);
	if (ic->nirqs == 0) {
		xasprintf(cause, "device %u:%u has no interrupts of its own",
		    major(dev), minor(dev));
		irqcpu_free(ic);
		return NULL;
	}
	if (ic->nirqs > IRQCPU_MAX_IRQS) {
		xasprintf(cause,
		    "device %u:%u has more than %d interrupts: a queue per "
		    "CPU",
		    major(dev), minor(dev), IRQCPU_MAX_IRQS);
		irqcpu_free(ic);
		return NULL;
	}
	if (read_counts(ic) == -1 || ic->ncpus == 0) {
		xasprintf(
		    cause, "no per-CPU counts of interrupt %u", ic->irqs[0]);
		irqcpu_free(ic);
		return NULL;
	}
	return ic;
}

struct irqcpu *
irqcpu_open(const char *root, const char *path, char **cause)
{
	struct stat sb;

	if (stat(path, &sb) == -1) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return NULL;
	}
	return irqcpu_open_dev(root, sb.st_dev, cause);
}

int
irqcpu_sample(struct irqcpu *ic)
{
	uint64_t total = 0, best = 0, d;
	size_t	 i, at = 0;

	if (read_counts(ic) == -1)
		return IRQCPU_UNSURE;
	for (i = 0; i < ic->ncpus; i++) {
		d = ic->now[i] >= ic->prev[i] ? ic->now[i] - ic->prev[i] : 0;
		total += d;
		if (d > best) {
			best = d;
			at = i;
		}
	}
	/* Too few: let them add up with the next sample's. */
	if (total < IRQCPU_MIN)
		return IRQCPU_UNSURE;
	memcpy(ic->prev, ic->now, ic->ncpus * sizeof(*ic->prev));
	if (best * 100 < total * IRQCPU_SHARE)
		return IRQCPU_SPREAD;
	return (int)at; /* below IRQCPU_MAX_CPUS */
}

size_t
irqcpu_nirqs(const struct irqcpu *ic)
{
	return ic->nirqs;
}

void
irqcpu_free(struct irqcpu *ic)
{
	if (ic == NULL)
		return;
	free(ic->root);
	free(ic->irqs);
	free(ic->prev);
	free(ic->now);
	free(ic->buf);
	free(ic);
}

void
irqplace_init(struct irqplace *p, uint64_t now_ms)
{
	memset(p, 0, sizeof(*p));
	p->cpu = p->want = -1;
	p->start_ms = now_ms;
}

void
irqplace_set_cpu(struct irqplace *p, int cpu)
{
	p->cpu = cpu;
	/* Follow a move at once; stop following at once. */
	if (p->want != -1)
		p->want = cpu;
}

int
irqplace_group(struct irqplace *p, int synced, uint64_t now_ms)
{
	p->groups++;
	if (synced)
		p->synced++;
	if (now_ms >= p->start_ms + IRQPLACE_WINDOW_MS) {
		p->want = p->synced >= IRQPLACE_MIN_SYNCED &&
				  p->synced * 2 >= p->groups
			      ? p->cpu
			      : -1;
		p->groups = p->synced = 0;
		p->start_ms = now_ms;
	}
	return p->want;
}
