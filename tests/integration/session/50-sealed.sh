#!/usr/bin/env bash
# 50-sealed: sealed connections end to end, with unmodified programs under libsealsock.so.
#
# Makes a throwaway PKI and two agents (a client agent holding alice and bob, a server agent
# holding `server`), then runs session_probe, a plain TCP program, on both ends:
#   - baseline: every scenario between two plain processes (the probe itself is right), and the
#     wire check on a plain pair through the relay (the check sees plaintext when it is there);
#   - sealed client against sealed server, every scenario: blocking; nonblocking connect + poll;
#     epoll level- and edge-triggered; 1-byte reads of a 64 KiB write with FIONREAD; MSG_PEEK then
#     read; MSG_WAITALL; 64 iovecs with readv/writev and recvmsg/sendmsg; half-close both ways;
#     a server that writes first; a reader blocked while another thread writes; 64 connections at
#     once; sizes 1, 16384, 16385, 1 MiB, IPv6, and 256 MiB. Both sides'
#     SHA-256 must agree, the client checks every byte it reads, and no `sealsock:` line appears;
#   - the wire: a relay (not preloaded) records both directions: TLS records from the first byte
#     to the last, and the plaintext marker nowhere;
#   - interop: the sealed client against openssl s_server -rev; openssl s_client and curl against
#     the sealed server;
#   - fail closed: agent stopped, agent locked, server not sealed, identity refused by the
#     server's access list, one byte of the stream flipped: each ends in a connection error and a
#     `sealsock:` line, and no plaintext (and no garbage) reaches the other program.
# Usage: 50-sealed.sh AGENT LIBSEALSOCK PROBE plain|asan [CXX]   (SEALSOCK_TEST_KEEP=1 keeps $work)
#   The probe is built like the shim (instrumented in the sanitizer tree), so the shim alone is
#   the right preload; nothing uninstrumented is ever preloaded here (openssl, curl and the relay
#   are real peers and run plain), so CXX, which 40-shim-passthrough uses to find the ASan
#   runtime, is accepted for the same command line and not needed.
set -euo pipefail

