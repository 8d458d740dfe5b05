#!/usr/bin/env bash
# 20-agent-engine: the agent's handshake engine against openssl s_server and s_client.
#
# Makes a throwaway PKI with the openssl CLI in a private directory, then runs every scenario of
# the engine_driver (`engine_driver --list` prints each with what it asserts), one process per
# scenario:
#   - both roles, all three suites: handshake, verified peer identity, and data both ways with
#     the returned secrets through the record layer (the secrets are proven right);
#   - server role: alice admitted; bob refused (access_denied, s_client sees the alert); empty
#     access list; untrusted CA; expired; no certificate; our certificate refused by the client;
#     a silent peer (timeout via expire()); a peer that closes or resets;
#   - client role: IP literal; wrong name; untrusted CA; expired; not yet valid; sha256 pin
#     accepted past CA and name, pin mismatch; refusal arriving after the handoff; TLS 1.2-only
#     server; no common suite; a silent server; a server that hangs up;
#   - refused setups: not a TCP socket, not connected, bad suite, bad expect, bad access entry,
#     mismatched key;
#   - handshakes through a ContextCache, as the agent runs them: equal setups share one context,
#     while the pin, the server name and the access list are still decided per handshake.
# One line per scenario; exits non-zero if any failed.
#
# PKI (EC P-256):
#   ca.pem, other-ca.pem                       two unrelated CAs
#   server      CN=localhost, SAN DNS:localhost, IP:127.0.0.1 (ca)
#   alice       CN=alice,O=Example, SAN email:alice@example.org (ca)   in the access lists
#   bob         CN=bob (ca)                                            in no access list
#   mallory     CN=mallory (other-ca)            rogue      CN=localhost server (other-ca)
#   carol-expired, server-expired   valid 2020-01-01 .. 2020-01-02 (openssl ca -startdate/-enddate;
#                                   OpenSSL 3.0's req and x509 have no -not_before/-not_after)
#   server-future                   valid from 2099-01-01
#
# Usage: 20-agent-engine.sh PATH/TO/agent_engine_driver   (OPENSSL=... picks another openssl)
set -euo pipefail

driver=${1:?usage: 20-agent-engine.sh PATH/TO/agent_engine_driver}
openssl=${OPENSSL:-$(command -v openssl || true)}
if [[ ! -x $driver ]]; then
    echo "20-agent-engine: driver '$driver' is not executable" >&2
    exit 1
fi
if [[ -z $openssl ]]; then
    echo "20-agent-engine: no openssl binary found (set OPENSSL)" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sealsock-agent-engine.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
pki=$work/pki
mkdir "$pki"

# Runs openssl quietly; on failure shows what it said.
quiet_openssl() {
    if ! "$openssl" "$@" > "$work/openssl.log" 2>&1; then
        echo "20-agent-engine: openssl $1 failed:" >&2
        cat "$work/openssl.log" >&2
        return 1
    fi
}

server_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
client_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"

make_ca() {
    local name=$1 subject=$2
    quiet_openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$pki/$name.key" -subj "$subject" -days 2 -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$pki/$name.pem"
}

request() {
    local name=$1 subject=$2
    quiet_openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$pki/$name.key" -subj "$subject" -out "$work/$name.csr"
}

# issue CA NAME SUBJECT EXTENSIONS: valid from now for two days.
issue() {
    local ca=$1 name=$2 subject=$3
    printf '%s\n' "$4" > "$work/$name.ext"
    request "$name" "$subject"
    quiet_openssl x509 -req -in "$work/$name.csr" -CA "$pki/$ca.pem" -CAkey "$pki/$ca.key" \
        -set_serial "0x$("$openssl" rand -hex 8)" -days 2 -sha256 \
        -extfile "$work/$name.ext" -out "$pki/$name.pem"
}

# issue_dated CA NAME SUBJECT EXTENSIONS START END: a fixed validity period (YYYYMMDDHHMMSSZ),
# which only `openssl ca` can set in OpenSSL 3.0.
issue_dated() {
    local ca=$1 name=$2 subject=$3 start=$5 end=$6 db=$work/ca-db-$2
    printf '%s\n' "$4" > "$work/$name.ext"
    request "$name" "$subject"
    mkdir -p "$db/new"
    : > "$db/index.txt"
    "$openssl" rand -hex 8 > "$db/serial"
    cat > "$db/ca.cnf" <<CNF
[ ca ]
default_ca = test_ca
[ test_ca ]
database = $db/index.txt
serial = $db/serial
new_certs_dir = $db/new
default_md = sha256
policy = any_name
unique_subject = no
[ any_name ]
organizationName = optional
commonName = supplied
CNF
    quiet_openssl ca -batch -notext -config "$db/ca.cnf" -cert "$pki/$ca.pem" \
        -keyfile "$pki/$ca.key" -startdate "$start" -enddate "$end" \
        -extfile "$work/$name.ext" -in "$work/$name.csr" -out "$pki/$name.pem"
}

make_pki() {
    make_ca ca "/CN=sealsock engine test CA"
    make_ca other-ca "/CN=some other CA"
    issue ca server "/CN=localhost" "$server_ext"
    issue ca alice "/O=Example/CN=alice" "$client_ext
subjectAltName=email:alice@example.org"
    issue ca bob "/CN=bob" "$client_ext"
    issue other-ca mallory "/CN=mallory" "$client_ext"
    issue other-ca rogue "/CN=localhost" "$server_ext"
    issue_dated ca carol-expired "/CN=carol" "$client_ext" 20200101000000Z 20200102000000Z
    issue_dated ca server-expired "/CN=localhost" "$server_ext" 20200101000000Z 20200102000000Z
    issue_dated ca server-future "/CN=localhost" "$server_ext" 20990101000000Z 20991231000000Z
}

make_pki
mapfile -t scenarios < <("$driver" --list | cut -f1)
if [[ ${#scenarios[@]} -eq 0 ]]; then
    echo "20-agent-engine: the driver lists no scenarios" >&2
    exit 1
fi
failed=0
for scenario in "${scenarios[@]}"; do
    # The driver bounds every wait itself; timeout only guards against a wedged driver.
    if ! timeout --kill-after=5 90 "$driver" --pki "$pki" --openssl "$openssl" \
        --tmpdir "$work" --scenario "$scenario"; then
        failed=$((failed + 1))
    fi
done
echo "20-agent-engine: $((${#scenarios[@]} - failed))/${#scenarios[@]} scenarios passed"
[[ $failed -eq 0 ]]
