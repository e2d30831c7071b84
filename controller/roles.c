#include "controller/roles.h"

#include <errno.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[ROLE_COUNT] = {"officer", "analyst", "clerk", "supervisor", "admin"};

const char *role_name(int index)
{
    return index >= 0 && index < ROLE_COUNT ? names[index] : "unknown";
}

int role_index(const char *name)
{
    for (int i = 0; i < ROLE_COUNT; i++) {
        if (strcmp(names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

void roles_format(unsigned roles, char *out, size_t size)
{
    size_t used = 0;

    out[0] = '\0';
    for (int i = 0; i < ROLE_COUNT && used < size; i++) {
        if (roles & (1u << i)) {
            used += (size_t)snprintf(out + used, size - used, "%s%s", used ? ", " : "", names[i]);
        }
    }
    if (out[0] == '\0') {
        snprintf(out, size, "none");
    }
}

int group_resolve(const char *name, gid_t *gid)
{
    char *end;
    unsigned long long number;
    struct group *entry;

    errno = 0;
    number = strtoull(name, &end, 10);
    if (name[0] >= '0' && name[0] <= '9' && *end == '\0') {
        if (errno != 0 || number >= (gid_t)-1) {
            return -1;
        }
        *gid = (gid_t)number;
        return 0;
    }
    entry = getgrnam(name);
    if (entry == NULL) {
        return -1;
    }
    *gid = entry->gr_gid;
    return 0;
}

int roles_set_groups(struct role_table *table, int index, const char *list, char *err,
                     size_t err_size)
{
    char copy[256];
    char *save = NULL;

    if (snprintf(copy, sizeof(copy), "%s", list) >= (int)sizeof(copy)) {
        snprintf(err, err_size, "the group list of role %s is longer than 255 characters",
                 role_name(index));
        return -1;
    }
    table->count[index] = 0;
    for (char *word = strtok_r(copy, ", ", &save); word != NULL;
         word = strtok_r(NULL, ", ", &save)) {
        gid_t gid;
        if (table->count[index] == ROLE_MAX_GROUPS) {
            snprintf(err, err_size, "role %s names more than %d groups", role_name(index),
                     ROLE_MAX_GROUPS);
            return -1;
        }
        if (group_resolve(word, &gid) != 0) {
            snprintf(err, err_size, "group '%s' of role %s not found (use a group name or number)",
                     word, role_name(index));
            return -1;
        }
        table->groups[index][table->count[index]++] = gid;
    }
    return 0;
}

static bool has_group(const gid_t *groups, size_t count, gid_t gid)
{
    for (size_t i = 0; i < count; i++) {
        if (groups[i] == gid) {
            return true;
        }
    }
    return false;
}

unsigned roles_of_peer(const struct role_table *table, uid_t uid, const gid_t *groups, size_t count)
{
    unsigned roles = 0;

    if (uid == 0) {
        return ROLE_ALL;
    }
    for (int i = 0; i < ROLE_COUNT; i++) {
        for (size_t j = 0; j < table->count[i]; j++) {
            if (has_group(groups, count, table->groups[i][j])) {
                roles |= 1u << i;
            }
        }
    }
    return roles;
}
