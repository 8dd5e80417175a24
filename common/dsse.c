/* SPDX-License-Identifier: Apache-2.0 */

#include <jansson.h>

#include "dsse.h"
#include "json-strict.h"
#include "reason.h"
#include "strv.h"

DsseEnvelope *dsse_envelope_free(DsseEnvelope *e) {
        if (!e)
                return NULL;
        free(e->payload_type);
        free(e->payload);
        for (size_t i = 0; i < e->n_signatures; i++) {
                free(e->signatures[i].keyid);
                free(e->signatures[i].sig);
        }
        free(e->signatures);
        free(e);
        return NULL;
}

int dsse_envelope_new(const char *payload_type, const void *payload, size_t size, DsseEnvelope **ret) {
        _cleanup_(dsse_envelope_freep) DsseEnvelope *e = NULL;

        assert_return(payload_type && (payload || size == 0) && ret, -EINVAL);
        e = calloc(1, sizeof(DsseEnvelope));
        if (!e)
                return -ENOMEM;
        e->payload_type = strdup(payload_type);
        e->payload = memdup_or_null(payload, size);
        if (!e->payload_type || !e->payload)
                return -ENOMEM;
        e->payload_size = size;
        *ret = TAKE_PTR(e);
        return 0;
}

/* ---- base64 ---------------------------------------------------------------------------- */

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(char c, int *alphabet) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        /* alphabet: 0 undecided, 1 standard, 2 URL-safe; mixing is refused. */
        if (c == '+' || c == '/') {
                if (*alphabet == 2)
                        return -1;
                *alphabet = 1;
                return c == '+' ? 62 : 63;
        }
        if (c == '-' || c == '_') {
                if (*alphabet == 1)
                        return -1;
                *alphabet = 2;
                return c == '-' ? 62 : 63;
        }
        return -1;
}

int dsse_base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *out = NULL;
        size_t pad = 0, n = 0;
        int alphabet = 0;

        assert_return((s || len == 0) && ret && ret_size, -EINVAL);
        if (len % 4 != 0)
                return -EBADMSG;
        if (len > 0 && s[len - 1] == '=')
                pad = len > 1 && s[len - 2] == '=' ? 2 : 1;

        out = malloc(len / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;

        for (size_t i = 0; i < len; i += 4) {
                bool last = i + 4 == len;
                size_t chars = last ? 4 - pad : 4;
                uint32_t v = 0;

                for (size_t j = 0; j < 4; j++) {
                        int x = 0;

                        if (j < chars) {
                                x = b64_value(s[i + j], &alphabet);
                                if (x < 0)
                                        return -EBADMSG; /* includes '=' before the end */
                        }
                        v = v << 6 | (uint32_t) x;
                }
                out[n++] = (uint8_t) (v >> 16);
                if (chars >= 3)
                        out[n++] = (uint8_t) (v >> 8);
                if (chars == 4)
                        out[n++] = (uint8_t) v;
                /* Canonical form: the bits the padding leaves unused must be zero. */
                if ((chars == 2 && (v & 0xffff) != 0) || (chars == 3 && (v & 0xff) != 0))
                        return -EBADMSG;
        }
        out[n] = 0;
        *ret = TAKE_PTR(out);
        *ret_size = n;
        return 0;
}

int dsse_base64_encode(const void *data, size_t size, char **ret) {
        const uint8_t *p = data;
        char *out, *o;

        assert_return((data || size == 0) && ret, -EINVAL);
        if (size > (SIZE_MAX - 1) / 4 * 3)
                return -ENOMEM;
        out = o = malloc((size + 2) / 3 * 4 + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < size; i += 3) {
                uint32_t v = (uint32_t) p[i] << 16;
                size_t k = MIN(size - i, (size_t) 3);

                if (k > 1)
                        v |= (uint32_t) p[i + 1] << 8;
                if (k > 2)
                        v |= p[i + 2];
                *o++ = b64_std[v >> 18 & 63];
                *o++ = b64_std[v >> 12 & 63];
                *o++ = k > 1 ? b64_std[v >> 6 & 63] : '=';
                *o++ = k > 2 ? b64_std[v & 63] : '=';
        }
        *o = 0;
        *ret = out;
        return 0;
}

/* ---- parsing and formatting ---------------------------------------------------------------- */

