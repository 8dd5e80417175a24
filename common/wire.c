/* SPDX-License-Identifier: Apache-2.0 */

#include <sys/socket.h>

#include "wire.h"

void wire_message_done(WireMessage *m) {
        if (!m)
                return;
        json_decref(m->data);
        m->data = NULL;
}

static int copy_string(json_t *o, const char *key, char *buf, size_t max, bool required) {
        json_t *v = json_object_get(o, key);
        const char *s;

        if (!v)
                return required ? -EBADMSG : 0;
        if (!json_is_string(v))
                return -EBADMSG;
        s = json_string_value(v);
        if (json_string_length(v) > max || strlen(s) != json_string_length(v)) /* no embedded NULs */
                return -EBADMSG;
        memcpy(buf, s, json_string_length(v) + 1);
        return 0;
}

static int get_u64(json_t *o, const char *key, uint64_t *ret) {
        json_t *v = json_object_get(o, key);

        if (!v)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return -EBADMSG;
        *ret = (uint64_t) json_integer_value(v);
        return 0;
}

int wire_message_parse(const void *buf, size_t size, WireMessage *ret) {
        WireMessage m = {.type = _WIRE_TYPE_INVALID};
        json_t *o = NULL, *v;
        const char *type;
        int r = -EBADMSG;

        if (size == 0 || size > WIRE_MESSAGE_MAX)
                return -EBADMSG;
        o = json_loadb(buf, size, JSON_REJECT_DUPLICATES, NULL);
        if (!o || !json_is_object(o))
                goto out;
        v = json_object_get(o, "type");
        if (!json_is_string(v))
                goto out;
        type = json_string_value(v);

        if (streq(type, "progress")) {
                m.type = WIRE_PROGRESS;
                if (copy_string(o, "phase", m.phase, WIRE_PHASE_MAX, true) < 0 || get_u64(o, "done", &m.done) < 0 ||
                    get_u64(o, "total", &m.total) < 0)
                        goto out;
        } else if (streq(type, "result")) {
                m.type = WIRE_RESULT;
                v = json_object_get(o, "ok");
                if (!json_is_boolean(v))
                        goto out;
                m.ok = json_is_true(v);
                if (copy_string(o, "reason", m.reason, WIRE_REASON_MAX, false) < 0)
                        goto out;
                v = json_object_get(o, "errno");
                if (v) {
                        if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > 4095)
                                goto out;
                        m.error = (int) json_integer_value(v);
                }
                if (!m.ok && m.error == 0)
                        m.error = EIO;
                v = json_object_get(o, "data");
                if (v) {
                        if (!json_is_object(v))
                                goto out;
                        m.data = json_incref(v);
                }
        } else
                goto out;

        *ret = m;
        r = 0;
out:
        json_decref(o);
        return r;
}

int wire_send(int fd, json_t *msg) {
        _cleanup_free_ char *s = NULL;
        size_t n;

        s = json_dumps(msg, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        n = strlen(s);
        if (n > WIRE_MESSAGE_MAX)
                return -EMSGSIZE;
        if (send(fd, s, n, MSG_NOSIGNAL) < 0)
                return -errno;
        return 0;
}

int wire_send_progress(int fd, const char *phase, uint64_t done, uint64_t total) {
        json_t *m;
        int r;

        m = json_pack("{s:s, s:s, s:I, s:I}", "type", "progress", "phase", phase, "done", (json_int_t) done, "total",
                      (json_int_t) total);
        if (!m)
                return -ENOMEM;
        r = wire_send(fd, m);
        json_decref(m);
        return r;
}

int wire_send_result(int fd, int error, const char *reason, json_t *data) {
        json_t *m;
        int r;

        if (error == 0)
                m = json_pack("{s:s, s:b, s:o*}", "type", "result", "ok", 1, "data", data);
        else {
                char buf[WIRE_REASON_MAX + 1];

                /* Keep within the wire limit however long the reason is. */
                snprintf(buf, sizeof(buf), "%s", reason ?: strerror(abs(error)));
                m = json_pack("{s:s, s:b, s:i, s:s, s:o*}", "type", "result", "ok", 0, "errno", abs(error), "reason", buf,
                              "data", data);
        }
        if (!m)
                return -ENOMEM;
        r = wire_send(fd, m);
        json_decref(m);
        return r;
}
