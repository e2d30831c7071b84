/* The simulator's pseudo-terminal: the sim serves on the master side, and the
 * host opens the slave path as if it were a serial port. */
#ifndef TOXLAB_SIM_PTY_H
#define TOXLAB_SIM_PTY_H

#include <limits.h>

struct sim_pty {
    int master;          /* non-blocking side where requests are read and replies written */
    int slave;           /* the sim's own slave descriptor, kept open (see pty.c) */
    char path[PATH_MAX]; /* slave path, e.g. /dev/pts/7 */
    const char *link;    /* NULL, or the symbolic link kept pointing at path */
};

/* Opens a pty in raw mode and, when link is not NULL, points a symbolic link
 * at its slave path. Returns 0, or -1 after printing the cause on stderr. */
int sim_pty_open(struct sim_pty *pty, const char *link);

/* Closes both sides and removes the link if it still points at this pty. */
void sim_pty_close(struct sim_pty *pty);

#endif