agent_bin=${1:?usage: 50-sealed.sh AGENT LIBSEALSOCK PROBE plain|asan [CXX]}
shim=${2:?}
probe=${3:?}
variant=${4:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
relay=$here/relay.py
# shellcheck source=../lib.sh
source "$here/../lib.sh"
lib_init sealed
make_pki
start_test_agents

# --- running the probe --------------------------------------------------------------------------
probe_cmd() {  # probe_cmd CONFIG ARGS...: sets cmd; CONFIG "-" runs the probe plain
    if [[ $1 == - ]]; then
        cmd=(timeout "$limit" "$probe" "${@:2}")
    else
        cmd=(timeout "$limit" env SEALSOCK_CONFIG="$1" LD_PRELOAD="$shim" "$probe" "${@:2}")
    fi
}
# serve NAME CONFIG ARGS...: starts a probe server; sets $port and $srv_pid. Output in
# $work/NAME.srv, its stderr in $work/NAME.srv.err.
serve() {
    local name=$1 config=$2 pf=$work/$1.port
    shift 2
    rm -f "$pf"
    probe_cmd "$config" server --port-file "$pf" "$@"
    "${cmd[@]}" >"$work/$name.srv" 2>"$work/$name.srv.err" &
    srv_pid=$!
    pids+=("$srv_pid")
    for _ in $(seq 200); do [[ -s $pf ]] && break; sleep 0.05; done
    port=$(cat "$pf" 2>/dev/null || echo 0)
}
# client NAME CONFIG ARGS...: runs a probe client to its end; sets $cli_rc.
client() {
    local name=$1 config=$2
    shift 2
    probe_cmd "$config" client "$@"
    cli_rc=0
    "${cmd[@]}" >"$work/$name.cli" 2>"$work/$name.cli.err" || cli_rc=$?
}
server_done() {  # server_done: waits for the server; sets $srv_rc
    srv_rc=0
    wait "$srv_pid" || srv_rc=$?
}
server_kill() {  # server_kill: stops a server that may still wait for a connection
    kill "$srv_pid" 2>/dev/null || true
    wait "$srv_pid" 2>/dev/null || true
}
# flows FILE client|server: the sent/received lines as directions (c2s, s2c, s2c-banner), sorted,
# so the two sides' outputs can be compared with diff.
flows() {
    if [[ $2 == client ]]; then
        sed -n -e 's/^sent /c2s /p' -e 's/^received-banner /s2c-banner /p' \
            -e 's/^received /s2c /p' "$1"
    else
        sed -n -e 's/^received /c2s /p' -e 's/^sent-banner /s2c-banner /p' -e 's/^sent /s2c /p' "$1"
    fi | sort
}
# agree NAME: both ends exited 0, the client verified, both saw the same bytes each way, and a
# sealed run logged no failure.
agree() {
    local n=$1 why=""
    [[ $cli_rc -eq 0 ]] || why+=" client exit $cli_rc;"
    [[ $srv_rc -eq 0 ]] || why+=" server exit $srv_rc;"
    grep -q '^verified' "$work/$n.cli" || grep -q '^rev .* verified' "$work/$n.cli" ||
        why+=" the client did not verify;"
    flows "$work/$n.cli" client >"$work/$n.cflows"
    flows "$work/$n.srv" server >"$work/$n.sflows"
    [[ $(wc -l <"$work/$n.cflows") -ge 2 ]] || why+=" no sent/received lines;"
    cmp -s "$work/$n.cflows" "$work/$n.sflows" || why+=" the two sides' sha256 differ;"
    if cat "$work/$n.cli.err" "$work/$n.srv.err" | grep -q '^sealsock: '; then
        why+=" a sealsock: line was logged;"
    fi
    [[ -z $why ]] && return 0
    echo "    $why"
    diff "$work/$n.cflows" "$work/$n.sflows" | head -6 | sed 's/^/     /' || true
    return 1
}
# pair LABEL CLIENT_CONFIG SERVER_CONFIG MODE SIZE [ARGS for both...]: one scenario. Its files
# are $work/$last.*, $last being the label with every character but letters and digits as "-".
pair() {
    local label=$1 cc=$2 sc=$3 mode=$4 size=$5
    shift 5
    local name host=127.0.0.1
    name=$(tr -c 'A-Za-z0-9' - <<<"$label")
    last=$name
    local common=(--mode "$mode" --seed "$((RANDOM + 10))" --reply-size 70000 "$@")
    if [[ $mode == many ]]; then common+=(--connections 64); fi
    if [[ " $* " == *" --listen ::1 "* ]]; then host='[::1]'; fi
    serve "$name" "$sc" "${common[@]}"
    client "$name" "$cc" "${common[@]}" --connect "$host:$port" --size "$size" --marker "$marker"
    server_done
    if agree "$name" >"$work/agree.out"; then ok "$label"; else
        bad "$label"
        cat "$work/agree.out"
        show "$name"
    fi
}
# no_spurious LABEL: neither side of the last pair read EAGAIN first after a readiness report
# (the shim keeps the handshake's bytes from waking the program; wrk takes such a read for a
# dead connection).
no_spurious() {
    check "$1: no read answered EAGAIN right after readiness (client and server)" bash -c \
        "grep -qx 'spurious reads 0' '$work/$last.cli' && grep -qx 'spurious reads 0' '$work/$last.srv'"
}
expect_line() {  # expect_line NAME FILE ERE: a line of FILE matches
    check "$1" grep -Eq "$3" "$2"
}
# scenarios LABEL_PREFIX CLIENT_CONFIG SERVER_CONFIG: every scenario of the issue, and the checks
# on what each one's socket calls reported.
scenarios() {
    local p=$1 cc=$2 sc=$3 size
    for size in 1 16384 16385 1048576; do pair "$p blocking, $size bytes" "$cc" "$sc" blocking "$size"; done
    pair "$p blocking over IPv6" "$cc" "$sc" blocking 1048576 --listen ::1
    pair "$p nonblocking connect, poll" "$cc" "$sc" poll 1048576
    expect_line "$p poll: connect returned EINPROGRESS" "$work/$last.cli" \
        '^connect: in progress \(EINPROGRESS\)$'
    expect_line "$p poll: connect() again after POLLOUT says 0, then EISCONN (as hiredis checks)" \
        "$work/$last.cli" '^connect again: 0 EISCONN$'
    no_spurious "$p poll"
    pair "$p epoll level-triggered" "$cc" "$sc" epoll-lt 1048576
    no_spurious "$p epoll-lt"
    pair "$p epoll edge-triggered, read until EAGAIN" "$cc" "$sc" epoll-et 1048576
    no_spurious "$p epoll-et"
    expect_line "$p epoll-et: connect returned EINPROGRESS" \
        "$work/$last.cli" '^connect: in progress \(EINPROGRESS\)$'
    pair "$p 64 KiB in one write, read 1 byte at a time" "$cc" "$sc" bytewise 65536
    check "$p FIONREAD after the first byte: between 1 and 65535 plaintext bytes" awk \
        '/^fionread / { found = 1; if ($2 < 1 || $2 > 65535) bad = 1 } END { exit !(found && !bad) }' \
        "$work/$last.srv"
    pair "$p MSG_PEEK then read" "$cc" "$sc" peek 1048576
    expect_line "$p MSG_PEEK: peeks were made" "$work/$last.srv" '^peeks [1-9]'
    pair "$p MSG_WAITALL" "$cc" "$sc" waitall 1048576
    pair "$p readv/writev and recvmsg/sendmsg, 64 iovecs" "$cc" "$sc" iov 1048576
    pair "$p half-close both ways" "$cc" "$sc" halfclose 1048576
    local f
    for f in cli srv; do
        check "$p half-close ($f): EOF seen, seen again, and a write after shutdown is EPIPE" bash -c \
            "grep -qx eof '$work/$last.$f' &&
             grep -qx 'eof again' '$work/$last.$f' &&
             grep -qx 'write after shutdown: EPIPE' '$work/$last.$f'"
    done
    pair "$p server writes first" "$cc" "$sc" banner 1048576
    pair "$p one thread blocked in read while another writes" "$cc" "$sc" threads 4194304
    expect_line "$p threads: the reader was blocked before the write" \
        "$work/$last.cli" '^reader blocked in read$'
    pair "$p 64 connections at once" "$cc" "$sc" many 100000
    check "$p 64 connections: 64 payloads sent, each verified" bash -c \
        "[[ \$(grep -c '^verified\$' '$work/$last.cli') -eq 64 &&
            \$(grep -c '^received ' '$work/$last.srv') -eq 64 ]]"
}

