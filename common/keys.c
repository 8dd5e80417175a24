/* SPDX-License-Identifier: Apache-2.0 */

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fileio.h"
#include "hash.h"
#include "keys.h"
#include "reason.h"

struct Key {
        unsigned n_ref;
        KeyType type;
        EVP_PKEY *pkey;
        bool has_private;
        char id[KEY_ID_HEX_SIZE];
};

static const char *const key_type_table[_KEY_TYPE_MAX] = {
        [KEY_ED25519] = "ed25519",
        [KEY_P256] = "p256",
};

const char *key_type_to_string(KeyType t) {
        return t >= 0 && t < _KEY_TYPE_MAX ? key_type_table[t] : NULL;
}

KeyType key_type_from_string(const char *s) {
        if (!s)
                return _KEY_TYPE_INVALID;
        for (KeyType t = 0; t < _KEY_TYPE_MAX; t++)
                if (streq(s, key_type_table[t]))
                        return t;
        return _KEY_TYPE_INVALID;
}

static void EVP_PKEY_freep(EVP_PKEY **p) {
        EVP_PKEY_free(*p);
}
static void EVP_MD_CTX_freep(EVP_MD_CTX **p) {
        EVP_MD_CTX_free(*p);
}
static void EVP_PKEY_CTX_freep(EVP_PKEY_CTX **p) {
        EVP_PKEY_CTX_free(*p);
}
static void BIO_freep(BIO **p) {
        BIO_free(*p);
}

Key *key_ref(Key *k) {
        if (k)
                k->n_ref++;
        return k;
}

Key *key_unref(Key *k) {
        if (!k)
                return NULL;
        assert_se(k->n_ref > 0);
        if (--k->n_ref > 0)
                return NULL;
        EVP_PKEY_free(k->pkey);
        free(k);
        return NULL;
}

KeyType key_get_type(const Key *k) {
        return k->type;
}

const char *key_get_id(const Key *k) {
        return k->id;
}

bool key_has_private(const Key *k) {
        return k->has_private;
}

/* What a refused key is, for the reason: "RSA (2048 bits)", "EC on secp384r1", "ED448". */
static void describe_pkey(EVP_PKEY *pkey, char *buf, size_t size) {
        const char *name = EVP_PKEY_get0_type_name(pkey);
        char group[64] = "";

        if (EVP_PKEY_is_a(pkey, "EC") && EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL) == 1)
                (void) snprintf(buf, size, "ECDSA on curve %s", group);
        else if (EVP_PKEY_is_a(pkey, "RSA") || EVP_PKEY_is_a(pkey, "RSA-PSS") || EVP_PKEY_is_a(pkey, "DSA"))
                (void) snprintf(buf, size, "%s (%d bits)", strna(name), EVP_PKEY_get_bits(pkey));
        else
                (void) snprintf(buf, size, "%s", strna(name));
        ERR_clear_error();
}

