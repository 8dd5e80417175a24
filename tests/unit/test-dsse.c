/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "dsse.h"
#include "fileio.h"
#include "keys.h"
#include "strv.h"

static Key *new_key(KeyType type) {
        EVP_PKEY *p = type == KEY_ED25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
                                          : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        BIO *bio = BIO_new(BIO_s_mem());
        char *data = NULL;
        Key *k = NULL;
        long n;

        assert_non_null(p);
        assert_int_equal(PEM_write_bio_PrivateKey(bio, p, NULL, NULL, 0, NULL, NULL), 1);
        n = BIO_get_mem_data(bio, &data);
        assert_int_equal(key_load_private_pem(data, (size_t) n, &k, NULL), 0);
        BIO_free(bio);
        EVP_PKEY_free(p);
        return k;
}

static TrustSet *trust_of(unsigned threshold, Key *a, Key *b) {
        TrustSet *t = NULL;

        assert_int_equal(trust_set_new(threshold, &t), 0);
        if (a)
                assert_int_equal(trust_set_add(t, a, NULL), 0);
        if (b)
                assert_int_equal(trust_set_add(t, b, NULL), 0);
        return t;
}

static void assert_reason(const char *reason, const char *needle) {
        if (!reason || !strstr(reason, needle))
                fail_msg("reason '%s' does not contain '%s'", strna(reason), needle);
}

/* ---- PAE ---------------------------------------------------------------------------------- */

static void test_pae_spec_vector(void **state) {
        /* protocol.md "Test Vectors". */
        static const char expected[] = "DSSEv1 29 http://example.com/HelloWorld 11 hello world";
        _cleanup_free_ uint8_t *pae = NULL, *empty = NULL, *bin = NULL;
        size_t n = 0;

        assert_int_equal(dsse_pae("http://example.com/HelloWorld", 29, "hello world", 11, &pae, &n), 0);
        assert_int_equal(n, strlen(expected));
        assert_memory_equal(pae, expected, n);

        assert_int_equal(dsse_pae("", 0, "", 0, &empty, &n), 0);
        assert_int_equal(n, 12);
        assert_memory_equal(empty, "DSSEv1 0  0 ", 12);

        /* Lengths are bytes, not characters; the body may hold any byte. */
        assert_int_equal(dsse_pae("t\xc3\xa9", 3, "a\0b", 3, &bin, &n), 0);
        assert_int_equal(n, 18);
        assert_memory_equal(bin, "DSSEv1 3 t\xc3\xa9 3 a\0b", 18);
}

/* The protocol.md test vector signature: ECDSA P-256/SHA-256 over the PAE above, as raw r||s
 * (Cryptodome's encoding). We accept DER only (what OpenSSL writes); re-encoded as DER the
 * same signature must verify, which pins our PAE bytes to the reference implementation's. */
static Key *spec_vector_key(void) {
        static const char X[] =
                "46950820868899156662930047687818585632848591499744589407958293238635476079160";
        static const char Y[] =
                "5640078356564379163099075877009565129882514886557779369047442380624545832820";
        BIGNUM *x = NULL, *y = NULL;
        uint8_t pub[65];
        OSSL_PARAM params[3];
        EVP_PKEY_CTX *ctx;
        EVP_PKEY *pkey = NULL;
        BIO *bio;
        char *data = NULL;
        long n;
        Key *k = NULL;

        assert_true(BN_dec2bn(&x, X) > 0);
        assert_true(BN_dec2bn(&y, Y) > 0);
        pub[0] = 0x04;
        assert_int_equal(BN_bn2binpad(x, pub + 1, 32), 32);
        assert_int_equal(BN_bn2binpad(y, pub + 33, 32), 32);
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *) "prime256v1", 0);
        params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub));
        params[2] = OSSL_PARAM_construct_end();
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
        assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params), 1);
        bio = BIO_new(BIO_s_mem());
        assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
        n = BIO_get_mem_data(bio, &data);
        assert_int_equal(key_load_public_pem(data, (size_t) n, &k, NULL), 0);
        BIO_free(bio);
        EVP_PKEY_free(pkey);
        EVP_PKEY_CTX_free(ctx);
        BN_free(x);
        BN_free(y);
        return k;
}

