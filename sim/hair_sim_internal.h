/* Scenario types shared by the hair sim's parser and its link code. */
#ifndef TOXLAB_SIM_HAIR_SIM_INTERNAL_H
#define TOXLAB_SIM_HAIR_SIM_INTERNAL_H

#include "sim/scenario_parse.h"

#include <stdbool.h>
#include <stddef.h>

#define HAIR_MAX_MESSAGES 64
#define HAIR_MAX_CODES 16

enum hair_fault {
    HAIR_FAULT_NONE,
    HAIR_FAULT_CHECKSUM,     /* the first frame's first send has a wrong checksum */
    HAIR_FAULT_FRAME_NUMBER, /* the first frame's first send has a wrong frame number */
    HAIR_FAULT_SPLIT,        /* frames of 20 characters, so records span frames */
    HAIR_FAULT_CONTENTION,   /* answer the host's ENQ with ENQ */
    HAIR_FAULT_INTERRUPT,    /* answer the first frame of the host's answer with EOT */
    HAIR_FAULT_NOISE,        /* stray bytes before every frame */
    HAIR_FAULT_SILENCE,      /* stop after the first frame for silence_ms, then start over */
    HAIR_FAULT_DUPLICATE,    /* send the message twice */
};

struct hair_message {
    bool defined;
    char barcode[64];
    char subject[64];
    char second_barcode[64]; /* a second P and O block with the same R records, or empty */
    char second_subject[64];
    bool query;
    char status;
    char unit[12];
    char completed[16];
    size_t code_count;
    char codes[HAIR_MAX_CODES][16];
    char values[HAIR_MAX_CODES][32];
    int fault;
};

struct hair_scenario {
    char id[32];
    int reply_timeout_ms;
    int silence_ms;
    int contention_retry_ms;
    int count; /* highest message number defined */
    struct hair_message messages[HAIR_MAX_MESSAGES];
};

struct hair_load {
    struct scenario_parser parser;
    struct hair_scenario *scenario;
};

void *hair_load_scenario(const char *path);

#endif