# through_relay NAME CLIENT_CONFIG SERVER_CONFIG [--flip]: a blocking scenario through relay.py;
# captures in $work/NAME.c2s and .s2c, relay output in $work/NAME.relay.
through_relay() {
    local name=$1 cc=$2 sc=$3
    shift 3
    serve "$name" "$sc" --mode blocking --seed 77 --reply-size 70000 --dump "$work/$name.dump"
    rm -f "$work/$name.rport"
    python3 "$relay" relay "$work/$name.rport" "$port" "$work/$name" "$@" >"$work/$name.relay" 2>&1 &
    relay_pid=$!
    pids+=("$relay_pid")
    for _ in $(seq 100); do [[ -s $work/$name.rport ]] && break; sleep 0.05; done
    client "$name" "$cc" --mode blocking --seed 77 --reply-size 70000 --size 1048576 \
        --marker "$marker" --connect "127.0.0.1:$(cat "$work/$name.rport")"
    server_done
    wait "$relay_pid" || true
}

# --- baseline: two plain processes --------------------------------------------------------------
echo "--- baseline: the probe between plain processes"
scenarios plain - -
through_relay plain-relay - -
check "baseline: the wire check sees plaintext when it is there (marker in the capture)" bash -c \
    "grep -qaF '$marker' '$work/plain-relay.c2s' && [[ \$(head -c 1 '$work/plain-relay.c2s') != \$'\\x16' ]] &&
     ! python3 '$relay' records '$work/plain-relay.c2s'"
serve plain-rev - --mode rev --seed 5
client plain-rev - --mode rev --seed 5 --connect "127.0.0.1:$port"
server_done
check "baseline: rev lines" agree plain-rev
serve plain-http - --mode http --seed 5 --reply-size 300000
check "baseline: the http mode answers curl" bash -c \
    "curl -sS --fail --max-time 20 -o '$work/plain-http.body' http://127.0.0.1:$port/ &&
     '$probe' payload --size 300000 --seed 6 | cmp - '$work/plain-http.body'"
server_done

# --- sealed client, sealed server ---------------------------------------------------------------
echo "--- sealed client against sealed server"
scenarios sealed "$cconf" "$sconf"
# The agent's socket from the environment instead of the config file (the server's config names
# its own, which wins).
grep -v '^agent_socket' "$cconf" >"$work/envsock.toml"
SEALSOCK_AGENT_SOCK=$run/client.sock pair "sealed blocking, agent socket from SEALSOCK_AGENT_SOCK" \
    "$work/envsock.toml" "$sconf" blocking 100000
# Servers clear their environment before they accept (nginx's workers keep only what `env`
# names): the rules come from the environment the program started with. Without that the server
# would find no config, serve plaintext, and the sealed client's handshake would fail.
for side in srv cli; do
    srv_extra=() cli_extra=()
    if [[ $side == srv ]]; then srv_extra=(--clearenv yes); else cli_extra=(--clearenv yes); fi
    serve "clearenv-$side" "$sconf" --mode blocking --seed 12 --reply-size 5000 "${srv_extra[@]}"
    client "clearenv-$side" "$cconf" --mode blocking --seed 12 --reply-size 5000 --size 100000 \
        --marker "$marker" --connect "127.0.0.1:$port" "${cli_extra[@]}"
    server_done
    on_fail=clearenv-$side check "sealed, the $side program clears its environment before connecting: still sealed both ways, bytes agree" \
        agree "clearenv-$side"
