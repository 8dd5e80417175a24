/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Bech32 (BIP-173) as age uses it (c2sp.org/age, "Conventions"): the checksum and the
 * character set of BIP-173, but without its 90-character limit on the whole string, since
 * age's post-quantum recipients are about 2000 characters long. A string is either all lower
 * or all upper case; the checksum is always computed over the lower-case form. Pure code: no
 * I/O, no logging.
 */

#include "macros.h"

/* A generous cap on what we decode (age's longest keys are ~2 KiB); inputs come from files. */
#define BECH32_STRING_MAX 4096U

/*
 * Encode: "<hrp>1<data><checksum>", lower case. hrp must be 1..83 printable ASCII characters
 * (33..126) without upper-case letters, so that the result is a valid lower-case string; callers
 * that want the upper-case form (age identities) upper-case the result. Returns a malloc'd string.
 */
int bech32_encode(const char *hrp, const uint8_t *data, size_t size, char **ret);

/*
 * Decode a string. On success *ret_hrp is the human-readable part in the case of the input
 * (e.g. "AGE-SECRET-KEY-" for an identity, "age" for a recipient), *ret_data the 8-bit data.
 * Returns -EINVAL for anything that is not valid Bech32: mixed case, a character outside the
 * charset or printable ASCII, no separator, a data part shorter than the checksum, a bad
 * checksum, or non-zero / over-long padding bits (BIP-173's "convertbits" without padding).
 */
int bech32_decode(const char *s, char **ret_hrp, uint8_t **ret_data, size_t *ret_size);