/* Takes ownership of pkey in all cases. */
static int key_new_from_pkey(EVP_PKEY *pkey_in, bool has_private, Key **ret, char **ret_reason) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = pkey_in;
        _cleanup_free_ Key *k = NULL;
        unsigned char *der = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        KeyType type;
        int len, r;

        if (EVP_PKEY_is_a(pkey, "ED25519"))
                type = KEY_ED25519;
        else if (EVP_PKEY_is_a(pkey, "EC")) {
                char group[64] = "";
                int explicit = 0;

                if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL) != 1 ||
                    !(streq(group, "prime256v1") || streq(group, "P-256"))) {
                        char what[128];
                        describe_pkey(pkey, what, sizeof(what));
                        return reason_set(
                                ret_reason, -EPROTONOSUPPORT,
                                "unsupported key type: %s (only Ed25519 and ECDSA P-256 keys are accepted)",
                                what);
                }
                /* An SPKI may spell out the curve parameters instead of naming the curve. It
                 * would get another keyid for the same key, and nothing we produce looks like
                 * that: refuse it. */
                if (EVP_PKEY_get_int_param(pkey, OSSL_PKEY_PARAM_EC_DECODED_FROM_EXPLICIT_PARAMS,
                                           &explicit) == 1 &&
                    explicit)
                        return reason_set(
                                ret_reason, -EPROTONOSUPPORT,
                                "ECDSA P-256 key with explicit curve parameters; only the named curve encoding is accepted");
                /* Canonical encoding for the keyid: uncompressed point, named curve. */
                if (EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                                   OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED) != 1 ||
                    EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_ENCODING,
                                                   OSSL_PKEY_EC_ENCODING_GROUP) != 1) {
                        ERR_clear_error();
                        return reason_set(ret_reason, -EIO,
                                          "cannot set the canonical encoding of an EC key");
                }
                type = KEY_P256;
        } else {
                char what[128];
                describe_pkey(pkey, what, sizeof(what));
                return reason_set(
                        ret_reason, -EPROTONOSUPPORT,
                        "unsupported key type: %s (only Ed25519 and ECDSA P-256 keys are accepted)", what);
        }

        if (type == KEY_P256) {
                /* The point must be on the curve and of the right order. OpenSSL checks the
                 * first while decoding; the full check costs one scalar multiplication. */
                _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx =
                        EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
                if (!ctx || EVP_PKEY_public_check(ctx) != 1) {
                        ERR_clear_error();
                        return reason_set(ret_reason, -EBADMSG,
                                          "invalid ECDSA P-256 public key (point check failed)");
                }
        }

        len = i2d_PUBKEY(pkey, &der);
        if (len <= 0) {
                ERR_clear_error();
                return reason_set(ret_reason, -EIO, "cannot encode the public key");
        }
        r = sha256_buffer(der, (size_t) len, digest);
        OPENSSL_free(der);
        if (r < 0)
                return reason_set(ret_reason, r, "cannot hash the public key");

        k = calloc(1, sizeof(Key));
        if (!k)
                return reason_set(ret_reason, -ENOMEM, "out of memory");
        *k = (Key){
                .n_ref = 1,
                .type = type,
                .pkey = TAKE_PTR(pkey),
                .has_private = has_private,
        };
        hex_encode(digest, sizeof(digest), k->id);
        *ret = TAKE_PTR(k);
        return 0;
}

/* The whole input must be one PEM block, with nothing but whitespace around it: a key file with
 * two keys, or a certificate followed by a key, is a mistake we do not guess our way through. */
static int pem_read_one(const void *pem, size_t size, char **ret_name, char **ret_header,
                        unsigned char **ret_data, long *ret_len, char **ret_reason) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        const char *p = pem;
        long len = 0;
        size_t i = 0;
        char rest[256];
        int k;

        if (size > KEY_PEM_MAX)
                return reason_set(ret_reason, -EFBIG,
                                  "key file is %zu bytes, more than the limit of %d bytes", size,
                                  KEY_PEM_MAX);
        while (i < size && strchr(" \t\r\n", p[i]) && p[i])
                i++;
        if (size - i < 11 || memcmp(p + i, "-----BEGIN ", 11) != 0)
                return reason_set(ret_reason, -EBADMSG,
                                  "not a PEM file (no '-----BEGIN' line at the start)");

        bio = BIO_new_mem_buf(pem, (int) size);
        if (!bio)
                return reason_set(ret_reason, -ENOMEM, "out of memory");
        if (PEM_read_bio(bio, &name, &header, &data, &len) != 1) {
                ERR_clear_error();
                return reason_set(ret_reason, -EBADMSG, "malformed PEM block");
        }
        /* Anything after the END line but whitespace is refused. */
        while ((k = BIO_read(bio, rest, sizeof(rest))) > 0)
                for (int j = 0; j < k; j++)
                        if (!strchr(" \t\r\n", rest[j]) || rest[j] == 0) {
                                OPENSSL_free(name);
                                OPENSSL_free(header);
                                OPENSSL_clear_free(data, (size_t) len);
                                return reason_set(ret_reason, -EBADMSG,
                                                  "unexpected data after the PEM block (one key per file)");
                        }
        ERR_clear_error();
        *ret_name = name;
        *ret_header = header;
        *ret_data = data;
        *ret_len = len;
        return 0;
}

