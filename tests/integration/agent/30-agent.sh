#!/usr/bin/env bash
# 30-agent: sealsock-agent as users run it, against real OpenSSL peers and itself.
#
# Makes a throwaway PKI, starts the agent on a private socket, then checks with agent_probe
# (which hands sockets to the agent exactly as the shim does) and the openssl CLI:
#   - client role against `openssl s_server -rev` and server role against `openssl s_client`,
#     for each TLS 1.3 suite: the secrets the agent returns carry data both ways;
#   - the server's access list: alice gets through, bob is refused with a reason naming him and
#     the service, and s_client is told "access denied";
#   - a server from another CA, an expired server certificate, a wrong server name: refused;
#   - a pipe instead of a socket, a malformed frame, another uid (setpriv nobody): refused, and
#     the agent keeps serving;
#   - lock, a wrong passphrase, unlock (from a descriptor and through SEALSOCK_ASKPASS), the key
#     lifetime, a certificate renewed on disk, identities restricted to one program;
#   - 200 loopback pairs through the agent at once with 8 stalled peers that time out;
#   - background start, second start, stop; the sealsock wrapper's pki and default config.
# Usage: 30-agent.sh PATH/TO/sealsock-agent PATH/TO/agent_probe
set -euo pipefail

agent_bin=${1:?usage: 30-agent.sh AGENT PROBE}
probe=${2:?usage: 30-agent.sh AGENT PROBE}
openssl=${OPENSSL:-openssl}
work=$(mktemp -d "${TMPDIR:-/tmp}/sealsock-agent-test.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf -- "$work"
}
trap cleanup EXIT
passed=0
failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() {
    echo "FAIL $1"
    failed=$((failed + 1))
}
check() {  # check NAME COMMAND...: passes when the command succeeds
    local name=$1
    shift
    if "$@" >"$work/check.out" 2>&1; then ok "$name"; else
        bad "$name"
        sed 's/^/     /' "$work/check.out"
    fi
}

# --- PKI ------------------------------------------------------------------------------------
pki=$work/pki
mkdir -m 700 "$pki"
q() { "$openssl" "$@" >"$work/openssl.log" 2>&1 || { cat "$work/openssl.log" >&2; exit 1; }; }
make_ca() {  # make_ca NAME
    q req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$1.key" \
        -subj "/CN=sealsock test $1" -days 3 -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$pki/$1.pem"
}
# issue CA NAME SUBJECT EXT [START END]: a P-256 key and certificate (openssl ca, so dates can be
# set in the past for the expired case).
issue() {
    local ca=$1 name=$2 subject=$3 ext=$4 start=${5:-} end=${6:-}
    q req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$name.key" \
        -subj "$subject" -out "$pki/$name.csr"
    mkdir -p "$pki/$ca.db"
    : >"$pki/$ca.db/index.txt"
    cat >"$pki/$ca.cnf" <<CNF
[ca]
default_ca = d
[d]
database = $pki/$ca.db/index.txt
new_certs_dir = $pki/$ca.db
serial = $pki/$ca.db/serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
[x]
$(printf '%s\n' "$ext")
CNF
    "$openssl" rand -hex 8 >"$pki/$ca.db/serial"
    local dates=(-days 3)
    [[ -n $start ]] && dates=(-startdate "$start" -enddate "$end")
    q ca -batch -config "$pki/$ca.cnf" -cert "$pki/$ca.pem" -keyfile "$pki/$ca.key" \
        -extensions x "${dates[@]}" -notext -in "$pki/$name.csr" -out "$pki/$name.pem"
    chmod 600 "$pki/$name.key"
}
server_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1'
client_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
make_ca ca
make_ca otherca
issue ca server /CN=localhost "$server_ext"
issue ca alice /CN=alice "$client_ext"
issue ca bob /CN=bob "$client_ext"
issue otherca rogue /CN=localhost "$server_ext"
issue ca old /CN=localhost "$server_ext" 20200101000000Z 20200201000000Z
# A chain: root ca -> intermediate -> "chained" (a server certificate for localhost).
issue ca inter "/CN=sealsock test intermediate" 'basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign'
issue inter chained /CN=localhost "$server_ext"
cat "$pki/chained.pem" "$pki/inter.pem" >"$pki/chained-full.pem"
# alice's key once more, encrypted, for lock and unlock.
q pkcs8 -topk8 -v2 aes-256-cbc -in "$pki/alice.key" -passout pass:correct-horse \
    -out "$pki/alice-enc.key"

