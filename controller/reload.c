/* SIGHUP: the configuration file, the threshold set and the rules are read again.
 * Keys that can change under a running daemon take effect; the others are
 * logged with a request to restart, and keep their old values. */
#include "controller/reload.h"

#include "controller/db.h"
#include "controller/db_licence.h"
#include "controller/storage.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void log_text_change(const char *key, const char *old_value, const char *new_value,
                            bool applied)
{
    if (strcmp(old_value, new_value) == 0) {
        return;
    }
    log_msg(LOG_NOTICE, "reload: %s changed from '%s' to '%s'%s", key, old_value, new_value,
            applied ? "" : "; restart toxlabd to apply it");
}

static void log_number_change(const char *key, long long old_value, long long new_value)
{
    if (old_value != new_value) {
        log_msg(LOG_NOTICE, "reload: %s changed from %lld to %lld", key, old_value, new_value);
    }
}

/* Applies the [daemon] keys that can change while running, and logs the rest. */
static void reload_daemon_keys(struct config *current, const struct config *fresh)
{
    log_text_change("daemon.lab_id", current->lab_id, fresh->lab_id, false);
    log_text_change("daemon.database", current->database, fresh->database, false);
    log_text_change("daemon.socket", current->socket_path, fresh->socket_path, false);
    log_text_change("daemon.socket_group", current->socket_group, fresh->socket_group, false);
    log_text_change("daemon.thresholds", current->thresholds, fresh->thresholds, true);
    log_text_change("daemon.rules", current->rules, fresh->rules, true);
    log_text_change("daemon.timezone", current->timezone, fresh->timezone, true);
    log_number_change("daemon.max_clients", current->max_clients, fresh->max_clients);
    log_number_change("daemon.busy_timeout_ms", current->busy_timeout_ms, fresh->busy_timeout_ms);
    log_number_change("daemon.max_database_kb", current->max_database_kb, fresh->max_database_kb);
    log_number_change("daemon.cache_kb", current->cache_kb, fresh->cache_kb);
    snprintf(current->thresholds, sizeof(current->thresholds), "%s", fresh->thresholds);
    snprintf(current->rules, sizeof(current->rules), "%s", fresh->rules);
    snprintf(current->timezone, sizeof(current->timezone), "%s", fresh->timezone);
    current->max_clients = fresh->max_clients;
    server_fit_clients(current);
    current->busy_timeout_ms = fresh->busy_timeout_ms;
    current->max_database_kb = fresh->max_database_kb;
    current->cache_kb = fresh->cache_kb;
}

static void reload_alcohol(struct config *current, const struct config *fresh)
{
    const struct alcohol_config *old_alcohol = &current->alcohol;
    const struct alcohol_config *new_alcohol = &fresh->alcohol;

    log_number_change("alcohol.factor", old_alcohol->factor, new_alcohol->factor);
    log_text_change("alcohol.drink_limit", old_alcohol->drink_limit, new_alcohol->drink_limit,
                    true);
    log_text_change("alcohol.drunk_limit", old_alcohol->drunk_limit, new_alcohol->drunk_limit,
                    true);
    log_text_change("alcohol.source", old_alcohol->source, new_alcohol->source, true);
    log_number_change("alcohol.blood_on", old_alcohol->blood_on, new_alcohol->blood_on);
    log_text_change("alcohol.blood_source", old_alcohol->blood_source, new_alcohol->blood_source,
                    true);
    current->alcohol = fresh->alcohol;
}

/* Instrument sections are read by the line threads, so changes to them are
 * only logged. */
static void log_instrument_changes(const struct config *current, const struct config *fresh)
{
    for (size_t i = 0; i < fresh->instrument_count; i++) {
        const struct instrument_config *fresh_inst = &fresh->instruments[i];
        const struct instrument_config *old = config_find_instrument(current, fresh_inst->id);
        if (old == NULL) {
            log_msg(LOG_NOTICE, "reload: instrument %s added; restart toxlabd to use it",
                    fresh_inst->id);
        } else if (memcmp(old, fresh_inst, sizeof(*old)) != 0) {
            log_msg(LOG_NOTICE, "reload: instrument %s changed; restart toxlabd to apply it",
                    fresh_inst->id);
        }
    }
    for (size_t i = 0; i < current->instrument_count; i++) {
        if (config_find_instrument(fresh, current->instruments[i].id) == NULL) {
            log_msg(LOG_NOTICE, "reload: instrument %s removed; restart toxlabd to stop it",
                    current->instruments[i].id);
        }
    }
}

/* Replaces a threshold set or rule set in force and logs the change. */
static void log_version_change(const char *what, const char *label, const char *old_version,
                               const char *new_version)
{
    /* At start-up there is no set in force; toxlabd logs the set it loads. */
    if (old_version[0] != '\0' && strcmp(old_version, new_version) != 0) {
        log_msg(LOG_NOTICE, "%s '%s' version %.12s replaces version %.12s", what, label,
                new_version, old_version);
    }
}

int reload_rule_files(struct daemon *daemon, char *err, size_t err_size)
{
    struct threshold_set thresholds;
    struct rule_set rules;

    if (thresholds_load(daemon->config.thresholds, &thresholds, err, err_size) != 0) {
        return -1;
    }
    if (rules_load(daemon->config.rules, &rules, err, err_size) != 0) {
        thresholds_free(&thresholds);
        return -1;
    }
    log_version_change("threshold set", thresholds.label, daemon->thresholds.version,
                       thresholds.version);
    log_version_change("rule set", rules.label, daemon->rules.version, rules.version);
    thresholds_free(&daemon->thresholds);
    rules_free(&daemon->rules);
    daemon->thresholds = thresholds;
    daemon->rules = rules;
    if (daemon->db != NULL && (db_threshold_set_store(daemon->db, &daemon->thresholds) != 0 ||
                               db_rule_set_store(daemon->db, &daemon->rules) != 0)) {
        snprintf(err, err_size, "storing the threshold set or rule set failed: %s",
                 db_errmsg(daemon->db));
        return -1;
    }
    return 0;
}

void reload_configuration(struct daemon *daemon, const struct config *fresh)
{
    if (fresh != NULL) {
        reload_daemon_keys(&daemon->config, fresh);
        reload_alcohol(&daemon->config, fresh);
        log_instrument_changes(&daemon->config, fresh);
        setenv("TZ", daemon->config.timezone, 1);
        tzset();
        sqlite3_busy_timeout(daemon->db, daemon->config.busy_timeout_ms);
        storage_apply_limit(daemon);
    }
    char err[512];
    if (reload_rule_files(daemon, err, sizeof(err)) != 0) {
        log_msg(LOG_ERR, "reload: %s; the threshold set and rules in force stay", err);
    }
}
