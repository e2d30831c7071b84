/* A Modbus RTU serial line for the drivers: opening and locking the port,
 * and block reads and writes whose errors name the block, the register and
 * the cause. One link per driver state; libmodbus contexts are never shared
 * between threads. */
#ifndef TOXLAB_MODBUS_LINK_H
#define TOXLAB_MODBUS_LINK_H

#include "controller/config.h"

#include <limits.h>
#include <modbus.h>
#include <stddef.h>
#include <stdint.h>

struct modbus_link {
    modbus_t *ctx;
    char device[PATH_MAX];
};

/* Opens config->device with the configured framing and timeouts, locks it
 * with flock (and TIOCEXCL on real ports). Returns DRIVER_OK or an error
 * status with err set. */
int modbus_link_open(const struct instrument_config *config, struct modbus_link *link, char *err,
                     size_t size);
void modbus_link_close(struct modbus_link *link);

/* The same, as a driver's open and close operations: the state is a
 * malloc'd struct modbus_link. */
int modbus_link_new(const struct instrument_config *config, void **state, char *err, size_t size);
void modbus_link_free(void *state);

/* Reads count holding registers of one block at address. */
int modbus_link_read(struct modbus_link *link, const char *block, int address, int count,
                     uint16_t *regs, char *err, size_t size);

/* Writes count holding registers of one block at address (function 16). */
int modbus_link_write(struct modbus_link *link, const char *block, int address, int count,
                      const uint16_t *regs, char *err, size_t size);

#endif
