/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include "dsse.h"
#include "fileio.h"
#include "hash.h"
#include "keys.h"
#include "strv.h"

/* Keys are generated at run time in a temporary directory: no private key is ever committed. */

static char *pem_of_pubkey(EVP_PKEY *pkey) {
        BIO *bio = BIO_new(BIO_s_mem());
        char *data = NULL, *s;
        long n;

        assert_non_null(bio);
        assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
        n = BIO_get_mem_data(bio, &data);
        s = memdup_or_null(data, (size_t) n);
        BIO_free(bio);
        return s;
}

static char *pem_of_privkey(EVP_PKEY *pkey) {
        BIO *bio = BIO_new(BIO_s_mem());
        char *data = NULL, *s;
        long n;

        assert_non_null(bio);
        assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
        n = BIO_get_mem_data(bio, &data);
        s = memdup_or_null(data, (size_t) n);
        BIO_free(bio);
        return s;
}

/* The keyid computed a second way: base64-decode the PEM body of the .pub file as written and
 * hash it, without going through OpenSSL's encoder. */
static void keyid_of_pem_file(const char *path, char out[static SHA256_HEX_SIZE]) {
        _cleanup_free_ char *pem = NULL, *b64 = NULL;
        _cleanup_free_ uint8_t *der = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        size_t size = 0, der_size = 0, j = 0;
        const char *p, *end;

        assert_int_equal(read_full_file(path, 4096, &pem, &size), 0);
        p = strstr(pem, "-----BEGIN PUBLIC KEY-----\n");
        end = strstr(pem, "-----END PUBLIC KEY-----");
        assert_non_null(p);
        assert_non_null(end);
        p += strlen("-----BEGIN PUBLIC KEY-----\n");
        b64 = malloc((size_t) (end - p) + 1);
        for (; p < end; p++)
                if (*p != '\n')
                        b64[j++] = *p;
        b64[j] = 0;
        assert_int_equal(dsse_base64_decode(b64, j, &der, &der_size), 0);
        assert_int_equal(sha256_buffer(der, der_size, digest), 0);
        hex_encode(digest, sizeof(digest), out);
}

static void test_type_strings(void **state) {
        assert_string_equal(key_type_to_string(KEY_ED25519), "ed25519");
        assert_string_equal(key_type_to_string(KEY_P256), "p256");
        assert_int_equal(key_type_from_string("p256"), KEY_P256);
        assert_int_equal(key_type_from_string("ed25519"), KEY_ED25519);
        assert_int_equal(key_type_from_string("rsa"), -EINVAL);
        assert_null(key_type_to_string(_KEY_TYPE_MAX));
}

