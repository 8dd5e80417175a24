/* SPDX-License-Identifier: Apache-2.0 */

#include <inttypes.h>
#include <jansson.h>

#include <openssl/evp.h>

#include "dsse.h"
#include "json-strict.h"
#include "reason.h"
#include "release.h"
#include "root.h"
#include "strv.h"

Root *root_free(Root *r) {
        if (!r)
                return NULL;
        trust_set_free(r->trust);
        free(r->document);
        free(r);
        return NULL;
}

int root_new_implicit(const TrustSet *t, Root **ret) {
        _cleanup_(root_freep) Root *r = NULL;
        int k;

        assert_return(t && ret, -EINVAL);
        k = trust_set_validate(t, NULL);
        if (k < 0)
                return k;
        r = calloc(1, sizeof(Root));
        if (!r)
                return -ENOMEM;
        r->version = 1;
        r->expires = USEC_INFINITY;
        k = trust_set_copy(t, &r->trust);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(r);
        return 0;
}

int root_copy(const Root *r, Root **ret) {
        _cleanup_(root_freep) Root *c = NULL;
        int k;

        assert_return(r && ret, -EINVAL);
        c = calloc(1, sizeof(Root));
        if (!c)
                return -ENOMEM;
        c->version = r->version;
        c->expires = r->expires;
        k = trust_set_copy(r->trust, &c->trust);
        if (k < 0)
                return k;
        if (r->document) {
                c->document = memdup_or_null(r->document, r->document_size);
                if (!c->document)
                        return -ENOMEM;
                c->document_size = r->document_size;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

int root_parse_payload(const void *payload, size_t size, Root **ret, char **ret_reason) {
        static const char *const fields[] = {"version", "expires", "threshold", "keys", NULL};
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_(root_freep) Root *r = NULL;
        json_error_t err;
        const char *s = NULL;
        uint64_t threshold = 0;
        json_t *keys;
        int k;

        assert_return((payload || size == 0) && ret, -EINVAL);

        j = json_loadb(payload, size, JSON_STRICT_LOAD_FLAGS, &err);
        if (!j)
                return reason_set(ret_reason, -EBADMSG, "root is not valid JSON: %s at line %d column %d",
                                  QUOTE(err.text), err.line, err.column);
        k = json_strict_object(j, "root", fields, ret_reason);
        if (k < 0)
                return k;

        r = calloc(1, sizeof(Root));
        if (!r)
                return reason_set(ret_reason, -ENOMEM, "out of memory");

        k = json_strict_uint(j, "version", "root", true, 1, JSON_SAFE_INTEGER_MAX, &r->version, ret_reason);
        if (k < 0)
                return k;
        k = json_strict_string(j, "expires", "root", true, 1, 64, &s, ret_reason);
        if (k < 0)
                return k;
        if (release_parse_timestamp(s, &r->expires) < 0)
                return reason_set(
                        ret_reason, -EBADMSG,
                        "root.expires: '%s' is not an RFC 3339 UTC timestamp (YYYY-MM-DDTHH:MM:SSZ)",
                        QUOTE(s));
        k = json_strict_uint(j, "threshold", "root", true, 1, TRUST_KEYS_MAX, &threshold, ret_reason);
        if (k < 0)
                return k;
        k = trust_set_new((unsigned) threshold, &r->trust);
        if (k < 0)
                return reason_set(ret_reason, k, "out of memory");

        keys = json_object_get(j, "keys");
        if (!keys)
                return reason_set(ret_reason, -EBADMSG, "root: missing field 'keys'");
        if (!json_is_array(keys))
                return reason_set(ret_reason, -EBADMSG, "root.keys: not an array");
        if (json_array_size(keys) > TRUST_KEYS_MAX)
                return reason_set(ret_reason, -EBADMSG, "root.keys: more than %d keys", TRUST_KEYS_MAX);
        for (size_t i = 0; i < json_array_size(keys); i++) {
                json_t *v = json_array_get(keys, i);
                _cleanup_(key_unrefp) Key *key = NULL;
                _cleanup_free_ char *inner = NULL;

                if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
                        return reason_set(ret_reason, -EBADMSG, "root.keys[%zu]: not a PEM string", i);
                k = key_load_public_pem(json_string_value(v), json_string_length(v), &key, &inner);
                if (k >= 0)
                        k = trust_set_add(r->trust, key, &inner);
                if (k < 0)
                        return reason_set(ret_reason, k == -EEXIST ? -EBADMSG : k, "root.keys[%zu]: %s", i,
                                          strna(inner));
        }
        k = trust_set_validate(r->trust, ret_reason);
        if (k < 0) {
                _cleanup_free_ char *inner = ret_reason ? TAKE_PTR(*ret_reason) : NULL;
                return reason_set(ret_reason, -EBADMSG, "root: %s", strna(inner));
        }

        *ret = TAKE_PTR(r);
        return 0;
}

/* Prefix the reason of a failed step with where it happened. */
_printf_(3, 4) static int reason_prefix(char **ret_reason, int error, const char *fmt, ...) {
        _cleanup_free_ char *inner = ret_reason ? TAKE_PTR(*ret_reason) : NULL;
        char prefix[160];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        return reason_set(ret_reason, error, "%s: %s", prefix, strna(inner));
}

static int attach_document(Root *r, const void *document, size_t size) {
        r->document = memdup_or_null(document, size);
        if (!r->document)
                return -ENOMEM;
        r->document_size = size;
        return 0;
}

int root_load_document(const void *document, size_t size, Root **ret, char **ret_reason) {
        _cleanup_(dsse_envelope_freep) DsseEnvelope *env = NULL;
        _cleanup_(root_freep) Root *r = NULL;
        int k;

        assert_return((document || size == 0) && ret, -EINVAL);

        k = dsse_parse(document, size, ROOT_DOCUMENT_MAX, &env, ret_reason);
        if (k < 0)
                return k;
        if (!streq(env->payload_type, ROOT_PAYLOAD_TYPE))
                return reason_set(ret_reason, -EPROTONOSUPPORT, "payloadType is '%s', expected '%s'",
                                  QUOTE(env->payload_type), ROOT_PAYLOAD_TYPE);
        /* Given by the administrator, so its payload may be read before its signatures are
         * checked: they are checked against the keys it lists. */
        k = root_parse_payload(env->payload, env->payload_size, &r, ret_reason);
        if (k < 0)
                return k;
        k = dsse_verify(env, r->trust, NULL, NULL, NULL, ret_reason);
        if (k < 0)
                return reason_prefix(ret_reason, k, "root version %" PRIu64 " is not signed by its own keys",
                                     r->version);
        k = attach_document(r, document, size);
        if (k < 0)
                return reason_set(ret_reason, k, "out of memory");
        *ret = TAKE_PTR(r);
        return 0;
}

int root_verify_next(const Root *current, const void *document, size_t size, Root **ret, char **ret_reason) {
        _cleanup_(dsse_envelope_freep) DsseEnvelope *env = NULL;
        _cleanup_(root_freep) Root *next = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        size_t payload_size = 0;
        int k;

        assert_return(current && (document || size == 0) && ret, -EINVAL);

        k = dsse_parse(document, size, ROOT_DOCUMENT_MAX, &env, ret_reason);
        if (k < 0)
                return reason_prefix(ret_reason, k, "root %" PRIu64, current->version + 1);
        /* The old keys vouch for the new document before a byte of its payload is read. */
        k = dsse_verify(env, current->trust, &payload, &payload_size, NULL, ret_reason);
        if (k < 0)
                return reason_prefix(ret_reason, k,
                                     "root %" PRIu64 " is not signed by the threshold of the current root",
                                     current->version + 1);
        if (!streq(env->payload_type, ROOT_PAYLOAD_TYPE))
                return reason_set(ret_reason, -EPROTONOSUPPORT,
                                  "root %" PRIu64 ": payloadType is '%s', expected '%s'",
                                  current->version + 1, QUOTE(env->payload_type), ROOT_PAYLOAD_TYPE);
        k = root_parse_payload(payload, payload_size, &next, ret_reason);
        if (k < 0)
                return reason_prefix(ret_reason, k, "root %" PRIu64, current->version + 1);
        /* Rollback and skips: root N+1 must say N+1. A document for N+2 served as N+1 would let
         * an attacker skip a rotation the old keys never signed. */
        if (next->version != current->version + 1)
                return reason_set(ret_reason, -ERANGE,
                                  "root document carries version %" PRIu64 ", expected %" PRIu64,
                                  next->version, current->version + 1);
        /* The new keys must be able to sign too: no rotation to keys nobody holds. */
        k = dsse_verify(env, next->trust, NULL, NULL, NULL, ret_reason);
        if (k < 0)
                return reason_prefix(ret_reason, k,
                                     "root %" PRIu64 " is not signed by the threshold of its own keys",
                                     next->version);
        k = attach_document(next, document, size);
        if (k < 0)
                return reason_set(ret_reason, k, "out of memory");
        *ret = TAKE_PTR(next);
        return 0;
}

int root_check_expiry(const Root *r, uint64_t now, char **ret_reason) {
        char a[RELEASE_TIMESTAMP_MAX], b[RELEASE_TIMESTAMP_MAX];

        assert_return(r, -EINVAL);
        if (r->expires == USEC_INFINITY || r->expires > now)
                return 0;
        return reason_set(ret_reason, -ESTALE, "trust root version %" PRIu64 " expired at %s (now %s)",
                          r->version, release_format_timestamp(a, r->expires),
                          release_format_timestamp(b, now));
}

int root_walk(const Root *trusted, RootFetchFn fetch, void *userdata, unsigned max_steps, Root **ret,
              char **ret_reason) {
        _cleanup_(root_freep) Root *cur = NULL;
        unsigned steps = 0;
        int k;

        assert_return(trusted && fetch && ret, -EINVAL);
        if (max_steps == 0)
                max_steps = ROOT_WALK_STEPS_MAX;

        k = root_copy(trusted, &cur);
        if (k < 0)
                return reason_set(ret_reason, k, "out of memory");

        while (steps < max_steps) {
                _cleanup_free_ char *data = NULL;
                _cleanup_(root_freep) Root *next = NULL;
                size_t size = 0;

                k = fetch(cur->version + 1, userdata, &data, &size);
                if (k == -ENOENT)
                        break;
                if (k < 0)
                        return reason_set(ret_reason, k, "cannot fetch root %" PRIu64 ": %s",
                                          cur->version + 1, strerror(-k));
                k = root_verify_next(cur, data, size, &next, ret_reason);
                if (k < 0)
                        return k;
                root_free(cur);
                cur = TAKE_PTR(next);
                steps++;
        }
        *ret = TAKE_PTR(cur);
        return (int) steps;
}

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int root_fingerprint(const Root *r, char ret[static SHA256_HEX_SIZE]) {
        _cleanup_free_ const char **ids = NULL;
        _cleanup_free_ char *text = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        size_t len = 0;
        FILE *f;
        int k;

        assert_return(r && r->trust, -EINVAL);
        ids = calloc(r->trust->n_keys + 1, sizeof(char *));
        if (!ids)
                return -ENOMEM;
        for (size_t i = 0; i < r->trust->n_keys; i++)
                ids[i] = key_get_id(r->trust->keys[i]);
        qsort(ids, r->trust->n_keys, sizeof(char *), strcmp_ptr);

        f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        fprintf(f, "modelkeeper-root-v1\n%" PRIu64 "\n%" PRIu64 "\n%u\n", r->version, r->expires,
                r->trust->threshold);
        for (size_t i = 0; i < r->trust->n_keys; i++)
                fprintf(f, "%s\n", ids[i]);
        if (fclose(f) != 0)
                return -ENOMEM;
        k = sha256_buffer(text, len, digest);
        if (k < 0)
                return k;
        hex_encode(digest, sizeof(digest), ret);
        return 0;
}

int root_state_format(const Root *configured, const Root *current, char **ret, size_t *ret_size) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_free_ char *text = NULL;
        char fp[SHA256_HEX_SIZE];
        int k;

        assert_return(configured && current && ret, -EINVAL);
        k = root_fingerprint(configured, fp);
        if (k < 0)
                return k;
        /* An implicit root has no document: nothing to persist beyond the configuration. */
        j = current->document ? json_pack("{s:s, s:s%}", "base", fp, "document", current->document,
                                          current->document_size)
                              : json_pack("{s:s, s:n}", "base", fp, "document");
        if (!j)
                return -ENOMEM;
        text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!text)
                return -ENOMEM;
        if (asprintf(ret, "%s\n", text) < 0)
                return -ENOMEM;
        if (ret_size)
                *ret_size = strlen(*ret);
        return 0;
}

