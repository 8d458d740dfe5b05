#!/usr/bin/env bash
# 71-impersonation: downgrade and impersonation, each refused with its reason, nothing in plaintext.
#
# A sealed client (alice) against sealed servers whose agents present: a certificate from another
# CA, one for another name, an expired one; a plain server (no sealsock). A sealed server (allow
# cn:alice) against clients presenting: a certificate from another CA (carol), an identity the
# agent does not hold, a locked agent, an identity outside the access list (bob); and carol,
# first accepted, then refused once her CA is removed from the server agent's trust file (the
# agent reloads it while running). Each case:
#   - the client program gets a connection error, nothing received, never a `verify` line;
#   - the refusing side's one sealsock: line names the reason, and its audit log says so;
#   - the server program received nothing (its dump is empty: no plaintext, no marker).
# A baseline pair with the good certificates passes first, so a broken setup cannot look refused.
# Usage: 71-impersonation.sh AGENT LIBSEALSOCK SESSION_PROBE plain|asan
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=seclib.sh
source "$here/seclib.sh" "$@"
sec_init impersonation

# --- more certificates --------------------------------------------------------------------------
server_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'
client_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
# Another CA: lib_issue signs with $pki/ca.*, so it runs once more with pki pointing elsewhere.
real_pki=$pki
pki=$work/rogue-pki
mkdir -m 700 "$pki"
lib_openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$pki/ca.key" -subj "/CN=another ca" -days 3 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -out "$pki/ca.pem"
lib_issue rogue /CN=localhost "$server_ext"
lib_issue carol /CN=carol "$client_ext"
rogue_pki=$pki
pki=$real_pki
lib_issue wrongname /CN=db.example.org 'basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:db.example.org'
# Expired: valid for one day in 2020. OpenSSL 3.0's req and x509 cannot backdate; `ca` can.
lib_openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$pki/expired.key" -subj /CN=localhost -out "$pki/expired.csr"
printf '%s\n' "$server_ext" >"$pki/expired.ext"
mkdir "$pki/db"
: >"$pki/db/index.txt"
printf '[ca]\ndefault_ca=d\n[d]\ndatabase=%s\nserial=%s\nnew_certs_dir=%s\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n' \
    "$pki/db/index.txt" "$pki/db/serial" "$pki/db" >"$pki/db/ca.cnf"
echo 1001 >"$pki/db/serial"
lib_openssl ca -batch -notext -config "$pki/db/ca.cnf" -cert "$pki/ca.pem" -keyfile "$pki/ca.key" \
    -startdate 20200101000000Z -enddate 20200102000000Z -extfile "$pki/expired.ext" \
    -in "$pki/expired.csr" -out "$pki/expired.pem"
chmod 600 "$pki/expired.key"

# server_with NAME CERT_DIR CERT [TRUST]: an agent serving identity `server` with that
# certificate, and $work/NAME.toml (the echo rule, allow cn:alice and cn:carol).
server_with() {
    start_agent "$1" --identity server --cert "$2/$3.pem" --key "$2/$3.key" \
        ${4:+--trust "$4"}
    sed -e "s|^agent_socket = .*|agent_socket = \"$run/$1.sock\"|" \
        -e "s|^audit_log = .*|audit_log = \"$work/$1.audit\"|" \
        -e 's|^allow = .*|allow = ["cn:alice", "cn:carol"]|' "$sconf" >"$work/$1.toml"
}
server_with rogue-srv "$rogue_pki" rogue
server_with wrongname-srv "$pki" wrongname
server_with expired-srv "$pki" expired
cat "$pki/ca.pem" "$rogue_pki/ca.pem" >"$work/trust.pem"
server_with revoking-srv "$pki" server "$work/trust.pem"
start_agent carol --identity carol --cert "$rogue_pki/carol.pem" --key "$rogue_pki/carol.key"
client_config "$work/carol.toml" "$run/carol.sock" carol
client_config "$work/nosuch.toml" "$run/client.sock" nosuch
client_config "$work/bob.toml" "$run/client.sock" bob
start_agent locked --identity alice --cert "$pki/alice.pem" --key "$pki/alice-enc.key" \
    --passphrase-fd 3 3<"$work/pass"
"$agent_bin" lock --socket "$run/locked.sock" >/dev/null
client_config "$work/locked.toml" "$run/locked.sock" alice
with_audit good

