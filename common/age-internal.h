/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Shared between age.c (keys, header) and age-stream.c (payload); not for other modules. */

#include "age.h"

/* Chunks per batch of the payload code (age-stream.c); tests use it to hit batch boundaries. */
#define AGE_BATCH_CHUNKS 8U

/* HKDF-SHA-256 (RFC 5869 extract-and-expand), 32 bytes out; salt may be empty. */
int age_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                    const char *info, uint8_t out[static AGE_KEY_SIZE]);

/* The complete header (version line, one X25519 stanza per recipient, MAC line) for file_key. */
int age_header_build(const AgeRecipient *recipients, size_t n_recipients,
                     const uint8_t file_key[static AGE_FILE_KEY_SIZE], char **ret, size_t *ret_size);

/* Unwrap the file key from a parsed header (identities in order, stanzas in order, as age's
 * Decrypt does) and verify the MAC over raw[0, h->mac_input_size). -ENOKEY/-EBADMSG/-EBADE. */
int age_header_unwrap(const AgeHeader *h, const void *raw, AgeIdentity *const *identities,
                      size_t n_identities, uint8_t ret_file_key[static AGE_FILE_KEY_SIZE],
                      const char **ret_reason);

/* payload key = HKDF-SHA-256(ikm = file key, salt = nonce, info = "payload") */
static inline int age_payload_key(const uint8_t file_key[static AGE_FILE_KEY_SIZE],
                                  const uint8_t nonce[static AGE_NONCE_SIZE],
                                  uint8_t out[static AGE_KEY_SIZE]) {
        return age_hkdf_sha256(file_key, AGE_FILE_KEY_SIZE, nonce, AGE_NONCE_SIZE, "payload", out);
}

static inline void age_set_reason(const char **ret_reason, const char *reason) {
        if (ret_reason)
                *ret_reason = reason;
}
