#include "controller/alcohol.h"

int64_t alcohol_blood_micro(uint32_t breath_raw, int factor)
{
    return (int64_t)breath_raw * factor * 10;
}

enum alcohol_band alcohol_band_of(int64_t blood_micro, int64_t drink_micro, int64_t drunk_micro)
{
    if (blood_micro >= drunk_micro) {
        return ALCOHOL_DRUNK;
    }
    if (blood_micro >= drink_micro) {
        return ALCOHOL_DRINK;
    }
    return ALCOHOL_BELOW;
}

const char *alcohol_band_name(enum alcohol_band band)
{
    switch (band) {
    case ALCOHOL_DRUNK:
        return "drunk";
    case ALCOHOL_DRINK:
        return "drink";
    default:
        return "below";
    }
}