int root_state_parse(const void *data, size_t size, const Root *configured, Root **ret, char **ret_reason) {
        static const char *const fields[] = {"base", "document", NULL};
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_(root_freep) Root *r = NULL;
        json_error_t err;
        const char *base = NULL;
        char fp[SHA256_HEX_SIZE];
        json_t *doc;
        int k;

        assert_return((data || size == 0) && configured && ret, -EINVAL);

        if (size > 2 * ROOT_DOCUMENT_MAX)
                return reason_set(ret_reason, -EFBIG, "root state is larger than %d bytes",
                                  2 * ROOT_DOCUMENT_MAX);
        j = json_loadb(data, size, JSON_STRICT_LOAD_FLAGS, &err);
        if (!j)
                return reason_set(ret_reason, -EBADMSG, "root state is not valid JSON: %s", QUOTE(err.text));
        k = json_strict_object(j, "root state", fields, ret_reason);
        if (k < 0)
                return k;
        k = json_strict_string(j, "base", "root state", true, 64, 64, &base, ret_reason);
        if (k < 0)
                return k;
        k = root_fingerprint(configured, fp);
        if (k < 0)
                return reason_set(ret_reason, k, "cannot fingerprint the configured root");
        if (!streq(base, fp))
                return reason_set(
                        ret_reason, -ESTALE,
                        "the stored trust root was reached from another configured root; starting from the configured one");

        doc = json_object_get(j, "document");
        if (!doc || json_is_null(doc))
                return root_copy(configured, ret) < 0 ? reason_set(ret_reason, -ENOMEM, "out of memory") : 0;
        if (!json_is_string(doc))
                return reason_set(ret_reason, -EBADMSG, "root state.document: not a string");
        k = root_load_document(json_string_value(doc), json_string_length(doc), &r, ret_reason);
        if (k < 0)
                return k;
        if (r->version < configured->version)
                return reason_set(ret_reason, -ESTALE,
                                  "stored trust root version %" PRIu64
                                  " is older than the configured version %" PRIu64,
                                  r->version, configured->version);
        *ret = TAKE_PTR(r);
        return 0;
}