static void generate_and_load(KeyType type) {
        _cleanup_free_ char *dir = test_mkdtemp(), *path = path_join(dir, "signing.key"), *pub = NULL;
        _cleanup_(key_unrefp) Key *gen = NULL, *priv = NULL, *pubk = NULL;
        char expected[SHA256_HEX_SIZE];
        struct stat st;

        assert_true(asprintf(&pub, "%s.pub", path) > 0);
        assert_int_equal(keys_generate(type, path, &gen), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(stat(pub, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);

        assert_int_equal(key_load_private_file(path, &priv, NULL), 0);
        assert_int_equal(key_load_public_file(pub, &pubk, NULL), 0);
        assert_true(key_has_private(priv));
        assert_false(key_has_private(pubk));
        assert_int_equal(key_get_type(priv), type);
        assert_int_equal(key_get_type(pubk), type);
        assert_string_equal(key_get_id(gen), key_get_id(priv));
        assert_string_equal(key_get_id(priv), key_get_id(pubk));
        assert_true(sha256_hex_is_valid(key_get_id(pubk)));
        keyid_of_pem_file(pub, expected);
        assert_string_equal(key_get_id(pubk), expected);

        /* Round trip through key_get_public_pem(). */
        {
                _cleanup_free_ char *pem = NULL;
                _cleanup_(key_unrefp) Key *again = NULL;
                assert_int_equal(key_get_public_pem(priv, &pem), 0);
                assert_int_equal(key_load_public_pem(pem, strlen(pem), &again, NULL), 0);
                assert_string_equal(key_get_id(again), key_get_id(pubk));
        }
        assert_int_equal(rm_rf_at(AT_FDCWD, dir), 0);
}

static void test_generate_ed25519(void **state) {
        generate_and_load(KEY_ED25519);
}

static void test_generate_p256(void **state) {
        generate_and_load(KEY_P256);
}

static void test_generate_never_overwrites(void **state) {
        _cleanup_free_ char *dir = test_mkdtemp(), *path = path_join(dir, "k"),
                            *pub = path_join(dir, "k.pub"), *before = NULL, *after = NULL,
                            *other = path_join(dir, "o");
        size_t n1 = 0, n2 = 0;

        assert_int_equal(keys_generate(KEY_ED25519, path, NULL), 0);
        assert_int_equal(read_full_file(path, 4096, &before, &n1), 0);
        assert_int_equal(keys_generate(KEY_P256, path, NULL), -EEXIST);
        {
                /* The public half is still the Ed25519 key's. */
                _cleanup_(key_unrefp) Key *k = NULL;
                assert_int_equal(key_load_public_file(pub, &k, NULL), 0);
                assert_int_equal(key_get_type(k), KEY_ED25519);
        }
        assert_int_equal(read_full_file(path, 4096, &after, &n2), 0);
        assert_int_equal(n1, n2);
        assert_memory_equal(before, after, n1);

        /* Only the .pub exists: still refused, and no private key appears. */
        {
                _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                assert_int_equal(write_file_atomic_at(dfd, "o.pub", "x", 1, 0644), 0);
        }
        assert_int_equal(keys_generate(KEY_ED25519, other, NULL), -EEXIST);
        assert_int_equal(access(other, F_OK), -1);
        assert_int_equal(errno, ENOENT);

        /* A dangling symlink at the target is not followed or replaced. */
        {
                _cleanup_free_ char *link = path_join(dir, "l"), *target = path_join(dir, "nowhere");
                assert_int_equal(symlink(target, link), 0);
                assert_int_equal(keys_generate(KEY_ED25519, link, NULL), -EEXIST);
                assert_int_equal(access(target, F_OK), -1);
        }
        /* No temporary files are left behind. */
        {
                _cleanup_free_ char *cmd = NULL;
                assert_true(asprintf(&cmd, "test $(ls -A '%s' | grep -c '^\\.#') = 0", dir) > 0);
                assert_int_equal(system(cmd), 0);
        }
        assert_int_equal(rm_rf_at(AT_FDCWD, dir), 0);
}

static Key *new_key(KeyType type) {
        EVP_PKEY *p = type == KEY_ED25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
                                          : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        _cleanup_free_ char *pem = NULL;
        Key *k = NULL;

        assert_non_null(p);
        pem = pem_of_privkey(p);
        EVP_PKEY_free(p);
        assert_int_equal(key_load_private_pem(pem, strlen(pem), &k, NULL), 0);
        return k;
}

static void sign_verify(KeyType type) {
        _cleanup_(key_unrefp) Key *k = new_key(type), *other = new_key(type),
                                  *cross = new_key(type == KEY_ED25519 ? KEY_P256 : KEY_ED25519),
                                  *pub = NULL;
        _cleanup_free_ uint8_t *sig = NULL, *longer = NULL;
        _cleanup_free_ char *pem = NULL;
        const char msg[] = "DSSEv1 4 type 4 body";
        size_t n = 0;

        assert_int_equal(key_sign(k, msg, strlen(msg), &sig, &n), 0);
        if (type == KEY_ED25519)
                assert_int_equal(n, 64);
        else
                assert_true(n >= 8 && n <= KEY_SIGNATURE_MAX && sig[0] == 0x30);
        assert_int_equal(key_verify(k, msg, strlen(msg), sig, n), 0);

        /* Public half alone verifies, cannot sign. */
        assert_int_equal(key_get_public_pem(k, &pem), 0);
        assert_int_equal(key_load_public_pem(pem, strlen(pem), &pub, NULL), 0);
        assert_int_equal(key_verify(pub, msg, strlen(msg), sig, n), 0);
        {
                _cleanup_free_ uint8_t *s2 = NULL;
                size_t n2 = 0;
                assert_int_equal(key_sign(pub, msg, strlen(msg), &s2, &n2), -ENOKEY);
        }

        /* Message changed, signature changed, other key, other algorithm, wrong lengths. */
        assert_int_equal(key_verify(k, "DSSEv1 4 type 4 bodz", strlen(msg), sig, n), -EBADMSG);
        sig[n / 2] ^= 0x01;
        assert_int_equal(key_verify(k, msg, strlen(msg), sig, n), -EBADMSG);
        sig[n / 2] ^= 0x01;
        assert_int_equal(key_verify(other, msg, strlen(msg), sig, n), -EBADMSG);
        assert_int_equal(key_verify(cross, msg, strlen(msg), sig, n), -EBADMSG);
        assert_int_equal(key_verify(k, msg, strlen(msg), sig, n - 1), -EBADMSG);
        assert_int_equal(key_verify(k, msg, strlen(msg), sig, 0), -EBADMSG);
        /* A trailing byte after the signature (DER garbage for ECDSA, length for Ed25519). */
        longer = malloc(n + 1);
        memcpy(longer, sig, n);
        longer[n] = 0;
        assert_int_equal(key_verify(k, msg, strlen(msg), longer, n + 1), -EBADMSG);
}

static void test_sign_verify_ed25519(void **state) {
        sign_verify(KEY_ED25519);
}

static void test_sign_verify_p256(void **state) {
        sign_verify(KEY_P256);
}

static void expect_public_refused(EVP_PKEY *p, int error, const char *needle) {
        _cleanup_free_ char *pem = pem_of_pubkey(p), *priv = pem_of_privkey(p), *reason = NULL;
        Key *k = NULL;

        assert_int_equal(key_load_public_pem(pem, strlen(pem), &k, &reason), error);
        assert_null(k);
        assert_non_null(reason);
        if (!strstr(reason, needle))
                fail_msg("reason '%s' does not mention '%s'", reason, needle);
        free(reason);
        reason = NULL;
        /* And as a signing key. */
        assert_int_equal(key_load_private_pem(priv, strlen(priv), &k, &reason), error);
        assert_null(k);
        assert_non_null(strstr(reason, needle));
}

static void test_refused_key_types(void **state) {
        EVP_PKEY *p;

        p = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
        assert_non_null(p);
        expect_public_refused(p, -EPROTONOSUPPORT, "RSA (2048 bits)");
        EVP_PKEY_free(p);

        p = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        assert_non_null(p);
        expect_public_refused(p, -EPROTONOSUPPORT, "secp384r1");
        EVP_PKEY_free(p);

        p = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
        assert_non_null(p);
        expect_public_refused(p, -EPROTONOSUPPORT, "secp256k1");
        EVP_PKEY_free(p);

        p = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
        assert_non_null(p);
        expect_public_refused(p, -EPROTONOSUPPORT, "ED448");
        EVP_PKEY_free(p);

        p = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
        assert_non_null(p);
        expect_public_refused(p, -EPROTONOSUPPORT, "X25519");
        EVP_PKEY_free(p);
}

static void expect_pem_refused(const char *pem, int error, const char *needle) {
        _cleanup_free_ char *reason = NULL;
        Key *k = NULL;

        assert_int_equal(key_load_public_pem(pem, strlen(pem), &k, &reason), error);
        assert_null(k);
        if (!reason || !strstr(reason, needle))
                fail_msg("reason '%s' does not mention '%s'", strna(reason), needle);
}

static void test_pem_strictness(void **state) {
        EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        _cleanup_free_ char *pem = pem_of_pubkey(p), *priv = pem_of_privkey(p), *two = NULL,
                            *trailing = NULL, *leading = NULL, *spaced = NULL, *big = NULL, *enc = NULL;
        _cleanup_(key_unrefp) Key *k = NULL;

        assert_true(asprintf(&two, "%s%s", pem, pem) > 0);
        expect_pem_refused(two, -EBADMSG, "after the PEM block");
        assert_true(asprintf(&trailing, "%sgarbage\n", pem) > 0);
        expect_pem_refused(trailing, -EBADMSG, "after the PEM block");
        assert_true(asprintf(&leading, "comment\n%s", pem) > 0);
        expect_pem_refused(leading, -EBADMSG, "not a PEM file");
        expect_pem_refused(priv, -EBADMSG, "private key");
        expect_pem_refused("", -EBADMSG, "not a PEM file");
        expect_pem_refused("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", -EBADMSG,
                           "CERTIFICATE");
        expect_pem_refused("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", -EBADMSG,
                           "cannot decode");
        big = calloc(1, KEY_PEM_MAX + 2);
        memset(big, ' ', KEY_PEM_MAX + 1);
        expect_pem_refused(big, -EFBIG, "limit");

        /* Whitespace around one block is fine. */
        assert_true(asprintf(&spaced, "\n\r\n%s\n  \t\n", pem) > 0);
        assert_int_equal(key_load_public_pem(spaced, strlen(spaced), &k, NULL), 0);

        /* Encrypted private keys are refused by name, not by a failed passphrase prompt. */
        {
                BIO *bio = BIO_new(BIO_s_mem());
                char *data = NULL;
                long n;
                _cleanup_free_ char *reason = NULL;
                Key *e = NULL;

                assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, p, EVP_aes_256_cbc(), NULL, 0, NULL,
                                                               (void *) "pw"),
                                 1);
                n = BIO_get_mem_data(bio, &data);
                enc = memdup_or_null(data, (size_t) n);
                BIO_free(bio);
                assert_int_equal(key_load_private_pem(enc, strlen(enc), &e, &reason), -EPROTONOSUPPORT);
                assert_non_null(strstr(reason, "encrypted"));
        }
        /* A public key where a private one is needed. */
        {
                _cleanup_free_ char *reason = NULL;
                Key *e = NULL;
                assert_int_equal(key_load_private_pem(pem, strlen(pem), &e, &reason), -EBADMSG);
                assert_non_null(strstr(reason, "public key"));
        }
        EVP_PKEY_free(p);
}

