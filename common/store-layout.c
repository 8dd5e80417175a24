/* SPDX-License-Identifier: Apache-2.0 */

#include <fcntl.h>
#include <limits.h>
#include <time.h>

#include "fileio.h"
#include "parse-util.h"
#include "store-layout.h"

bool version_id_is_valid(const char *id) {
        const char *p = id;
        size_t digits = 0;

        if (!id || strlen(id) > VERSION_ID_MAX)
                return false;
        if (*p == '0' && p[1] != 0 && p[1] != '~')
                return false; /* no leading zeros: "007" and "7" would be two names for one version */
        for (; *p >= '0' && *p <= '9'; p++)
                digits++;
        if (digits == 0 || digits > 18)
                return false;
        if (*p == 0)
                return true;
        if (*p != '~')
                return false;
        p++;
        if (!*p)
                return false;
        for (; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
                      *p == '-' || *p == '.'))
                        return false;
        return true;
}

bool version_id_is_derived(const char *id) {
        return id && strchr(id, '~') != NULL;
}

uint64_t version_id_release(const char *id) {
        uint64_t v = 0;
        for (const char *p = id; p && *p >= '0' && *p <= '9'; p++)
                v = v * 10 + (uint64_t) (*p - '0');
        return v;
}

int version_id_compare(const char *a, const char *b) {
        uint64_t x = version_id_release(a), y = version_id_release(b);
        const char *pa, *pb;

        if (x != y)
                return x < y ? -1 : 1;
        pa = strchr(a, '~');
        pb = strchr(b, '~');
        if (!pa || !pb)
                return !pa && !pb ? 0 : !pa ? -1 : 1;
        return strcmp(pa, pb);
}

VersionMeta *version_meta_free(VersionMeta *m) {
        if (!m)
                return NULL;
        free(m->model);
        free(m->id);
        free(m->origin);
        free(m->parent);
        free(m->profile);
        free(m->channel);
        free(m->label);
        for (size_t i = 0; i < m->n_files; i++)
                free(m->files[i].name);
        free(m->files);
        json_decref(m->extra);
        free(m);
        return NULL;
}

static int get_string(json_t *o, const char *key, bool required, char **ret) {
        json_t *v = json_object_get(o, key);

        if (!v || json_is_null(v))
                return required ? -EBADMSG : 0;
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) || json_string_length(v) > 4096)
                return -EBADMSG;
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

static int get_u64(json_t *o, const char *key, bool required, uint64_t *ret) {
        json_t *v = json_object_get(o, key);

        if (!v)
                return required ? -EBADMSG : 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return -EBADMSG;
        *ret = (uint64_t) json_integer_value(v);
        return 0;
}

int version_meta_parse(const char *text, size_t size, VersionMeta **ret) {
        _cleanup_(version_meta_freep) VersionMeta *m = NULL;
        json_t *o = NULL, *files, *v;
        _cleanup_free_ char *installed = NULL;
        int r = -EBADMSG;
        size_t i;

        if (size > META_JSON_MAX)
                return -EFBIG;
        o = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
        if (!o || !json_is_object(o))
                goto out;
        m = calloc(1, sizeof(VersionMeta));
        if (!m) {
                r = -ENOMEM;
                goto out;
        }
        if ((r = get_string(o, "model", true, &m->model)) < 0 || (r = get_string(o, "id", true, &m->id)) < 0 ||
            (r = get_string(o, "origin", true, &m->origin)) < 0 || (r = get_string(o, "parent", false, &m->parent)) < 0 ||
            (r = get_string(o, "profile", false, &m->profile)) < 0 ||
            (r = get_string(o, "channel", false, &m->channel)) < 0 || (r = get_string(o, "label", false, &m->label)) < 0 ||
            (r = get_string(o, "installed", false, &installed)) < 0 ||
            (r = get_u64(o, "total_size", true, &m->total_size)) < 0)
                goto out;
        r = -EBADMSG;
        if (!version_id_is_valid(m->id) || !name_is_valid(m->model, 64))
                goto out;
        if (installed && parse_timestamp(installed, &m->installed) < 0)
                goto out;
        v = json_object_get(o, "sealed");
        if (v && !json_is_boolean(v))
                goto out;
        m->sealed = json_is_true(v);

        files = json_object_get(o, "files");
        if (!json_is_array(files) || json_array_size(files) > 100000)
                goto out;
        m->files = calloc(json_array_size(files) + 1, sizeof(VersionFile));
        if (!m->files) {
                r = -ENOMEM;
                goto out;
        }
        json_array_foreach(files, i, v) {
                VersionFile *f = &m->files[m->n_files];
                _cleanup_free_ char *hex = NULL;

                if (!json_is_object(v) || get_string(v, "name", true, &f->name) < 0)
                        goto out;
                m->n_files++;
                if (!filename_is_safe(f->name) || get_u64(v, "size", true, &f->size) < 0 ||
                    get_string(v, "sha256", true, &hex) < 0 || !sha256_hex_is_valid(hex) ||
                    hex_decode(hex, f->sha256, SHA256_DIGEST_SIZE) < 0)
                        goto out;
                f->stored_size = f->size;
                if (get_u64(v, "stored_size", false, &f->stored_size) < 0)
                        goto out;
                for (size_t k = 0; k + 1 < m->n_files; k++)
                        if (streq(m->files[k].name, f->name))
                                goto out;
        }
        m->extra = json_incref(json_object_get(o, "extra"));
        *ret = TAKE_PTR(m);
        r = 0;
out:
        json_decref(o);
        return r;
}