static int parse_signature(json_t *o, size_t idx, DsseSignature *ret, char **ret_reason) {
        static const char *const fields[] = {"keyid", "sig", NULL};
        _cleanup_free_ uint8_t *sig = NULL;
        _cleanup_free_ char *keyid = NULL;
        const char *s = NULL;
        char where[64];
        size_t sig_size = 0;
        json_t *k;
        int r;

        (void) snprintf(where, sizeof(where), "signatures[%zu]", idx);
        r = json_strict_object(o, where, fields, ret_reason);
        if (r < 0)
                return r;

        /* keyid: optional; absent, null and "" all mean "none" (DSSE: "an unset field MUST be
         * treated the same as set-but-empty"; Sigstore bundles write null). */
        k = json_object_get(o, "keyid");
        if (k && !json_is_null(k)) {
                r = json_strict_string(o, "keyid", where, true, 0, DSSE_KEYID_MAX, &s, ret_reason);
                if (r < 0)
                        return r;
                if (!isempty(s)) {
                        keyid = strdup(s);
                        if (!keyid)
                                return reason_set(ret_reason, -ENOMEM, "out of memory");
                }
        }

        /* A signature longer than any we could verify is refused early; 1024 base64 bytes is
         * ten times a P-256 DER signature. */
        r = json_strict_string(o, "sig", where, true, 1, 1024, &s, ret_reason);
        if (r < 0)
                return r;
        r = dsse_base64_decode(s, strlen(s), &sig, &sig_size);
        if (r == -ENOMEM)
                return reason_set(ret_reason, r, "out of memory");
        if (r < 0)
                return reason_set(ret_reason, -EBADMSG, "%s.sig: not strict base64", where);

        *ret = (DsseSignature){
                .keyid = TAKE_PTR(keyid),
                .sig = TAKE_PTR(sig),
                .sig_size = sig_size,
        };
        return 0;
}

int dsse_parse(const void *data, size_t size, size_t max_size, DsseEnvelope **ret, char **ret_reason) {
        static const char *const fields[] = {"payloadType", "payload", "signatures", NULL};
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(dsse_envelope_freep) DsseEnvelope *e = NULL;
        json_error_t err;
        const char *s = NULL;
        json_t *sigs;
        int r;

        assert_return((data || size == 0) && ret, -EINVAL);

        if (size > max_size)
                return reason_set(ret_reason, -EFBIG,
                                  "document is %zu bytes, more than the limit of %zu bytes", size, max_size);

        root = json_loadb(data, size, JSON_STRICT_LOAD_FLAGS, &err);
        if (!root)
                return reason_set(ret_reason, -EBADMSG,
                                  "envelope is not valid JSON: %s at line %d column %d", QUOTE(err.text),
                                  err.line, err.column);
        r = json_strict_object(root, "envelope", fields, ret_reason);
        if (r < 0)
                return r;

        e = calloc(1, sizeof(DsseEnvelope));
        if (!e)
                return reason_set(ret_reason, -ENOMEM, "out of memory");

        r = json_strict_string(root, "payloadType", "envelope", true, 0, DSSE_PAYLOAD_TYPE_MAX, &s,
                               ret_reason);
        if (r < 0)
                return r;
        e->payload_type = strdup(s);
        if (!e->payload_type)
                return reason_set(ret_reason, -ENOMEM, "out of memory");

        r = json_strict_string(root, "payload", "envelope", true, 0, SIZE_MAX, &s, ret_reason);
        if (r < 0)
                return r;
        r = dsse_base64_decode(s, strlen(s), &e->payload, &e->payload_size);
        if (r == -ENOMEM)
                return reason_set(ret_reason, r, "out of memory");
        if (r < 0)
                return reason_set(ret_reason, -EBADMSG, "envelope.payload: not strict base64");

        sigs = json_object_get(root, "signatures");
        if (!sigs)
                return reason_set(ret_reason, -EBADMSG, "envelope: missing field 'signatures'");
        if (!json_is_array(sigs))
                return reason_set(ret_reason, -EBADMSG, "envelope.signatures: not an array");
        if (json_array_size(sigs) > DSSE_SIGNATURES_MAX)
                return reason_set(ret_reason, -EBADMSG,
                                  "envelope has %zu signatures, more than the limit of %d",
                                  json_array_size(sigs), DSSE_SIGNATURES_MAX);
        if (json_array_size(sigs) > 0) {
                e->signatures = calloc(json_array_size(sigs), sizeof(DsseSignature));
                if (!e->signatures)
                        return reason_set(ret_reason, -ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < json_array_size(sigs); i++) {
                r = parse_signature(json_array_get(sigs, i), i, &e->signatures[i], ret_reason);
                if (r < 0)
                        return r;
                e->n_signatures++;
        }

        *ret = TAKE_PTR(e);
        return 0;
}

int dsse_format(const DsseEnvelope *e, char **ret, size_t *ret_size) {
        _cleanup_(json_decrefp) json_t *root = NULL, *sigs = NULL;
        _cleanup_free_ char *payload = NULL, *text = NULL;
        int r;

        assert_return(e && ret, -EINVAL);

        r = dsse_base64_encode(e->payload, e->payload_size, &payload);
        if (r < 0)
                return r;
        sigs = json_array();
        if (!sigs)
                return -ENOMEM;
        for (size_t i = 0; i < e->n_signatures; i++) {
                _cleanup_free_ char *sig = NULL;
                json_t *o;

                r = dsse_base64_encode(e->signatures[i].sig, e->signatures[i].sig_size, &sig);
                if (r < 0)
                        return r;
                o = e->signatures[i].keyid
                            ? json_pack("{s:s, s:s}", "keyid", e->signatures[i].keyid, "sig", sig)
                            : json_pack("{s:s}", "sig", sig);
                if (!o || json_array_append_new(sigs, o) < 0)
                        return -ENOMEM;
        }
        root = json_pack("{s:s, s:s, s:O}", "payloadType", e->payload_type, "payload", payload, "signatures",
                         sigs);
        if (!root)
                return -ENOMEM;
        text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!text)
                return -ENOMEM;
        if (asprintf(ret, "%s\n", text) < 0)
                return -ENOMEM;
        if (ret_size)
                *ret_size = strlen(*ret);
        return 0;
}

