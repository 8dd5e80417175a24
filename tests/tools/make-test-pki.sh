#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# A throwaway PKI for the TLS tests, generated at test time (no key is ever committed):
#   ca.crt/ca.key               the test CA
#   server.crt/server.key       127.0.0.1 + localhost, signed by the CA
#   wrongname.crt/.key          signed by the CA, but for another host name
#   selfsigned.crt/.key         127.0.0.1, self-signed (not under the CA)
#   client.crt/client.key       a client certificate (clientAuth) signed by the CA
#   otherca.crt/.key, rogue-client.crt/.key   a second CA and a client certificate it signed
#   server.pin, other.pin       "sha256//<base64>" of the server's key and of an unrelated key
#   garbage.pem                 not a certificate
set -eu
D=${1:?usage: make-test-pki.sh DIR}
mkdir -p "$D"
cd "$D"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name subject
        key "$1.key"
        openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 2 -out "$1.crt" \
                -addext "basicConstraints=critical,CA:TRUE" \
                -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

leaf() { # name ca subject extensions...
        n=$1; c=$2; s=$3; shift 3
        key "$n.key"
        openssl req -new -key "$n.key" -subj "/CN=$s" -out "$n.csr" 2>/dev/null
        printf '%s\n' "$@" > "$n.ext"
        openssl x509 -req -in "$n.csr" -CA "$c.crt" -CAkey "$c.key" -CAcreateserial -days 2 \
                -extfile "$n.ext" -out "$n.crt" 2>/dev/null
        rm -f "$n.csr" "$n.ext"
}

pin() { # key → sha256//base64(sha256(DER SPKI))
        printf 'sha256//%s' "$(openssl pkey -in "$1" -pubout -outform DER 2>/dev/null |
                openssl dgst -sha256 -binary | openssl base64 -A)"
}

ca ca "modelkeeper test CA"
ca otherca "some other CA"
leaf server ca 127.0.0.1 "subjectAltName=IP:127.0.0.1,DNS:localhost" "extendedKeyUsage=serverAuth"
leaf wrongname ca not-this-host.example "subjectAltName=DNS:not-this-host.example" "extendedKeyUsage=serverAuth"
leaf client ca modelkeeper-agent "extendedKeyUsage=clientAuth"
leaf rogue-client otherca rogue "extendedKeyUsage=clientAuth"
key selfsigned.key
openssl req -x509 -new -key selfsigned.key -subj "/CN=127.0.0.1" -days 2 -out selfsigned.crt \
        -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
key other.key
pin server.key > server.pin
pin other.key > other.pin
echo "this is not a certificate" > garbage.pem