done
# Under ASan too: the whole suite must be clean, the biggest transfer included.
limit=240 pair "sealed blocking, 256 MiB" "$cconf" "$sconf" blocking 268435456

# --- the wire -----------------------------------------------------------------------------------
echo "--- the wire between a sealed client and a sealed server"
through_relay wire "$cconf" "$sconf"
on_fail=wire check "wire: both ends agree through the relay" agree wire
c2s_head=$(first_bytes "$work/wire.c2s")
s2c_head=$(first_bytes "$work/wire.s2c")
check "wire: the client's first bytes are a TLS handshake record (16 03 01 or 16 03 03: $c2s_head)" \
    bash -c "[[ $c2s_head == 160301 || $c2s_head == 160303 ]]"
check "wire: the server's first bytes are a TLS handshake record (16 03 03: $s2c_head)" \
    test "$s2c_head" = 160303
check "wire: client to server is TLS 1.3 records to the last byte" python3 "$relay" records "$work/wire.c2s"
check "wire: server to client is TLS 1.3 records to the last byte" python3 "$relay" records "$work/wire.s2c"
check "wire: the whole payload crossed the relay (at least 1 MiB captured)" bash -c \
    "[[ \$(stat -c %s '$work/wire.c2s') -gt 1048576 ]]"
check "wire: the plaintext marker appears in neither direction" bash -c \
    "! grep -qaF '$marker' '$work/wire.c2s' '$work/wire.s2c'"

# --- sealsock_peer(): who the peer proved to be ----------------------------------------------------
echo "--- sealsock_peer"
fingerprint() { "$openssl" x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1; }
pair "sealsock_peer: both ends ask who the peer is" "$cconf" "$sconf" blocking 65536 --peer yes
expect_line "sealsock_peer: the server sees alice's subject and certificate, as the server of rule echo" \
    "$work/$last.srv" "^peer: subject=CN=alice fingerprint=$(fingerprint "$pki/alice.pem") identity=server rule=echo suite=0x130[123] server=1\$"
expect_line "sealsock_peer: the client sees the server's subject and certificate, as alice under rule test" \
    "$work/$last.cli" "^peer: subject=CN=localhost fingerprint=$(fingerprint "$pki/server.pem") identity=alice rule=test suite=0x130[123] server=0\$"
pair "sealsock_peer: a plain run has no such function" - - blocking 4096 --peer yes
expect_line "sealsock_peer: without the shim the probe finds no sealsock_peer" "$work/$last.srv" \
    '^peer: no sealsock_peer'
cat >"$work/none.toml" <<TOML
agent_socket = "$run/client.sock"
TOML
pair "sealsock_peer: under the shim, a connection no rule seals" "$work/none.toml" "$work/none.toml" \
    blocking 4096 --peer yes
expect_line "sealsock_peer: an unsealed connection answers ENOTCONN" "$work/$last.srv" \
    '^peer: error ENOTCONN$'

# --- via: through an HTTP proxy (CONNECT) ---------------------------------------------------------
echo "--- via: the client reaches the server through tinyproxy (CONNECT), recorded by a relay"
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/tinyproxy.conf" <<CONF
Port $pport
Listen 127.0.0.1
Allow 127.0.0.1
Timeout 30
MaxClients 8
LogLevel Info
LogFile "$work/tinyproxy.log"
PidFile "$work/tinyproxy.pid"
CONF
tinyproxy -d -c "$work/tinyproxy.conf" >"$work/tinyproxy.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$pport") 2>/dev/null && break; sleep 0.05; done
rm -f "$work/via.rport"
python3 "$relay" relay "$work/via.rport" "$pport" "$work/via" >"$work/via.relay" 2>&1 &
relay_pid=$!
pids+=("$relay_pid")
for _ in $(seq 100); do [[ -s $work/via.rport ]] && break; sleep 0.05; done
client_config "$work/via.toml" "$run/client.sock" alice
sed -i "s|^expect = .*|&\nvia = \"http://127.0.0.1:$(cat "$work/via.rport")\"|" "$work/via.toml"
# rev: lines there and back, no half-close (tinyproxy ends the tunnel both ways at the first
# FIN).
serve via "$sconf" --mode rev --seed 78 --lines 200 --dump "$work/via.dump"
client via "$work/via.toml" --mode rev --seed 78 --lines 200 --marker "$marker" \
    --connect "127.0.0.1:$port"