static void test_spec_vector_signature(void **state) {
        static const char envelope[] =
                "{\"payload\": \"aGVsbG8gd29ybGQ=\",\n"
                " \"payloadType\": \"http://example.com/HelloWorld\",\n"
                " \"signatures\": [{\"sig\": \"A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA==\"}]}";
        _cleanup_(key_unrefp) Key *k = spec_vector_key();
        _cleanup_(trust_set_freep) TrustSet *t = trust_of(1, k, NULL);
        _cleanup_(dsse_envelope_freep) DsseEnvelope *e = NULL;
        _cleanup_free_ char *reason = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        _cleanup_(strv_freep) char **keyids = NULL;
        unsigned char *der = NULL;
        ECDSA_SIG *es = ECDSA_SIG_new();
        size_t n = 0;
        int len;

        assert_int_equal(dsse_parse(envelope, strlen(envelope), 4096, &e, NULL), 0);
        assert_null(e->signatures[0].keyid);
        assert_int_equal(e->signatures[0].sig_size, 64);

        /* As given (raw r||s): not DER, so no trusted key verifies it. */
        assert_int_equal(dsse_verify(e, t, NULL, NULL, NULL, &reason), -EKEYREJECTED);
        assert_reason(reason, "threshold not met");

        assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(e->signatures[0].sig, 32, NULL),
                                        BN_bin2bn(e->signatures[0].sig + 32, 32, NULL)),
                         1);
        len = i2d_ECDSA_SIG(es, &der);
        assert_true(len > 0);
        free(e->signatures[0].sig);
        e->signatures[0].sig = memdup_or_null(der, (size_t) len);
        e->signatures[0].sig_size = (size_t) len;
        OPENSSL_free(der);
        ECDSA_SIG_free(es);

        assert_int_equal(dsse_verify(e, t, &payload, &n, &keyids, NULL), 0);
        assert_int_equal(n, 11);
        assert_memory_equal(payload, "hello world", 11);
        assert_int_equal(strv_length(keyids), 1);
        assert_string_equal(keyids[0], key_get_id(k));
}

/* ---- base64 ------------------------------------------------------------------------------- */

static void b64_ok(const char *s, const void *expected, size_t n) {
        _cleanup_free_ uint8_t *out = NULL;
        size_t m = 0;

        if (dsse_base64_decode(s, strlen(s), &out, &m) != 0)
                fail_msg("'%s' should decode", s);
        assert_int_equal(m, n);
        if (n > 0)
                assert_memory_equal(out, expected, n);
}

static void b64_bad(const char *s) {
        _cleanup_free_ uint8_t *out = NULL;
        size_t m = 0;

        if (dsse_base64_decode(s, strlen(s), &out, &m) != -EBADMSG)
                fail_msg("'%s' should be refused", s);
        assert_null(out);
}

