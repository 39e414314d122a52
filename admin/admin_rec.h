/*
 * What the handlers of JSON records kept in Redis (accounts, OAuth2
 * applications) share: the per-request state and the PUT flow, which
 * reads the stored record, validates the body against it and writes the
 * result with compare-and-set, reading again when someone else wrote
 * first. Not for use outside admin/.
 */
#ifndef ADMIN_ADMIN_REC_H
#define ADMIN_ADMIN_REC_H

#include <stdbool.h>

#include <cJSON.h>

#define ADMIN_REC_RETRIES	3	/* compare-and-set attempts */

struct admin_req;
struct account_json_err;

/* Handler state (ar->hctx), freed with the request. */
struct admin_rec {
	char		*id;		/* the record's id */
	cJSON		*body;		/* PUT: kept for retries */
	long long	 page, size;	/* list */
};

/* One kind of record, for the PUT flow. */
struct admin_rec_kind {
	const char	*notfound;	/* the 404 message */
	const char	*busy;		/* the 409 message */
	const char	*(*errstr)(void);	/* the store's last failure */
	/* Reads record rec->id; its callback goes on with
	 * admin_rec_text() and the compare-and-set write. */
	void		(*read)(struct admin_req *);
};

/* A new zeroed state, set as ar->hctx. */
struct admin_rec *admin_rec_new(struct admin_req *);

/*
 * PUT /…/{id}: the body must be a JSON object (else 400) and the id valid
 * (else 404). Keeps both in a new state and calls kind->read.
 */
void	 admin_rec_update(struct admin_req *, const struct admin_rec_kind *);

/*
 * The compare-and-set result rc: 1 returns true, and the caller logs and
 * replies. 0 replies 404; 2 (changed meanwhile) calls kind->read again, up
 * to ADMIN_REC_RETRIES attempts, then replies 409; else replies 503.
 */
bool	 admin_rec_updated(struct admin_req *, const struct admin_rec_kind *,
	    int rc);

/* The validated record rec (consumed) as text to store, for cJSON_free.
 * rec NULL: replies the validation error e and returns NULL. */
char	*admin_rec_text(struct admin_req *, cJSON *rec,
	    const struct account_json_err *e);

/* Adds a time member: ISO 8601, or null for ms <= 0 (never). */
void	 admin_rec_add_time(cJSON *o, const char *name, long long ms);

#endif
