/*
 * test_irqcpu.c -- finding the CPU that takes a disk's interrupts, on a
 * made-up /sys: the device link, the device tree up to the PCI function
 * and its msi_irqs (or irq), and each interrupt's per_cpu_count.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../daemon/irqcpu.h"

static char root[PATH_MAX];

static void
mkdirs(const char *fmt, ...)
{
	char	path[PATH_MAX], *p;
	va_list ap;

	va_start(ap, fmt);
	assert_true(vsnprintf(path, sizeof(path), fmt, ap) < (int)sizeof(path));
	va_end(ap);
	for (p = path + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
		*p = '/';
	}
	assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
}

static void
put(const char *text, const char *fmt, ...)
{
	char	path[PATH_MAX];
	FILE   *f;
	va_list ap;

	va_start(ap, fmt);
	assert_true(vsnprintf(path, sizeof(path), fmt, ap) < (int)sizeof(path));
	va_end(ap);
	assert_non_null(f = fopen(path, "w"));
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

/* An interrupt's counts, one per CPU. */
static void
counts(unsigned irq, const char *text)
{
	char buf[64];

	mkdirs("%s/sys/kernel/irq/%u", root, irq);
	snprintf(buf, sizeof(buf), "%s\n", text);
	put(buf, "%s/sys/kernel/irq/%u/per_cpu_count", root, irq);
}

/* /sys/dev/block/MAJ:MIN -> ../../devices/<rel> */
static void
devlink(unsigned maj, unsigned min, const char *rel)
{
	char link[PATH_MAX], target[PATH_MAX];

	mkdirs("%s/sys/dev/block", root);
	mkdirs("%s/sys/devices/%s", root, rel);
	assert_true(snprintf(link, sizeof(link), "%s/sys/dev/block/%u:%u", root,
			maj, min) < (int)sizeof(link));
	assert_true(snprintf(target, sizeof(target), "../../devices/%s", rel) <
		    (int)sizeof(target));
	assert_true(unlink(link) == 0 || errno == ENOENT);
	assert_int_equal(symlink(target, link), 0);
}

/* A PCI function under /sys/devices with MSI vectors first..last. */
static void
msi_vectors(const char *fn, unsigned first, unsigned last)
{
	char	 name[16];
	unsigned irq;

	mkdirs("%s/sys/devices/%s/msi_irqs", root, fn);
	for (irq = first; irq <= last; irq++) {
		snprintf(name, sizeof(name), "%u", irq);
		put("", "%s/sys/devices/%s/msi_irqs/%s", root, fn, name);
	}
}

#define PCI "pci0000:00/0000:00:02.0"

/* A virtio disk with a partition: MSI-X vectors 35 (config), 36 (queue). */
static int
setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "%s/irqcpu.XXXXXX",
	    getenv("TESTS_TMPDIR") != NULL ? getenv("TESTS_TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(root));
	devlink(254, 0, PCI "/virtio1/block/vda");
	devlink(254, 1, PCI "/virtio1/block/vda/vda1");
	msi_vectors(PCI, 35, 36);
	put("0\n", "%s/sys/devices/" PCI "/irq", root);
	counts(35, "0,1");
	counts(36, "0,5000");
	return 0;
}

static int
teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* dev opens with nirqs interrupts, and its first sample says want. */
static void
expect_first(dev_t dev, size_t nirqs, int want)
{
	struct irqcpu *ic;
	char	      *cause = NULL;

	ic = irqcpu_open_dev(root, dev, &cause);
	assert_non_null(ic);
	assert_null(cause);
	assert_int_equal(irqcpu_nirqs(ic), nirqs);
	assert_int_equal(irqcpu_sample(ic), want);
	irqcpu_free(ic);
}

/* dev is refused, and the reason holds why (when not NULL). */
static void
expect_refused(dev_t dev, const char *why)
{
	char *cause = NULL;

	assert_null(irqcpu_open_dev(root, dev, &cause));
	assert_non_null(cause);
	if (why != NULL && strstr(cause, why) == NULL)
		fail_msg("refused for \"%s\", not \"%s\"", cause, why);
	free(cause);
}