server_done
wait "$relay_pid" || true
on_fail=via check "via: both ends agree (200 lines there and back, sha256), through the proxy" agree via
check "via: the proxy was asked for the server: CONNECT 127.0.0.1:$port, nothing else in the clear" \
    bash -c "head -c 200 '$work/via.c2s' | head -n 1 | grep -q '^CONNECT 127.0.0.1:$port HTTP/1.1'"
python3 - "$work/via" <<'PY'
import sys
prefix = sys.argv[1]
for d in ("c2s", "s2c"):
    data = open(f"{prefix}.{d}", "rb").read()
    end = data.find(b"\r\n\r\n")
    open(f"{prefix}.{d}.tunnel", "wb").write(data[end + 4:] if end >= 0 else data)
PY
check "via: past the CONNECT header, client to server is TLS 1.3 records to the last byte" \
    python3 "$relay" records "$work/via.c2s.tunnel"
check "via: past the proxy's 200, server to client is TLS 1.3 records to the last byte" \
    python3 "$relay" records "$work/via.s2c.tunnel"
check "via: the proxy answered 200" bash -c "head -n 1 '$work/via.s2c' | grep -q '^HTTP/1.[01] 200'"
check "via: the marker never crossed the proxy" bash -c "! grep -qaF '$marker' '$work/via.c2s' '$work/via.s2c'"
check "via: the audit log names the proxy" bash -c "grep -q 'via 127.0.0.1:' '$work/via.audit'"

# A proxy that refuses CONNECT: the client fails with the proxy's answer, and the server
# behind it is never reached (nothing but the CONNECT request crossed).
python3 - "$work/refuse.port" "$work/refuse.got" <<'PY' &
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
c, _ = s.accept(); c.settimeout(5)
got = b""
while b"\r\n\r\n" not in got:
    chunk = c.recv(4096)
    if not chunk: break
    got += chunk
c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
try:
    while True:
        chunk = c.recv(4096)
        if not chunk: break
        got += chunk
except OSError:
    pass
open(sys.argv[2], "wb").write(got)
PY
pids+=($!)
refuse_pid=$!
for _ in $(seq 100); do [[ -s $work/refuse.port ]] && break; sleep 0.05; done
client_config "$work/refuse.toml" "$run/client.sock" alice
sed -i "s|^expect = .*|&\nvia = \"http://127.0.0.1:$(cat "$work/refuse.port")\"|" "$work/refuse.toml"
client refuse "$work/refuse.toml" --mode blocking --seed 79 --size 4096 --marker "$marker" \
    --connect "127.0.0.1:9"
wait "$refuse_pid" || true
check "via, refused: the client gets a connection error and no data" bash -c \
    "[[ $cli_rc -ne 0 ]] && grep -q '^error: ' '$work/refuse.cli' && ! grep -q '^verified' '$work/refuse.cli'"
check "via, refused: one sealsock: line quotes the proxy's answer" \
    grep -q '^sealsock: .*refused CONNECT 127.0.0.1:9: "HTTP/1.1 403 Forbidden"' "$work/refuse.cli.err"
check "via, refused: the proxy got the CONNECT request and nothing after it" bash -c \
    "python3 -c 'import sys; d=open(sys.argv[1],\"rb\").read(); sys.exit(0 if d.endswith(b\"\\r\\n\\r\\n\") and d.startswith(b\"CONNECT 127.0.0.1:9 \") else 1)' '$work/refuse.got'"

# --- a sandboxed process (OpenSSH's pattern) ----------------------------------------------------
echo "--- sandboxed: the server's forked child serves under a seccomp filter"
pair "sandboxed, plain: the filter lets a plain program serve" - - sandboxed 300000 \
    --reply-size 3000000
pair "sandboxed, sealed: the shim works within the filter (read, write, poll)" "$cconf" "$sconf" \
    sandboxed 300000 --reply-size 3000000
expect_line "sandboxed, sealed: the child exited 0, never killed by the filter" "$work/$last.srv" \
    '^sandbox: the child exited 0$'
check "sandboxed, sealed: the server's audit log closed the connection (from the parent)" bash -c \
    "tail -n 1 '$work/server.audit' | grep -q '\"event\":\"close\".*\"outcome\":\"closed\"'"

# --- interop with real TLS peers ----------------------------------------------------------------
echo "--- interop with openssl and curl"
out=$work/s_server.out
"$openssl" s_server -accept 127.0.0.1:0 -cert "$pki/server.pem" -key "$pki/server.key" \
    -CAfile "$pki/ca.pem" -Verify 1 -verify_return_error -rev -naccept 1 >"$out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q '^ACCEPT' "$out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^ACCEPT 127.0.0.1:\([0-9]*\).*/\1/p' "$out")
