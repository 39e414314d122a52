/*
 * Post-login byte relay between the client and the upstream: no parsing,
 * evbuffers moved across, backpressure by pausing the reading side while
 * the writing side holds more than RELAY_HWM bytes.
 */
#ifndef PROXY_RELAY_H
#define PROXY_RELAY_H

#include <stdint.h>

struct bufferevent;
struct sess;
struct relay;

#define RELAY_HWM	(256 * 1024)	/* per direction, bytes queued */
#define RELAY_LWM	(64 * 1024)	/* resume reading below this */

/* Takes ownership of up (freed with the relay). Installs its callbacks on
 * both bufferevents and moves any bytes already buffered on either side. */
struct relay	*relay_new(struct sess *, struct bufferevent *up);
/* Stops relaying in both directions (the upstream is not read any more,
 * the client's input is dropped) and closes the session once the output
 * queued for the client is written; reason is a static string. */
void		 relay_finish(struct relay *, const char *reason);
void		 relay_free(struct relay **);
uint64_t	 relay_bytes_in(const struct relay *);	/* client -> up */
uint64_t	 relay_bytes_out(const struct relay *);	/* up -> client */

#endif