/* The first sample counts since boot; later ones what came since. */
static void
test_one_queue(void **state)
{
	struct irqcpu *ic;
	char	      *cause = NULL;

	(void)state;
	ic = irqcpu_open_dev(root, makedev(254, 1), &cause);
	assert_non_null(ic);
	assert_null(cause);
	assert_int_equal(irqcpu_nirqs(ic), 2);
	assert_int_equal(irqcpu_sample(ic), 1);
	/* irqbalance moved the queue's interrupt to CPU 0. */
	counts(36, "3000,5010");
	assert_int_equal(irqcpu_sample(ic), 0);
	/* Too few since: no verdict, and they count with the next ones. */
	counts(36, "3040,5010");
	assert_int_equal(irqcpu_sample(ic), IRQCPU_UNSURE);
	counts(36, "3080,5010");
	assert_int_equal(irqcpu_sample(ic), 0);
	/* Spread over both. */
	counts(36, "4080,6010");
	assert_int_equal(irqcpu_sample(ic), IRQCPU_SPREAD);
	/* 90% is enough: 900 against 100. */
	counts(36, "4180,6910");
	assert_int_equal(irqcpu_sample(ic), 1);
	/* Both vectors count: the config one's 200 on CPU 0 spread it. */
	counts(35, "200,1");
	counts(36, "4180,7810");
	assert_int_equal(irqcpu_sample(ic), IRQCPU_SPREAD);
	irqcpu_free(ic);

	/* The whole disk, not a partition, finds the same vectors. */
	ic = irqcpu_open_dev(root, makedev(254, 0), &cause);
	assert_non_null(ic);
	assert_int_equal(irqcpu_nirqs(ic), 2);
	irqcpu_free(ic);
}

/* A disk with a queue per CPU: its counts are spread from the start. */
static void
test_queue_per_cpu(void **state)
{
	(void)state;
	devlink(259, 0, "pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1");
	msi_vectors("pci0000:00/0000:00:04.0", 50, 53);
	counts(50, "10,0,0,0");
	counts(51, "900,0,0,0");
	counts(52, "0,1000,0,0");
	counts(53, "0,0,1000,1000");
	expect_first(makedev(259, 0), 4, IRQCPU_SPREAD);
}

/* Without MSI, the function's irq file names its one interrupt. */
static void
test_intx(void **state)
{
	(void)state;
	devlink(8, 0, "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/sda");
	put("19\n", "%s/sys/devices/pci0000:00/0000:00:1f.2/irq", root);
	counts(19, "0,0,700,3");
	expect_first(makedev(8, 0), 1, 2);
}

/*
 * IRQCPU_MAX_IRQS, 16 interrupts, is followed: a device with 16 vectors,
 * all on CPU 1, opens and names CPU 1; one with 17 is refused.
 */
static void
test_irq_limit(void **state)
{
	unsigned irq;

	(void)state;
	devlink(259, 16, "pci0000:00/0000:00:08.0/nvme/nvme2/nvme2n1");
	msi_vectors("pci0000:00/0000:00:08.0", 200, 215);
	for (irq = 200; irq <= 216; irq++)
		counts(irq, "0,10");
	expect_first(makedev(259, 16), 16, 1);
	put("", "%s/sys/devices/pci0000:00/0000:00:08.0/msi_irqs/216", root);
	expect_refused(makedev(259, 16), "queue per CPU");
}

/* What cannot be told is refused at the open, with the reason. */
static void
test_refusals(void **state)
{
	char	*cause = NULL;
	unsigned irq;

	(void)state;
	/* No such device. */
	expect_refused(makedev(7, 3), "7:3");

	/* A device-mapper device: no interrupts of its own. */
	devlink(253, 0, "virtual/block/dm-0");
	expect_refused(makedev(253, 0), "no interrupts");

	/* Interrupts without counts (an old kernel). */
	devlink(254, 16, "pci0000:00/0000:00:06.0/virtio5/block/vdb");
	msi_vectors("pci0000:00/0000:00:06.0", 77, 77);
	expect_refused(makedev(254, 16), "77");

	/* Counts that are not counts. */
	counts(77, "12,x");
	expect_refused(makedev(254, 16), NULL);
	counts(77, "");
	expect_refused(makedev(254, 16), NULL);

	/* More counts than IRQCPU_MAX_CPUS (8192) CPUs: not believed. */
	{
		size_t len = 0, cpu;
		char  *line = malloc(2 * 8193 + 1), path[PATH_MAX];

		assert_non_null(line);
		for (cpu = 0; cpu < 8193; cpu++)
			len +=
			    (size_t)sprintf(line + len, "%s1", cpu ? "," : "");
		assert_true(snprintf(path, sizeof(path),
				"%s/sys/kernel/irq/77/per_cpu_count",
				root) < (int)sizeof(path));
		put(line, "%s", path);
		free(line);
		expect_refused(makedev(254, 16), "77");
	}

	/* More than 16 vectors: a queue per CPU, nothing to follow. */
	devlink(259, 8, "pci0000:00/0000:00:07.0/nvme/nvme1/nvme1n1");
	msi_vectors("pci0000:00/0000:00:07.0", 100, 132);
	for (irq = 100; irq <= 132; irq++)
		counts(irq, "5,5");
	expect_refused(makedev(259, 8), "queue per CPU");

	/* A path that does not exist. */
	assert_null(irqcpu_open(root, "/nonexistent/at/all", &cause));
	assert_non_null(cause);
	free(cause);
}

