/* The licence rule engine: a pure function of the evidence, the rules, the
 * question and the as-of date. It reads no database and no clock, so tests
 * and "toxlab licence evaluate" run it exactly as toxlabd does. */
#ifndef TOXLAB_ENGINE_H
#define TOXLAB_ENGINE_H

#include "controller/evidence.h"
#include "controller/rules.h"

#include <jansson.h>

enum question {
    QUESTION_APPLICATION, /* may the subject apply for a licence: refuse and flag rules */
    QUESTION_HOLDER,      /* must the subject's licence go: cancel, void-notice and flag rules */
    QUESTION_STOP,        /* the screening decision of one stop: flag rules only */
};

/* Parses "application" or "holder" (QUESTION_STOP is internal). Returns 0 or -1. */
int question_parse(const char *text, enum question *question);
const char *question_name(enum question question);

/* Decides a question on as_of (YYYYMMDD). Returns the decision object of
 * docs/rules.md: the decision, each rule that fired with its evidence and
 * end, and the policy choices applied. */
json_t *engine_decide(const struct rule_set *rules, const struct evidence *evidence,
                      enum question question, int as_of);

#endif
