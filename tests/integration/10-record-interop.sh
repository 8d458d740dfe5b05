#!/usr/bin/env bash
# 10-record-interop: the TLS 1.3 record layer against openssl s_server and s_client.
#
# Makes a throwaway PKI (a CA, a server and a client certificate, EC P-256) with the openssl CLI
# in a private directory, then runs the record_interop driver for each TLS 1.3 suite: as the
# client against s_server, as the server against s_client, and once more as the server with
# s_client closing first. One line per run; exits non-zero if any run failed.
#
# Usage: 10-record-interop.sh PATH/TO/record_interop   (OPENSSL=... picks another openssl)
set -euo pipefail

driver=${1:?usage: 10-record-interop.sh PATH/TO/record_interop}
openssl=${OPENSSL:-$(command -v openssl || true)}
if [[ ! -x $driver ]]; then
    echo "10-record-interop: driver '$driver' is not executable" >&2
    exit 1
fi
if [[ -z $openssl ]]; then
    echo "10-record-interop: no openssl binary found (set OPENSSL)" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sealsock-record-interop.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

# Runs openssl quietly; on failure shows what it said.
quiet_openssl() {
    if ! "$openssl" "$@" > "$work/openssl.log" 2>&1; then
        echo "10-record-interop: openssl $1 failed:" >&2
        cat "$work/openssl.log" >&2
        return 1
    fi
}

# issue NAME SUBJECT EXTENSIONS: a P-256 key and a certificate for it signed by the test CA.
issue() {
    local name=$1 subject=$2 extensions=$3
    printf '%s\n' "$extensions" > "$work/$name.ext"
    quiet_openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$work/$name.key" -subj "$subject" -out "$work/$name.csr"
    quiet_openssl x509 -req -in "$work/$name.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
        -set_serial "0x$("$openssl" rand -hex 8)" -days 2 -sha256 \
        -extfile "$work/$name.ext" -out "$work/$name.pem"
}

make_pki() {
    quiet_openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$work/ca.key" -subj "/CN=sealsock record interop CA" -days 2 -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$work/ca.pem"
    issue server "/CN=localhost" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
    issue client "/CN=sealsock record interop client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
}

# run ROLE SUITE CLOSER: one connection; our role and the peer's take the matching identities.
run() {
    local role=$1 suite=$2 closer=$3 ours=client peer=server
    if [[ $role == server ]]; then
        ours=server
        peer=client
    fi
    # The driver bounds itself (well under 20 s); timeout only guards against a wedged driver.
    timeout --kill-after=5 60 "$driver" --role "$role" --suite "$suite" --close "$closer" \
        --openssl "$openssl" --tmpdir "$work" --ca "$work/ca.pem" \
        --cert "$work/$ours.pem" --key "$work/$ours.key" \
        --peer-cert "$work/$peer.pem" --peer-key "$work/$peer.key"
}

make_pki
runs=0
failed=0
for suite in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256; do
    for variant in "client us" "server us" "server peer"; do
        read -r role closer <<< "$variant"
        runs=$((runs + 1))
        if ! run "$role" "$suite" "$closer"; then
            failed=$((failed + 1))
        fi
    done
done
echo "10-record-interop: $((runs - failed))/$runs runs passed"
[[ $failed -eq 0 ]]
