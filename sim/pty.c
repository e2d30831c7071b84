/* Pseudo-terminal set-up for the simulator.
 *
 * The sim keeps a descriptor of the slave side open for its whole life,
 * because Linux fails reads on the master with EIO whenever no process has
 * the slave open, which would happen between two host connections. Keeping
 * it open also keeps the slave's termios settings (raw mode) across host
 * reopens. */
#define _GNU_SOURCE
#include "sim/pty.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

/* Sets raw mode, so that the line discipline neither echoes requests back
 * to the master nor translates bytes. Speed and framing are set to the
 * analyzer's 19200 8E1. A pty ignores them, but a host that reads them back
 * gets the analyzer's settings. */
static int set_raw(int fd)
{
    struct termios tio;

    if (tcgetattr(fd, &tio) < 0) {
        return -1;
    }

    cfmakeraw(&tio);
    tio.c_cflag |= CREAD | CLOCAL | PARENB;
    tio.c_cflag &= ~(tcflag_t)CSTOPB;
    tio.c_cc[VMIN] = 1;
    tio.c_cc[VTIME] = 0;
    cfsetispeed(&tio, B19200);
    cfsetospeed(&tio, B19200);
    return tcsetattr(fd, TCSANOW, &tio);
}

/* Points link at target by renaming a fresh link over it, so that a reader
 * never finds the path missing. An existing file that is not a symbolic
 * link is left alone. */
static int update_link(const char *link, const char *target)
{
    struct stat st;

    if (lstat(link, &st) == 0 && !S_ISLNK(st.st_mode)) {
        fprintf(stderr, "toxlab-sim: --link %s: the path exists and is not a symbolic link\n",
                link);
        return -1;
    }

    char temporary[PATH_MAX];
    int n = snprintf(temporary, sizeof temporary, "%s.%ld.tmp", link, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof temporary) {
        fprintf(stderr, "toxlab-sim: --link %s: path too long\n", link);
        return -1;
    }

    unlink(temporary);
    if (symlink(target, temporary) < 0) {
        fprintf(stderr, "toxlab-sim: symlink %s: %s\n", temporary, strerror(errno));
        return -1;
    }
    if (rename(temporary, link) < 0) {
        fprintf(stderr, "toxlab-sim: rename %s to %s: %s\n", temporary, link, strerror(errno));
        unlink(temporary);
        return -1;
    }
    return 0;
}

static int open_master(struct sim_pty *pty)
{
    pty->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (pty->master < 0) {
        fprintf(stderr, "toxlab-sim: posix_openpt: %s\n", strerror(errno));
        return -1;
    }
    if (grantpt(pty->master) < 0 || unlockpt(pty->master) < 0) {
        fprintf(stderr, "toxlab-sim: grantpt or unlockpt: %s\n", strerror(errno));
        return -1;
    }
    if (ptsname_r(pty->master, pty->path, sizeof pty->path) != 0) {
        fprintf(stderr, "toxlab-sim: ptsname: %s\n", strerror(errno));
        return -1;
    }

    int flags = fcntl(pty->master, F_GETFL);
    if (flags < 0 || fcntl(pty->master, F_SETFL, flags | O_NONBLOCK) < 0) {
        fprintf(stderr, "toxlab-sim: setting O_NONBLOCK on the pty master: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static int open_slave(struct sim_pty *pty)
{
    pty->slave = open(pty->path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (pty->slave < 0) {
        fprintf(stderr, "toxlab-sim: open %s: %s\n", pty->path, strerror(errno));
        return -1;
    }
    if (set_raw(pty->slave) < 0) {
        fprintf(stderr, "toxlab-sim: setting raw mode on %s: %s\n", pty->path, strerror(errno));
        return -1;
    }
    return 0;
}

int sim_pty_open(struct sim_pty *pty, const char *link)
{
    pty->master = -1;
    pty->slave = -1;
    pty->path[0] = '\0';
    pty->link = NULL;

    if (open_master(pty) < 0 || open_slave(pty) < 0) {
        sim_pty_close(pty);
        return -1;
    }

    if (link != NULL) {
        if (update_link(link, pty->path) < 0) {
            sim_pty_close(pty);
            return -1;
        }
        pty->link = link;
    }
    return 0;
}

void sim_pty_close(struct sim_pty *pty)
{
    if (pty->link != NULL) {
        char target[PATH_MAX];
        ssize_t n = readlink(pty->link, target, sizeof target - 1);

        if (n >= 0) {
            target[n] = '\0';
            if (strcmp(target, pty->path) == 0) {
                unlink(pty->link);
            }
        }
        pty->link = NULL;
    }

    if (pty->slave >= 0) {
        close(pty->slave);
        pty->slave = -1;
    }
    if (pty->master >= 0) {
        close(pty->master);
        pty->master = -1;
    }
}
