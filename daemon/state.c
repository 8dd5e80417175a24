/* SPDX-License-Identifier: Apache-2.0 */

#include <fcntl.h>

#include "fileio.h"
#include "hash.h"
#include "state.h"
#include "store-layout.h"
#include "strv.h"

ModelStateFile *model_state_file_free(ModelStateFile *s) {
        if (!s)
                return NULL;
        free(s->active);
        free(s->previous);
        free(s->last_good);
        strv_free(s->quarantine);
        json_decref(s->high_water);
        json_decref(s->high_water_content);
        json_decref(s->in_progress);
        json_decref(s->probation);
        free(s);
        return NULL;
}

int model_state_file_new(ModelStateFile **ret) {
        ModelStateFile *s = calloc(1, sizeof(ModelStateFile));

        if (!s)
                return -ENOMEM;
        s->high_water = json_object();
        s->high_water_content = json_object();
        if (!s->high_water || !s->high_water_content) {
                json_decref(s->high_water);
                json_decref(s->high_water_content);
                free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

static int get_id(json_t *o, const char *key, char **ret) {
        json_t *v = json_object_get(o, key);

        if (!v || json_is_null(v))
                return 0;
        if (!json_is_string(v) || !version_id_is_valid(json_string_value(v)))
                return -EBADMSG;
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

int model_state_file_parse(const char *text, size_t size, ModelStateFile **ret) {
        _cleanup_(model_state_file_freep) ModelStateFile *s = NULL;
        json_t *o, *v;
        const char *key;
        size_t i;
        int r = -EBADMSG;

        if (size > STATE_JSON_MAX)
                return -EFBIG;
        o = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
        if (!o || !json_is_object(o))
                goto out;
        r = model_state_file_new(&s);
        if (r < 0)
                goto out;
        r = -EBADMSG;
        v = json_object_get(o, "format");
        if (!json_is_integer(v) || json_integer_value(v) != 1)
                goto out;
        if (get_id(o, "active", &s->active) < 0 || get_id(o, "previous", &s->previous) < 0 ||
            get_id(o, "last_good", &s->last_good) < 0)
                goto out;
        v = json_object_get(o, "hold");
        if (v && !json_is_boolean(v))
                goto out;
        s->hold = json_is_true(v);
        v = json_object_get(o, "quarantine");
        if (v) {
                json_t *e;
                if (!json_is_array(v) || json_array_size(v) > 10000)
                        goto out;
                json_array_foreach(v, i, e) {
                        if (!json_is_string(e) || !version_id_is_valid(json_string_value(e)))
                                goto out;
                        if (strv_extend(&s->quarantine, json_string_value(e)) < 0) {
                                r = -ENOMEM;
                                goto out;
                        }
                }
        }
        v = json_object_get(o, "high_water");
        if (v) {
                json_t *e;
                if (!json_is_object(v))
                        goto out;
                json_object_foreach(v, key, e)
                        if (!json_is_integer(e) || json_integer_value(e) < 0)
                                goto out;
                json_decref(s->high_water);
                s->high_water = json_deep_copy(v);
        }
        v = json_object_get(o, "high_water_content");
        if (v) {
                json_t *e;
                if (!json_is_object(v))
                        goto out;
                json_object_foreach(v, key, e)
                        if (!json_is_string(e) || !sha256_hex_is_valid(json_string_value(e)))
                                goto out;
                json_decref(s->high_water_content);
                s->high_water_content = json_deep_copy(v);
        }
        v = json_object_get(o, "in_progress");
        if (v && !json_is_null(v)) {
                if (!json_is_object(v) || !json_is_string(json_object_get(v, "op")))
                        goto out;
                s->in_progress = json_deep_copy(v);
        }
        v = json_object_get(o, "probation");
        if (v && !json_is_null(v)) {
                if (!json_is_object(v))
                        goto out;
                s->probation = json_deep_copy(v);
        }
        *ret = TAKE_PTR(s);
        r = 0;
out:
        json_decref(o);
        return r;
}

char *model_state_file_format(const ModelStateFile *s) {
        json_t *o, *q;
        char *text;

        q = json_array();
        if (!q)
                return NULL;
        STRV_FOREACH(id, s->quarantine)
                json_array_append_new(q, json_string(*id));
        o = json_pack("{s:i, s:s?, s:s?, s:s?, s:b, s:o, s:O, s:O, s:O?, s:O?}", "format", 1, "active", s->active,
                      "previous", s->previous, "last_good", s->last_good, "hold", s->hold, "quarantine", q,
                      "high_water", s->high_water, "high_water_content", s->high_water_content, "in_progress",
                      s->in_progress, "probation", s->probation);
        if (!o)
                return NULL;
        text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(o);
        return text;
}

int model_state_file_load(const char *model_dir, ModelStateFile **ret) {
        _cleanup_free_ char *text = NULL, *path = path_join(model_dir, "state.json");
        size_t n;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_full_file_at(AT_FDCWD, path, STATE_JSON_MAX, true, &text, &n);
        if (r == -ENOENT)
                return model_state_file_new(ret);
        if (r < 0)
                return r;
        return model_state_file_parse(text, n, ret);
}

int model_state_file_save(const char *model_dir, const ModelStateFile *s) {
        _cleanup_free_ char *text = model_state_file_format(s);
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!text)
                return -ENOMEM;
        r = mkdir_p(model_dir, 0700);
        if (r < 0)
                return r;
        fd = open(model_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return write_file_atomic_at(fd, "state.json", text, strlen(text), 0600);
}

bool model_state_file_is_quarantined(const ModelStateFile *s, const char *id) {
        return id && strv_contains(s->quarantine, id);
}

int model_state_file_quarantine(ModelStateFile *s, const char *id) {
        if (model_state_file_is_quarantined(s, id))
                return 0;
        return strv_extend(&s->quarantine, id);
}

int model_state_file_unquarantine(ModelStateFile *s, const char *id) {
        size_t n = strv_length(s->quarantine), j = 0;
        bool found = false;

        for (size_t i = 0; i < n; i++) {
                if (streq(s->quarantine[i], id)) {
                        free(s->quarantine[i]);
                        found = true;
                        continue;
                }
                s->quarantine[j++] = s->quarantine[i];
        }
        if (s->quarantine)
                s->quarantine[j] = NULL;
        return found ? 1 : 0;
}

uint64_t model_state_file_high_water(const ModelStateFile *s, const char *channel) {
        json_t *v = json_object_get(s->high_water, channel);
        return json_is_integer(v) ? (uint64_t) json_integer_value(v) : 0;
}

int model_state_file_set_high_water(ModelStateFile *s, const char *channel, uint64_t v, const char *content_id) {
        if (json_object_set_new(s->high_water, channel, json_integer((json_int_t) v)) < 0)
                return -ENOMEM;
        if (content_id)
                return json_object_set_new(s->high_water_content, channel, json_string(content_id)) < 0 ? -ENOMEM : 0;
        (void) json_object_del(s->high_water_content, channel);
        return 0;
}

const char *model_state_file_high_water_content(const ModelStateFile *s, const char *channel) {
        return json_string_value(json_object_get(s->high_water_content, channel));
}

int model_state_file_set(char **field, const char *value) {
        char *c = NULL;

        if (value && !(c = strdup(value)))
                return -ENOMEM;
        free(*field);
        *field = c;
        return 0;
}
