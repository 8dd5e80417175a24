/* SPDX-License-Identifier: Apache-2.0 */

#include <inttypes.h>

#include "json-strict.h"
#include "reason.h"

int json_strict_object(json_t *o, const char *where, const char *const *allowed, char **ret_reason) {
        const char *key;
        json_t *v;

        if (!json_is_object(o))
                return reason_set(ret_reason, -EBADMSG, "%s: not a JSON object", where);
        json_object_foreach (o, key, v) {
                size_t keylen = json_object_iter_key_len(json_object_key_to_iter(key));
                bool ok = false;

                /* jansson 2.14 keeps keys with \u0000 whole; strcmp() would see a prefix. */
                if (strlen(key) != keylen)
                        return reason_set(ret_reason, -EBADMSG,
                                          "%s: field name '%s' contains a NUL character", where,
                                          QUOTE_N(key, keylen));

                for (const char *const *a = allowed; *a; a++)
                        if (streq(*a, key)) {
                                ok = true;
                                break;
                        }
                if (!ok)
                        return reason_set(ret_reason, -EBADMSG, "%s: unknown field '%s'", where, QUOTE(key));
        }
        return 0;
}

int json_strict_string(json_t *o, const char *key, const char *where, bool required, size_t min, size_t max,
                       const char **ret, char **ret_reason) {
        json_t *v = json_object_get(o, key);
        const char *s;
        size_t len;

        if (!v) {
                if (!required)
                        return -ENOENT;
                return reason_set(ret_reason, -EBADMSG, "%s: missing field '%s'", where, key);
        }
        if (!json_is_string(v))
                return reason_set(ret_reason, -EBADMSG, "%s.%s: not a string", where, key);
        s = json_string_value(v);
        len = json_string_length(v);
        if (strlen(s) != len)
                return reason_set(ret_reason, -EBADMSG, "%s.%s: contains a NUL character", where, key);
        if (len > max)
                return reason_set(ret_reason, -EBADMSG, "%s.%s: too long (%zu bytes, limit %zu)", where, key,
                                  len, max);
        if (len < min)
                return reason_set(ret_reason, -EBADMSG, len == 0 ? "%s.%s: empty" : "%s.%s: too short",
                                  where, key);
        *ret = s;
        return 0;
}

int json_strict_uint(json_t *o, const char *key, const char *where, bool required, uint64_t min,
                     uint64_t max, uint64_t *ret, char **ret_reason) {
        json_t *v = json_object_get(o, key);
        json_int_t i;

        if (!v) {
                if (!required)
                        return -ENOENT;
                return reason_set(ret_reason, -EBADMSG, "%s: missing field '%s'", where, key);
        }
        if (!json_is_integer(v))
                return reason_set(ret_reason, -EBADMSG, "%s.%s: not an integer", where, key);
        i = json_integer_value(v);
        if (i < 0 || (uint64_t) i < min || (uint64_t) i > max)
                return reason_set(ret_reason, -EBADMSG,
                                  "%s.%s: %lld is out of range [%" PRIu64 ", %" PRIu64 "]", where, key,
                                  (long long) i, min, max);
        *ret = (uint64_t) i;
        return 0;
}
