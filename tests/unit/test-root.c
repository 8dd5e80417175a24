/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "dsse.h"
#include "fileio.h"
#include "keys.h"
#include "release.h"
#include "root.h"
#include "strv.h"

static uint64_t NOW, PAST, FUTURE;

static void assert_reason(const char *reason, const char *needle) {
        if (!reason || !strstr(reason, needle))
                fail_msg("reason '%s' does not contain '%s'", strna(reason), needle);
}

static Key *new_key(KeyType type) {
        EVP_PKEY *p = type == KEY_ED25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
                                          : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        BIO *bio = BIO_new(BIO_s_mem());
        char *data = NULL;
        Key *k = NULL;
        long n;

        assert_int_equal(PEM_write_bio_PrivateKey(bio, p, NULL, NULL, 0, NULL, NULL), 1);
        n = BIO_get_mem_data(bio, &data);
        assert_int_equal(key_load_private_pem(data, (size_t) n, &k, NULL), 0);
        BIO_free(bio);
        EVP_PKEY_free(p);
        return k;
}

static TrustSet *trust_of(unsigned threshold, Key *a, Key *b, Key *c) {
        TrustSet *t = NULL;
        Key *keys[] = {a, b, c};

        assert_int_equal(trust_set_new(threshold, &t), 0);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (keys[i])
                        assert_int_equal(trust_set_add(t, keys[i], NULL), 0);
        return t;
}

/* Root document for version v listing t, signed by the NULL-terminated list of keys. */
static char *root_doc(uint64_t v, uint64_t expires, TrustSet *t, Key *const *signers) {
        _cleanup_free_ char *doc = NULL;
        size_t n = 0;

        assert_int_equal(root_create(v, expires, t, &doc, &n, NULL), 0);
        for (; signers && *signers; signers++) {
                char *next = NULL;
                size_t m = 0;
                assert_int_equal(root_sign(doc, n, *signers, &next, &m, NULL), 0);
                free(doc);
                doc = next;
                n = m;
        }
        return TAKE_PTR(doc);
}

typedef struct Fixture {
        Key *k1, *k2, *k3, *k4;
        TrustSet *t1;  /* {k1}, 1: the configured trust */
        TrustSet *t2;  /* {k2, k3}, 2 */
        TrustSet *t3;  /* {k3, k4}, 1 */
        Root *root1;   /* implicit, from t1 */
        char *docs[8]; /* docs[v]: root/<v>.json served by the test repository */
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));

        assert_int_equal(release_parse_timestamp("2026-12-01T00:00:00Z", &NOW), 0);
        assert_int_equal(release_parse_timestamp("2026-06-01T00:00:00Z", &PAST), 0);
        assert_int_equal(release_parse_timestamp("2027-12-01T00:00:00Z", &FUTURE), 0);
        f->k1 = new_key(KEY_ED25519);
        f->k2 = new_key(KEY_P256);
        f->k3 = new_key(KEY_ED25519);
        f->k4 = new_key(KEY_P256);
        f->t1 = trust_of(1, f->k1, NULL, NULL);
        f->t2 = trust_of(2, f->k2, f->k3, NULL);
        f->t3 = trust_of(1, f->k3, f->k4, NULL);
        assert_int_equal(root_new_implicit(f->t1, &f->root1), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        key_unref(f->k1);
        key_unref(f->k2);
        key_unref(f->k3);
        key_unref(f->k4);
        trust_set_free(f->t1);
        trust_set_free(f->t2);
        trust_set_free(f->t3);
        root_free(f->root1);
        for (size_t i = 0; i < ELEMENTSOF(f->docs); i++)
                free(f->docs[i]);
        free(f);
        return 0;
}

static int fetch(uint64_t version, void *userdata, char **ret, size_t *ret_size) {
        Fixture *f = userdata;

        if (version >= ELEMENTSOF(f->docs) || !f->docs[version])
                return -ENOENT;
        if (streq(f->docs[version], "EIO"))
                return -EIO;
        *ret = strdup(f->docs[version]);
        *ret_size = strlen(f->docs[version]);
        return 0;
}

static void test_implicit_root(void **state) {
        Fixture *f = *state;

        assert_int_equal(f->root1->version, 1);
        assert_int_equal(f->root1->expires, USEC_INFINITY);
        assert_null(f->root1->document);
        assert_int_equal(root_check_expiry(f->root1, UINT64_MAX - 1, NULL), 0);
        {
                _cleanup_(trust_set_freep) TrustSet *bad = trust_of(2, f->k1, NULL, NULL);
                Root *r = NULL;
                assert_int_equal(root_new_implicit(bad, &r), -EINVAL);
        }
}