client s_server "$cconf" --mode rev --seed 9 --lines 60 --connect "127.0.0.1:$port"
if [[ $cli_rc -eq 0 ]] && grep -q '^rev 60 lines verified$' "$work/s_server.cli" &&
    grep -q 'CN *= *alice' "$out"; then
    ok "sealed client against openssl s_server -rev: 60 lines reversed, alice's certificate verified"
else
    bad "sealed client against openssl s_server -rev (client exit $cli_rc)"
    show s_server
    sed 's/^/     s_server: /' "$out" | head -20
fi

serve s_client "$sconf" --mode rev
for i in $(seq 40); do head -c $((i * 97)) /dev/urandom | base64 -w0; echo; done >"$work/lines"
{ cat "$work/lines"; echo CLOSE; } | timeout 30 "$openssl" s_client -connect "127.0.0.1:$port" \
    -servername localhost -CAfile "$pki/ca.pem" -verify_return_error -cert "$pki/alice.pem" \
    -key "$pki/alice.key" -quiet >"$work/s_client.out" 2>"$work/s_client.err" || true
server_done
{ cat "$work/lines"; echo CLOSE; } >"$work/lines.sent"
if [[ $srv_rc -eq 0 ]] && rev "$work/lines" | cmp -s - "$work/s_client.out" &&
    grep -q "^received $(stat -c %s "$work/lines.sent") $(sha256sum <"$work/lines.sent" | cut -d' ' -f1)\$" \
        "$work/s_client.srv"; then
    ok "openssl s_client against the sealed server: 40 lines reversed, the server read exactly what was sent"
else
    bad "openssl s_client against the sealed server (server exit $srv_rc)"
    show s_client
    sed 's/^/     s_client: /' "$work/s_client.err" | head -10
    echo "     s_client printed $(wc -c <"$work/s_client.out") bytes, expected $(wc -c <"$work/lines")"
fi

serve curl "$sconf" --mode http --seed 21 --reply-size 300000
curl_rc=0
timeout 30 curl -sS --fail --cacert "$pki/ca.pem" --cert "$pki/alice.pem" --key "$pki/alice.key" \
    --resolve "localhost:$port:127.0.0.1" -o "$work/curl.body" "https://localhost:$port/sealed" \
    2>"$work/curl.err" || curl_rc=$?
server_done
if [[ $curl_rc -eq 0 && $srv_rc -eq 0 ]] && "$probe" payload --size 300000 --seed 22 |
    cmp -s - "$work/curl.body" && grep -q '^request GET /sealed HTTP/1.1$' "$work/curl.srv"; then
    ok "curl with alice's certificate against the sealed server: the 300000-byte body, ended by close_notify, arrived intact"
else
    bad "curl against the sealed server (curl exit $curl_rc, server exit $srv_rc)"
    show curl
    sed 's/^/     curl: /' "$work/curl.err" | head -10
fi

# --- the audit log ------------------------------------------------------------------------------
echo "--- the audit log"
audit=$here/audit_check.py
sed "s|^audit_log = .*|audit_log = \"$work/a-cli.audit\"|" "$cconf" >"$work/a-cli.toml"
sed "s|^audit_log = .*|audit_log = \"$work/a-srv.audit\"|" "$sconf" >"$work/a-srv.toml"
pair "audit: a sealed exchange" "$work/a-cli.toml" "$work/a-srv.toml" blocking 1048576
read -r _ _ c_sent _ c_recv < <(grep '^totals:' "$work/$last.cli")
read -r _ _ s_sent _ s_recv < <(grep '^totals:' "$work/$last.srv")
check "audit: the client logged open, then close counting the bytes it sent ($c_sent) and received ($c_recv)" \
    python3 "$audit" "$work/a-cli.audit" open,close direction=outbound rule=test identity=alice \
    peer_subject=CN=localhost 'suite~^TLS_AES_' 'exe~/session_probe$' 'local~^127\.0\.0\.1:[0-9]+$' \
    "peer=127.0.0.1:$port" 'peer_fingerprint~^[0-9a-f]{64}$' open.outcome=sealed \
    open.bytes_sent=0 close.outcome=closed "close.bytes_sent=$c_sent" "close.bytes_received=$c_recv"
check "audit: the server logged open, then close counting the bytes it sent ($s_sent) and received ($s_recv)" \
    python3 "$audit" "$work/a-srv.audit" open,close direction=inbound rule=echo identity=server \
    peer_subject=CN=alice "local=127.0.0.1:$port" 'peer~^127\.0\.0\.1:[0-9]+$' open.outcome=sealed \
    close.outcome=closed "close.bytes_sent=$s_sent" "close.bytes_received=$s_recv"