static void test_base64(void **state) {
        b64_ok("", "", 0);
        b64_ok("aGVsbG8gd29ybGQ=", "hello world", 11);
        b64_ok("YQ==", "a", 1);
        b64_ok("YWI=", "ab", 2);
        b64_ok("YWJj", "abc", 3);
        /* Either alphabet, as DSSE requires of verifiers. */
        b64_ok("+/+/", "\xfb\xff\xbf", 3);
        b64_ok("-_-_", "\xfb\xff\xbf", 3);
        /* ... but one per string. */
        b64_bad("+/-_");
        b64_bad("-/+_");
        /* Padding is required, only at the end, at most two. */
        b64_bad("aGVsbG8gd29ybGQ");
        b64_bad("YQ");
        b64_bad("YQ=");
        b64_bad("=AAA");
        b64_bad("AA=A");
        b64_bad("A===");
        b64_bad("YQ==YQ==");
        b64_bad("AAAA====");
        /* Non-canonical: unused bits set. */
        b64_bad("YR==");
        b64_bad("YWJ=");
        b64_bad("aGVsbG8gd29ybGR=");
        /* No whitespace, no other characters. */
        b64_bad("aGV\nbG8g");
        b64_bad("aGV bG8g");
        b64_bad("aGVs\r\n");
        b64_bad("aGV*");
        b64_bad("aGV\xc3\xa9");

        /* Round trips. */
        for (size_t n = 0; n < 300; n++) {
                uint8_t buf[300];
                _cleanup_free_ char *enc = NULL;
                _cleanup_free_ uint8_t *dec = NULL;
                size_t m = 0;

                assert_int_equal(RAND_bytes(buf, (int) MAX(n, (size_t) 1)), 1);
                assert_int_equal(dsse_base64_encode(buf, n, &enc), 0);
                assert_int_equal(strlen(enc), (n + 2) / 3 * 4);
                assert_int_equal(dsse_base64_decode(enc, strlen(enc), &dec, &m), 0);
                assert_int_equal(m, n);
                if (n > 0)
                        assert_memory_equal(dec, buf, n);
        }
}

/* ---- parsing ------------------------------------------------------------------------------ */

static void parse_bad(const char *json, size_t max, int error, const char *needle) {
        _cleanup_(dsse_envelope_freep) DsseEnvelope *e = NULL;
        _cleanup_free_ char *reason = NULL;
        int r;

        r = dsse_parse(json, strlen(json), max, &e, &reason);
        if (r != error)
                fail_msg("parsing %s: expected %d, got %d (%s)", json, error, r, strna(reason));
        assert_null(e);
        assert_reason(reason, needle);
}

#define SIG "\"sig\": \"AAAA\""