static void test_chain(void **state) {
        Fixture *f = *state;
        Key *s2[] = {f->k1, f->k2, f->k3, NULL}, *s3[] = {f->k2, f->k3, f->k4, NULL};
        _cleanup_(root_freep) Root *r2 = NULL, *r3 = NULL, *walked = NULL;
        _cleanup_free_ char *reason = NULL;

        f->docs[2] = root_doc(2, FUTURE, f->t2, s2);
        f->docs[3] = root_doc(3, FUTURE, f->t3, s3);

        /* Step by step. */
        assert_int_equal(root_verify_next(f->root1, f->docs[2], strlen(f->docs[2]), &r2, NULL), 0);
        assert_int_equal(r2->version, 2);
        assert_int_equal(r2->trust->threshold, 2);
        assert_int_equal(r2->trust->n_keys, 2);
        assert_int_equal(trust_set_find(r2->trust, key_get_id(f->k2)), 0);
        assert_int_equal(root_verify_next(r2, f->docs[3], strlen(f->docs[3]), &r3, NULL), 0);
        assert_int_equal(r3->version, 3);

        /* N → N+2 directly is refused: root 3 is not signed by root 1's keys. */
        {
                Root *x = NULL;
                assert_int_equal(root_verify_next(f->root1, f->docs[3], strlen(f->docs[3]), &x, &reason),
                                 -EKEYREJECTED);
                assert_reason(reason, "root 2 is not signed by the threshold of the current root");
        }
        /* Walked: 1 → 2 → 3. */
        assert_int_equal(root_walk(f->root1, fetch, f, 0, &walked, NULL), 2);
        assert_int_equal(walked->version, 3);
        assert_int_equal(root_check_expiry(walked, NOW, NULL), 0);
        /* Walking from the newest again changes nothing. */
        {
                _cleanup_(root_freep) Root *again = NULL;
                assert_int_equal(root_walk(walked, fetch, f, 0, &again, NULL), 0);
                assert_int_equal(again->version, 3);
        }
        /* A step limit stops early; the next walk continues. */
        {
                _cleanup_(root_freep) Root *one = NULL, *rest = NULL;
                assert_int_equal(root_walk(f->root1, fetch, f, 1, &one, NULL), 1);
                assert_int_equal(one->version, 2);
                assert_int_equal(root_walk(one, fetch, f, 1, &rest, NULL), 1);
                assert_int_equal(rest->version, 3);
        }

        /* Releases follow the root: signed by k4 only is good under root 3, not under root 1. */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = NULL;
                assert_int_equal(dsse_envelope_new("t", "x", 1, &e), 0);
                assert_int_equal(dsse_sign(e, f->k4, NULL), 0);
                assert_int_equal(dsse_verify(e, walked->trust, NULL, NULL, NULL, NULL), 0);
                assert_int_equal(dsse_verify(e, f->root1->trust, NULL, NULL, NULL, NULL), -EKEYREJECTED);
        }
}

static void test_missing_signatures(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *reason = NULL;
        Root *x = NULL;

        /* New keys only: the old root never agreed. */
        {
                Key *s[] = {f->k2, f->k3, NULL};
                _cleanup_free_ char *d = root_doc(2, FUTURE, f->t2, s);
                assert_int_equal(root_verify_next(f->root1, d, strlen(d), &x, &reason), -EKEYREJECTED);
                assert_reason(reason, "not signed by the threshold of the current root");
        }
        /* Old key only: nobody showed they hold the new keys. */
        {
                Key *s[] = {f->k1, NULL};
                _cleanup_free_ char *d = root_doc(2, FUTURE, f->t2, s);
                assert_int_equal(root_verify_next(f->root1, d, strlen(d), &x, &reason), -EKEYREJECTED);
                assert_reason(reason, "root 2 is not signed by the threshold of its own keys");
                assert_reason(reason, "0 of 2");
        }
        /* Old key and one of two new keys (threshold 2). */
        {
                Key *s[] = {f->k1, f->k2, NULL};
                _cleanup_free_ char *d = root_doc(2, FUTURE, f->t2, s);
                assert_int_equal(root_verify_next(f->root1, d, strlen(d), &x, &reason), -EKEYREJECTED);
                assert_reason(reason, "1 of 2");
        }
        /* Unsigned. */
        {
                _cleanup_free_ char *d = root_doc(2, FUTURE, f->t2, NULL);
                assert_int_equal(root_verify_next(f->root1, d, strlen(d), &x, &reason), -EKEYREJECTED);
                assert_reason(reason, "not signed");
        }
        /* In a walk, a bad document stops everything and returns nothing. */
        {
                Key *s[] = {f->k2, f->k3, NULL};
                f->docs[2] = root_doc(2, FUTURE, f->t2, s);
                assert_int_equal(root_walk(f->root1, fetch, f, 0, &x, &reason), -EKEYREJECTED);
                assert_null(x);
        }
}