/* Counts that go bad after the open: no verdict, and no crash. */
static void
test_counts_go_bad(void **state)
{
	struct irqcpu *ic;
	char	      *cause = NULL, path[PATH_MAX];

	(void)state;
	ic = irqcpu_open_dev(root, makedev(254, 1), &cause);
	assert_non_null(ic);
	counts(36, "1,2,,3");
	assert_int_equal(irqcpu_sample(ic), IRQCPU_UNSURE);
	assert_true(
	    snprintf(path, sizeof(path), "%s/sys/kernel/irq/36/per_cpu_count",
		root) < (int)sizeof(path));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(irqcpu_sample(ic), IRQCPU_UNSURE);
	/* Back, with a CPU more than before. */
	counts(36, "0,5000,100000");
	assert_int_equal(irqcpu_sample(ic), 2);
	irqcpu_free(ic);
}

/* Many CPUs: a count line longer than the first buffer. */
static void
test_many_cpus(void **state)
{
	char	*line, path[PATH_MAX];
	size_t	 len = 0;
	unsigned cpu;

	(void)state;
	line = malloc(8 * 300 + 2);
	assert_non_null(line);
	for (cpu = 0; cpu < 300; cpu++)
		len += (size_t)sprintf(line + len, "%s%u", cpu ? "," : "",
		    cpu == 257 ? 1000000u : cpu % 7);
	line[len++] = '\n';
	line[len] = '\0';
	mkdirs("%s/sys/kernel/irq/36", root);
	assert_true(
	    snprintf(path, sizeof(path), "%s/sys/kernel/irq/36/per_cpu_count",
		root) < (int)sizeof(path));
	put(line, "%s", path);
	free(line);
	expect_first(makedev(254, 1), 2, 257);
}

/* irqcpu_open finds the device of a path; here, the test's own folder. */
static void
test_open_path(void **state)
{
	struct irqcpu *ic;
	struct stat    sb;
	char	      *cause = NULL, rel[64];

	(void)state;
	assert_int_equal(stat(root, &sb), 0);
	snprintf(rel, sizeof(rel), "pci0000:00/0000:00:09.0/virtio9/block/x%u",
	    minor(sb.st_dev));
	devlink(major(sb.st_dev), minor(sb.st_dev), rel);
	msi_vectors("pci0000:00/0000:00:09.0", 90, 90);
	counts(90, "0,0,0,0,0,4000");
	ic = irqcpu_open(root, root, &cause);
	assert_non_null(ic);
	assert_int_equal(irqcpu_sample(ic), 5);
	irqcpu_free(ic);
}

/* Following the interrupts only while clients wait on the syncs. */
static void
test_place(void **state)
{
	struct irqplace p;
	uint64_t	t;

	(void)state;
	irqplace_init(&p, 0);
	/* The interrupts' CPU not known yet: anywhere, whatever the groups. */
	for (t = 1; t <= 20; t++)
		assert_int_equal(irqplace_group(&p, 1, t), -1);
	assert_int_equal(irqplace_group(&p, 1, 100), -1);
	/* Known now; synced groups: on CPU 1 from the window's end. */
	irqplace_set_cpu(&p, 1);
	for (t = 101; t <= 120; t++)
		assert_int_equal(irqplace_group(&p, 1, t), -1);
	assert_int_equal(irqplace_group(&p, 1, 200), 1);
	/* The interrupts move: it follows at once, and back. */
	irqplace_set_cpu(&p, 0);
	assert_int_equal(irqplace_group(&p, 1, 201), 0);
	irqplace_set_cpu(&p, 1);
	assert_int_equal(irqplace_group(&p, 1, 202), 1);
	/* Mostly async groups (10 synced of 33): anywhere at the window's end.
	 */
	for (t = 203; t < 233; t++)
		assert_int_equal(irqplace_group(&p, (t - 203) % 4 == 0, t), 1);
	assert_int_equal(irqplace_group(&p, 0, 300), -1);
	/* Half of them synced (21 of 41): on CPU 1 again. */
	for (t = 301; t <= 340; t++)
		assert_int_equal(irqplace_group(&p, t % 2, t), -1);
	assert_int_equal(irqplace_group(&p, 1, 400), 1);
	/* A trickle: fewer than IRQPLACE_MIN_SYNCED synced groups, anywhere. */
	for (t = 0; t < IRQPLACE_MIN_SYNCED - 2; t++)
		assert_int_equal(irqplace_group(&p, 1, 410 + t * 10), 1);
	assert_int_equal(irqplace_group(&p, 1, 500), -1);
	/* Spread interrupts: anywhere, even while syncing. */
	irqplace_set_cpu(&p, -1);
	for (t = 501; t <= 800; t++)
		assert_int_equal(irqplace_group(&p, 1, t), -1);
	/* A clock that went back (it cannot, but): no window ends early. */
	irqplace_set_cpu(&p, 1);
	assert_int_equal(irqplace_group(&p, 1, 10), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_one_queue, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_queue_per_cpu, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_intx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_irq_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_counts_go_bad, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_cpus, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_path, setup, teardown),
	    cmocka_unit_test(test_place),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
