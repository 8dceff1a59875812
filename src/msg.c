/* msg.c -- see msg.h. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msg.h"

struct msg *msg_new(json_object *obj)
{
    size_t len;
    const char *text = json_object_to_json_string_length(obj, ROOMD_JSON_FLAGS, &len);
    return msg_new_text(text, len);
}

struct msg *msg_new_text(const char *text, size_t len)
{
    struct msg *m = malloc(sizeof(*m) + len + 2);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->len = len;
    memcpy(m->data, text, len);
    m->data[len] = '\r';
    m->data[len + 1] = '\n';
    return m;
}

struct msg *msg_ref(struct msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void msg_unref(struct msg *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

json_object *msg_chat_json(json_object *message, const char *room, const char *from_id)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "message", message);
    if (room)
        json_object_object_add(o, "room", json_object_new_string(room));
    json_object_object_add(o, "from",
                           from_id ? json_object_new_string(from_id) : json_object_new_int(0));
    json_object_object_add(o, "context", json_object_new_string("user"));
    json_object_object_add(o, "sentAt", json_object_new_int64(now_ms()));
    return o;
}