static void test_versions(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *reason = NULL;
        Root *x = NULL;

        /* A document claiming version 3 served as root/2.json, properly signed by both sets. */
        {
                Key *s[] = {f->k1, f->k2, f->k3, NULL};
                _cleanup_free_ char *d = root_doc(3, FUTURE, f->t2, s);
                assert_int_equal(root_verify_next(f->root1, d, strlen(d), &x, &reason), -ERANGE);
                assert_reason(reason, "carries version 3, expected 2");
        }
        /* Replaying root 1 as root 2. */
        {
                Key *s[] = {f->k1, NULL};
                _cleanup_free_ char *d = root_doc(1, FUTURE, f->t1, s);
                assert_int_equal(root_verify_next(f->root1, d, strlen(d), &x, &reason), -ERANGE);
                assert_reason(reason, "carries version 1, expected 2");
        }
        /* A fetch error aborts the walk. */
        f->docs[2] = strdup("EIO");
        assert_int_equal(root_walk(f->root1, fetch, f, 0, &x, &reason), -EIO);
        assert_reason(reason, "cannot fetch root 2");
}

/* TUF 5.3.6: an intermediate root's expiry does not matter; the newest root's does. */
static void test_expiry(void **state) {
        Fixture *f = *state;
        Key *s2[] = {f->k1, f->k2, f->k3, NULL}, *s3[] = {f->k2, f->k3, f->k4, NULL};
        _cleanup_(root_freep) Root *walked = NULL, *stuck = NULL;
        _cleanup_free_ char *reason = NULL;

        f->docs[2] = root_doc(2, PAST, f->t2, s2); /* expired */
        f->docs[3] = root_doc(3, FUTURE, f->t3, s3);
        assert_int_equal(root_walk(f->root1, fetch, f, 0, &walked, NULL), 2);
        assert_int_equal(walked->version, 3);
        assert_int_equal(root_check_expiry(walked, NOW, NULL), 0);

        /* The chain ends at the expired root: freeze. */
        free(f->docs[3]);
        f->docs[3] = NULL;
        assert_int_equal(root_walk(f->root1, fetch, f, 0, &stuck, NULL), 1);
        assert_int_equal(stuck->version, 2);
        assert_int_equal(root_check_expiry(stuck, NOW, &reason), -ESTALE);
        assert_reason(reason, "trust root version 2 expired at 2026-06-01T00:00:00Z");
}

/* Every "%s" of tmpl replaced by pem (templates are data here, not printf formats). */
static char *fill(const char *tmpl, const char *pem) {
        char *out = NULL;
        size_t n = 0;
        FILE *m = open_memstream(&out, &n);

        for (const char *p = tmpl; *p; p++)
                if (p[0] == '%' && p[1] == 's') {
                        fputs(pem, m);
                        p++;
                } else
                        fputc(*p, m);
        fclose(m);
        return out;
}

