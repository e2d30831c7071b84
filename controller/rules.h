/* Licence rules, read from a tab-separated file with one rule a row (id,
 * predicate, window, decision, text, source, enabled). Predicates are the
 * fixed set below, each coded in engine.c. A set's version is the SHA-256
 * of its canonical text, and a "%label" line names it. */
#ifndef TOXLAB_RULES_H
#define TOXLAB_RULES_H

#include "controller/tsv.h"

#include <stdbool.h>
#include <stddef.h>

#define RULES_MAX 64

/* Decisions, weakest first: when several rules fire the strongest wins. */
enum decision {
    DECISION_NONE,
    DECISION_FLAG,
    DECISION_REFUSE,
    DECISION_CANCEL,
    DECISION_VOID_NOTICE,
};

enum predicate {
    PREDICATE_DRUG_USE,                 /* a released, confirmed positive result */
    PREDICATE_ISOLATION_RELEASE,        /* released from compulsory isolation */
    PREDICATE_DEPENDENCE,               /* long-term psychotropic dependence, not cured */
    PREDICATE_DRUG_DRIVING_ORDER,       /* drug driving plus a detox, rehabilitation or
                                           isolation order */
    PREDICATE_CANCEL_NOT_HANDED_BACK,   /* a cancel fired and a licence was not handed back */
    PREDICATE_REVOKED_DRUNK,            /* revoked for drunk driving, or drink-driving a
                                           commercial vehicle */
    PREDICATE_REVOKED_COMMERCIAL_DRUNK, /* revoked for drunk-driving a commercial vehicle */
    PREDICATE_SERIOUS_CRASH,            /* traffic crime after drinking, serious crash */
    PREDICATE_SCREEN_POSITIVE,          /* a presumptive screen not yet confirmed */
    PREDICATE_COUNT
};

enum window {
    WINDOW_YEARS,  /* N years after the event, counted by periods.c */
    WINDOW_LIFE,   /* never ends */
    WINDOW_STATUS, /* while a status lasts */
    WINDOW_NONE,   /* no period: the decision lasts while its condition is true */
};

struct rule {
    char id[16];
    enum predicate predicate;
    enum window window;
    int years; /* for WINDOW_YEARS */
    enum decision decision;
    char text[256];
    char source[160];
    bool enabled;
    int line;
};

struct rule_set {
    char label[128];
    char version[TSV_VERSION_HEX];
    char *canonical;
    size_t count;
    struct rule rules[RULES_MAX];
};

/* Parses the text of a rules file. Returns 0, or -1 with "NAME:LINE:
 * reason" in err; the set is then empty. */
int rules_parse(const char *text, const char *name, struct rule_set *set, char *err,
                size_t err_size);

/* Reads and parses a file. */
int rules_load(const char *path, struct rule_set *set, char *err, size_t err_size);

void rules_free(struct rule_set *set);

const char *decision_name(enum decision decision);
const char *predicate_name(enum predicate predicate);

/* Writes a window as the file spells it: "3y", "life", "status" or "none". */
void window_format(const struct rule *rule, char *out, size_t size);

#endif