int key_load_public_pem(const void *pem, size_t size, Key **ret, char **ret_reason) {
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        const unsigned char *q;
        EVP_PKEY *pkey = NULL;
        long len = 0;
        int r;

        assert_return(pem && ret, -EINVAL);

        r = pem_read_one(pem, size, &name, &header, &data, &len, ret_reason);
        if (r < 0)
                return r;

        if (!streq(name, "PUBLIC KEY")) {
                if (streq(name, "PRIVATE KEY") || streq(name, "EC PRIVATE KEY") ||
                    streq(name, "ENCRYPTED PRIVATE KEY"))
                        r = reason_set(ret_reason, -EBADMSG,
                                       "this is a private key; give the public key (openssl pkey -pubout)");
                else if (streq(name, "RSA PUBLIC KEY"))
                        r = reason_set(
                                ret_reason, -EPROTONOSUPPORT,
                                "unsupported key type: RSA (only Ed25519 and ECDSA P-256 keys are accepted)");
                else
                        r = reason_set(ret_reason, -EBADMSG,
                                       "PEM block is '%s', expected 'PUBLIC KEY' (SubjectPublicKeyInfo)",
                                       QUOTE(name));
                goto finish;
        }
        if (!isempty(header)) {
                r = reason_set(ret_reason, -EBADMSG, "unexpected PEM headers in a public key");
                goto finish;
        }

        q = data;
        pkey = d2i_PUBKEY(NULL, &q, len);
        if (!pkey) {
                /* OpenSSL cannot decode it at all: say what we can tell from the algorithm. */
                ERR_clear_error();
                r = reason_set(
                        ret_reason, -EBADMSG,
                        "cannot decode the SubjectPublicKeyInfo (corrupt, or an algorithm OpenSSL does not know)");
                goto finish;
        }
        if (q != data + len) {
                EVP_PKEY_free(pkey);
                r = reason_set(ret_reason, -EBADMSG, "trailing bytes after the SubjectPublicKeyInfo");
                goto finish;
        }
        r = key_new_from_pkey(pkey, /* has_private= */ false, ret, ret_reason);

finish:
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        return r;
}

int key_load_public_file(const char *path, Key **ret, char **ret_reason) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        int r;

        r = read_full_file(path, KEY_PEM_MAX, &buf, &size);
        if (r == -EFBIG)
                return reason_set(ret_reason, r, "%s: larger than %d bytes, not a key file", path,
                                  KEY_PEM_MAX);
        if (r < 0)
                return reason_set(ret_reason, r, "%s: %s", path, strerror(-r));
        r = key_load_public_pem(buf, size, ret, ret_reason);
        if (r < 0 && ret_reason && *ret_reason) {
                _cleanup_free_ char *inner = TAKE_PTR(*ret_reason);
                return reason_set(ret_reason, r, "%s: %s", path, inner);
        }
        return r;
}

