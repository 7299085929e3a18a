/*
 * access.h -- who may do what: peers' credentials against allowed users
 * and groups, each with a role.
 */
#ifndef STASHD_ACCESS_H
#define STASHD_ACCESS_H

#include <stddef.h>
#include <sys/types.h>

enum access_role {
	ROLE_NONE = 0, /* refused */
	ROLE_READ,     /* ping, get, mget, query, stats */
	ROLE_WRITE,    /* also set, del, exec, sync */
	ROLE_ADMIN,    /* everything */
};

struct access;

/*
 * Build the lists from "name:role, name:role" text (users and groups, by
 * name or number). Empty lists allow every peer the write role. NULL with
 * *cause naming the bad entry.
 */
struct access *access_create(
    const char *users, const char *groups, char **cause);
void access_free(struct access *a);
/*
 * The role of a peer: root and stashd's own user are admins; otherwise the
 * highest role of the entries matching its uid, primary group or one of
 * its groups.
 */
enum access_role access_role(const struct access *a, uid_t uid, gid_t gid,
    const gid_t *groups, size_t ngroups);
const char	*access_role_name(enum access_role r);

#endif /* STASHD_ACCESS_H */
