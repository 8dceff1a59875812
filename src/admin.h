/* admin.h -- the admin HTTP API (libevent evhttp) on the main thread. */
#ifndef ROOMD_ADMIN_H
#define ROOMD_ADMIN_H

#include <event2/event.h>

/* Listen on admin_bind:admin_port; returns 0 (also when the API is off
 * because admin_key is empty), or -1 after logging why. */
int admin_start(struct event_base *base);
void admin_stop(void);

#endif