# exchange NAME CLIENT_CONFIG SERVER_CONFIG: one blocking exchange of 100,000 bytes; the server
# dumps what it reads to $work/NAME.dump and is stopped if it still waits after the client.
exchange() {
    run_probe server "$1" "$3" --mode blocking --seed 5 --reply-size 5000 --dump "$work/$1.dump"
    run_probe client "$1" "$2" --mode blocking --seed 5 --reply-size 5000 --size 100000 \
        --marker "$marker" --connect "127.0.0.1:$port"
    for _ in $(seq 50); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
    kill "$srv_pid" 2>/dev/null || true
    srv_wait
}
accepted() {  # accepted NAME LABEL
    on_fail=$1 check "$2: both programs succeed, the client verified the reply" bash -c \
        "[[ $cli_rc -eq 0 && $srv_rc -eq 0 ]] && grep -qx verified '$work/$1.cli'"
}
# refused NAME CLIENT_CONFIG SERVER_CONFIG SIDE ERE AUDIT LABEL: the exchange is refused; SIDE
# (cli or srv) refused it, and its sealsock: line and the AUDIT log's last line match ERE.
refused() {
    local name=$1 side=$4 ere=$5 audit=$6 label=$7
    exchange "$name" "$2" "$3"
    on_fail=$name check "$label: the client gets a connection error, receives nothing" bash -c \
        "[[ $cli_rc -eq 1 ]] && sealed_error '$work/$name.cli' &&
         grep -Eq '^totals: sent [0-9]+ received 0$' '$work/$name.cli'"
    on_fail=$name check "$label: one sealsock: line on the refusing side names the reason ($ere)" \
        one_log_line "$work/$name.$side.err" "$ere"
    # A sealed server's program receives nothing; a plain one, only the ClientHello.
    check "$label: the server program received no plaintext (nothing, or a TLS ClientHello)" bash -c \
        "! grep -qaF '$marker' '$work/$name.dump' 2>/dev/null &&
         { [[ ! -s '$work/$name.dump' ]] || [[ \$(first_bytes '$work/$name.dump') == 160301 ]]; }"
    check "$label: the audit log's last line is a refusal or a failed close naming the reason" \
        bash -c "tail -1 '$audit' | grep -Eq '\"outcome\":\"(refused|failed)\"' &&
                 tail -1 '$audit' | grep -Eiq '\"reason\":\"[^\"]*($ere)'"
}

echo "--- baseline: good certificates on both ends"
exchange good "$ccfg" "$scfg"
accepted good "baseline: alice against the server"
exchange carol-before "$work/carol.toml" "$work/revoking-srv.toml"
accepted carol-before "baseline: carol against a server that trusts her CA"

echo "--- the client refuses the server"
refused rogue "$ccfg" "$work/rogue-srv.toml" cli 'untrusted|unknown ca|issuer|verify' \
    "$work/good-cli.audit" "server certificate from another CA"
refused wrongname "$ccfg" "$work/wrongname-srv.toml" cli 'name|mismatch' \
    "$work/good-cli.audit" "server certificate for another name"
refused expired "$ccfg" "$work/expired-srv.toml" cli 'expired' \
    "$work/good-cli.audit" "expired server certificate"
refused unsealed "$ccfg" - cli 'handshake' "$work/good-cli.audit" \
    "server without sealsock (it waits for the client, then reads)"

echo "--- the server refuses the client"
refused carol "$work/carol.toml" "$scfg" srv 'untrusted|unknown ca|issuer|verify' \
    "$work/good-srv.audit" "client certificate from another CA"
refused bob "$work/bob.toml" "$scfg" srv 'CN=bob.*(access|not in)' "$work/good-srv.audit" \
    "client identity outside the access list"
refused nosuch "$work/nosuch.toml" "$scfg" cli 'identity|nosuch' "$work/nosuch.audit" \
    "client with no such identity"
refused locked "$work/locked.toml" "$scfg" cli 'unlock|locked' "$work/locked.audit" \
    "client whose agent is locked"

echo "--- revocation: the CA removed from the server agent's trust file"
cp "$pki/ca.pem" "$work/trust.pem.new"
mv "$work/trust.pem.new" "$work/trust.pem"
sleep 2.5  # the agent looks at its files every 2 s
refused revoked "$work/carol.toml" "$work/revoking-srv.toml" srv 'untrusted|unknown ca|issuer|verify' \
    "$work/revoking-srv.audit" "carol after her CA left the trust file"
exchange alice-after "$ccfg" "$work/revoking-srv.toml"
accepted alice-after "revocation: alice, whose CA stays, still gets through"

check "no sanitizer report in any output" no_sanitizer_report
summary 71-impersonation
