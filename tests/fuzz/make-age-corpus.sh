#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Regenerate the seed files of tests/fuzz/corpus/age-header: files sealed to the fuzz target's
# fixed identity by mk-age and by the reference age tool, plus hand-written headers. The files
# named by a SHA-1 are inputs libFuzzer found (-merge=1), kept as they are.
# Usage: make-age-corpus.sh MK_AGE
set -euo pipefail

MK_AGE=$(realpath "$1")
R=age1plxknwcxmncxp0a9kfga7trs660zejzf4y9clyzeadjlrmw63q3q086pvf
OTHER=age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj
out=$(dirname "$0")/corpus/age-header
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for n in 0 1 100 65535 65536 65537 131073; do
        head -c "$n" /dev/urandom > "$tmp/p"
        "$MK_AGE" seal -r "$R" "$tmp/p" "$out/mk-$n"
done
head -c 100 /dev/urandom > "$tmp/p"
"$MK_AGE" seal -r "$OTHER" -r "$R" "$tmp/p" "$out/mk-two-recipients"
"$MK_AGE" seal -r "$OTHER" "$tmp/p" "$out/mk-other-recipient"
if command -v age >/dev/null; then
        age -r "$R" -o "$out/age-100" "$tmp/p"
        : > "$tmp/e"
        age -r "$R" -o "$out/age-0" "$tmp/e"
fi

v1='age-encryption.org/v1'
# The example header lines of c2sp.org/age.
mac='--- HK2NmOBN9Dpq0Gw6xMCuhFcQlQLvZ/wQUi/2scLG75s'
printf '%s\n-> X25519 XEl0dJ6y3C7KZkgmgWUicg63EyXJiwBJW8PdYJ/cYBE\nqRS0AMjdjPvZ/WT08U2KL4G+PIooA3hy38SvLpvaC1E\n%s\n' "$v1" "$mac" > "$out/hdr-x25519"
printf '%s\n-> grease a b\nQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\nQUE\n-> x\n\n%s\n' "$v1" "$mac" > "$out/hdr-grease"
printf '%s\n-> scrypt ajMFur+EJLGaohv/dLRGnw 18\n8SHBz/ldWnjyGFQqfjat6uNBarWqqEMDS7W8X7+Xq5Q\n%s\n' "$v1" "$mac" > "$out/hdr-scrypt"
printf '%s\n-> X25519\n\n%s\n' "$v1" "$mac" > "$out/hdr-x25519-no-share"
printf 'age-encryption.org/v2\n-> a\n\n%s\n' "$mac" > "$out/hdr-v2"
printf '%s\n' "$v1" > "$out/hdr-version-only"
ls -l "$out" | tail -n +2 | wc -l
du -sh "$out"
