#include "instruments/serial_port.h"

#include "instruments/driver.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/major.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static bool is_pty_fd(int fd)
{
    struct stat info;

    return fstat(fd, &info) == 0 && S_ISCHR(info.st_mode) &&
           major(info.st_rdev) >= UNIX98_PTY_SLAVE_MAJOR &&
           major(info.st_rdev) < UNIX98_PTY_SLAVE_MAJOR + UNIX98_PTY_MAJOR_COUNT;
}

static speed_t baud_constant(int baud)
{
    static const struct {
        int baud;
        speed_t constant;
    } table[] = {
        {1200, B1200},     {2400, B2400},     {4800, B4800},     {9600, B9600},
        {19200, B19200},   {38400, B38400},   {57600, B57600},   {115200, B115200},
        {230400, B230400}, {460800, B460800}, {921600, B921600},
    };

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].baud == baud) {
            return table[i].constant;
        }
    }
    return B0;
}

/* Sets raw mode and the framing. A pty has no parity or speed (Linux
 * ignores them), so on a pty only raw mode is set: tcsetattr fails with
 * EINVAL when a dropped parity bit was its only change. */
static int set_framing(int fd, bool pty, int baud, char parity, int data_bits, int stop_bits,
                       char *err, size_t size)
{
    static const tcflag_t sizes[] = {CS5, CS6, CS7, CS8};
    struct termios tio;
    speed_t speed = baud_constant(baud);

    if (tcgetattr(fd, &tio) != 0) {
        snprintf(err, size, "tcgetattr failed: %s", strerror(errno));
        return DRIVER_IO;
    }
    cfmakeraw(&tio);
    tio.c_cflag |= CLOCAL | CREAD;
    if (!pty) {
        if (speed == B0) {
            snprintf(err, size, "baud rate %d is not supported by termios", baud);
            return DRIVER_IO;
        }
        cfsetispeed(&tio, speed);
        cfsetospeed(&tio, speed);
        tio.c_cflag &= ~(CSIZE | PARENB | PARODD | CSTOPB);
        tio.c_cflag |= sizes[data_bits - 5];
        if (parity == 'E') {
            tio.c_cflag |= PARENB;
        } else if (parity == 'O') {
            tio.c_cflag |= PARENB | PARODD;
        }
        tio.c_cflag |= stop_bits == 2 ? CSTOPB : 0;
    }
    if (tcsetattr(fd, TCSANOW, &tio) != 0) {
        snprintf(err, size, "tcsetattr failed: %s", strerror(errno));
        return DRIVER_IO;
    }
    return DRIVER_OK;
}

int serial_port_open(const char *path, int baud, char parity, int data_bits, int stop_bits,
                     char *err, size_t size)
{
    int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0) {
        snprintf(err, size, "cannot open %s: %s", path, strerror(errno));
        return DRIVER_IO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int code = errno;
        close(fd);
        if (code == EWOULDBLOCK) {
            snprintf(err, size, "port busy: another process holds the lock on %s", path);
            return DRIVER_BUSY_PORT;
        }
        snprintf(err, size, "cannot lock %s: %s", path, strerror(code));
        return DRIVER_IO;
    }
    bool pty = is_pty_fd(fd);
    /* TIOCEXCL keeps other opens out of a real port (root excepted); a
     * simulator keeps its own slave descriptor open, so ptys are left out. */
    if (!pty && ioctl(fd, TIOCEXCL) != 0) {
        snprintf(err, size, "cannot make %s exclusive: %s", path, strerror(errno));
        close(fd);
        return DRIVER_IO;
    }
    char cause[160];
    int status = set_framing(fd, pty, baud, parity, data_bits, stop_bits, cause, sizeof(cause));
    if (status != DRIVER_OK) {
        snprintf(err, size, "%s: %s", path, cause);
        close(fd);
        return status;
    }
    tcflush(fd, TCIOFLUSH);
    return fd;
}

static int64_t monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int serial_port_write(int fd, const uint8_t *data, size_t len, int64_t deadline_ms, char *err,
                      size_t size)
{
    size_t done = 0;

    while (done < len) {
        ssize_t written = write(fd, data + done, len - done);
        if (written > 0) {
            done += (size_t)written;
            continue;
        }
        if (written < 0 && errno != EAGAIN && errno != EINTR) {
            snprintf(err, size, "writing to the port failed: %s", strerror(errno));
            return DRIVER_IO;
        }
        int64_t left = deadline_ms - monotonic_ms();
        if (left <= 0) {
            snprintf(err, size, "timed out writing %zu bytes to the port", len - done);
            return DRIVER_TIMEOUT;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
            snprintf(err, size, "waiting to write to the port failed: %s", strerror(errno));
            return DRIVER_IO;
        }
    }
    return DRIVER_OK;
}
