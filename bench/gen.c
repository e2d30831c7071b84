/* toxlab-bench-gen: writes a seeded, deterministic database for the
 * benchmarks. The schema comes from the daemon's own db_open, so it
 * follows the daemon's code, and the rows go in with bulk SQL. Subjects get
 * resident IDs with address code 999999, which belongs to no place, and
 * valid GB 11643 check characters. Each result is one stop with one test:
 * an oral-fluid screen over six analytes or a breath-alcohol test, with
 * the stop's screening decision. The same seed and sizes give the same
 * rows, IDs included. */
#define _GNU_SOURCE
#include "controller/alcohol.h"
#include "controller/config.h"
#include "controller/db.h"
#include "controller/interpret.h"
#include "controller/thresholds.h"
#include "controller/timefmt.h"
#include "controller/ulid.h"
#include "protocol/decimal.h"
#include "protocol/subject_id.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Version of the generated rows. bench/run keeps a generated file while
 * this, the schema in controller/db.c and the threshold set stay the same. */
#define GEN_FORMAT 1

#define LAB "GEN01"
#define BATCH_RESULTS 20000
#define SALIVA_PANEL 6
#define DAY_MS 86400000LL
#define FIRST_RESULT_MS 1704067200000LL /* 2024-01-01T00:00:00Z */
#define RESULT_SPAN_MS (3 * 365 * DAY_MS)

struct gen_options {
    long subjects;
    long results;
    unsigned long long seed;
    const char *database;
    const char *thresholds;
};

/* The insert statements, in the order of gen_sql below. */
enum { ST_SUBJECT, ST_STOP, ST_SPECIMEN, ST_TEST, ST_RESULT, ST_ANALYTE, ST_DECISION, ST_COUNT };

static const char *const gen_sql[ST_COUNT] = {
    "INSERT INTO subjects (id, id_type, number, created) VALUES (?1, 'resident', ?2, ?3)",
    "INSERT INTO stops (id, subject_id, driving, opened) VALUES (?1, ?2, 1, ?3)",
    "INSERT INTO specimens (id, barcode, subject_id, stop_id, matrix, collected, collected_date,"
    " created) VALUES (?1, ?2, ?3, ?4, 'oral-fluid', ?5, ?6, ?5)",
    "INSERT INTO tests (id, stop_id, instrument, specimen_id, host_test_id, state, created,"
    " updated) VALUES (?1, ?2, ?3, ?4, ?5, 'completed', ?6, ?6)",
    "INSERT INTO results (id, test_id, host_test_id, sequence, instrument, serial, firmware,"
    " calibration, cartridge_lot, cartridge_expiry, matrix, tier, received, clock_synced,"
    " timezone, threshold_version, breath_outcome, breath_raw, breath_flags, temperature,"
    " alcohol_band, blood_equivalent, alcohol_factor, drink_limit, drunk_limit, alcohol_source,"
    " subject_id, specimen_id, collected_date)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'screen', ?12, 1, 'Asia/Shanghai',"
    " ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)",
    "INSERT INTO result_analytes (result_id, position, analyte, value_text, value_micro, unit,"
    " over_range, under_range, outcome, reason, cutoff_text, cutoff_unit, threshold_line,"
    " threshold_source) VALUES (?1, ?2, ?3, ?4, ?5, 'ng/mL', 0, 0, ?6, ?7, ?8, ?9, ?10, ?11)",
    "INSERT INTO decisions (id, stop_id, subject_id, question, decision, rules, evidence,"
    " actions, created) VALUES (?1, ?2, ?3, 'screen', ?4, ?5, ?6, ?7, ?8)",
};

struct gen {
    struct gen_options options;
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT];
    struct threshold_set thresholds;
    struct config config;
    unsigned long long state; /* splitmix64 */
};

/* One analyte of the panel with how often a screen finds it at or over
 * its cutoff, in parts per thousand (an estimate for roadside screening). */
struct analyte_mix {
    const char *name;
    int per_mille;
    int typical_ng; /* concentration of a presumptive finding */
};

static const struct analyte_mix panel[SALIVA_PANEL] = {
    {"thc", 20, 25},  {"amphetamine", 8, 180}, {"methamphetamine", 30, 240},
    {"mdma", 5, 150}, {"cocaine", 6, 90},      {"morphine", 4, 70},
};