static void test_parse_strict(void **state) {
        _cleanup_(dsse_envelope_freep) DsseEnvelope *e = NULL;
        _cleanup_free_ char *many = NULL;
        const char *ok =
                "{\"payloadType\": \"t\", \"payload\": \"YQ==\", \"signatures\": [{\"keyid\": \"k\", " SIG
                "}]}";
        FILE *f;
        size_t l;

        assert_int_equal(dsse_parse(ok, strlen(ok), 4096, &e, NULL), 0);
        assert_string_equal(e->payload_type, "t");
        assert_int_equal(e->payload_size, 1);
        assert_string_equal(e->signatures[0].keyid, "k");
        assert_int_equal(e->signatures[0].sig_size, 3);

        parse_bad(ok, strlen(ok) - 1, -EFBIG, "more than the limit");
        parse_bad("[]", 100, -EBADMSG, "not a JSON object");
        parse_bad("null", 100, -EBADMSG, "not valid JSON");
        parse_bad("{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": []} x", 100, -EBADMSG,
                  "not valid JSON");
        parse_bad("{\"payloadType\": \"t\", \"payloadType\": \"u\", \"payload\": \"\", \"signatures\": []}",
                  200, -EBADMSG, "duplicate");
        parse_bad("{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": [], \"x\": 1}", 200, -EBADMSG,
                  "envelope: unknown field 'x'");
        parse_bad("{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": [], \"payload\\u0000x\": 1}",
                  200, -EBADMSG, "NUL byte in object key");
        parse_bad("{\"payloadType\": 1, \"payload\": \"\", \"signatures\": []}", 200, -EBADMSG,
                  "envelope.payloadType: not a string");
        parse_bad("{\"payloadType\": \"t\\u0000x\", \"payload\": \"\", \"signatures\": []}", 200, -EBADMSG,
                  "envelope.payloadType: contains a NUL");
        parse_bad("{\"payloadType\": \"t\", \"signatures\": []}", 200, -EBADMSG, "missing field 'payload'");
        parse_bad("{\"payloadType\": \"t\", \"payload\": \"YQ\", \"signatures\": []}", 200, -EBADMSG,
                  "envelope.payload: not strict base64");
        parse_bad("{\"payloadType\": \"t\", \"payload\": \"\"}", 200, -EBADMSG,
                  "missing field 'signatures'");
        parse_bad("{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": {}}", 200, -EBADMSG,
                  "not an array");
        parse_bad("{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": [1]}", 200, -EBADMSG,
                  "signatures[0]: not a JSON object");
        parse_bad("{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": [{" SIG
                  ", \"cert\": \"x\"}]}",
                  200, -EBADMSG, "signatures[0]: unknown field 'cert'");
        parse_bad("{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": [{\"keyid\": \"k\"}]}", 200,
                  -EBADMSG, "signatures[0]: missing field 'sig'");
        parse_bad("{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": [{\"sig\": \"\"}]}", 200,
                  -EBADMSG, "signatures[0].sig: empty");
        parse_bad("{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": [{\"sig\": \"AA\"}]}", 200,
                  -EBADMSG, "signatures[0].sig: not strict base64");
        parse_bad("{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": [{\"keyid\": 7, " SIG "}]}",
                  200, -EBADMSG, "signatures[0].keyid: not a string");
        parse_bad(
                "{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": [{\"keyid\": \"a\\u0000b\", " SIG
                "}]}",
                200, -EBADMSG, "signatures[0].keyid: contains a NUL");
        parse_bad("{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": [{\"keyid\": \"\xff\", " SIG
                  "}]}",
                  200, -EBADMSG, "not valid JSON");

        /* keyid absent, null and "" all mean "none". */
        {
                const char *forms[] = {
                        "{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": [{" SIG "}]}",
                        "{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": [{\"keyid\": null, " SIG
                        "}]}",
                        "{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": [{\"keyid\": \"\", " SIG
                        "}]}",
                };
                for (size_t i = 0; i < ELEMENTSOF(forms); i++) {
                        _cleanup_(dsse_envelope_freep) DsseEnvelope *x = NULL;
                        assert_int_equal(dsse_parse(forms[i], strlen(forms[i]), 200, &x, NULL), 0);
                        assert_null(x->signatures[0].keyid);
                        assert_int_equal(x->payload_size, 0);
                }
        }

        /* Signature count limit. */
        f = open_memstream(&many, &l);
        fputs("{\"payloadType\": \"t\", \"payload\": \"\", \"signatures\": [", f);
        for (int i = 0; i <= DSSE_SIGNATURES_MAX; i++)
                fprintf(f, "%s{" SIG "}", i ? "," : "");
        fputs("]}", f);
        fclose(f);
        parse_bad(many, 100000, -EBADMSG, "more than the limit of 16");
}

/* ---- signing and verification ----------------------------------------------------------- */

typedef struct Fixture {
        Key *a, *b, *c; /* a: ed25519, b: p256 (trusted); c: ed25519, never trusted */
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));
        f->a = new_key(KEY_ED25519);
        f->b = new_key(KEY_P256);
        f->c = new_key(KEY_ED25519);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        key_unref(f->a);
        key_unref(f->b);
        key_unref(f->c);
        free(f);
        return 0;
}

static DsseEnvelope *signed_by(Key *k1, Key *k2) {
        DsseEnvelope *e = NULL;

        assert_int_equal(dsse_envelope_new("application/vnd.example+json", "{\"v\":1}", 7, &e), 0);
        if (k1)
                assert_int_equal(dsse_sign(e, k1, NULL), 0);
        if (k2)
                assert_int_equal(dsse_sign(e, k2, NULL), 0);
        return e;
}

static void verify_bad(const DsseEnvelope *e, const TrustSet *t, int error, const char *needle) {
        _cleanup_free_ char *reason = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        _cleanup_(strv_freep) char **keyids = NULL;
        size_t n = 0;
        int r = dsse_verify(e, t, &payload, &n, &keyids, &reason);

        if (r != error)
                fail_msg("expected %d, got %d (%s)", error, r, strna(reason));
        assert_null(payload);
        assert_null(keyids);
        assert_reason(reason, needle);
}

static void test_sign_verify(void **state) {
        Fixture *f = *state;
        _cleanup_(dsse_envelope_freep) DsseEnvelope *e = signed_by(f->a, NULL), *back = NULL;
        _cleanup_(trust_set_freep) TrustSet *t = trust_of(1, f->a, NULL);
        _cleanup_free_ uint8_t *payload = NULL;
        _cleanup_free_ char *text = NULL, *reason = NULL;
        _cleanup_(strv_freep) char **keyids = NULL;
        size_t n = 0, tn = 0;

        assert_int_equal(dsse_verify(e, t, &payload, &n, &keyids, NULL), 0);
        assert_int_equal(n, 7);
        assert_memory_equal(payload, "{\"v\":1}", 7);
        assert_int_equal(strv_length(keyids), 1);
        assert_string_equal(keyids[0], key_get_id(f->a));

        /* Format → parse gives the same envelope, which still verifies. */
        assert_int_equal(dsse_format(e, &text, &tn), 0);
        assert_int_equal(tn, strlen(text));
        assert_int_equal(text[tn - 1], '\n');
        assert_int_equal(dsse_parse(text, tn, 65536, &back, NULL), 0);
        assert_string_equal(back->payload_type, e->payload_type);
        assert_int_equal(back->payload_size, e->payload_size);
        assert_int_equal(back->n_signatures, 1);
        assert_string_equal(back->signatures[0].keyid, key_get_id(f->a));
        assert_int_equal(dsse_verify(back, t, NULL, NULL, NULL, NULL), 0);

        /* Signing twice with one key is refused; a key without a private part cannot sign. */
        assert_int_equal(dsse_sign(e, f->a, &reason), -EEXIST);
        assert_reason(reason, "already signed by key");
        {
                _cleanup_free_ char *pem = NULL;
                _cleanup_(key_unrefp) Key *pub = NULL;
                assert_int_equal(key_get_public_pem(f->b, &pem), 0);
                assert_int_equal(key_load_public_pem(pem, strlen(pem), &pub, NULL), 0);
                assert_int_equal(dsse_sign(e, pub, &reason), -ENOKEY);
        }
        /* An invalid trust set is a programming/config error, not a verdict on the document. */
        t->threshold = 0;
        verify_bad(e, t, -EINVAL, "threshold must be at least 1");
}

static void test_verify_attacks(void **state) {
        Fixture *f = *state;
        _cleanup_(trust_set_freep) TrustSet *t1 = trust_of(1, f->a, NULL), *t2 = trust_of(2, f->a, f->b);
        char ida[80];

        (void) snprintf(ida, sizeof(ida), "signature 0 by trusted key %s does not verify", key_get_id(f->a));

        /* Unsigned. */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = signed_by(NULL, NULL);
                verify_bad(e, t1, -EKEYREJECTED, "not signed");
        }
        /* Payload changed after signing (one byte). */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = signed_by(f->a, NULL);
                e->payload[5] = '2';
                verify_bad(e, t1, -EKEYREJECTED, ida);
        }
        /* Payload extended (same prefix). */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = signed_by(f->a, NULL);
                e->payload_size--;
                verify_bad(e, t1, -EKEYREJECTED, ida);
        }
        /* payloadType changed: it is authenticated through PAE. */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = signed_by(f->a, NULL);
                free(e->payload_type);
                e->payload_type = strdup("application/json");
                verify_bad(e, t1, -EKEYREJECTED, ida);
        }
        /* Signature replaced by another key's signature, keyid kept. */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = signed_by(f->a, NULL),
                                                            *o = signed_by(f->c, NULL);
                free(e->signatures[0].sig);
                e->signatures[0].sig = memdup_or_null(o->signatures[0].sig, o->signatures[0].sig_size);
                verify_bad(e, t1, -EKEYREJECTED, ida);
        }
        /* Signed by an untrusted key only. */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = signed_by(f->c, NULL);
                verify_bad(e, t1, -EKEYREJECTED, "0 of 1 required trusted keys signed");
                verify_bad(e, t1, -EKEYREJECTED, key_get_id(f->c));
        }
        /* Threshold 2: one trusted signature is not enough, and the same key twice counts once,
         * whether it is the same signature copied or a second signature by that key. */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = signed_by(f->a, f->c);
                verify_bad(e, t2, -EKEYREJECTED, "1 of 2 required trusted keys signed");

                free(e->signatures[1].keyid);
                free(e->signatures[1].sig);
                e->signatures[1] = (DsseSignature){
                        .keyid = strdup(e->signatures[0].keyid),
                        .sig = memdup_or_null(e->signatures[0].sig, e->signatures[0].sig_size),
                        .sig_size = e->signatures[0].sig_size,
                };
                verify_bad(e, t2, -EKEYREJECTED, "duplicate signatures by one key count once");
        }
        /* Both: accepted, each key listed once. */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = signed_by(f->a, f->b);
                _cleanup_(strv_freep) char **keyids = NULL;
                assert_int_equal(dsse_verify(e, t2, NULL, NULL, &keyids, NULL), 0);
                assert_int_equal(strv_length(keyids), 2);
                assert_string_equal(keyids[0], key_get_id(f->a));
                assert_string_equal(keyids[1], key_get_id(f->b));
        }
        /* A signature claiming a trusted keyid that does not verify is fatal even when the
         * threshold is met by others: someone changed something. */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = signed_by(f->a, f->b);
                e->signatures[1].sig[4] ^= 0x40;
                t2->threshold = 1;
                verify_bad(e, t2, -EKEYREJECTED, "signature 1 by trusted key");
                t2->threshold = 2;
        }
}

static void test_verify_keyid_rules(void **state) {
        Fixture *f = *state;
        _cleanup_(trust_set_freep) TrustSet *t = trust_of(1, f->a, f->b);

        /* No keyid: every trusted key is tried. */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = signed_by(f->b, NULL);
                _cleanup_(strv_freep) char **keyids = NULL;
                free(e->signatures[0].keyid);
                e->signatures[0].keyid = NULL;
                assert_int_equal(dsse_verify(e, t, NULL, NULL, &keyids, NULL), 0);
                assert_string_equal(keyids[0], key_get_id(f->b));
        }
        /* No keyid, and no trusted key made it: ignored. */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = signed_by(f->c, NULL);
                free(e->signatures[0].keyid);
                e->signatures[0].keyid = NULL;
                verify_bad(e, t, -EKEYREJECTED, "(no keyid)");
        }
        /* A keyid that names no trusted key is not searched further, even when the signature
         * is in fact by a trusted key: ignored. */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = signed_by(f->a, NULL);
                free(e->signatures[0].keyid);
                e->signatures[0].keyid = strdup("SHA256:not-our-format\x01");
                verify_bad(e, t, -EKEYREJECTED, "SHA256:not-our-format\\x01");
        }
        /* A keyid naming another trusted key than the one that signed: refused. */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = signed_by(f->a, NULL);
                free(e->signatures[0].keyid);
                e->signatures[0].keyid = strdup(key_get_id(f->b));
                verify_bad(e, t, -EKEYREJECTED, "does not verify");
        }
        /* The signature limit applies to signing too. */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = signed_by(NULL, NULL);
                _cleanup_free_ char *reason = NULL;
                for (int i = 0; i < DSSE_SIGNATURES_MAX; i++) {
                        _cleanup_(key_unrefp) Key *k = new_key(KEY_ED25519);
                        assert_int_equal(dsse_sign(e, k, NULL), 0);
                }
                assert_int_equal(dsse_sign(e, f->a, &reason), -E2BIG);
        }
}