int key_load_private_pem(const void *pem, size_t size, Key **ret, char **ret_reason) {
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        const unsigned char *q;
        EVP_PKEY *pkey = NULL;
        long len = 0;
        int r;

        assert_return(pem && ret, -EINVAL);

        r = pem_read_one(pem, size, &name, &header, &data, &len, ret_reason);
        if (r < 0)
                return r;

        if (streq(name, "ENCRYPTED PRIVATE KEY") || (header && strstr(header, "ENCRYPTED"))) {
                r = reason_set(ret_reason, -EPROTONOSUPPORT, "encrypted private keys are not supported");
                goto finish;
        }
        if (!streq(name, "PRIVATE KEY") && !streq(name, "EC PRIVATE KEY")) {
                if (streq(name, "PUBLIC KEY"))
                        r = reason_set(ret_reason, -EBADMSG,
                                       "this is a public key; signing needs the private key");
                else if (streq(name, "RSA PRIVATE KEY"))
                        r = reason_set(
                                ret_reason, -EPROTONOSUPPORT,
                                "unsupported key type: RSA (only Ed25519 and ECDSA P-256 keys are accepted)");
                else
                        r = reason_set(ret_reason, -EBADMSG,
                                       "PEM block is '%s', expected 'PRIVATE KEY' (PKCS#8)", QUOTE(name));
                goto finish;
        }

        q = data;
        pkey = d2i_AutoPrivateKey(NULL, &q, len);
        if (!pkey) {
                ERR_clear_error();
                r = reason_set(ret_reason, -EBADMSG, "cannot decode the private key");
                goto finish;
        }
        if (q != data + len) {
                EVP_PKEY_free(pkey);
                r = reason_set(ret_reason, -EBADMSG, "trailing bytes after the private key");
                goto finish;
        }
        r = key_new_from_pkey(pkey, /* has_private= */ true, ret, ret_reason);

finish:
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_clear_free(data, data ? (size_t) len : 0);
        return r;
}

int key_load_private_file(const char *path, Key **ret, char **ret_reason) {
        char *buf = NULL;
        size_t size = 0;
        int r;

        r = read_full_file(path, KEY_PEM_MAX, &buf, &size);
        if (r == -EFBIG)
                return reason_set(ret_reason, r, "%s: larger than %d bytes, not a key file", path,
                                  KEY_PEM_MAX);
        if (r < 0)
                return reason_set(ret_reason, r, "%s: %s", path, strerror(-r));
        r = key_load_private_pem(buf, size, ret, ret_reason);
        OPENSSL_clear_free(buf, size + 1);
        if (r < 0 && ret_reason && *ret_reason) {
                _cleanup_free_ char *inner = TAKE_PTR(*ret_reason);
                return reason_set(ret_reason, r, "%s: %s", path, inner);
        }
        return r;
}

/* PEM text of a BIO_s_mem/BIO_s_secmem, NUL-terminated. */
static int bio_to_string(BIO *bio, char **ret) {
        char *data = NULL, *s;
        long n = BIO_get_mem_data(bio, &data);

        if (n < 0 || !data)
                return -EIO;
        s = memdup_or_null(data, (size_t) n);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int key_get_public_pem(const Key *k, char **ret) {
        _cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());

        if (!bio)
                return -ENOMEM;
        if (PEM_write_bio_PUBKEY(bio, k->pkey) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        return bio_to_string(bio, ret);
}

static int tmp_name_for(char *buf, size_t size, const char *name) {
        uint64_t rnd;

        if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
                return -errno;
        if ((size_t) snprintf(buf, size, ".#%s.%016" PRIx64, name, rnd) >= size)
                return -ENAMETOOLONG;
        return 0;
}

/* Write data to a temporary file in the directory, fsync it, then link(2) it to name: link never
 * replaces an existing file, so "never overwrite" holds even against a racing writer, and a crash
 * never leaves a half-written key under the final name. */
static int write_file_exclusive_at(int dirfd, const char *name, const void *data, size_t size, mode_t mode) {
        _cleanup_close_ int fd = -EBADF;
        char tmp[NAME_MAX + 1];
        int r;

        r = tmp_name_for(tmp, sizeof(tmp), name);
        if (r < 0)
                return r;
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        r = loop_write(fd, data, size);
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && linkat(dirfd, tmp, dirfd, name, 0) < 0)
                r = -errno;
        (void) unlinkat(dirfd, tmp, 0);
        return r;
}