static char *pem_of_der(const uint8_t *der, size_t n) {
        _cleanup_free_ char *b64 = NULL;
        char *pem = NULL;
        size_t l;
        FILE *f;

        assert_int_equal(dsse_base64_encode(der, n, &b64), 0);
        f = open_memstream(&pem, &l);
        fputs("-----BEGIN PUBLIC KEY-----\n", f);
        for (size_t i = 0; i < strlen(b64); i += 64)
                fprintf(f, "%.64s\n", b64 + i);
        fputs("-----END PUBLIC KEY-----\n", f);
        fclose(f);
        return pem;
}

static void test_p256_encodings(void **state) {
        EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        _cleanup_free_ char *pem = pem_of_pubkey(p), *cpem = NULL, *xpem = NULL, *reason = NULL;
        _cleanup_(key_unrefp) Key *k = NULL, *c = NULL;
        _cleanup_(trust_set_freep) TrustSet *t = NULL;
        unsigned char *der = NULL;
        int n;

        assert_int_equal(key_load_public_pem(pem, strlen(pem), &k, NULL), 0);

        /* The same key with a compressed point: same keyid, and a trust set refuses it twice. */
        assert_int_equal(EVP_PKEY_set_utf8_string_param(p, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                                        OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED),
                         1);
        n = i2d_PUBKEY(p, &der);
        assert_true(n > 0 && n < 70); /* 59 bytes compressed vs 91 uncompressed */
        cpem = pem_of_der(der, (size_t) n);
        OPENSSL_free(der);
        der = NULL;
        assert_int_equal(key_load_public_pem(cpem, strlen(cpem), &c, NULL), 0);
        assert_string_equal(key_get_id(c), key_get_id(k));
        assert_int_equal(trust_set_new(1, &t), 0);
        assert_int_equal(trust_set_add(t, k, NULL), 0);
        assert_int_equal(trust_set_add(t, c, &reason), -EEXIST);
        assert_non_null(strstr(reason, "listed twice"));

        /* Explicit curve parameters are refused. */
        assert_int_equal(EVP_PKEY_set_utf8_string_param(p, OSSL_PKEY_PARAM_EC_ENCODING,
                                                        OSSL_PKEY_EC_ENCODING_EXPLICIT),
                         1);
        n = i2d_PUBKEY(p, &der);
        assert_true(n > 150);
        xpem = pem_of_der(der, (size_t) n);
        OPENSSL_free(der);
        expect_pem_refused(xpem, -EPROTONOSUPPORT, "explicit curve parameters");
        EVP_PKEY_free(p);
}