# --- the agent --------------------------------------------------------------------------------
run=$work/run
mkdir -m 700 "$run"
sock=$run/agent.sock
printf 'correct-horse\n' >"$work/pass"
"$agent_bin" --foreground --socket "$sock" --trust "$pki/ca.pem" \
    --identity alice --cert "$pki/alice.pem" --key "$pki/alice-enc.key" \
    --identity server --cert "$pki/server.pem" --key "$pki/server.key" \
    --identity bob --cert "$pki/bob.pem" --key "$pki/bob.key" \
    --identity chained --cert "$pki/chained-full.pem" --key "$pki/chained.key" \
    --passphrase-fd 3 3<"$work/pass" 2>"$work/agent.log" &
pids+=($!)
for _ in $(seq 50); do [[ -S $sock ]] && break; sleep 0.1; done
[[ -S $sock ]] || { cat "$work/agent.log"; echo "FAIL agent did not start"; exit 1; }
ok "agent started with an encrypted key unlocked from --passphrase-fd"
p() { "$probe" --socket "$sock" "$@"; }

# server_rev CERT KEY [SUITE]: s_server -rev on a free port; sets $port and $peer_pid.
server_rev() {
    local out=$work/s_server.$RANDOM
    "$openssl" s_server -accept 127.0.0.1:0 -cert "$1" -key "$2" -CAfile "$pki/ca.pem" \
        -Verify 2 -verify_return_error -rev -naccept 1 ${3:+-ciphersuites "$3"} >"$out" 2>&1 &
    peer_pid=$!
    pids+=("$peer_pid")
    for _ in $(seq 50); do
        grep -q '^ACCEPT' "$out" 2>/dev/null && break
        sleep 0.1
    done
    port=$(sed -n 's/^ACCEPT 127.0.0.1:\([0-9]*\).*/\1/p' "$out")
}

# --- client role, each suite ------------------------------------------------------------------
declare -A code=([TLS_AES_128_GCM_SHA256]=0x1301 [TLS_AES_256_GCM_SHA384]=0x1302
                 [TLS_CHACHA20_POLY1305_SHA256]=0x1303)
for suite in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256; do
    server_rev "$pki/server.pem" "$pki/server.key" "$suite"
    line="sealed $suite $RANDOM"
    expect=$(printf '%s' "$line" | rev)
    check "client role, $suite: s_server echoes through the agent's secrets" \
        bash -c "out=\$('$probe' --socket '$sock' client --connect 127.0.0.1:$port \
            --server-name localhost --identity alice --suite ${code[$suite]} --line '$line') &&
            grep -qx 'suite: $suite' <<<\"\$out\" && grep -qx 'reply: $expect' <<<\"\$out\""
done

# --- server role, each suite ------------------------------------------------------------------
# sealed_server OUT ARGS...: starts agent_probe server; sets $port and $peer_pid.
sealed_server() {
    local out=$1
    shift
    rm -f "$work/port"
    p server --port-file "$work/port" --identity server --service echo "$@" >"$out" 2>&1 &
    peer_pid=$!
    pids+=("$peer_pid")
    for _ in $(seq 50); do [[ -s $work/port ]] && break; sleep 0.1; done
    port=$(cat "$work/port")
}
# s_client_line PORT CERT KEY LINE [SUITE]: sends LINE, prints what comes back.
s_client_line() {
    { printf '%s\n' "$4"; sleep 1; } | timeout 10 "$openssl" s_client -connect "127.0.0.1:$1" \
        -servername localhost -CAfile "$pki/ca.pem" -verify_return_error -cert "$2" -key "$3" -quiet \
        ${5:+-ciphersuites "$5"} 2>&1 || true
}
for suite in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256; do
    sealed_server "$work/srv.out" --allow cn:alice --suite "${code[$suite]}"
    reply=$(s_client_line "$port" "$pki/alice.pem" "$pki/alice.key" "hello $suite" "$suite")
    wait "$peer_pid" || true
    check "server role, $suite: s_client's line comes back reversed" \
        bash -c "grep -q '$(printf 'hello %s' "$suite" | rev)' <<<'$reply' &&
                 grep -qx 'suite: $suite' '$work/srv.out' && grep -qx 'peer: CN=alice' '$work/srv.out'"
done

# --- certificate chains and IPv6 ---------------------------------------------------------------
out=$work/s_server.chain
"$openssl" s_server -accept 127.0.0.1:0 -cert "$pki/chained.pem" -key "$pki/chained.key" \
    -cert_chain "$pki/inter.pem" -CAfile "$pki/ca.pem" -Verify 2 -rev -naccept 1 >"$out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q '^ACCEPT' "$out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^ACCEPT 127.0.0.1:\([0-9]*\).*/\1/p' "$out")