int dsse_pae(const char *type, size_t type_size, const void *body, size_t body_size, uint8_t **ret,
             size_t *ret_size) {
        char head[64], mid[32];
        int hl, ml;
        size_t total;
        uint8_t *p;

        assert_return((type || type_size == 0) && (body || body_size == 0) && ret && ret_size, -EINVAL);

        hl = snprintf(head, sizeof(head), "DSSEv1 %zu ", type_size);
        ml = snprintf(mid, sizeof(mid), " %zu ", body_size);
        if (hl < 0 || ml < 0)
                return -EIO;
        if (ADD_OVERFLOW((size_t) hl + (size_t) ml, type_size, &total) ||
            ADD_OVERFLOW(total, body_size, &total))
                return -ENOMEM;
        p = malloc(total + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p, head, (size_t) hl);
        if (type_size > 0)
                memcpy(p + hl, type, type_size);
        memcpy(p + hl + type_size, mid, (size_t) ml);
        if (body_size > 0)
                memcpy(p + hl + type_size + ml, body, body_size);
        p[total] = 0;
        *ret = p;
        *ret_size = total;
        return 0;
}

static int envelope_pae(const DsseEnvelope *e, uint8_t **ret, size_t *ret_size) {
        return dsse_pae(e->payload_type, strlen(e->payload_type), e->payload, e->payload_size, ret,
                        ret_size);
}

int dsse_sign(DsseEnvelope *e, const Key *k, char **ret_reason) {
        _cleanup_free_ uint8_t *pae = NULL, *sig = NULL;
        _cleanup_free_ char *keyid = NULL;
        size_t pae_size = 0, sig_size = 0;
        DsseSignature *n;
        int r;

        assert_return(e && k, -EINVAL);
        if (!key_has_private(k))
                return reason_set(ret_reason, -ENOKEY, "key %s has no private part", key_get_id(k));
        for (size_t i = 0; i < e->n_signatures; i++)
                if (streq_ptr(e->signatures[i].keyid, key_get_id(k)))
                        return reason_set(ret_reason, -EEXIST, "already signed by key %s", key_get_id(k));
        if (e->n_signatures >= DSSE_SIGNATURES_MAX)
                return reason_set(ret_reason, -E2BIG, "envelope already has %d signatures",
                                  DSSE_SIGNATURES_MAX);

        r = envelope_pae(e, &pae, &pae_size);
        if (r < 0)
                return reason_set(ret_reason, r, "cannot build PAE");
        r = key_sign(k, pae, pae_size, &sig, &sig_size);
        if (r < 0)
                return reason_set(ret_reason, r, "signing with key %s failed", key_get_id(k));
        keyid = strdup(key_get_id(k));
        if (!keyid)
                return reason_set(ret_reason, -ENOMEM, "out of memory");
        n = reallocarray(e->signatures, e->n_signatures + 1, sizeof(DsseSignature));
        if (!n)
                return reason_set(ret_reason, -ENOMEM, "out of memory");
        e->signatures = n;
        e->signatures[e->n_signatures++] = (DsseSignature){
                .keyid = TAKE_PTR(keyid),
                .sig = TAKE_PTR(sig),
                .sig_size = sig_size,
        };
        return 0;
}