check "audit: the byte counts are what the peer verified (client sent = server received)" \
    test "$c_sent:$c_recv" = "$s_recv:$s_sent"
check "audit: no payload byte in either log" bash -c \
    "! grep -qaF '$marker' '$work/a-cli.audit' '$work/a-srv.audit'"
# A destination that cannot be written is said once; the connection itself goes on.
sed "s|^audit_log = .*|audit_log = \"$work/no-such-dir/audit.log\"|" "$cconf" >"$work/a-bad.toml"
serve audit-bad "$sconf" --mode blocking --seed 9 --reply-size 1000
client audit-bad "$work/a-bad.toml" --mode blocking --seed 9 --reply-size 1000 --size 5000 \
    --connect "127.0.0.1:$port"
server_done
on_fail=audit-bad check "audit: an unwritable audit log: the exchange still verifies" bash -c \
    "[[ $cli_rc -eq 0 && $srv_rc -eq 0 ]] && grep -qx verified '$work/audit-bad.cli'"
check "audit: an unwritable audit log: one sealsock: line names it" \
    one_log_line "$work/audit-bad.cli.err" "audit log cannot be written to $work/no-such-dir/audit.log"

# --- fail closed ----------------------------------------------------------------------------------
echo "--- fail closed"
# refused LABEL CONFIG MODE LOG_ERE: a sealed client that must fail with ECONNREFUSED, against a
# plain server that must see none of its plaintext; the client's log line must match LOG_ERE.
# A blocking connect waits for the agent, so connect() itself fails. A nonblocking connect
# reports the TCP connection first (POLLOUT, SO_ERROR 0) and the agent is asked afterwards, so
# the error may come from SO_ERROR or from the first read or write; nothing may be received.
refused() {
    local label=$1 config=$2 mode=$3 log_ere=$4 name where='connect' said='connect'
    name=$(tr -c 'A-Za-z0-9' - <<<"$label")
    if [[ $mode != blocking ]]; then
        where='(connect|connect \(SO_ERROR\)|read|write)'
        said='connect, SO_ERROR or the first read or write'
    fi
    serve "$name" - --mode blocking --dump "$work/$name.dump"
    client "$name" "$config" --mode "$mode" --size 100000 --marker "$marker" --connect "127.0.0.1:$port"
    server_kill
    local totals='sent 0 received 0'
    if [[ $mode != blocking ]]; then totals='sent [0-9]+ received 0'; fi
    on_fail=$name check "$label: $said fails with ECONNREFUSED, nothing received" bash -c \
        "[[ $cli_rc -eq 1 ]] && grep -Eq '^error: $where: .*\\(errno ECONNREFUSED\\)\$' '$work/$name.cli' &&
         grep -Eqx 'totals: $totals' '$work/$name.cli'"
    on_fail=$name check "$label: one sealsock: line says why ($log_ere)" \
        one_log_line "$work/$name.cli.err" "$log_ere"
    check "$label: no plaintext reached the server" bash -c "! grep -qaF '$marker' '$work/$name.dump' 2>/dev/null"
}

# (a) the client's agent is stopped: its socket is gone.
start_agent stopped --identity alice --cert "$pki/alice.pem" --key "$pki/alice.key"
"$agent_bin" stop --socket "$run/stopped.sock" >/dev/null
for _ in $(seq 50); do [[ -e $run/stopped.sock ]] || break; sleep 0.1; done
client_config "$work/stopped.toml" "$run/stopped.sock" alice
refused "agent stopped, blocking connect" "$work/stopped.toml" blocking agent
refused "agent stopped, nonblocking connect" "$work/stopped.toml" poll agent

# (b) the agent runs but is locked.
start_agent locked --identity alice --cert "$pki/alice.pem" --key "$pki/alice-enc.key" \
    --passphrase-fd 3 3<"$work/pass"
check "locked agent: lock" "$agent_bin" lock --socket "$run/locked.sock"
check "locked agent: status says locked" bash -c \
    "'$agent_bin' status --socket '$run/locked.sock' | grep -qx 'locked: yes'"
client_config "$work/locked.toml" "$run/locked.sock" alice
refused "agent locked" "$work/locked.toml" blocking unlock

# (c) the server is not sealed: it speaks first, in plain bytes, and keeps what it reads.
serve unsealed - --mode banner --dump "$work/unsealed.dump"
client unsealed "$cconf" --mode blocking --size 100000 --marker "$marker" --connect "127.0.0.1:$port"
server_kill
on_fail=unsealed check "server not sealed: the sealed client gets a connection error" bash -c \
    "[[ $cli_rc -eq 1 ]] && grep -Eq '^error: (connect|read|write|shutdown)[^:]*: .*\\(errno E[A-Z]+\\)\$' '$work/unsealed.cli'"
