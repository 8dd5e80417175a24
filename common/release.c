/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Parsing and checking of release documents. Everything in this file is pure: no I/O, no
 * logging, no clock (the caller passes "now"), so it is unit-tested and fuzzed on its own.
 */

#include <inttypes.h>
#include <jansson.h>
#include <time.h>

#include <openssl/evp.h>

#include "json-strict.h"
#include "parse-util.h"
#include "reason.h"
#include "release.h"
#include "strv.h"

static const char *const release_verdict_table[_RELEASE_VERDICT_MAX] = {
        [RELEASE_VERDICT_NEW] = "new",
        [RELEASE_VERDICT_CURRENT] = "current",
        [RELEASE_VERDICT_NOT_SELECTED] = "not-selected",
};

const char *release_verdict_to_string(ReleaseVerdict v) {
        return v >= 0 && v < _RELEASE_VERDICT_MAX ? release_verdict_table[v] : NULL;
}

ReleaseVerdict release_verdict_from_string(const char *s) {
        if (!s)
                return _RELEASE_VERDICT_INVALID;
        for (ReleaseVerdict v = 0; v < _RELEASE_VERDICT_MAX; v++)
                if (streq(s, release_verdict_table[v]))
                        return v;
        return _RELEASE_VERDICT_INVALID;
}

Release *release_free(Release *r) {
        if (!r)
                return NULL;
        free(r->model);
        free(r->channel);
        free(r->label);
        for (size_t i = 0; i < r->n_files; i++) {
                free(r->files[i].name);
                free(r->files[i].url);
        }
        free(r->files);
        free(r);
        return NULL;
}

/* ---- timestamps ---------------------------------------------------------------------------- */

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static int digits(const char *s, size_t n, unsigned *ret) {
        unsigned v = 0;

        for (size_t i = 0; i < n; i++) {
                if (!is_digit(s[i]))
                        return -EINVAL;
                v = v * 10 + (unsigned) (s[i] - '0');
        }
        *ret = v;
        return 0;
}

static bool is_leap(unsigned y) {
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
        int64_t era;
        unsigned yoe, doy, doe;

        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = (unsigned) (y - era * 400);
        doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t) doe - 719468;
}

int release_parse_timestamp(const char *s, uint64_t *ret) {
        static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        unsigned y, mo, d, h, mi, sec, frac = 0;
        size_t n, i = 19;
        int64_t days;

        if (!s || !ret)
                return -EINVAL;
        n = strlen(s);
        if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
                return -EINVAL;
        if (digits(s, 4, &y) < 0 || digits(s + 5, 2, &mo) < 0 || digits(s + 8, 2, &d) < 0 ||
            digits(s + 11, 2, &h) < 0 || digits(s + 14, 2, &mi) < 0 || digits(s + 17, 2, &sec) < 0)
                return -EINVAL;
        if (s[i] == '.') {
                /* Fractions: 1–9 digits, kept to the microsecond. */
                size_t start = ++i;
                unsigned scale = 100000;

                while (i < n && is_digit(s[i])) {
                        if (i - start < 6) {
                                frac += (unsigned) (s[i] - '0') * scale;
                                scale /= 10;
                        }
                        i++;
                }
                if (i == start || i - start > 9)
                        return -EINVAL;
        }
        if (i + 1 != n || s[i] != 'Z')
                return -EINVAL;

        if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59)
                return -EINVAL;
        if (d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
                return -EINVAL;

        days = days_from_civil(y, mo, d);
        *ret = ((uint64_t) days * 86400 + h * 3600 + mi * 60 + sec) * USEC_PER_SEC + frac;
        return 0;
}