/* "a, b, c" of up to a few keyids, for reasons. */
static void append_list(char *buf, size_t size, const char *item) {
        size_t l = strlen(buf);

        if (l + 1 >= size)
                return;
        (void) snprintf(buf + l, size - l, "%s%s", l > 0 ? ", " : "", item);
}

int dsse_verify(const DsseEnvelope *e, const TrustSet *t, uint8_t **ret_payload, size_t *ret_payload_size,
                char ***ret_keyids, char **ret_reason) {
        _cleanup_free_ uint8_t *pae = NULL;
        _cleanup_free_ bool *accepted = NULL;
        _cleanup_(strv_freep) char **keyids = NULL;
        char ignored[320] = "";
        size_t pae_size = 0, n_accepted = 0, n_ignored = 0, n_duplicate = 0;
        int r;

        assert_return(e && t, -EINVAL);

        r = trust_set_validate(t, ret_reason);
        if (r < 0)
                return r;
        if (e->n_signatures == 0)
                return reason_set(ret_reason, -EKEYREJECTED,
                                  "document is not signed (0 of %u required signatures)", t->threshold);

        r = envelope_pae(e, &pae, &pae_size);
        if (r < 0)
                return reason_set(ret_reason, r, "cannot build PAE");
        accepted = calloc(t->n_keys, sizeof(bool));
        if (!accepted)
                return reason_set(ret_reason, -ENOMEM, "out of memory");

        for (size_t i = 0; i < e->n_signatures; i++) {
                const DsseSignature *s = &e->signatures[i];
                int idx = -ENOENT;

                if (s->keyid) {
                        idx = trust_set_find(t, s->keyid);
                        if (idx < 0) {
                                n_ignored++;
                                append_list(ignored, sizeof(ignored), QUOTE(s->keyid));
                                continue;
                        }
                        r = key_verify(t->keys[idx], pae, pae_size, s->sig, s->sig_size);
                        if (r == -EBADMSG)
                                return reason_set(
                                        ret_reason, -EKEYREJECTED,
                                        "signature %zu by trusted key %s does not verify: the document was changed after signing or the signature is corrupt",
                                        i, s->keyid);
                        if (r < 0)
                                return reason_set(ret_reason, r, "verifying signature %zu failed", i);
                } else {
                        /* No keyid: try every trusted key. Bounded: at most DSSE_SIGNATURES_MAX
                         * signatures times TRUST_KEYS_MAX keys. */
                        for (size_t j = 0; j < t->n_keys; j++) {
                                r = key_verify(t->keys[j], pae, pae_size, s->sig, s->sig_size);
                                if (r == 0) {
                                        idx = (int) j;
                                        break;
                                }
                                if (r != -EBADMSG)
                                        return reason_set(ret_reason, r, "verifying signature %zu failed",
                                                          i);
                        }
                        if (idx < 0) {
                                n_ignored++;
                                append_list(ignored, sizeof(ignored), "(no keyid)");
                                continue;
                        }
                }

                if (accepted[idx]) {
                        n_duplicate++;
                        continue;
                }
                accepted[idx] = true;
                n_accepted++;
                r = strv_extend(&keyids, key_get_id(t->keys[idx]));
                if (r < 0)
                        return reason_set(ret_reason, r, "out of memory");
        }

        if (n_accepted < t->threshold) {
                char verified[320] = "";
                char ign[400] = "";

                STRV_FOREACH (k, keyids)
                        append_list(verified, sizeof(verified), *k);
                if (n_ignored > 0)
                        (void) snprintf(ign, sizeof(ign),
                                        "; %zu signature(s) ignored (not by a trusted key): %s", n_ignored,
                                        ignored);
                return reason_set(
                        ret_reason, -EKEYREJECTED,
                        "signature threshold not met: %zu of %u required trusted keys signed%s%s%s%s%s",
                        n_accepted, t->threshold, n_accepted > 0 ? " (" : "", verified,
                        n_accepted > 0 ? ")" : "", ign,
                        n_duplicate > 0 ? "; duplicate signatures by one key count once" : "");
        }

        if (ret_payload) {
                uint8_t *p = memdup_or_null(e->payload, e->payload_size);
                if (!p)
                        return reason_set(ret_reason, -ENOMEM, "out of memory");
                *ret_payload = p;
                if (ret_payload_size)
                        *ret_payload_size = e->payload_size;
        }
        if (ret_keyids)
                *ret_keyids = TAKE_PTR(keyids);
        return 0;
}