check "client role: a server certified through an intermediate CA is verified to the root" \
    bash -c "'$probe' --socket '$sock' client --connect 127.0.0.1:$port --server-name localhost \
             --identity alice --line chain | grep -qx 'reply: niahc'"
rm -f "$work/port"
p server --port-file "$work/port" --identity chained --service echo --allow cn:alice \
    >"$work/chain-srv.out" 2>&1 &
peer_pid=$!
pids+=("$peer_pid")
for _ in $(seq 50); do [[ -s $work/port ]] && break; sleep 0.1; done
reply=$(s_client_line "$(cat "$work/port")" "$pki/alice.pem" "$pki/alice.key" "sent chain")
wait "$peer_pid" || true
check "server role: our intermediate is sent, so s_client verifies us to the root" \
    bash -c "grep -q 'niahc tnes' <<<'$reply'"
out=$work/s_server.v6
"$openssl" s_server -accept '[::1]:0' -cert "$pki/server.pem" -key "$pki/server.key" \
    -CAfile "$pki/ca.pem" -Verify 2 -rev -naccept 1 >"$out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q '^ACCEPT' "$out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^ACCEPT \[::1\]:\([0-9]*\).*/\1/p' "$out")
check "client role over IPv6" bash -c "'$probe' --socket '$sock' client --connect '[::1]:$port' \
    --server-name localhost --identity alice --line six | grep -qx 'reply: xis'"

# --- access list ------------------------------------------------------------------------------
sealed_server "$work/denied.out" --allow cn:alice
reply=$(s_client_line "$port" "$pki/bob.pem" "$pki/bob.key" "let me in")
wait "$peer_pid" || true
check "access list: bob is refused with a reason naming him and the service" \
    grep -q 'agent: access_denied: .*CN=bob.*service echo' "$work/denied.out"
check "access list: s_client is told access denied, and no data came back" \
    bash -c "grep -qi 'access denied' <<<'$reply' && ! grep -q 'ni em tel' <<<'$reply'"
sealed_server "$work/ou.out" --allow cn:carol --allow cn:bob
reply=$(s_client_line "$port" "$pki/bob.pem" "$pki/bob.key" "bob again")
wait "$peer_pid" || true
check "access list: bob gets through a list that names him" \
    bash -c "grep -q 'niaga bob' <<<'$reply'"
sealed_server "$work/empty.out"
s_client_line "$port" "$pki/alice.pem" "$pki/alice.key" "nobody listed" >/dev/null
wait "$peer_pid" || true
check "access list: an empty list lets nobody in" grep -q 'agent: access_denied' "$work/empty.out"

# --- verification on the client side -----------------------------------------------------------
expect_refusal() {  # expect_refusal NAME CODE CERT KEY [SERVER_NAME]
    server_rev "$3" "$4"
    check "$1" bash -c "out=\$('$probe' --socket '$sock' client --connect 127.0.0.1:$port \
        --server-name '${5:-localhost}' --identity alice --line x); [[ \$? -eq 3 ]] &&
        grep -q '^agent: $2: ' <<<\"\$out\""
}
expect_refusal "a server certified by another CA is refused" peer_untrusted \
    "$pki/rogue.pem" "$pki/rogue.key"
expect_refusal "an expired server certificate is refused" peer_expired "$pki/old.pem" "$pki/old.key"
expect_refusal "a server certificate for another name is refused" peer_name_mismatch \
    "$pki/server.pem" "$pki/server.key" db.example

# --- bad input and other users ------------------------------------------------------------------
check "a pipe instead of a socket is refused" bash -c \
    "out=\$('$probe' --socket '$sock' not-a-socket); [[ \$? -eq 3 ]] && grep -q 'agent: not_a_socket' <<<\"\$out\""
if ! python3 - "$sock" <<'PY'
import socket, sys
for junk in (b"\xff\xff\xff\xff", b"\x00\x00\x00\x0a\x09\x01" + b"\x00" * 8, b"\x00\x00"):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(junk)
    s.shutdown(socket.SHUT_WR); s.recv(100); s.close()
PY
then bad "malformed frames: the agent stopped answering"; fi
check "malformed frames: the client is dropped and logged" grep -q 'malformed frame' "$work/agent.log"
# Open the path to the socket so another uid can reach it: the agent's own check must refuse.
chmod 711 "$work" "$run"
chmod 666 "$sock"
install -m 755 "$probe" "$work/probe-for-nobody"  # the build tree may be closed to nobody
if setpriv --reuid=nobody --regid=nogroup --clear-groups "$work/probe-for-nobody" --socket "$sock" not-a-socket \
    >"$work/nobody.out" 2>&1; then bad "another uid was served"; else
    cat "$work/nobody.out"
    check "another uid is refused and logged" grep -q 'refused a connection from uid 65534' "$work/agent.log"
