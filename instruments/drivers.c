#include "instruments/driver.h"

#include <stdio.h>
#include <string.h>

extern const struct driver_ops saliva_driver;
extern const struct driver_ops breath_driver;

/* Every driver the daemon can run, by its configuration name. */
static const struct driver_ops *const drivers[] = {
    &saliva_driver,
    &breath_driver,
};

const struct driver_ops *driver_find(const char *name)
{
    for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++) {
        if (strcmp(drivers[i]->name, name) == 0) {
            return drivers[i];
        }
    }
    return NULL;
}

const char *driver_status_text(int status)
{
    switch (status) {
    case DRIVER_OK:
        return "ok";
    case DRIVER_TIMEOUT:
        return "timed out";
    case DRIVER_CORRUPT:
        return "corrupt reply";
    case DRIVER_EXCEPTION:
        return "refused by the device";
    case DRIVER_IO:
        return "port failed";
    case DRIVER_MISMATCH:
        return "host test ID mismatch";
    case DRIVER_BUSY_PORT:
        return "port busy";
    case DRIVER_WRONG_MODEL:
        return "wrong model";
    default:
        return "unknown error";
    }
}

void driver_clean_text(char *text)
{
    for (unsigned char *p = (unsigned char *)text; *p != '\0'; p++) {
        if (*p < 0x20 || *p > 0x7e) {
            *p = '?';
        }
    }
}

void driver_format_date(uint32_t yyyymmdd, char out[11])
{
    snprintf(out, 11, "%04u-%02u-%02u", yyyymmdd / 10000 % 10000, yyyymmdd / 100 % 100,
             yyyymmdd % 100);
}