/* ECDSA is malleable: (r, s) and (r, n - s) both verify. We accept both (documented in keys.h):
 * openssl dgst does not normalise s, and thresholds count keys, not signature bytes. */
static void test_p256_high_s_accepted(void **state) {
        _cleanup_(key_unrefp) Key *k = new_key(KEY_P256);
        _cleanup_free_ uint8_t *sig = NULL;
        const unsigned char *q;
        unsigned char *der2 = NULL;
        ECDSA_SIG *es;
        const BIGNUM *r, *s;
        BIGNUM *order = NULL, *s2 = BN_new(), *r2;
        size_t n = 0;
        int n2;

        assert_int_equal(key_sign(k, "m", 1, &sig, &n), 0);
        q = sig;
        es = d2i_ECDSA_SIG(NULL, &q, (long) n);
        assert_non_null(es);
        ECDSA_SIG_get0(es, &r, &s);
        assert_true(BN_hex2bn(&order, "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551") >
                    0);
        assert_int_equal(BN_sub(s2, order, s), 1);
        r2 = BN_dup(r);
        assert_int_equal(ECDSA_SIG_set0(es, r2, s2), 1);
        n2 = i2d_ECDSA_SIG(es, &der2);
        assert_true(n2 > 0);
        assert_int_equal(key_verify(k, "m", 1, der2, (size_t) n2), 0);
        OPENSSL_free(der2);
        ECDSA_SIG_free(es);
        BN_free(order);
}