fi
chmod 700 "$work" "$run"
chmod 600 "$sock"
check "the agent still serves its user after all that" "$agent_bin" status --socket "$sock"

# --- lock and unlock --------------------------------------------------------------------------
check "lock" "$agent_bin" lock --socket "$sock"
server_rev "$pki/server.pem" "$pki/server.key"
check "a locked identity is refused with a hint to unlock" bash -c \
    "out=\$('$probe' --socket '$sock' client --connect 127.0.0.1:$port --server-name localhost \
     --identity alice --line x); [[ \$? -eq 3 ]] && grep -q 'agent: locked: .*sealsock agent unlock' <<<\"\$out\""
kill "$peer_pid" 2>/dev/null || true
check "a wrong passphrase is refused" bash -c \
    "! printf 'wrong\n' | '$agent_bin' unlock --socket '$sock' --passphrase-fd 0 2>'$work/unlock.err' &&
     grep -q 'bad_passphrase' '$work/unlock.err' &&
     '$agent_bin' status --socket '$sock' | grep -qx 'locked: yes'"
check "unlock with the right passphrase" bash -c \
    "'$agent_bin' unlock --socket '$sock' --passphrase-fd 3 3<'$work/pass' &&
     '$agent_bin' status --socket '$sock' | grep -qx 'locked: no'"
server_rev "$pki/server.pem" "$pki/server.key"
check "after unlock the handshake works again" bash -c \
    "'$probe' --socket '$sock' client --connect 127.0.0.1:$port --server-name localhost \
     --identity alice --line again | grep -qx 'reply: niaga'"

# --- many at once -----------------------------------------------------------------------------
ulimit -n 4096
agent_pid=${pids[0]}
fds_before=$(ls /proc/"$agent_pid"/fd | wc -l)
check "200 pairs at once complete while 8 stalled peers time out" \
    p pairs --pairs 200 --stall 8 --timeout-ms 5000 --client-identity alice \
    --server-identity server --allow cn:alice
cat "$work/check.out"
fds_after=$(ls /proc/"$agent_pid"/fd | wc -l)
check "no descriptor leaked by 408 handshakes, refusals and bad input ($fds_before before, $fds_after after)" \
    test "$fds_before" -eq "$fds_after"

# --- not dumpable ---------------------------------------------------------------------------------
# Run as nobody, the agent makes itself undumpable: another process of the same uid may not read
# its memory map (or attach a debugger).
nb=$work/nobody
mkdir -m 700 "$nb"
install -m 600 "$pki/server.key" "$nb/key"
install -m 644 "$pki/server.pem" "$nb/cert"
install -m 644 "$pki/ca.pem" "$nb/ca"
install -m 755 "$agent_bin" "$nb/agent"
chown -R nobody:nogroup "$nb"
chmod 711 "$work"
setpriv --reuid=nobody --regid=nogroup --clear-groups "$nb/agent" --foreground \
    --socket "$nb/run/agent.sock" --identity s --cert "$nb/cert" --key "$nb/key" --trust "$nb/ca" \
    2>>"$work/agent.log" &
nobody_agent=$!
pids+=("$nobody_agent")
for _ in $(seq 50); do [[ -S $nb/run/agent.sock ]] && break; sleep 0.1; done
check "the agent is not dumpable: another process of its uid cannot read its memory map" bash -c \
    "[[ -S '$nb/run/agent.sock' ]] &&
     ! setpriv --reuid=nobody --regid=nogroup --clear-groups cat /proc/$nobody_agent/maps >/dev/null 2>&1"
kill "$nobody_agent" 2>/dev/null || true
chmod 700 "$work"

# --- background start, second start, stop ---------------------------------------------------------
check "stop" "$agent_bin" stop --socket "$sock"
for _ in $(seq 50); do [[ -S $sock ]] || break; sleep 0.1; done
check "the socket is removed on stop" test ! -e "$sock"
env_lines=$("$agent_bin" --socket "$sock" --trust "$pki/ca.pem" --identity server \
    --cert "$pki/server.pem" --key "$pki/server.key" 2>>"$work/agent.log")
check "background start prints shell lines" grep -q "^SEALSOCK_AGENT_SOCK=$sock; export SEALSOCK_AGENT_SOCK;" <<<"$env_lines"
eval "$env_lines" >/dev/null
pids+=("$SEALSOCK_AGENT_PID")
check "a second start finds the running agent" bash -c \
    "'$agent_bin' --socket '$sock' --trust /nonexistent | grep -q 'already running'"
