/*
 * replay.c -- run a fuzz target on files, without libFuzzer.
 *
 *	replay-<target> [file-or-folder ...]
 *
 * Every file named, and every file of every folder named, is read whole
 * and given to the target's LLVMFuzzerTestOneInput(), one after the other
 * in name order. With no argument it replays the target's corpus,
 * $TOP_SRCDIR/tests/fuzz/corpus/<target>/ (TOP_SRCDIR defaults to the
 * source tree it was configured in). A broken invariant aborts; an empty
 * corpus is a failure too, so that a misplaced folder cannot pass.
 *
 * This is how make check runs the corpus on every build, with gcc, under
 * the sanitizer build and under valgrind.
 */
#include "config.h"

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#ifndef FUZZ_TARGET
#error "FUZZ_TARGET must name the target"
#endif

/* Replay one file; -1 when it cannot be read. */
static int
replay_file(const char *path)
{
	struct stat sb;
	FILE	   *f;
	uint8_t	   *buf;
	size_t	    n;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &sb) == -1) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		fclose(f);
		return -1;
	}
	/* Exactly the file's size, so that an overread is caught. */
	if ((buf = malloc(sb.st_size > 0 ? (size_t)sb.st_size : 1)) == NULL) {
		fprintf(stderr, "replay: %s: out of memory\n", path);
		fclose(f);
		return -1;
	}
	n = fread(buf, 1, (size_t)sb.st_size, f);
	if (n != (size_t)sb.st_size || ferror(f)) {
		fprintf(stderr, "replay: %s: short read\n", path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replay every regular file of a folder; returns how many, or -1. */
static long
replay_dir(const char *dir)
{
	struct dirent *de;
	char	     **names = NULL, **v, path[4096];
	size_t	       n = 0, i;
	long	       done = 0;
	struct stat    sb;
	DIR	      *d;
	int	       len;

	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((v = realloc(names, (n + 1) * sizeof(*names))) == NULL ||
		    (v[n] = strdup(de->d_name)) == NULL) {
			fprintf(stderr, "replay: out of memory\n");
			exit(1);
		}
		names = v;
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp);
	for (i = 0; i < n; i++) {
		len = snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (len < 0 || (size_t)len >= sizeof(path)) {
			fprintf(stderr, "replay: %s/%s: path too long\n", dir,
			    names[i]);
			done = -1;
		} else if (stat(path, &sb) == -1) {
			fprintf(
			    stderr, "replay: %s: %s\n", path, strerror(errno));
			done = -1;
		} else if (S_ISREG(sb.st_mode) && done != -1) {
			if (replay_file(path) == -1)
				done = -1;
			else
				done++;
		}
		free(names[i]);
	}
	free(names);
	return done;
}

int
main(int argc, char **argv)
{
	char	    corpus[4096];
	const char *top;
	struct stat sb;
	long	    total = 0, r;
	int	    i, len;

	if (argc < 2) {
		if ((top = getenv("TOP_SRCDIR")) == NULL)
			top = FUZZ_SRCDIR;
		len = snprintf(corpus, sizeof(corpus),
		    "%s/tests/fuzz/corpus/%s", top, FUZZ_TARGET);
		if (len < 0 || (size_t)len >= sizeof(corpus)) {
			fprintf(stderr, "replay: corpus path too long\n");
			return 1;
		}
		r = replay_dir(corpus);
		if (r == -1)
			return 1;
		total = r;
	}
	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &sb) == -1) {
			fprintf(stderr, "replay: %s: %s\n", argv[i],
			    strerror(errno));
			return 1;
		}
		if (S_ISDIR(sb.st_mode)) {
			if ((r = replay_dir(argv[i])) == -1)
				return 1;
			total += r;
		} else {
			if (replay_file(argv[i]) == -1)
				return 1;
			total++;
		}
	}
	if (total == 0) {
		fprintf(stderr, "replay: %s: no input found\n", FUZZ_TARGET);
		return 1;
	}
	printf("%s: %ld inputs replayed\n", FUZZ_TARGET, total);
	return 0;
}