char *release_format_timestamp(char buf[static RELEASE_TIMESTAMP_MAX], uint64_t usec) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (usec == USEC_INFINITY || !gmtime_r(&t, &tm))
                return strcpy(buf, "never");
        if (strftime(buf, RELEASE_TIMESTAMP_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                return strcpy(buf, "invalid");
        return buf;
}

/* ---- content id, rollout ------------------------------------------------------------------- */

static int file_cmp(const void *a, const void *b) {
        const ReleaseFile *const *x = a, *const *y = b;
        return strcmp((*x)->name, (*y)->name);
}

int release_content_id(const ReleaseFile *files, size_t n_files, char ret[static SHA256_HEX_SIZE]) {
        _cleanup_free_ const ReleaseFile **sorted = NULL;
        EVP_MD_CTX *ctx = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        unsigned len = 0;
        int r = -EIO;

        assert_return(files || n_files == 0, -EINVAL);
        sorted = calloc(MAX(n_files, (size_t) 1), sizeof(ReleaseFile *));
        if (!sorted)
                return -ENOMEM;
        for (size_t i = 0; i < n_files; i++)
                sorted[i] = &files[i];
        qsort(sorted, n_files, sizeof(ReleaseFile *), file_cmp);

        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
                goto out;
        for (size_t i = 0; i < n_files; i++) {
                char size[32];
                int k = snprintf(size, sizeof(size), "%" PRIu64, sorted[i]->size);

                if (EVP_DigestUpdate(ctx, sorted[i]->name, strlen(sorted[i]->name) + 1) != 1 ||
                    EVP_DigestUpdate(ctx, size, (size_t) k + 1) != 1 ||
                    EVP_DigestUpdate(ctx, sorted[i]->sha256_hex, SHA256_HEX_SIZE - 1) != 1 ||
                    EVP_DigestUpdate(ctx, "\n", 1) != 1)
                        goto out;
        }
        if (EVP_DigestFinal_ex(ctx, digest, &len) != 1 || len != SHA256_DIGEST_SIZE)
                goto out;
        hex_encode(digest, sizeof(digest), ret);
        r = 0;
out:
        EVP_MD_CTX_free(ctx);
        return r;
}

static bool machine_id_is_valid(const char *s) {
        if (!s || strlen(s) != 32)
                return false;
        for (; *s; s++)
                if (!(is_digit(*s) || (*s >= 'a' && *s <= 'f')))
                        return false;
        return true;
}

int release_rollout_bucket(const char *machine_id, const char *model, uint64_t version) {
        _cleanup_free_ char *buf = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        uint64_t v = 0;
        int n, r;

        if (!machine_id_is_valid(machine_id) || !model)
                return -EINVAL;
        /* NUL separators: without them ("ab", 12) and ("ab1", 2) would hash the same bytes. */
        n = asprintf(&buf, "%s%c%s%c%" PRIu64, machine_id, 0, model, 0, version);
        if (n < 0)
                return -ENOMEM;
        r = sha256_buffer(buf, (size_t) n, digest);
        if (r < 0)
                return r;
        for (size_t i = 0; i < 8; i++)
                v = v << 8 | digest[i];
        /* 2^64 mod 100 = 16: the bias of "mod 100" is 16 in 2^64, far below anything observable. */
        return (int) (v % 100);
}

/* ---- statement ----------------------------------------------------------------------------- */

/* Why a file name from a release is not acceptable, or NULL. Stricter than filename_is_safe():
 * no leading '.', since hidden files are surprising and ".#…" is our temporary-file prefix. */
static const char *file_name_problem(const char *s) {
        if (isempty(s))
                return "empty";
        if (streq(s, ".") || streq(s, ".."))
                return "'.' and '..' are not file names";
        if (strchr(s, '/'))
                return "contains '/'";
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return "contains a control character";
        if (s[0] == '.')
                return "starts with '.' (hidden files are not allowed)";
        if (!filename_is_safe(s))
                return "not valid UTF-8 or longer than 255 bytes";
        return NULL;
}

static int parse_name_field(json_t *o, const char *key, const char *where, char **ret, char **ret_reason) {
        const char *s = NULL;
        char *c;
        int r;

        r = json_strict_string(o, key, where, true, 1, RELEASE_NAME_MAX, &s, ret_reason);
        if (r < 0)
                return r;
        if (!name_is_valid(s, RELEASE_NAME_MAX))
                return reason_set(
                        ret_reason, -EBADMSG,
                        "%s.%s: '%s' is not a valid name ([A-Za-z0-9._-], not starting with '.' or '-')",
                        where, key, QUOTE(s));
        c = strdup(s);
        if (!c)
                return reason_set(ret_reason, -ENOMEM, "out of memory");
        *ret = c;
        return 0;
}

static int parse_timestamp_field(json_t *o, const char *key, uint64_t *ret, char **ret_reason) {
        const char *s = NULL;
        int r;

        r = json_strict_string(o, key, "predicate", true, 1, 64, &s, ret_reason);
        if (r < 0)
                return r;
        if (release_parse_timestamp(s, ret) < 0)
                return reason_set(
                        ret_reason, -EBADMSG,
                        "predicate.%s: '%s' is not an RFC 3339 UTC timestamp (YYYY-MM-DDTHH:MM:SSZ)", key,
                        QUOTE(s));
        return 0;
}

static bool url_is_https(const char *s) {
        const char *host = startswith(s, "https://");

        if (!host || !*host || *host == '/')
                return false;
        for (const char *p = s; *p; p++)
                if (*p <= 0x20 || *p >= 0x7f)
                        return false;
        return true;
}

static int parse_file(json_t *o, size_t i, ReleaseFile *f, char **ret_reason) {
        static const char *const fields[] = {"name", "size", "url", NULL};
        const char *s = NULL, *problem;
        char where[64];
        int r;

        (void) snprintf(where, sizeof(where), "predicate.files[%zu]", i);
        r = json_strict_object(o, where, fields, ret_reason);
        if (r < 0)
                return r;

        r = json_strict_string(o, "name", where, true, 0, 255, &s, ret_reason);
        if (r < 0)
                return r;
        problem = file_name_problem(s);
        if (problem)
                return reason_set(ret_reason, -EBADMSG, "%s.name: unsafe file name '%s': %s", where,
                                  QUOTE(s), problem);
        f->name = strdup(s);
        if (!f->name)
                return reason_set(ret_reason, -ENOMEM, "out of memory");

        r = json_strict_uint(o, "size", where, true, 0, JSON_SAFE_INTEGER_MAX, &f->size, ret_reason);
        if (r < 0)
                return r;

        r = json_strict_string(o, "url", where, true, 1, RELEASE_URL_MAX, &s, ret_reason);
        if (r < 0)
                return r;
        if (startswith(s, RELEASE_BLOB_PREFIX)) {
                if (!sha256_hex_is_valid(startswith(s, RELEASE_BLOB_PREFIX)))
                        return reason_set(ret_reason, -EBADMSG,
                                          "%s.url: '%s' is not " RELEASE_BLOB_PREFIX
                                          "<64 lowercase hex digits>",
                                          where, QUOTE(s));
        } else if (url_is_https(s))
                f->external = true;
        else
                return reason_set(ret_reason, -EBADMSG,
                                  "%s.url: '%s' is neither " RELEASE_BLOB_PREFIX
                                  "<sha256> (relative to the repository) nor an https:// URL",
                                  where, QUOTE(s));
        f->url = strdup(s);
        if (!f->url)
                return reason_set(ret_reason, -ENOMEM, "out of memory");
        return 0;
}

static int find_file(ReleaseFile **sorted, size_t n, const char *name) {
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(sorted[mid]->name, name);

                if (c == 0)
                        return (int) mid;
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return -ENOENT;
}

static int parse_subjects(json_t *subjects, Release *rel, char **ret_reason) {
        static const char *const fields[] = {"name", "digest", NULL};
        static const char *const digest_fields[] = {"sha256", NULL};
        _cleanup_free_ ReleaseFile **sorted = NULL;
        _cleanup_free_ bool *seen = NULL;
        int r;

        if (!subjects)
                return reason_set(ret_reason, -EBADMSG, "statement: missing field 'subject'");
        if (!json_is_array(subjects))
                return reason_set(ret_reason, -EBADMSG, "statement.subject: not an array");
        if (json_array_size(subjects) != rel->n_files)
                return reason_set(
                        ret_reason, -EBADMSG,
                        "statement.subject has %zu entries but predicate.files has %zu: they must match one to one",
                        json_array_size(subjects), rel->n_files);

        sorted = calloc(rel->n_files, sizeof(ReleaseFile *));
        seen = calloc(rel->n_files, sizeof(bool));
        if (!sorted || !seen)
                return reason_set(ret_reason, -ENOMEM, "out of memory");
        for (size_t i = 0; i < rel->n_files; i++)
                sorted[i] = &rel->files[i];
        qsort(sorted, rel->n_files, sizeof(ReleaseFile *), file_cmp);
        for (size_t i = 1; i < rel->n_files; i++)
                if (streq(sorted[i - 1]->name, sorted[i]->name))
                        return reason_set(ret_reason, -EBADMSG, "predicate.files: duplicate file name '%s'",
                                          QUOTE(sorted[i]->name));

        for (size_t i = 0; i < rel->n_files; i++) {
                json_t *o = json_array_get(subjects, i), *digest;
                const char *name = NULL, *hex = NULL;
                char where[64], dwhere[80];
                ReleaseFile *f;
                int idx;

                (void) snprintf(where, sizeof(where), "statement.subject[%zu]", i);
                r = json_strict_object(o, where, fields, ret_reason);
                if (r < 0)
                        return r;
                r = json_strict_string(o, "name", where, true, 1, 255, &name, ret_reason);
                if (r < 0)
                        return r;
                idx = find_file(sorted, rel->n_files, name);
                if (idx < 0)
                        return reason_set(ret_reason, -EBADMSG, "%s.name: '%s' is not in predicate.files",
                                          where, QUOTE(name));
                if (seen[idx])
                        return reason_set(ret_reason, -EBADMSG,
                                          "%s.name: '%s' is listed twice in the subject", where,
                                          QUOTE(name));
                seen[idx] = true;
                f = sorted[idx];

                digest = json_object_get(o, "digest");
                (void) snprintf(dwhere, sizeof(dwhere), "%s.digest", where);
                if (!digest)
                        return reason_set(ret_reason, -EBADMSG, "%s: missing field 'digest'", where);
                r = json_strict_object(digest, dwhere, digest_fields, ret_reason);
                if (r < 0)
                        return r;
                r = json_strict_string(digest, "sha256", dwhere, true, 64, 64, &hex, ret_reason);
                if (r < 0)
                        return r;
                if (!sha256_hex_is_valid(hex))
                        return reason_set(ret_reason, -EBADMSG, "%s.sha256: not 64 lowercase hex digits",
                                          dwhere);
                memcpy(f->sha256_hex, hex, SHA256_HEX_SIZE);
                if (hex_decode(hex, f->sha256, SHA256_DIGEST_SIZE) < 0)
                        return reason_set(ret_reason, -EBADMSG, "%s.sha256: not hex", dwhere);
                /* A blob URL names its content: it must be this file's digest, or a signed
                 * document could point every file at one (valid, other) blob. */
                if (!f->external && !streq(startswith(f->url, RELEASE_BLOB_PREFIX), hex))
                        return reason_set(ret_reason, -EBADMSG,
                                          "file '%s': url names blob %s but its subject digest is %s",
                                          QUOTE(f->name), startswith(f->url, RELEASE_BLOB_PREFIX), hex);
        }
        return 0;
}

int release_parse_statement(const void *payload, size_t size, Release **ret, char **ret_reason) {
        static const char *const fields[] = {"_type", "subject", "predicateType", "predicate", NULL};
        static const char *const predicate_fields[] = {"model",   "channel", "version", "label", "created",
                                                       "expires", "files",   "rollout", NULL};
        static const char *const rollout_fields[] = {"percent", NULL};
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(release_freep) Release *rel = NULL;
        json_t *pred, *files, *rollout;
        json_error_t err;
        const char *s = NULL;
        uint64_t u;
        int r;

        assert_return((payload || size == 0) && ret, -EINVAL);

        root = json_loadb(payload, size, JSON_STRICT_LOAD_FLAGS, &err);
        if (!root)
                return reason_set(ret_reason, -EBADMSG,
                                  "statement is not valid JSON: %s at line %d column %d", QUOTE(err.text),
                                  err.line, err.column);
        if (!json_is_object(root))
                return reason_set(ret_reason, -EBADMSG, "statement: not a JSON object");

        /* The types first: a document of another kind gets "not ours", not a schema error. */
        r = json_strict_string(root, "_type", "statement", true, 0, 256, &s, ret_reason);
        if (r < 0)
                return r;
        if (!streq(s, RELEASE_STATEMENT_TYPE))
                return reason_set(ret_reason, -EPROTONOSUPPORT, "statement _type is '%s', expected '%s'",
                                  QUOTE(s), RELEASE_STATEMENT_TYPE);
        r = json_strict_string(root, "predicateType", "statement", true, 0, 256, &s, ret_reason);
        if (r < 0)
                return r;
        if (!streq(s, RELEASE_PREDICATE_TYPE))
                return reason_set(ret_reason, -EPROTONOSUPPORT,
                                  "statement predicateType is '%s', expected '%s'", QUOTE(s),
                                  RELEASE_PREDICATE_TYPE);
        r = json_strict_object(root, "statement", fields, ret_reason);
        if (r < 0)
                return r;

        pred = json_object_get(root, "predicate");
        if (!pred)
                return reason_set(ret_reason, -EBADMSG, "statement: missing field 'predicate'");
        r = json_strict_object(pred, "predicate", predicate_fields, ret_reason);
        if (r < 0)
                return r;

        rel = calloc(1, sizeof(Release));
        if (!rel)
                return reason_set(ret_reason, -ENOMEM, "out of memory");

        r = parse_name_field(pred, "model", "predicate", &rel->model, ret_reason);
        if (r < 0)
                return r;
        r = parse_name_field(pred, "channel", "predicate", &rel->channel, ret_reason);
        if (r < 0)
                return r;
        r = json_strict_uint(pred, "version", "predicate", true, 1, JSON_SAFE_INTEGER_MAX, &rel->version,
                             ret_reason);
        if (r < 0)
                return r;

        r = json_strict_string(pred, "label", "predicate", false, 0, RELEASE_LABEL_MAX, &s, ret_reason);
        if (r == -ENOENT)
                s = "";
        else if (r < 0)
                return r;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return reason_set(ret_reason, -EBADMSG,
                                          "predicate.label: contains a control character");
        rel->label = strdup(s);
        if (!rel->label)
                return reason_set(ret_reason, -ENOMEM, "out of memory");

        r = parse_timestamp_field(pred, "created", &rel->created, ret_reason);
        if (r < 0)
                return r;
        r = parse_timestamp_field(pred, "expires", &rel->expires, ret_reason);
        if (r < 0)
                return r;
        if (rel->expires <= rel->created)
                return reason_set(ret_reason, -EBADMSG,
                                  "predicate.expires is not later than predicate.created");

        rel->rollout_percent = 100;
        rollout = json_object_get(pred, "rollout");
        if (rollout) {
                r = json_strict_object(rollout, "predicate.rollout", rollout_fields, ret_reason);
                if (r < 0)
                        return r;
                r = json_strict_uint(rollout, "percent", "predicate.rollout", true, 0, 100, &u, ret_reason);
                if (r < 0)
                        return r;
                rel->rollout_percent = (unsigned) u;
        }

        files = json_object_get(pred, "files");
        if (!files)
                return reason_set(ret_reason, -EBADMSG, "predicate: missing field 'files'");
        if (!json_is_array(files))
                return reason_set(ret_reason, -EBADMSG, "predicate.files: not an array");
        if (json_array_size(files) == 0)
                return reason_set(ret_reason, -EBADMSG,
                                  "predicate.files: empty (a release has at least one file)");
        if (json_array_size(files) > RELEASE_FILES_HARD_MAX)
                return reason_set(ret_reason, -EFBIG,
                                  "predicate.files: %zu files, more than the limit of %d",
                                  json_array_size(files), RELEASE_FILES_HARD_MAX);
        rel->files = calloc(json_array_size(files), sizeof(ReleaseFile));
        if (!rel->files)
                return reason_set(ret_reason, -ENOMEM, "out of memory");
        for (size_t i = 0; i < json_array_size(files); i++) {
                r = parse_file(json_array_get(files, i), i, &rel->files[rel->n_files], ret_reason);
                rel->n_files++; /* so that release_free() sees what parse_file() allocated */
                if (r < 0)
                        return r;
                if (ADD_OVERFLOW(rel->total_size, rel->files[i].size, &rel->total_size))
                        return reason_set(ret_reason, -EFBIG, "predicate.files: total size overflows");
        }

        r = parse_subjects(json_object_get(root, "subject"), rel, ret_reason);
        if (r < 0)
                return r;

        r = release_content_id(rel->files, rel->n_files, rel->content_id);
        if (r < 0)
                return reason_set(ret_reason, r, "cannot compute the content id");

        *ret = TAKE_PTR(rel);
        return 0;
}

/* ---- policy -------------------------------------------------------------------------------- */

int release_check_statement(const Release *r, const ReleaseExpect *e, char **ret_reason) {
        char a[RELEASE_TIMESTAMP_MAX], b[RELEASE_TIMESTAMP_MAX];
        char fa[FORMAT_BYTES_MAX], fb[FORMAT_BYTES_MAX];
        int bucket;

        assert_return(r && e, -EINVAL);

        /* Mix-and-match: a validly signed release of another model or channel. */
        if (e->model && !streq(r->model, e->model))
                return reason_set(ret_reason, -EXDEV, "release is for model '%s', this host expects '%s'",
                                  r->model, e->model);
        if (e->channel && !streq(r->channel, e->channel))
                return reason_set(ret_reason, -EXDEV, "release is for channel '%s', this host follows '%s'",
                                  r->channel, e->channel);

        if (r->created > e->now && r->created - e->now > e->limits.max_clock_skew)
                return reason_set(
                        ret_reason, -ETIME,
                        "release was created at %s, in the future of this host's clock (%s) by more than the allowed skew",
                        release_format_timestamp(a, r->created), release_format_timestamp(b, e->now));
        /* Freeze attack: an old, validly signed document replayed to keep the host from seeing
         * newer ones. */
        if (r->expires <= e->now)
                return reason_set(ret_reason, -ESTALE,
                                  "release expired at %s (now %s): refusing a possibly frozen document",
                                  release_format_timestamp(a, r->expires),
                                  release_format_timestamp(b, e->now));

        if (r->n_files > e->limits.max_files)
                return reason_set(ret_reason, -EFBIG, "release has %zu files, more than the limit of %zu",
                                  r->n_files, e->limits.max_files);
        for (size_t i = 0; i < r->n_files; i++)
                if (r->files[i].size > e->limits.max_file_size)
                        return reason_set(ret_reason, -EFBIG,
                                          "file '%s' is %s, more than the limit of %s per file",
                                          QUOTE(r->files[i].name), format_bytes(fa, r->files[i].size),
                                          format_bytes(fb, e->limits.max_file_size));
        if (r->total_size > e->limits.max_total_size)
                return reason_set(ret_reason, -EFBIG, "release is %s in total, more than the limit of %s",
                                  format_bytes(fa, r->total_size),
                                  format_bytes(fb, e->limits.max_total_size));

        if (!e->limits.allow_external_urls)
                for (size_t i = 0; i < r->n_files; i++)
                        if (r->files[i].external)
                                return reason_set(
                                        ret_reason, -EPERM,
                                        "file '%s' has an absolute URL (%s); only " RELEASE_BLOB_PREFIX
                                        "<sha256> in the repository is allowed",
                                        QUOTE(r->files[i].name), QUOTE(r->files[i].url));

        if (r->version < e->high_water)
                return reason_set(ret_reason, -ERANGE,
                                  "version %" PRIu64 " is lower than version %" PRIu64
                                  " already accepted on channel '%s': downgrade refused",
                                  r->version, e->high_water, r->channel);
        if (r->version == e->high_water) {
                if (e->high_water_content && !streq(e->high_water_content, r->content_id))
                        return reason_set(
                                ret_reason, -EEXIST,
                                "version %" PRIu64
                                " was already accepted with other files (content %s, now %s): a version never changes",
                                r->version, e->high_water_content, r->content_id);
                return RELEASE_VERDICT_CURRENT;
        }

        if (e->ignore_rollout || r->rollout_percent >= 100)
                return RELEASE_VERDICT_NEW;
        /* Without a machine id this host has no bucket: it is in no partial rollout, rather than
         * in all of them. */
        if (!e->machine_id)
                return RELEASE_VERDICT_NOT_SELECTED;
        bucket = release_rollout_bucket(e->machine_id, r->model, r->version);
        if (bucket < 0)
                return reason_set(ret_reason, bucket, "invalid machine id");
        if ((unsigned) bucket >= r->rollout_percent)
                return RELEASE_VERDICT_NOT_SELECTED;
        return RELEASE_VERDICT_NEW;
}

int release_check(const void *document, size_t size, const TrustSet *trust, const ReleaseExpect *e,
                  Release **ret_release, char ***ret_keyids, uint64_t *ret_version, char **ret_reason) {
        _cleanup_(dsse_envelope_freep) DsseEnvelope *env = NULL;
        _cleanup_(release_freep) Release *rel = NULL;
        _cleanup_(strv_freep) char **keyids = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;
        int r, verdict;

        assert_return((document || size == 0) && trust && e, -EINVAL);

        /* Key ids and signatures first, then the payload's meaning, then policy; outputs last. */
        r = dsse_parse(document, size, e->limits.max_document_size, &env, ret_reason);
        if (r < 0)
                return r;
        r = dsse_verify(env, trust, &payload, &payload_size, &keyids, ret_reason);
        if (r < 0)
                return r;
        /* From here on every refusal is of a document the trusted keys signed: say which keys
         * (the diagnostics outputs, see release.h), whatever check fails next. */
        if (ret_keyids)
                *ret_keyids = TAKE_PTR(keyids);
        if (!streq(env->payload_type, RELEASE_PAYLOAD_TYPE))
                return reason_set(ret_reason, -EPROTONOSUPPORT, "payloadType is '%s', expected '%s'",
                                  QUOTE(env->payload_type), RELEASE_PAYLOAD_TYPE);
        r = release_parse_statement(payload, payload_size, &rel, ret_reason);
        if (r < 0)
                return r;
        if (ret_version)
                *ret_version = rel->version;
        verdict = release_check_statement(rel, e, ret_reason);
        if (verdict < 0)
                return verdict;

        if (ret_release)
                *ret_release = TAKE_PTR(rel);
        return verdict;
}