check "SEALSOCK_AGENT_SOCK reaches it" "$agent_bin" status
check "stop the background agent" "$agent_bin" --stop
for _ in $(seq 50); do kill -0 "$SEALSOCK_AGENT_PID" 2>/dev/null || break; sleep 0.1; done
check "the background agent exited" bash -c "! kill -0 $SEALSOCK_AGENT_PID 2>/dev/null"

# --- lifetime, reload on change, program restriction, askpass ----------------------------------
sock2=$run/second.sock
cp "$pki/server.pem" "$work/renewing.pem"
cp "$pki/server.key" "$work/renewing.key"
"$agent_bin" --foreground --socket "$sock2" --trust "$pki/ca.pem" --lifetime 2 \
    --identity alice --cert "$pki/alice.pem" --key "$pki/alice-enc.key" \
    --allow-program "$(readlink -f "$probe")" \
    --identity renewing --cert "$work/renewing.pem" --key "$work/renewing.key" \
    --identity pinned --cert "$pki/bob.pem" --key "$pki/bob.key" --allow-program /bin/true \
    2>>"$work/agent.log" &
pids+=($!)
for _ in $(seq 50); do [[ -S $sock2 ]] && break; sleep 0.1; done
printf '#!/bin/sh\necho correct-horse\n' >"$work/askpass"
chmod 700 "$work/askpass"
check "unlock through SEALSOCK_ASKPASS" bash -c \
    "SEALSOCK_ASKPASS='$work/askpass' '$agent_bin' unlock --socket '$sock2' </dev/null &&
     '$agent_bin' status --socket '$sock2' | grep -qx 'locked: no'"
server_rev "$pki/server.pem" "$pki/server.key"
check "an identity restricted to a program serves that program" bash -c \
    "'$probe' --socket '$sock2' client --connect 127.0.0.1:$port --server-name localhost \
     --identity alice --line ok | grep -qx 'reply: ko'"
server_rev "$pki/server.pem" "$pki/server.key"
check "an identity restricted to another program is refused" bash -c \
    "out=\$('$probe' --socket '$sock2' client --connect 127.0.0.1:$port --server-name localhost \
     --identity pinned --line x); [[ \$? -eq 3 ]] && grep -q 'agent: program_not_allowed: .*agent_probe' <<<\"\$out\""
kill "$peer_pid" 2>/dev/null || true
# Renew the certificate in place (here: another certificate and key under the same names).
cp "$pki/bob.pem" "$work/renewing.pem"
cp "$pki/bob.key" "$work/renewing.key"
sleep 3
check "a certificate renewed on disk is picked up without a restart" bash -c \
    "'$agent_bin' status --socket '$sock2' | grep -q '^identity: renewing CN=bob '"
check "the lifetime ran out: keys from encrypted files are forgotten" bash -c \
    "'$agent_bin' status --socket '$sock2' | grep -qx 'locked: yes' &&
     grep -q 'lifetime of 2 s ran out' '$work/agent.log'"
"$agent_bin" stop --socket "$sock2" >/dev/null

# --- the sealsock wrapper: pki, default config directory, agent -------------------------------
sealsock=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../scripts" && pwd)/sealsock
export XDG_CONFIG_HOME=$work/config SEALSOCK_AGENT_BIN=$agent_bin
check "sealsock pki init, issue and install" bash -c \
    "'$sealsock' pki init '$work/ca2' && '$sealsock' pki issue '$work/ca2' --user carol &&
     '$sealsock' pki issue '$work/ca2' --service web --dns localhost &&
     '$sealsock' pki install '$work/ca2' carol && openssl verify -CAfile '$work/ca2/ca.pem' \
     '$work/ca2/carol.crt' '$work/ca2/web.crt'"
env_lines=$("$sealsock" agent --socket "$sock" 2>>"$work/agent.log")
eval "$env_lines" >/dev/null
pids+=("$SEALSOCK_AGENT_PID")
check "sealsock agent loads the installed identity from the config directory" bash -c \
    "'$sealsock' agent status | grep -q '^identity: carol .*CN=carol'"
chmod 644 "$XDG_CONFIG_HOME/sealsock/identities/carol.key"
check "an unencrypted key others can read is refused" bash -c \
    "'$agent_bin' --foreground --socket '$run/second.sock' 2>&1 | grep -q 'readable by others'"
check "sealsock agent --stop" "$sealsock" agent --stop

echo "30-agent: $passed passed, $failed failed"
if [[ $failed -ne 0 ]]; then
    echo "--- agent log ---"
    cat "$work/agent.log"
fi
[[ $failed -eq 0 ]]