int root_create(uint64_t version, uint64_t expires, const TrustSet *t, char **ret, size_t *ret_size,
                char **ret_reason) {
        _cleanup_(json_decrefp) json_t *j = NULL, *keys = NULL;
        _cleanup_(dsse_envelope_freep) DsseEnvelope *env = NULL;
        _cleanup_free_ char *payload = NULL;
        char ts[RELEASE_TIMESTAMP_MAX];
        int k;

        assert_return(t && ret, -EINVAL);
        if (version < 1 || version > JSON_SAFE_INTEGER_MAX)
                return reason_set(ret_reason, -EINVAL, "root version must be between 1 and 2^53-1");
        if (expires == 0 || expires == USEC_INFINITY)
                return reason_set(ret_reason, -EINVAL, "a root document needs an expiry time");
        k = trust_set_validate(t, ret_reason);
        if (k < 0)
                return k;

        keys = json_array();
        if (!keys)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_keys; i++) {
                _cleanup_free_ char *pem = NULL;

                k = key_get_public_pem(t->keys[i], &pem);
                if (k < 0)
                        return reason_set(ret_reason, k, "cannot encode key %s", key_get_id(t->keys[i]));
                if (json_array_append_new(keys, json_string(pem)) < 0)
                        return reason_set(ret_reason, -ENOMEM, "out of memory");
        }
        j = json_pack("{s:I, s:s, s:i, s:O}", "version", (json_int_t) version, "expires",
                      release_format_timestamp(ts, expires), "threshold", (int) t->threshold, "keys", keys);
        if (!j)
                return reason_set(ret_reason, -ENOMEM, "out of memory");
        payload = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!payload)
                return reason_set(ret_reason, -ENOMEM, "out of memory");
        k = dsse_envelope_new(ROOT_PAYLOAD_TYPE, payload, strlen(payload), &env);
        if (k < 0)
                return reason_set(ret_reason, k, "out of memory");
        k = dsse_format(env, ret, ret_size);
        if (k < 0)
                return reason_set(ret_reason, k, "cannot format the envelope");
        return 0;
}

int root_sign(const void *document, size_t size, const Key *key, char **ret, size_t *ret_size,
              char **ret_reason) {
        _cleanup_(dsse_envelope_freep) DsseEnvelope *env = NULL;
        _cleanup_(root_freep) Root *r = NULL;
        int k;

        assert_return((document || size == 0) && key && ret, -EINVAL);
        k = dsse_parse(document, size, ROOT_DOCUMENT_MAX, &env, ret_reason);
        if (k < 0)
                return k;
        if (!streq(env->payload_type, ROOT_PAYLOAD_TYPE))
                return reason_set(ret_reason, -EPROTONOSUPPORT, "payloadType is '%s', expected '%s'",
                                  QUOTE(env->payload_type), ROOT_PAYLOAD_TYPE);
        /* Sign only what a host would parse. */
        k = root_parse_payload(env->payload, env->payload_size, &r, ret_reason);
        if (k < 0)
                return k;
        k = dsse_sign(env, key, ret_reason);
        if (k < 0)
                return k;
        k = dsse_format(env, ret, ret_size);
        if (k < 0)
                return reason_set(ret_reason, k, "cannot format the envelope");
        return 0;
}