static void test_payload_strictness(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *pem1 = NULL, *pem2 = NULL, *rsa_pem = NULL;
        static const struct {
                const char *fmt;
                int error;
                const char *needle;
        } cases[] = {
                {"{\"version\": 2, \"expires\": \"2027-01-01T00:00:00Z\", \"threshold\": 1, \"keys\": [\"%s\"]}",
                 0, NULL},
                {"{\"version\": 2, \"expires\": \"2027-01-01T00:00:00Z\", \"threshold\": 2, \"keys\": [\"%s\"]}",
                 -EBADMSG, "threshold 2 is larger than the number of trusted keys (1)"},
                {"{\"version\": 2, \"expires\": \"2027-01-01T00:00:00Z\", \"threshold\": 0, \"keys\": [\"%s\"]}",
                 -EBADMSG, "root.threshold: 0 is out of range"},
                {"{\"version\": 0, \"expires\": \"2027-01-01T00:00:00Z\", \"threshold\": 1, \"keys\": [\"%s\"]}",
                 -EBADMSG, "root.version: 0 is out of range"},
                {"{\"version\": 2, \"expires\": \"soon\", \"threshold\": 1, \"keys\": [\"%s\"]}", -EBADMSG,
                 "root.expires: 'soon'"},
                {"{\"version\": 2, \"expires\": \"2027-01-01T00:00:00Z\", \"threshold\": 1, \"keys\": [\"%s\"], \"x\": 1}",
                 -EBADMSG, "root: unknown field 'x'"},
                {"{\"version\": 2, \"expires\": \"2027-01-01T00:00:00Z\", \"threshold\": 1, \"keys\": \"%s\"}",
                 -EBADMSG, "root.keys: not an array"},
                {"{\"version\": 2, \"expires\": \"2027-01-01T00:00:00Z\", \"threshold\": 1, \"keys\": [\"%s\", 1]}",
                 -EBADMSG, "root.keys[1]: not a PEM string"},
                {"{\"version\": 2, \"expires\": \"2027-01-01T00:00:00Z\", \"threshold\": 1, \"keys\": [\"%s\", \"junk\"]}",
                 -EBADMSG, "root.keys[1]: not a PEM file"},
        };
        _cleanup_free_ char *reason = NULL;

        assert_int_equal(key_get_public_pem(f->k1, &pem1), 0);
        {
                /* JSON-escape the PEM newlines. */
                _cleanup_free_ char *j = NULL;
                size_t n = 0;
                FILE *m = open_memstream(&j, &n);
                for (const char *p = pem1; *p; p++)
                        if (*p == '\n')
                                fputs("\\n", m);
                        else
                                fputc(*p, m);
                fclose(m);
                pem2 = TAKE_PTR(j);
        }
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *s = NULL;
                _cleanup_(root_freep) Root *r = NULL;
                int k;

                s = fill(cases[i].fmt, pem2);
                k = root_parse_payload(s, strlen(s), &r, &reason);
                if (k != cases[i].error)
                        fail_msg("case %zu: expected %d, got %d (%s)", i, cases[i].error, k, strna(reason));
                if (cases[i].needle)
                        assert_reason(reason, cases[i].needle);
        }
        /* The same key twice. */
        {
                _cleanup_free_ char *s = NULL;
                Root *r = NULL;
                assert_true(
                        asprintf(
                                &s,
                                "{\"version\": 2, \"expires\": \"2027-01-01T00:00:00Z\", \"threshold\": 1, \"keys\": [\"%s\", \"%s\"]}",
                                pem2, pem2) > 0);
                assert_int_equal(root_parse_payload(s, strlen(s), &r, &reason), -EBADMSG);
                assert_reason(reason, "root.keys[1]: key");
                assert_reason(reason, "listed twice");
        }
        /* An RSA key in a root: refused with the reason. */
        {
                EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
                BIO *bio = BIO_new(BIO_s_mem());
                char *data = NULL, *s = NULL;
                size_t n = 0;
                Root *r = NULL;
                FILE *m;
                long l;

                assert_int_equal(PEM_write_bio_PUBKEY(bio, p), 1);
                l = BIO_get_mem_data(bio, &data);
                m = open_memstream(&rsa_pem, &n);
                for (long i = 0; i < l; i++)
                        if (data[i] == '\n')
                                fputs("\\n", m);
                        else
                                fputc(data[i], m);
                fclose(m);
                BIO_free(bio);
                EVP_PKEY_free(p);
                assert_true(
                        asprintf(
                                &s,
                                "{\"version\": 2, \"expires\": \"2027-01-01T00:00:00Z\", \"threshold\": 1, \"keys\": [\"%s\", \"%s\"]}",
                                pem2, rsa_pem) > 0);
                assert_int_equal(root_parse_payload(s, strlen(s), &r, &reason), -EPROTONOSUPPORT);
                assert_reason(reason, "root.keys[1]: unsupported key type: RSA");
                free(s);
        }
        /* A root document with another payloadType, properly signed. */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = NULL;
                _cleanup_free_ char *s = NULL, *text = NULL;
                Root *r = NULL;
                s = fill(cases[0].fmt, pem2);
                assert_int_equal(dsse_envelope_new(RELEASE_PAYLOAD_TYPE, s, strlen(s), &e), 0);
                assert_int_equal(dsse_sign(e, f->k1, NULL), 0);
                assert_int_equal(dsse_format(e, &text, NULL), 0);
                assert_int_equal(root_verify_next(f->root1, text, strlen(text), &r, &reason),
                                 -EPROTONOSUPPORT);
                assert_reason(reason, "payloadType");
                assert_int_equal(root_load_document(text, strlen(text), &r, &reason), -EPROTONOSUPPORT);
        }
}