json_t *version_meta_to_json(const VersionMeta *m) {
        char ts[TIMESTAMP_MAX];
        json_t *o, *files;

        files = json_array();
        if (!files)
                return NULL;
        for (size_t i = 0; i < m->n_files; i++) {
                char hex[SHA256_HEX_SIZE];
                hex_encode(m->files[i].sha256, SHA256_DIGEST_SIZE, hex);
                if (json_array_append_new(files, json_pack("{s:s, s:I, s:I, s:s}", "name", m->files[i].name, "size",
                                                           (json_int_t) m->files[i].size, "stored_size",
                                                           (json_int_t) m->files[i].stored_size, "sha256", hex)) < 0) {
                        json_decref(files);
                        return NULL;
                }
        }
        o = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:b, s:s, s:I, s:o}", "model", m->model, "id", m->id,
                      "origin", m->origin, "parent", m->parent, "profile", m->profile, "channel", m->channel, "label",
                      m->label, "sealed", m->sealed, "installed", format_timestamp(ts, m->installed), "total_size",
                      (json_int_t) m->total_size, "files", files);
        if (o && m->extra)
                json_object_set(o, "extra", m->extra);
        return o;
}

int version_meta_load(int model_dirfd, const char *id, VersionMeta **ret) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t n;
        int r;

        if (!version_id_is_valid(id))
                return -EINVAL;
        if (asprintf(&path, "versions/%s/meta.json", id) < 0)
                return -ENOMEM;
        r = read_full_file_at(model_dirfd, path, META_JSON_MAX, true, &text, &n);
        if (r < 0)
                return r;
        r = version_meta_parse(text, n, ret);
        if (r >= 0 && !streq((*ret)->id, id)) {
                *ret = version_meta_free(*ret);
                return -EBADMSG;
        }
        return r;
}

const VersionFile *version_meta_find_file(const VersionMeta *m, const char *name) {
        for (size_t i = 0; i < m->n_files; i++)
                if (streq(m->files[i].name, name))
                        return &m->files[i];
        return NULL;
}

int store_read_link(int model_dirfd, const char *name, char **ret_id) {
        char buf[PATH_MAX];
        const char *id;
        ssize_t n;

        n = readlinkat(model_dirfd, name, buf, sizeof(buf) - 1);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        id = startswith(buf, "versions/");
        if (!id || !version_id_is_valid(id))
                return -EBADMSG;
        *ret_id = strdup(id);
        return *ret_id ? 0 : -ENOMEM;
}

char *format_timestamp(char buf[static TIMESTAMP_MAX], uint64_t usec) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, TIMESTAMP_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, TIMESTAMP_MAX, "1970-01-01T00:00:00Z");
        return buf;
}

int parse_timestamp(const char *s, uint64_t *ret_usec) {
        struct tm tm = {};
        const char *end;
        time_t t;

        /* Only the strict UTC form we write and the release format uses. */
        end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (!end || *end)
                return -EINVAL;
        t = timegm(&tm);
        if (t < 0)
                return -ERANGE;
        *ret_usec = (uint64_t) t * USEC_PER_SEC;
        return 0;
}

uint64_t now_realtime_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}
