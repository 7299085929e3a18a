/*
 * access.c -- allowed users and groups, and their roles.
 *
 * The socket's mode (0660 by default) decides who can connect at all;
 * these lists decide, for each peer that did, what it may do. Names are
 * resolved once, when the lists are built (at start and on SIGHUP), so
 * that accept() never waits on NSS.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "xmalloc.h"

struct access_entry {
	int		 group; /* else a user */
	unsigned long	 id;
	enum access_role role;
};

struct access {
	struct access_entry *v;
	size_t		     n;
};

static const char *const role_names[] = {"none", "read", "write", "admin"};

const char *
access_role_name(enum access_role r)
{
	return role_names[r];
}

/* A user or group name or number; -1 when unknown. */
static int
access_resolve(const char *name, int group, unsigned long *id)
{
	struct passwd *pw;
	struct group  *gr;
	char	      *end;

	errno = 0;
	*id = strtoul(name, &end, 10);
	if (*name != '\0' && *end == '\0' && errno == 0)
		return 0;
	if (group) {
		if ((gr = getgrnam(name)) == NULL)
			return -1;
		*id = gr->gr_gid;
	} else {
		if ((pw = getpwnam(name)) == NULL)
			return -1;
		*id = pw->pw_uid;
	}
	return 0;
}

/* Add the entries of one list ("name:role, ..."). */
static int
access_parse(struct access *a, const char *text, int group, char **cause)
{
	char  *copy = xstrdup(text), *item, *save = NULL, *colon, *name;
	size_t len;

	for (item = strtok_r(copy, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		struct access_entry e;
		const char	   *role;
		size_t		    r;

		while (isspace((unsigned char)*item))
			item++;
		len = strlen(item);
		while (len > 0 && isspace((unsigned char)item[len - 1]))
			item[--len] = '\0';
		if (len == 0)
			continue;
		if ((colon = strchr(item, ':')) == NULL) {
			xasprintf(cause,
			    "\"%s\": want name:role (read, write "
			    "or admin)",
			    item);
			goto fail;
		}
		*colon = '\0';
		name = item;
		role = colon + 1;
		memset(&e, 0, sizeof(e));
		e.group = group;
		for (r = ROLE_READ; r <= ROLE_ADMIN; r++)
			if (strcmp(role, role_names[r]) == 0)
				e.role = (enum access_role)r;
		if (e.role == ROLE_NONE) {
			xasprintf(cause,
			    "\"%s\": unknown role \"%s\" (read, "
			    "write or admin)",
			    name, role);
			goto fail;
		}
		if (access_resolve(name, group, &e.id) == -1) {
			xasprintf(cause, "no such %s \"%s\"",
			    group ? "group" : "user", name);
			goto fail;
		}
		a->v = xreallocarray(a->v, a->n + 1, sizeof(*a->v));
		a->v[a->n++] = e;
	}
	free(copy);
	return 0;
fail:
	free(copy);
	return -1;
}

struct access *
access_create(const char *users, const char *groups, char **cause)
{
	struct access *a = xcalloc(1, sizeof(*a));

	if ((users != NULL && access_parse(a, users, 0, cause) == -1) ||
	    (groups != NULL && access_parse(a, groups, 1, cause) == -1)) {
		access_free(a);
		return NULL;
	}
	return a;
}

void
access_free(struct access *a)
{
	if (a == NULL)
		return;
	free(a->v);
	free(a);
}

enum access_role
access_role(const struct access *a, uid_t uid, gid_t gid, const gid_t *groups,
    size_t ngroups)
{
	enum access_role best = ROLE_NONE;
	size_t		 i, k;

	if (uid == 0 || uid == geteuid())
		return ROLE_ADMIN;
	if (a == NULL || a->n == 0)
		return ROLE_WRITE;
	for (i = 0; i < a->n; i++) {
		const struct access_entry *e = &a->v[i];
		int			   match = 0;

		if (!e->group)
			match = e->id == (unsigned long)uid;
		else {
			match = e->id == (unsigned long)gid;
			for (k = 0; k < ngroups && !match; k++)
				match = e->id == (unsigned long)groups[k];
		}
		if (match && e->role > best)
			best = e->role;
	}
	return best;
}