check "server not sealed: the server's plain banner is not handed over as data" \
    grep -Eq '^totals: sent [0-9]+ received 0$' "$work/unsealed.cli"
check "server not sealed: one sealsock: line says why (handshake)" \
    one_log_line "$work/unsealed.cli.err" handshake
check "server not sealed: the plain server saw a TLS ClientHello, never the marker" bash -c \
    "[[ \$(head -c 1 '$work/unsealed.dump' 2>/dev/null) == \$'\\x16' ]] && ! grep -qaF '$marker' '$work/unsealed.dump'"

# (d) the server's access list refuses bob.
client_config "$work/bob.toml" "$run/client.sock" bob
serve bob "$sconf" --mode blocking --dump "$work/bob.dump"
client bob "$work/bob.toml" --mode blocking --size 100000 --marker "$marker" --connect "127.0.0.1:$port"
server_done
on_fail=bob check "identity refused: the client gets a connection error and no data" bash -c \
    "[[ $cli_rc -eq 1 ]] && grep -Eq '^error: [a-z]+: .*\\(errno (ECONNRESET|ECONNREFUSED|EPIPE)\\)\$' '$work/bob.cli' &&
     grep -Eq '^totals: sent [0-9]+ received 0$' '$work/bob.cli'"
check "identity refused: the client's one sealsock: line names the reason (access_denied)" \
    one_log_line "$work/bob.cli.err" 'access_denied|access denied'
check "identity refused: the server's one sealsock: line names bob and the service" \
    one_log_line "$work/bob.srv.err" 'CN=bob.*echo'
check "identity refused: the server accepted, read 0 bytes (ECONNRESET or EOF), never the marker" bash -c \
    "grep -qx accepted '$work/bob.srv' && grep -Eq '^totals: sent [0-9]+ received 0$' '$work/bob.srv' &&
     { grep -Eq '^error: read: .*\\(errno ECONNRESET\\)$' '$work/bob.srv' || grep -q '^received 0 ' '$work/bob.srv'; } &&
     [[ ! -s '$work/bob.dump' ]]"

# In TLS 1.3 the client's handshake ends before the server judges the client's certificate: the
# client logs open, then a close that failed with the server's alert, having received nothing.
check "audit: the refused client logged open, then close failed with access_denied, 0 bytes received" \
    python3 "$here/audit_check.py" "$work/bob.audit" open,close direction=outbound identity=bob \
    close.outcome=failed bytes_received=0 'close.reason~access_denied'
grep -F 'CN=bob' "$work/server.audit" >"$work/bob-srv.audit" || true
check "audit: the server logged one refuse naming bob, nothing delivered" \
    python3 "$here/audit_check.py" "$work/bob-srv.audit" refuse direction=inbound rule=echo \
    outcome=refused bytes_received=0 'reason~CN=bob.*echo'
check "audit: the stopped agent: both refused connections logged as refuse, naming the agent" \
    python3 "$here/audit_check.py" "$work/stopped.audit" refuse,refuse outcome=refused \
    'reason~agent'

# (e) one byte of the client's stream is flipped after the handshake.
through_relay tamper "$cconf" "$sconf" --flip
"$probe" payload --size 1048576 --seed 77 --marker "$marker" >"$work/tamper.payload"
check "tampering: the relay flipped a byte of an application data record" grep -q '^flipped ' "$work/tamper.relay"
on_fail=tamper check "tampering: the server's read fails with ECONNRESET" bash -c \
    "[[ $srv_rc -eq 1 ]] && grep -Eq '^error: read: .*\\(errno ECONNRESET\\)\$' '$work/tamper.srv'"
check "tampering: the server's one sealsock: line says why (authentication, bad_record_mac)" \
    one_log_line "$work/tamper.srv.err" 'authenticat|bad_record_mac|decrypt'
check "tampering: the server received only good plaintext (a strict prefix of the payload)" bash -c \
    "n=\$(stat -c %s '$work/tamper.dump' 2>/dev/null || echo 0); [[ \$n -lt 1048576 ]] &&
     cmp -s -n \"\$n\" '$work/tamper.dump' '$work/tamper.payload'"
check "tampering: the client ends in a connection error" bash -c \
    "[[ $cli_rc -eq 1 ]] && grep -Eq '^error: [a-z]+[^:]*: .*\\(errno E[A-Z]+\\)\$' '$work/tamper.cli'"

# --- summary ------------------------------------------------------------------------------------
summary 50-sealed