int keys_generate(KeyType type, const char *path, Key **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        _cleanup_(BIO_freep) BIO *priv = NULL, *pub = NULL;
        _cleanup_free_ char *dir = NULL, *base = NULL, *pubname = NULL, *pub_pem = NULL;
        _cleanup_close_ int dfd = -EBADF;
        _cleanup_(key_unrefp) Key *k = NULL;
        char *data = NULL;
        long n;
        int r;

        assert_return(path && type >= 0 && type < _KEY_TYPE_MAX, -EINVAL);

        dir = path_dirname(path);
        if (!dir)
                return -ENOMEM;
        base = strdup(strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
        if (!base)
                return -ENOMEM;
        if (isempty(base) || streq(base, ".") || streq(base, ".."))
                return -EINVAL;
        if (asprintf(&pubname, "%s.pub", base) < 0)
                return -ENOMEM;

        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        /* Refuse before any key material exists when either name is taken. */
        if (faccessat(dfd, base, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
            faccessat(dfd, pubname, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return -EEXIST;

        pkey = type == KEY_ED25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
                                   : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (!pkey) {
                ERR_clear_error();
                return -EIO;
        }

        /* The secure-heap BIO wipes its buffer when freed. */
        priv = BIO_new(BIO_s_secmem());
        pub = BIO_new(BIO_s_mem());
        if (!priv || !pub)
                return -ENOMEM;
        if (PEM_write_bio_PrivateKey(priv, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
            PEM_write_bio_PUBKEY(pub, pkey) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        r = bio_to_string(pub, &pub_pem);
        if (r < 0)
                return r;

        r = key_new_from_pkey(TAKE_PTR(pkey), true, &k, NULL);
        if (r < 0)
                return r;

        n = BIO_get_mem_data(priv, &data);
        if (n <= 0 || !data)
                return -EIO;
        r = write_file_exclusive_at(dfd, base, data, (size_t) n, 0600);
        if (r < 0)
                return r;
        r = write_file_exclusive_at(dfd, pubname, pub_pem, strlen(pub_pem), 0644);
        if (r < 0) {
                /* We made the private file a moment ago; without its .pub it is only confusing. */
                (void) unlinkat(dfd, base, 0);
                return r;
        }
        r = fsync_directory_at(dfd, NULL);
        if (r < 0)
                return r;
        if (ret)
                *ret = TAKE_PTR(k);
        return 0;
}

int key_sign(const Key *k, const void *msg, size_t size, uint8_t **ret_sig, size_t *ret_sig_size) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        _cleanup_free_ uint8_t *sig = NULL;
        size_t len = 0;

        assert_return(k && (msg || size == 0) && ret_sig && ret_sig_size, -EINVAL);
        if (!k->has_private)
                return -ENOKEY;

        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        /* Ed25519 is used "pure": no digest name, the whole message goes to the algorithm. */
        if (EVP_DigestSignInit_ex(ctx, NULL, k->type == KEY_ED25519 ? NULL : "SHA256", NULL, NULL, k->pkey,
                                  NULL) != 1 ||
            EVP_DigestSign(ctx, NULL, &len, msg, size) != 1)
                goto fail;
        sig = malloc(len);
        if (!sig)
                return -ENOMEM;
        if (EVP_DigestSign(ctx, sig, &len, msg, size) != 1)
                goto fail;
        *ret_sig = TAKE_PTR(sig);
        *ret_sig_size = len;
        return 0;
fail:
        ERR_clear_error();
        return -EIO;
}

int key_verify(const Key *k, const void *msg, size_t size, const void *sig, size_t sig_size) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        int r;

        assert_return(k && (msg || size == 0) && (sig || sig_size == 0), -EINVAL);

        /* Cheap shape checks first; OpenSSL checks the rest (DER strictness for ECDSA: no
         * trailing bytes, minimal integers; S < L for Ed25519). */
        if (k->type == KEY_ED25519 && sig_size != 64)
                return -EBADMSG;
        if (k->type == KEY_P256 &&
            (sig_size < 8 || sig_size > KEY_SIGNATURE_MAX || ((const uint8_t *) sig)[0] != 0x30))
                return -EBADMSG;

        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestVerifyInit_ex(ctx, NULL, k->type == KEY_ED25519 ? NULL : "SHA256", NULL, NULL, k->pkey,
                                    NULL) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        r = EVP_DigestVerify(ctx, sig, sig_size, msg, size);
        ERR_clear_error();
        return r == 1 ? 0 : -EBADMSG;
}

TrustSet *trust_set_free(TrustSet *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_keys; i++)
                key_unref(t->keys[i]);
        free(t->keys);
        free(t);
        return NULL;
}

int trust_set_new(unsigned threshold, TrustSet **ret) {
        TrustSet *t;

        assert_return(ret, -EINVAL);
        t = calloc(1, sizeof(TrustSet));
        if (!t)
                return -ENOMEM;
        t->threshold = threshold;
        *ret = t;
        return 0;
}

int trust_set_find(const TrustSet *t, const char *keyid) {
        if (!t || !keyid)
                return -ENOENT;
        for (size_t i = 0; i < t->n_keys; i++)
                if (streq(t->keys[i]->id, keyid))
                        return (int) i;
        return -ENOENT;
}

int trust_set_add(TrustSet *t, Key *k, char **ret_reason) {
        Key **n;

        assert_return(t && k, -EINVAL);
        /* keyids are computed over the canonical encoding, so equal keys have equal ids; the
         * EVP comparison is a second, independent guard against counting one key twice. */
        for (size_t i = 0; i < t->n_keys; i++)
                if (streq(t->keys[i]->id, k->id) || EVP_PKEY_eq(t->keys[i]->pkey, k->pkey) == 1) {
                        ERR_clear_error();
                        return reason_set(ret_reason, -EEXIST, "key %s is listed twice", k->id);
                }
        ERR_clear_error();
        if (t->n_keys >= TRUST_KEYS_MAX)
                return reason_set(ret_reason, -E2BIG, "more than %d trusted keys", TRUST_KEYS_MAX);
        n = reallocarray(t->keys, t->n_keys + 1, sizeof(Key *));
        if (!n)
                return reason_set(ret_reason, -ENOMEM, "out of memory");
        t->keys = n;
        t->keys[t->n_keys++] = key_ref(k);
        return 0;
}

int trust_set_validate(const TrustSet *t, char **ret_reason) {
        assert_return(t, -EINVAL);
        if (t->n_keys == 0)
                return reason_set(ret_reason, -EINVAL, "no trusted keys");
        if (t->threshold < 1)
                return reason_set(ret_reason, -EINVAL, "threshold must be at least 1");
        if (t->threshold > t->n_keys)
                return reason_set(ret_reason, -EINVAL,
                                  "threshold %u is larger than the number of trusted keys (%zu)",
                                  t->threshold, t->n_keys);
        return 0;
}

int trust_set_load_files(char *const *paths, unsigned threshold, TrustSet **ret, char **ret_reason) {
        _cleanup_(trust_set_freep) TrustSet *t = NULL;
        int r;

        assert_return(ret, -EINVAL);
        r = trust_set_new(threshold, &t);
        if (r < 0)
                return reason_set(ret_reason, r, "out of memory");
        STRV_FOREACH (p, (char **) paths) {
                _cleanup_(key_unrefp) Key *k = NULL;

                r = key_load_public_file(*p, &k, ret_reason);
                if (r < 0)
                        return r;
                r = trust_set_add(t, k, ret_reason);
                if (r < 0) {
                        _cleanup_free_ char *inner = ret_reason ? TAKE_PTR(*ret_reason) : NULL;
                        return reason_set(ret_reason, r, "%s: %s", *p, strna(inner));
                }
        }
        r = trust_set_validate(t, ret_reason);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

int trust_set_copy(const TrustSet *t, TrustSet **ret) {
        _cleanup_(trust_set_freep) TrustSet *c = NULL;
        int r;

        assert_return(t && ret, -EINVAL);
        r = trust_set_new(t->threshold, &c);
        if (r < 0)
                return r;
        for (size_t i = 0; i < t->n_keys; i++) {
                r = trust_set_add(c, t->keys[i], NULL);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}