static void test_documents_and_state(void **state) {
        Fixture *f = *state;
        Key *s2[] = {f->k1, f->k2, f->k3, NULL}, *self3[] = {f->k3, NULL},
            *s3[] = {f->k2, f->k3, f->k4, NULL};
        _cleanup_(root_freep) Root *r2 = NULL, *back = NULL, *admin = NULL, *back2 = NULL;
        _cleanup_free_ char *state_text = NULL, *reason = NULL;
        char a[SHA256_HEX_SIZE], b[SHA256_HEX_SIZE];
        size_t n = 0;

        f->docs[2] = root_doc(2, FUTURE, f->t2, s2);
        assert_int_equal(root_verify_next(f->root1, f->docs[2], strlen(f->docs[2]), &r2, NULL), 0);
        assert_non_null(r2->document);

        /* Persist root 2 reached from the configured root 1; load it back. */
        assert_int_equal(root_state_format(f->root1, r2, &state_text, &n), 0);
        assert_int_equal(root_state_parse(state_text, n, f->root1, &back, NULL), 0);
        assert_int_equal(back->version, 2);
        assert_int_equal(root_fingerprint(back, a), 0);
        assert_int_equal(root_fingerprint(r2, b), 0);
        assert_string_equal(a, b);
        assert_int_equal(root_fingerprint(f->root1, a), 0);
        assert_string_not_equal(a, b);

        /* The administrator changed trust: the stored root no longer applies. */
        {
                _cleanup_(root_freep) Root *other = NULL;
                Root *x = NULL;
                assert_int_equal(root_new_implicit(f->t3, &other), 0);
                assert_int_equal(root_state_parse(state_text, n, other, &x, &reason), -ESTALE);
                assert_reason(reason, "another configured root");
        }
        /* Nothing but the implicit root: document null, loads as the configured root. */
        {
                _cleanup_free_ char *s = NULL;
                size_t sn = 0;
                assert_int_equal(root_state_format(f->root1, f->root1, &s, &sn), 0);
                assert_non_null(strstr(s, "\"document\": null"));
                assert_int_equal(root_state_parse(s, sn, f->root1, &back2, NULL), 0);
                assert_int_equal(back2->version, 1);
        }
        /* A corrupted state (document not self-signed any more) is refused. */
        {
                _cleanup_free_ char *bad = NULL;
                Root *x = NULL;
                char *p;
                bad = strdup(state_text);
                /* Every signature: the first is by k1, which root 2 itself does not list. */
                p = strstr(bad, "\\\"sig\\\": \\\"");
                assert_non_null(p);
                for (; p; p = strstr(p, "\\\"sig\\\": \\\"")) {
                        p += strlen("\\\"sig\\\": \\\"");
                        *p = *p == 'A' ? 'B' : 'A';
                }
                assert_int_equal(root_state_parse(bad, strlen(bad), f->root1, &x, &reason), -EKEYREJECTED);
        }

        /* A root document given by the administrator: self-signed by its threshold. */
        {
                _cleanup_free_ char *d = root_doc(3, FUTURE, f->t3, self3),
                                    *unsigned_doc = root_doc(3, FUTURE, f->t3, NULL);
                Root *x = NULL;
                assert_int_equal(root_load_document(d, strlen(d), &admin, NULL), 0);
                assert_int_equal(admin->version, 3);
                assert_int_equal(root_load_document(unsigned_doc, strlen(unsigned_doc), &x, &reason),
                                 -EKEYREJECTED);
                assert_reason(reason, "root version 3 is not signed by its own keys");
                /* And the walk continues from it. */
                free(f->docs[4]);
                {
                        _cleanup_(trust_set_freep) TrustSet *t4 = trust_of(1, f->k1, NULL, NULL);
                        Key *s4[] = {f->k3, f->k1, NULL};
                        _cleanup_(root_freep) Root *w = NULL;
                        f->docs[4] = root_doc(4, FUTURE, t4, s4);
                        assert_int_equal(root_walk(admin, fetch, f, 0, &w, NULL), 1);
                        assert_int_equal(w->version, 4);
                }
        }
        /* root_sign refuses signing twice and signing garbage. */
        {
                char *o = NULL;
                size_t on = 0;
                _cleanup_free_ char *d = root_doc(3, FUTURE, f->t3, s3);
                assert_int_equal(root_sign(d, strlen(d), f->k2, &o, &on, &reason), -EEXIST);
                assert_int_equal(root_create(3, USEC_INFINITY, f->t3, &o, &on, &reason), -EINVAL);
                assert_reason(reason, "expiry");
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_implicit_root, setup, teardown),
                cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_signatures, setup, teardown),
                cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
                cmocka_unit_test_setup_teardown(test_payload_strictness, setup, teardown),
                cmocka_unit_test_setup_teardown(test_documents_and_state, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