/* ---- real-world envelopes ---------------------------------------------------------------- */

/* The OpenSSF model-signing tool (sigstore/model-transparency) writes DSSE envelopes in Sigstore
 * bundles with ECDSA P-384 keys and "keyid": null. We do not accept P-384 keys, but their
 * envelopes must parse, and our PAE must be the bytes their signatures cover. */
static void test_model_signing_envelopes(void **state) {
        const char *data = test_shared_data();
        const char *dirs[] = {"v0.3.1-elliptic-key", "v0.3.1-certificate",  "v1.0.0-elliptic-key",
                              "v1.0.0-certificate",  "v1.0.1-elliptic-key", "v1.0.1-certificate"};
        _cleanup_free_ char *keypath = NULL, *keypem = NULL, *reason = NULL;
        EVP_PKEY *p384 = NULL;
        BIO *bio;
        size_t n = 0;
        unsigned verified = 0;

        if (!data)
                skip();
        assert_true(asprintf(&keypath, "%s/model-signing/keys/signing-key-pub.pem", data) > 0);
        if (access(keypath, F_OK) < 0)
                skip();
        assert_int_equal(read_full_file(keypath, 65536, &keypem, &n), 0);
        bio = BIO_new_mem_buf(keypem, (int) n);
        p384 = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL); /* skips the text dump before it */
        BIO_free(bio);
        assert_non_null(p384);

        /* Our loader refuses that key, by curve name. */
        {
                Key *k = NULL;
                const char *pem = strstr(keypem, "-----BEGIN PUBLIC KEY-----");
                assert_non_null(pem);
                assert_int_equal(key_load_public_pem(pem, strlen(pem), &k, &reason), -EPROTONOSUPPORT);
                assert_reason(reason, "secp384r1");
        }

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *path = NULL, *text = NULL;
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = NULL;
                _cleanup_free_ uint8_t *pae = NULL;
                size_t pae_size = 0;
                json_t *bundle;
                json_error_t err;
                EVP_MD_CTX *ctx;

                assert_true(asprintf(&path, "%s/model-signing/%s/model.sig", data, dirs[i]) > 0);
                bundle = json_load_file(path, 0, &err);
                assert_non_null(bundle);
                text = json_dumps(json_object_get(bundle, "dsseEnvelope"), 0);
                json_decref(bundle);
                assert_non_null(text);

                assert_int_equal(dsse_parse(text, strlen(text), 1 << 20, &e, NULL), 0);
                assert_string_equal(e->payload_type, "application/vnd.in-toto+json");
                assert_int_equal(e->n_signatures, 1);
                assert_null(e->signatures[0].keyid);

                assert_int_equal(dsse_pae(e->payload_type, strlen(e->payload_type), e->payload,
                                          e->payload_size, &pae, &pae_size),
                                 0);
                ctx = EVP_MD_CTX_new();
                assert_int_equal(EVP_DigestVerifyInit_ex(ctx, NULL, "SHA384", NULL, NULL, p384, NULL), 1);
                if (EVP_DigestVerify(ctx, e->signatures[0].sig, e->signatures[0].sig_size, pae, pae_size) ==
                    1)
                        verified++;
                else
                        fail_msg("%s: our PAE is not what the signature covers", dirs[i]);
                EVP_MD_CTX_free(ctx);
        }
        assert_int_equal(verified, ELEMENTSOF(dirs));
        EVP_PKEY_free(p384);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pae_spec_vector),
                cmocka_unit_test(test_spec_vector_signature),
                cmocka_unit_test(test_base64),
                cmocka_unit_test(test_parse_strict),
                cmocka_unit_test_setup_teardown(test_sign_verify, setup, teardown),
                cmocka_unit_test_setup_teardown(test_verify_attacks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_verify_keyid_rules, setup, teardown),
                cmocka_unit_test(test_model_signing_envelopes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
