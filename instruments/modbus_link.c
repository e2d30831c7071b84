#include "instruments/modbus_link.h"

#include "instruments/driver.h"

#include <errno.h>
#include <linux/major.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>

static const char *exception_text(int code)
{
    static const char *const texts[] = {
        [1] = "illegal function",      [2] = "illegal data address", [3] = "illegal data value",
        [4] = "server device failure", [5] = "acknowledge",          [6] = "server device busy",
    };

    if (code >= 1 && code <= 6) {
        return texts[code];
    }
    return "unknown exception";
}

/* Classifies the errno of a failed libmodbus call and writes the message
 * naming the block, register address and cause. */
static int modbus_failure(const char *action, const char *block, int address, char *err,
                          size_t size)
{
    int code = errno;
    int status;
    char cause[96];

    if (code == ETIMEDOUT) {
        status = DRIVER_TIMEOUT;
        snprintf(cause, sizeof(cause), "timed out");
    } else if (code == EMBBADCRC) {
        status = DRIVER_BAD_CRC;
        snprintf(cause, sizeof(cause), "CRC error");
    } else if (code > MODBUS_ENOBASE && code <= MODBUS_ENOBASE + 11) {
        int exception = code - MODBUS_ENOBASE;
        status = DRIVER_EXCEPTION;
        snprintf(cause, sizeof(cause), "Modbus exception %d (%s)", exception,
                 exception_text(exception));
    } else if (code == EMBBADDATA || code == EMBBADEXC || code == EMBMDATA || code == EMBBADSLAVE) {
        status = DRIVER_CORRUPT;
        snprintf(cause, sizeof(cause), "malformed reply (%s)", modbus_strerror(code));
    } else {
        status = DRIVER_IO;
        snprintf(cause, sizeof(cause), "%s", modbus_strerror(code));
    }
    snprintf(err, size, "%s %s %s at register %d (0x%04X)", cause, action, block, address, address);
    return status;
}

/* Reports whether path is the slave side of a pseudo-terminal (a simulator). */
static bool is_pty(const char *path)
{
    struct stat info;

    return stat(path, &info) == 0 && S_ISCHR(info.st_mode) &&
           major(info.st_rdev) >= UNIX98_PTY_SLAVE_MAJOR &&
           major(info.st_rdev) < UNIX98_PTY_SLAVE_MAJOR + UNIX98_PTY_MAJOR_COUNT;
}

/* A pty has no parity: Linux clears PARENB, and glibc 2.36's tcsetattr then
 * fails with EINVAL whenever that bit was the only change, as on every
 * reopen. So ptys are opened without parity, which changes nothing on the
 * wire. */
static int lock_port(struct modbus_link *link, bool pty, char *err, size_t size)
{
    int fd = modbus_get_socket(link->ctx);

    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            snprintf(err, size, "port busy: another process holds the lock on %s", link->device);
            return DRIVER_BUSY_PORT;
        }
        snprintf(err, size, "cannot lock %s: %s", link->device, strerror(errno));
        return DRIVER_IO;
    }
    /* TIOCEXCL keeps other opens out of a real port (root excepted); a
     * simulator's pty must stay open to its own slave descriptor. */
    if (!pty && ioctl(fd, TIOCEXCL) != 0) {
        snprintf(err, size, "cannot make %s exclusive: %s", link->device, strerror(errno));
        return DRIVER_IO;
    }
    return DRIVER_OK;
}

void modbus_link_close(struct modbus_link *link)
{
    if (link->ctx != NULL) {
        modbus_close(link->ctx);
        modbus_free(link->ctx);
        link->ctx = NULL;
    }
}

int modbus_link_open(const struct instrument_config *config, struct modbus_link *link, char *err,
                     size_t size)
{
    bool pty = is_pty(config->device);

    snprintf(link->device, sizeof(link->device), "%s", config->device);
    link->ctx = modbus_new_rtu(config->device, config->baud, pty ? 'N' : config->parity,
                               config->data_bits, config->stop_bits);
    if (link->ctx == NULL || modbus_set_slave(link->ctx, config->slave) != 0) {
        snprintf(err, size, "invalid serial settings for %s: %s", config->device,
                 modbus_strerror(errno));
        modbus_link_close(link);
        return DRIVER_IO;
    }
    /* No byte timeout: the response timeout then bounds the whole reply,
     * so a device that trickles bytes cannot hold a request open. */
    modbus_set_response_timeout(link->ctx, (uint32_t)(config->response_timeout_ms / 1000),
                                (uint32_t)(config->response_timeout_ms % 1000) * 1000);
    modbus_set_byte_timeout(link->ctx, 0, 0);
    modbus_set_error_recovery(link->ctx, MODBUS_ERROR_RECOVERY_NONE);
    if (modbus_connect(link->ctx) != 0) {
        snprintf(err, size, "cannot open %s: %s", config->device, modbus_strerror(errno));
        modbus_link_close(link);
        return DRIVER_IO;
    }
    int status = lock_port(link, pty, err, size);
    if (status != DRIVER_OK) {
        modbus_link_close(link);
    }
    return status;
}

int modbus_link_read(struct modbus_link *link, const char *block, int address, int count,
                     uint16_t *regs, char *err, size_t size)
{
    int got;

    /* Bytes waiting before a request are stale: a late reply or noise.
     * TODO: a late reply that arrives after this flush, while the next
     * request of the same length waits, is taken as that request's reply,
     * because RTU frames carry no transaction ID. */
    modbus_flush(link->ctx);
    got = modbus_read_registers(link->ctx, address, count, regs);
    if (got == count) {
        return DRIVER_OK;
    }
    if (got >= 0) {
        snprintf(err, size, "short reply reading %s at register %d (0x%04X): %d of %d registers",
                 block, address, address, got, count);
        return DRIVER_CORRUPT;
    }
    return modbus_failure("reading", block, address, err, size);
}

int modbus_link_write(struct modbus_link *link, const char *block, int address, int count,
                      const uint16_t *regs, char *err, size_t size)
{
    modbus_flush(link->ctx);
    if (modbus_write_registers(link->ctx, address, count, regs) == count) {
        return DRIVER_OK;
    }
    return modbus_failure("writing", block, address, err, size);
}

int modbus_link_new(const struct instrument_config *config, void **state, char *err, size_t size)
{
    struct modbus_link *link = calloc(1, sizeof(*link));
    int status;

    if (link == NULL) {
        snprintf(err, size, "out of memory");
        return DRIVER_IO;
    }
    status = modbus_link_open(config, link, err, size);
    if (status != DRIVER_OK) {
        free(link);
        return status;
    }
    *state = link;
    return DRIVER_OK;
}

void modbus_link_free(void *state)
{
    struct modbus_link *link = state;

    if (link != NULL) {
        modbus_link_close(link);
        free(link);
    }
}
