/*
 * options.h -- stashd's settings: defaults, the configuration file and the
 * command line, all from one table of options.
 */
#ifndef STASHD_OPTIONS_H
#define STASHD_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "log.h"
#include "proto.h"
#include "server.h"
#include "writer.h"

#define CONFIG_FILE_DEFAULT "/etc/stashd/stashd.conf"

struct options {
	struct server_config  server;
	size_t		      max_memory;
	size_t		      depth_max;
	size_t		      mget_max;
	enum proto_durability dur_kv;
	enum proto_durability dur_exec;
	enum log_level	      log_level;
	char		     *database;
	char		     *journal_dir;
	size_t		      segment_max;
	size_t		      record_max;
	struct writer_options writer;
	size_t		      write_queue_max;
	unsigned	      busy_poll_us;
	unsigned	      readers;
	int		      sql_enabled;
	size_t		      query_rows_max;
	unsigned	      query_timeout_ms;
	size_t		      query_bytes_max;
	int		      salvage;
	int		      sync_normal;
	size_t		      sqlite_cache;
	char		     *allow_users; /* "name:role, ..." */
	char		     *allow_groups;
	/* Where the settings came from. */
	char *config_file; /* NULL: none was read */
	int   check_config;
};

void options_defaults(struct options *o);
/*
 * Read the configuration file (the one named by -c, else the default when
 * it exists), then the command line, which wins. Exits with status 2 and a
 * message naming the key (and the line) on a bad setting; prints help or
 * the version and exits 0 when asked.
 */
void options_parse(struct options *o, int argc, char **argv);
/* Read one configuration file into o. -1 with *cause naming the line. */
int options_load_file(struct options *o, const char *path, char **cause);
/* Set one option by name ("max-memory" or "max_memory"). */
int options_set(
    struct options *o, const char *name, const char *value, char **cause);
void options_usage(FILE *f);

/*
 * Reloading (SIGHUP): build the settings again from the defaults, file and
 * command line; compare, format and copy them one option at a time.
 */
int options_reread(
    struct options *o, const char *file, int argc, char **argv, char **cause);
size_t	    options_count(void);
const char *options_name(size_t i);
int	    options_reloadable(size_t i);
int  options_differ(const struct options *a, const struct options *b, size_t i);
void options_copy(struct options *dst, const struct options *src, size_t i);
void options_format(const struct options *o, size_t i, char *buf, size_t size);
void options_free(struct options *o);

#endif /* STASHD_OPTIONS_H */