/* Ed25519 has no such malleability when S < L is enforced (RFC 8032 §5.1.7): S + L must fail. */
static void test_ed25519_noncanonical_s_refused(void **state) {
        /* L = 2^252 + 27742317777372353535851937790883648493, little-endian. */
        static const uint8_t L[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                      0xa2, 0xde, 0xf9, 0xde, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};
        _cleanup_(key_unrefp) Key *k = new_key(KEY_ED25519);
        _cleanup_free_ uint8_t *sig = NULL;
        size_t n = 0;
        unsigned carry = 0;

        assert_int_equal(key_sign(k, "m", 1, &sig, &n), 0);
        assert_int_equal(n, 64);
        for (size_t i = 0; i < 32; i++) {
                unsigned v = sig[32 + i] + L[i] + carry;
                sig[32 + i] = (uint8_t) v;
                carry = v >> 8;
        }
        assert_int_equal(carry, 0);
        assert_int_equal(key_verify(k, "m", 1, sig, n), -EBADMSG);
}

static void test_trust_set(void **state) {
        _cleanup_free_ char *dir = test_mkdtemp(), *a = path_join(dir, "a"), *b = path_join(dir, "b"),
                            *apub = path_join(dir, "a.pub"), *bpub = path_join(dir, "b.pub"),
                            *rsa = path_join(dir, "rsa.pub"), *reason = NULL;
        _cleanup_(trust_set_freep) TrustSet *t = NULL, *copy = NULL;
        _cleanup_(key_unrefp) Key *ka = NULL;
        char *paths[] = {apub, bpub, NULL}, *dup[] = {apub, apub, NULL}, *withrsa[] = {apub, rsa, NULL};

        assert_int_equal(keys_generate(KEY_ED25519, a, &ka), 0);
        assert_int_equal(keys_generate(KEY_P256, b, NULL), 0);
        {
                EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
                _cleanup_free_ char *pem = pem_of_pubkey(p);
                _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                assert_int_equal(write_file_atomic_at(dfd, "rsa.pub", pem, strlen(pem), 0644), 0);
                EVP_PKEY_free(p);
        }

        assert_int_equal(trust_set_load_files(paths, 2, &t, NULL), 0);
        assert_int_equal(t->n_keys, 2);
        assert_int_equal(t->threshold, 2);
        assert_int_equal(trust_set_find(t, key_get_id(ka)), 0);
        assert_int_equal(trust_set_find(t, "0000"), -ENOENT);
        assert_int_equal(trust_set_copy(t, &copy), 0);
        assert_int_equal(copy->n_keys, 2);

        assert_int_equal(trust_set_load_files(paths, 3, &t, &reason), -EINVAL);
        assert_non_null(strstr(reason, "threshold 3 is larger"));
        assert_int_equal(trust_set_load_files(paths, 0, &t, &reason), -EINVAL);
        assert_non_null(strstr(reason, "at least 1"));
        assert_int_equal(trust_set_load_files(dup, 1, &t, &reason), -EEXIST);
        assert_non_null(strstr(reason, "listed twice"));
        assert_int_equal(trust_set_load_files(withrsa, 1, &t, &reason), -EPROTONOSUPPORT);
        assert_non_null(strstr(reason, "rsa.pub"));
        assert_non_null(strstr(reason, "RSA"));
        {
                char *none[] = {NULL};
                assert_int_equal(trust_set_load_files(none, 1, &t, &reason), -EINVAL);
                assert_non_null(strstr(reason, "no trusted keys"));
        }
        assert_int_equal(rm_rf_at(AT_FDCWD, dir), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_type_strings),
                cmocka_unit_test(test_generate_ed25519),
                cmocka_unit_test(test_generate_p256),
                cmocka_unit_test(test_generate_never_overwrites),
                cmocka_unit_test(test_sign_verify_ed25519),
                cmocka_unit_test(test_sign_verify_p256),
                cmocka_unit_test(test_refused_key_types),
                cmocka_unit_test(test_pem_strictness),
                cmocka_unit_test(test_p256_encodings),
                cmocka_unit_test(test_p256_high_s_accepted),
                cmocka_unit_test(test_ed25519_noncanonical_s_refused),
                cmocka_unit_test(test_trust_set),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
