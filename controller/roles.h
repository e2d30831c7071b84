/* Roles of the people who use toxlab, taken from the peer's groups: each
 * role is granted to the members of one or more configured groups, a peer
 * holds the roles of all its groups, and root holds every role. */
#ifndef TOXLAB_ROLES_H
#define TOXLAB_ROLES_H

#include <stddef.h>
#include <sys/types.h>

#define ROLE_OFFICER 0x01    /* subjects, specimens, stops, tests */
#define ROLE_ANALYST 0x02    /* hair specimens, review and release, linking */
#define ROLE_CLERK 0x04      /* queries, statuses, licences, decisions */
#define ROLE_SUPERVISOR 0x08 /* statistics, read-only history */
#define ROLE_ADMIN 0x10      /* thresholds, rules, imports, amendments, audit, backup */
#define ROLE_ALL 0x1f
#define ROLE_COUNT 5
#define ROLE_MAX_GROUPS 8

/* The groups that grant each role, resolved to numbers. */
struct role_table {
    size_t count[ROLE_COUNT];
    gid_t groups[ROLE_COUNT][ROLE_MAX_GROUPS];
};

/* Returns the role's name ("officer") for bit index 0..ROLE_COUNT-1. */
const char *role_name(int index);

/* Returns the bit index of a role name, or -1 when it names none. */
int role_index(const char *name);

/* Writes the role names of a set as "officer, clerk", or "none". */
void roles_format(unsigned roles, char *out, size_t size);

/* Resolves a group given by name or number. Returns 0, or -1 when no such
 * group exists. */
int group_resolve(const char *name, gid_t *gid);

/* Resolves a comma-separated list of groups for one role into table.
 * Returns 0, or -1 with the group that did not resolve named in err. */
int roles_set_groups(struct role_table *table, int index, const char *list, char *err,
                     size_t err_size);

/* Returns the roles of a peer with uid and the given groups. */
unsigned roles_of_peer(const struct role_table *table, uid_t uid, const gid_t *groups,
                       size_t count);

#endif
