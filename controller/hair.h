/* The daemon's side of the hair analyzer: storing and linking uploaded
 * results, answering queries, and the analyst's commands on laboratory
 * results. Runs on the event loop's thread. */
#ifndef TOXLAB_HAIR_H
#define TOXLAB_HAIR_H

#include "controller/daemon.h"
#include "controller/request.h"

/* Stores an upload and then releases its held ACK, or answers a query. */
void hair_handle_upload(struct daemon *daemon, struct instrument *inst,
                        const struct driver_upload *upload);

/* Checks the hair segment arguments of specimen.add. Returns NULL or the
 * error response. */
json_t *hair_check_segment(const struct request *req, const char *matrix);

/* Stores the segment arguments, if any, inside specimen.add's transaction. */
int hair_store_segment(const struct request *req, const char *specimen_id);

json_t *cmd_specimen_show(const struct request *req);
json_t *cmd_result_unlinked(const struct request *req);
json_t *cmd_result_link(const struct request *req);
json_t *cmd_result_release(const struct request *req);

#endif