static unsigned long long next_random(struct gen *gen)
{
    unsigned long long z = (gen->state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static long random_below(struct gen *gen, long bound)
{
    return (long)(next_random(gen) % (unsigned long long)bound);
}

static void fail_sql(struct gen *gen, const char *operation)
{
    fprintf(stderr, "toxlab-bench-gen: %s failed: %s\n", operation, sqlite3_errmsg(gen->db));
    exit(1);
}

static void exec(struct gen *gen, const char *sql)
{
    if (sqlite3_exec(gen->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        fail_sql(gen, sql);
    }
}

/* Writes a "LAB-ULID" ID for a time, with random bits from the seed. */
static void make_id(struct gen *gen, int64_t ms, char out[RECORD_ID_SIZE])
{
    uint8_t random[10];
    char ulid[ULID_TEXT_LEN + 1];

    for (size_t i = 0; i < sizeof(random); i++) {
        random[i] = (uint8_t)next_random(gen);
    }
    ulid_encode(ms, random, ulid);
    snprintf(out, RECORD_ID_SIZE, "%s-%s", LAB, ulid);
}

static void bind_text(sqlite3_stmt *stmt, int index, const char *text)
{
    sqlite3_bind_text(stmt, index, text, -1, SQLITE_TRANSIENT);
}

static void step(struct gen *gen, int which)
{
    sqlite3_stmt *stmt = gen->stmt[which];

    if (sqlite3_step(stmt) != SQLITE_DONE) {
        fail_sql(gen, gen_sql[which]);
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

/* Writes subject i's resident ID: address 999999, a birth date from
 * 1950-01-01 on, a sequence number and the check character. Each i gets
 * its own (date, sequence) pair because 7 and 20000 share no factor. */
static void subject_number(long i, char out[64])
{
    long day = (i % 20000) * 7 % 20000;
    long sequence = i / 20000 % 1000;
    time_t birth = (time_t)(-631152000LL + day * 86400); /* 1950-01-01 */
    struct tm date;

    gmtime_r(&birth, &date);
    snprintf(out, 64, "999999%04d%02d%02d%03ld", date.tm_year + 1900, date.tm_mon + 1, date.tm_mday,
             sequence);
    out[17] = subject_resident_check_char(out);
    out[18] = '\0';
}

/* Derives subject i's ID from the seed and i alone, so that a result names
 * its subject without a lookup. The ID's time is i ms after 2020-01-01. */
static void subject_id(struct gen *gen, long i, char out[RECORD_ID_SIZE])
{
    unsigned long long saved = gen->state;

    gen->state = gen->options.seed ^ (unsigned long long)i * 0x2545f4914f6cdd1dULL;
    make_id(gen, 1577836800000LL + i, out);
    gen->state = saved;
}

static void insert_subjects(struct gen *gen)
{
    char id[RECORD_ID_SIZE];
    char number[64];
    char created[TIMESTAMP_SIZE];

    exec(gen, "BEGIN");
    for (long i = 0; i < gen->options.subjects; i++) {
        sqlite3_stmt *stmt = gen->stmt[ST_SUBJECT];

        subject_id(gen, i, id);
        subject_number(i, number);
        time_format_utc(1577836800000LL + i, created);
        bind_text(stmt, 1, id);
        bind_text(stmt, 2, number);
        bind_text(stmt, 3, created);
        step(gen, ST_SUBJECT);
    }
    exec(gen, "COMMIT");
}

/* IDs and times shared by the rows of one result. */
struct result_ids {
    char subject[RECORD_ID_SIZE];
    char stop[RECORD_ID_SIZE];
    char specimen[RECORD_ID_SIZE];
    char test[RECORD_ID_SIZE];
    char result[RECORD_ID_SIZE];
    char decision[RECORD_ID_SIZE];
    char time[TIMESTAMP_SIZE];
    int64_t ms;
    long index;
};

/* Spreads four fifths of the results evenly over the subjects and the
 * rest over the first twentieth of them, as repeat offenders (an
 * estimate). */
static long pick_subject(struct gen *gen)
{
    long subjects = gen->options.subjects;

    if (random_below(gen, 5) == 0) {
        return random_below(gen, subjects / 20 > 0 ? subjects / 20 : 1);
    }
    return random_below(gen, subjects);
}

static void insert_stop_and_test(struct gen *gen, const struct result_ids *ids, bool saliva)
{
    sqlite3_stmt *stop = gen->stmt[ST_STOP];
    sqlite3_stmt *test = gen->stmt[ST_TEST];

    bind_text(stop, 1, ids->stop);
    bind_text(stop, 2, ids->subject);
    bind_text(stop, 3, ids->time);
    step(gen, ST_STOP);
    if (saliva) {
        sqlite3_stmt *specimen = gen->stmt[ST_SPECIMEN];
        char barcode[32];

        snprintf(barcode, sizeof(barcode), "OF-%010ld", ids->index);
        bind_text(specimen, 1, ids->specimen);
        bind_text(specimen, 2, barcode);
        bind_text(specimen, 3, ids->subject);
        bind_text(specimen, 4, ids->stop);
        bind_text(specimen, 5, ids->time);
        sqlite3_bind_int(specimen, 6, time_local_date(ids->ms));
        step(gen, ST_SPECIMEN);
        bind_text(test, 4, ids->specimen);
    }
    bind_text(test, 1, ids->test);
    bind_text(test, 2, ids->stop);
    bind_text(test, 3, saliva ? "saliva-1" : "breath-1");
    sqlite3_bind_int64(test, 5, (int64_t)(next_random(gen) & 0xffffffffULL) | 1);
    bind_text(test, 6, ids->time);
    step(gen, ST_TEST);
}

static void bind_result_common(struct gen *gen, const struct result_ids *ids, bool saliva)
{
    sqlite3_stmt *stmt = gen->stmt[ST_RESULT];

    bind_text(stmt, 1, ids->result);
    bind_text(stmt, 2, ids->test);
    sqlite3_bind_int64(stmt, 3, (int64_t)(next_random(gen) & 0xffffffffULL));
    sqlite3_bind_int64(stmt, 4, ids->index % 65536);
    bind_text(stmt, 5, saliva ? "saliva-1" : "breath-1");
    bind_text(stmt, 6, saliva ? "SAL-0001" : "BA-0001");
    bind_text(stmt, 7, saliva ? "2.1.0" : "1.4.2");
    bind_text(stmt, 8, saliva ? "2026-10-01" : "2026-09-15");
    if (saliva) {
        bind_text(stmt, 9, "L2409A");
        bind_text(stmt, 10, "2027-06-30");
    }
    bind_text(stmt, 11, saliva ? "oral-fluid" : "breath");
    bind_text(stmt, 12, ids->time);
    bind_text(stmt, 13, gen->thresholds.version);
    bind_text(stmt, 24, ids->subject);
    if (saliva) {
        bind_text(stmt, 25, ids->specimen);
    }
    sqlite3_bind_int(stmt, 26, time_local_date(ids->ms));
}

/* Returns true when an analyte came out presumptive. */
static bool insert_saliva(struct gen *gen, const struct result_ids *ids)
{
    bool presumptive = false;

    bind_result_common(gen, ids, true);
    step(gen, ST_RESULT);
    for (int i = 0; i < SALIVA_PANEL; i++) {
        sqlite3_stmt *stmt = gen->stmt[ST_ANALYTE];
        bool found = random_below(gen, 1000) < panel[i].per_mille;
        int64_t micro =
            found ? (int64_t)panel[i].typical_ng * 1000000 : random_below(gen, 3) * 100000;
        struct reading_in in = {.matrix = "oral-fluid",
                                .tier = "screen",
                                .analyte = panel[i].name,
                                .value_micro = micro,
                                .unit = "ng/mL",
                                .collection_date = time_local_date(ids->ms)};
        struct interpretation verdict;
        char value[32];

        interpret_reading(&gen->thresholds, &in, &verdict);
        presumptive |= verdict.outcome == OUTCOME_PRESUMPTIVE;
        decimal_format(micro, 3, value, sizeof(value));
        bind_text(stmt, 1, ids->result);
        sqlite3_bind_int(stmt, 2, i);
        bind_text(stmt, 3, panel[i].name);
        bind_text(stmt, 4, value);
        sqlite3_bind_int64(stmt, 5, micro);
        bind_text(stmt, 6, outcome_name(verdict.outcome));
        if (verdict.outcome == OUTCOME_INVALID) {
            bind_text(stmt, 7, verdict.reason);
        }
        if (verdict.row != NULL) {
            bind_text(stmt, 8, verdict.row->cutoff_text);
            bind_text(stmt, 9, verdict.row->unit);
            sqlite3_bind_int(stmt, 10, verdict.row->line);
            bind_text(stmt, 11, verdict.row->source);
        }
        step(gen, ST_ANALYTE);
    }
    return presumptive;
}

/* Breath results: nine in ten below the drink-driving limit. Returns the
 * band's name. */
static const char *insert_breath(struct gen *gen, const struct result_ids *ids)
{
    const struct alcohol_config *alcohol = &gen->config.alcohol;
    long roll = random_below(gen, 100);
    uint32_t raw = roll < 90   ? (uint32_t)random_below(gen, 300)
                   : roll < 97 ? 910 + (uint32_t)random_below(gen, 2700)
                               : 3640 + (uint32_t)random_below(gen, 4000);
    int64_t blood_micro = alcohol_blood_micro(raw, alcohol->factor);
    const char *band =
        alcohol_band_name(alcohol_band_of(blood_micro, alcohol->drink_micro, alcohol->drunk_micro));
    sqlite3_stmt *stmt = gen->stmt[ST_RESULT];
    char blood[32];

    decimal_format(blood_micro, 3, blood, sizeof(blood));
    bind_result_common(gen, ids, false);
    bind_text(stmt, 14, "measured");
    sqlite3_bind_int64(stmt, 15, raw);
    sqlite3_bind_int(stmt, 16, 0);
    sqlite3_bind_int(stmt, 17, 180 + (int)random_below(gen, 100));
    bind_text(stmt, 18, band);
    bind_text(stmt, 19, blood);
    sqlite3_bind_int(stmt, 20, alcohol->factor);
    bind_text(stmt, 21, alcohol->drink_limit);
    bind_text(stmt, 22, alcohol->drunk_limit);
    bind_text(stmt, 23, alcohol->source);
    step(gen, ST_RESULT);
    return band;
}

static void insert_decision(struct gen *gen, const struct result_ids *ids, bool presumptive,
                            const char *band)
{
    sqlite3_stmt *stmt = gen->stmt[ST_DECISION];
    char evidence[RECORD_ID_SIZE + 8];
    const char *actions = "[]";

    if (presumptive) {
        actions = "[\"laboratory specimen required\"]";
    } else if (band != NULL && strcmp(band, "drunk") == 0) {
        actions = "[\"blood sample required (drunk-driving breath result)\"]";
    }
    snprintf(evidence, sizeof(evidence), "[\"%s\"]", ids->result);
    bind_text(stmt, 1, ids->decision);
    bind_text(stmt, 2, ids->stop);
    bind_text(stmt, 3, ids->subject);
    bind_text(stmt, 4, presumptive ? "flag" : "none");
    bind_text(stmt, 5,
              presumptive ? "[\"positive screen: take a laboratory specimen; no licence action\"]"
                          : "[]");
    bind_text(stmt, 6, presumptive ? evidence : "[]");
    bind_text(stmt, 7, actions);
    bind_text(stmt, 8, ids->time);
    step(gen, ST_DECISION);
}

static void insert_result(struct gen *gen, long index)
{
    struct result_ids ids = {.index = index};
    bool saliva = random_below(gen, 10) < 6;
    bool presumptive = false;
    const char *band = NULL;

    ids.ms = FIRST_RESULT_MS + (int64_t)((double)RESULT_SPAN_MS * index / gen->options.results);
    time_format_utc(ids.ms, ids.time);
    subject_id(gen, pick_subject(gen), ids.subject);
    make_id(gen, ids.ms, ids.stop);
    make_id(gen, ids.ms, ids.specimen);
    make_id(gen, ids.ms, ids.test);
    make_id(gen, ids.ms, ids.result);
    make_id(gen, ids.ms, ids.decision);
    insert_stop_and_test(gen, &ids, saliva);
    if (saliva) {
        presumptive = insert_saliva(gen, &ids);
    } else {
        band = insert_breath(gen, &ids);
    }
    insert_decision(gen, &ids, presumptive, band);
}

static void insert_results(struct gen *gen)
{
    for (long i = 0; i < gen->options.results; i += BATCH_RESULTS) {
        exec(gen, "BEGIN");
        for (long j = i; j < gen->options.results && j < i + BATCH_RESULTS; j++) {
            insert_result(gen, j);
        }
        exec(gen, "COMMIT");
    }
}

static void usage(FILE *out)
{
    fprintf(out, "usage: toxlab-bench-gen [--subjects N] [--results N] [--seed N]\n"
                 "                        [--thresholds FILE] DATABASE\n"
                 "\n"
                 "Writes a new SQLite database with toxlabd's schema and N subjects\n"
                 "(default 1000000) and N results (default 5000000), the same rows for the\n"
                 "same seed (default 1). FILE is the threshold set that judges the readings\n"
                 "(default $TOXLAB_SOURCE_DIR/etc/thresholds.tsv). DATABASE must not exist.\n");
}

static int parse_options(int argc, char **argv, struct gen_options *options)
{
    static const struct option long_options[] = {
        {"subjects", required_argument, NULL, 's'}, {"results", required_argument, NULL, 'r'},
        {"seed", required_argument, NULL, 'S'},     {"thresholds", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (c == 's') {
            options->subjects = atol(optarg);
        } else if (c == 'r') {
            options->results = atol(optarg);
        } else if (c == 'S') {
            options->seed = strtoull(optarg, NULL, 10);
        } else if (c == 't') {
            options->thresholds = optarg;
        } else {
            usage(c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1 || options->subjects < 1 || options->results < 0) {
        fprintf(stderr, "toxlab-bench-gen: expected one DATABASE, at least one subject and no "
                        "negative count\n");
        usage(stderr);
        return 2;
    }
    options->database = argv[optind];
    return -1;
}

/* Drops every audit_* trigger, so the bulk load writes no audit entries. */
static void drop_audit_triggers(struct gen *gen)
{
    sqlite3_stmt *stmt;
    char sql[256];

    for (;;) {
        if (sqlite3_prepare_v2(gen->db,
                               "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name"
                               " LIKE 'audit%' LIMIT 1",
                               -1, &stmt, NULL) != SQLITE_OK) {
            fail_sql(gen, "listing the audit triggers");
        }
        if (sqlite3_step(stmt) != SQLITE_ROW) {
            sqlite3_finalize(stmt);
            return;
        }
        snprintf(sql, sizeof(sql), "DROP TRIGGER \"%s\"", sqlite3_column_text(stmt, 0));
        sqlite3_finalize(stmt);
        exec(gen, sql);
    }
}

static void open_database(struct gen *gen)
{
    char err[512];

    if (access(gen->options.database, F_OK) == 0) {
        fprintf(stderr, "toxlab-bench-gen: %s already exists (give the path of a new file)\n",
                gen->options.database);
        exit(2);
    }
    if (db_open(gen->options.database, 5000, &gen->db, err, sizeof(err)) != 0) {
        fprintf(stderr, "toxlab-bench-gen: %s\n", err);
        exit(1);
    }
    /* A half-written file is thrown away, so the bulk load needs no
     * journal and no fsync. close_database sets the daemon's modes back. */
    exec(gen, "PRAGMA foreign_keys=OFF; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
              " PRAGMA cache_size=-524288;");
    if (db_threshold_set_store(gen->db, &gen->thresholds) != 0) {
        fail_sql(gen, "storing the threshold set");
    }
    /* db_threshold_set_store stamps the current time. A fixed time keeps
     * the file the same for the same seed, so the generator lifts the
     * append-only guard of this fixture once. The audit triggers go too:
     * the bulk load is not a history, and toxlabd puts them back when it
     * opens the file. */
    exec(gen, "DROP TRIGGER threshold_sets_no_update;"
              " UPDATE threshold_sets SET loaded = '2024-01-01T00:00:00.000Z';");
    drop_audit_triggers(gen);
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v2(gen->db, gen_sql[i], -1, &gen->stmt[i], NULL) != SQLITE_OK) {
            fail_sql(gen, gen_sql[i]);
        }
    }
}

static void close_database(struct gen *gen)
{
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(gen->stmt[i]);
    }
    exec(gen, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
    db_close(gen->db);
}

int main(int argc, char **argv)
{
    static struct gen gen = {.options = {.subjects = 1000000, .results = 5000000, .seed = 1}};
    char thresholds_path[4096];
    char err[512];

    int parsed = parse_options(argc, argv, &gen.options);
    if (parsed >= 0) {
        return parsed;
    }
    if (gen.options.thresholds == NULL) {
        const char *source = getenv("TOXLAB_SOURCE_DIR");
        snprintf(thresholds_path, sizeof(thresholds_path), "%s/etc/thresholds.tsv",
                 source ? source : ".");
        gen.options.thresholds = thresholds_path;
    }
    setenv("TZ", "Asia/Shanghai", 1);
    tzset();
    config_defaults(&gen.config);
    if (thresholds_load(gen.options.thresholds, &gen.thresholds, err, sizeof(err)) != 0) {
        fprintf(stderr, "toxlab-bench-gen: %s\n", err);
        return 1;
    }
    gen.state = gen.options.seed;
    open_database(&gen);
    insert_subjects(&gen);
    insert_results(&gen);
    close_database(&gen);
    thresholds_free(&gen.thresholds);
    printf("generated %s: %ld subjects, %ld results, seed %llu\n", gen.options.database,
           gen.options.subjects, gen.options.results, gen.options.seed);
    return 0;
}
