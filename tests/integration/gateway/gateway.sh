#!/usr/bin/env bash
# 80-gateway: sealsock-gateway (docs/gateway.md) with real peers. One scenario per ctest entry:
#   relay    plaintext client -> outbound gateway -> sealed path (recorded) -> inbound gateway ->
#            plaintext echo backend: SHA-256 of what the client sent, what the backend received
#            and what came back agree (one 8 MiB transfer, then 16 at once); the recorded leg is
#            TLS 1.3 records without the plaintext marker; both audit logs and relay logs
#   static   a sealed client (python under the shim) -> inbound gateway -> busybox httpd from
#            busybox-static (statically linked: it cannot carry the shim)
#   refused  bob (not on the access list) through the gateways: the backend sees no connection,
#            the client gets no byte, the inbound gateway logs the refusal
#   proxy    proxy_protocol = "v2": the backend parses the header and finds alice's identity
#            (CN, subject, certificate fingerprint, TLSv1.3, suite, client address)
#   via      the outbound gateway's sealed leg goes through tinyproxy with HTTP CONNECT; the
#            proxy's side of the wire carries only TLS records
#   cache    inbound gateway -> nginx proxy_cache -> an HTTP origin: the second request is
#            served from nginx's cache (X-Cache-Status: HIT, the origin counted one request)
#   reload   SIGHUP with a transfer in flight: the transfer completes intact on the old
#            generation, new connections are served by the new one, the old one exits
#   config   --check and its errors (file:line:column), and stage 2 without the shim refuses
#            to run (nothing listens)
# Usage: gateway.sh SCENARIO AGENT LIBSEALSOCK GATEWAY plain|asan   (SEALSOCK_TEST_KEEP=1 keeps $work)
set -euo pipefail

scenario=${1:?usage: gateway.sh SCENARIO AGENT LIBSEALSOCK GATEWAY plain|asan}
agent_bin=${2:?}
shim=${3:?}
gateway=${4:?}
variant=${5:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
compat=$here/../compat
peer=$here/gw_peer.py
audit_check=$here/../session/audit_check.py
# shellcheck source=../lib.sh
source "$here/../lib.sh"
# shellcheck source=../compat/harness.sh
source "$compat/harness.sh"
lib_init "gateway-$scenario"
# harness.sh's cleanup (every process group, then lib.sh's); no compat row result to write.
write_result() { :; }
trap compat_cleanup EXIT
make_pki
start_test_agents

# --- helpers ------------------------------------------------------------------------------------
# bg NAME CMD...: CMD in its own process group under $limit (cleaned up at exit); output in
# $work/NAME.out and .err; sets $bg_pgid.
bg() {
    local name=$1
    shift
    timeout "$limit" "$@" >"$work/$name.out" 2>"$work/$name.err" </dev/null &
    bg_pgid=$!
    groups+=("$bg_pgid")
}
port_of() {  # port_of FILE: the port a helper published
    for _ in $(seq 200); do [[ -s $1 ]] && { cat "$1"; return; }; sleep 0.05; done
    echo "FAIL no port in $1" >&2
    exit 1
}
echo_backend() {  # echo_backend NAME [--proxy-v2]: sets $be_port; log $work/NAME.log
    bg "$1" python3 "$peer" echo "$work/$1.port" "$work/$1.log" "${@:2}"
    be_port=$(port_of "$work/$1.port")
}
# start_gateway NAME CONFIG PORT: the gateway in the background, serving once PORT listens.
start_gateway() {
    bg "$1" env SEALSOCK_SHIM="$shim" "$gateway" --config "$2" --pid-file "$work/$1.pid"
    for _ in $(seq 300); do
        grep -q 'serving' "$work/$1.err" 2>/dev/null && break
        kill -0 "$bg_pgid" 2>/dev/null || break
        sleep 0.05
    done
    if ! grep -q 'serving' "$work/$1.err"; then
        bad "gateway $1 did not start"
        show_files "$1"
        exit 1
    fi
    wait_listen "$3"
}
wire_relay() {  # wire_relay NAME PORT: wire.py in front of 127.0.0.1:PORT; sets $rport
    bg "$1-wire" python3 "$compat/wire.py" relay "$work/$1.rport" 127.0.0.1 "$2" "$work/$1.wire"
    rport=$(port_of "$work/$1.rport")
}
# inbound_config FILE PORT BACKEND [EXTRA_LINE...]: the server agent's identity, alice allowed
inbound_config() {
    local f=$1 lport=$2 backend=$3
    shift 3
    {
        echo "agent_socket = \"$run/server.sock\""
        echo "audit_log = \"${f%.toml}.audit\""
        echo "relay_log = \"${f%.toml}.relay\""
        echo "workers = 2"
        echo
        echo "[[inbound]]"
        echo "name = \"web\""
        echo "listen = \"127.0.0.1:$lport\""
        echo "backend = \"$backend\""
        echo "identity = \"server\""
        echo "allow = [\"cn:alice\"]"
        printf '%s\n' "$@"
    } >"$f"
}
# outbound_config FILE PORT DESTINATION IDENTITY [EXTRA_LINE...]: the client agent
outbound_config() {
    local f=$1 lport=$2 dest=$3 id=$4
    shift 4
    {
        echo "agent_socket = \"$run/client.sock\""
        echo "audit_log = \"${f%.toml}.audit\""
        echo "relay_log = \"${f%.toml}.relay\""
        echo
        echo "[[outbound]]"
        echo "name = \"exit\""
        echo "listen = \"127.0.0.1:$lport\""
        echo "destination = \"$dest\""
        echo "identity = \"$id\""
        echo "expect = \"name:localhost\""
        printf '%s\n' "$@"
    } >"$f"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
# send NAME PORT FILE [--no-half-close]: the plaintext client; output in $work/NAME.got; sets $rc
send() {
    rc=0
    timeout "$limit" python3 "$peer" send 127.0.0.1 "$2" "$3" "$work/$1.got" "${@:4}" \
        >"$work/$1.out" 2>"$work/$1.err" || rc=$?
}
# the two gateways around a recorded sealed leg, with an echo backend
pair() {  # pair IDENTITY [INBOUND_EXTRA_LINE...]
    local id=$1
    shift
    echo_backend backend "$@"
    in_port=$(free_port)
    inbound_config "$work/in.toml" "$in_port" "127.0.0.1:$be_port" \
        "$([[ ${1:-} == --proxy-v2 ]] && echo 'proxy_protocol = "v2"')"
    start_gateway in "$work/in.toml" "$in_port"
    wire_relay sealed "$in_port"
    out_port=$(free_port)
    outbound_config "$work/out.toml" "$out_port" "127.0.0.1:$rport" "$id"
    start_gateway out "$work/out.toml" "$out_port"
}

# --- scenarios ----------------------------------------------------------------------------------
scenario_relay() {
    pair alice
    payload "$work/big.bin" 8
    send big "$out_port" "$work/big.bin"
    check "8 MiB through both gateways: the client's exit is 0" test "$rc" -eq 0
    check "8 MiB: what came back has the SHA-256 of what was sent" \
        test "$(sha "$work/big.bin")" = "$(sha "$work/big.got")"
    check "8 MiB: the backend received exactly those bytes (SHA-256)" \
        grep -q "sha256 $(sha "$work/big.bin")" "$work/backend.log"
    local i
    for i in $(seq 16); do
        head -c $((i * 40000 + 1)) /dev/urandom >"$work/p$i.bin"
        timeout "$limit" python3 "$peer" send 127.0.0.1 "$out_port" "$work/p$i.bin" "$work/p$i.got" \
            2>"$work/p$i.err" &
    done
    wait_all_ok() {
        local j
        for j in $(seq 16); do cmp -s "$work/p$j.bin" "$work/p$j.got" || return 1; done
    }
    for _ in $(seq 600); do wait_all_ok && break; sleep 0.1; done
    check "16 connections at once: each came back intact" wait_all_ok
    check "the sealed leg carried TLS 1.3 records only, never the marker" \
        python3 "$compat/wire.py" check "$work/sealed.wire" "$marker"
    notes+=("wire: $(cat "$work/check.out")")
    sleep 0.5
    check "inbound shim audit: 17 sealed connections from CN=alice" \
        bash -c "[[ \$(grep -c '\"event\":\"open\".*\"peer_subject\":\"CN=alice\"' '$work/in.audit') -eq 17 ]]"
    check "outbound shim audit: 17 sealed connections to CN=localhost" \
        bash -c "[[ \$(grep -c '\"event\":\"open\".*\"peer_subject\":\"CN=localhost\"' '$work/out.audit') -eq 17 ]]"
    check "inbound relay log: the 8 MiB connection closed cleanly with its byte counts" \
        grep -q '"listener":"web".*"peer_subject":"CN=alice".*"bytes_up":8388[0-9]*,"bytes_down":8388[0-9]*.*"outcome":"closed"' "$work/in.relay"
    check "outbound relay log: 17 closed connections" \
        bash -c "[[ \$(grep -c '\"outcome\":\"closed\"' '$work/out.relay') -eq 17 ]]"
}

scenario_static() {
    if [[ $variant == asan ]]; then
        notes+=("skipped under ASan: the sealed client is an uninstrumented python3")
        return
    fi
    local bb=/bin/busybox
    check "busybox is statically linked" bash -c "file -L '$bb' | grep -q 'statically linked'"
    mkdir -p "$work/www"
    payload "$work/www/file.bin" 4
    local be
    be=$(free_port)
    bg httpd "$bb" httpd -f -p "127.0.0.1:$be" -h "$work/www"
    wait_listen "$be"
    in_port=$(free_port)
    inbound_config "$work/in.toml" "$in_port" "127.0.0.1:$be"
    start_gateway in "$work/in.toml" "$in_port"
    wire_relay sealed "$in_port"
    rc=0
    timeout "$limit" env SEALSOCK_CONFIG="$cconf" LD_PRELOAD="$shim" python3 -c '
import sys, urllib.request
data = urllib.request.urlopen(sys.argv[1], timeout=60).read()
open(sys.argv[2], "wb").write(data)' "http://127.0.0.1:$rport/file.bin" "$work/file.got" \
        >"$work/client.out" 2>"$work/client.err" || rc=$?
    check "sealed python3 (shim) got busybox httpd's 4 MiB file: exit 0" test "$rc" -eq 0
    [[ $rc -eq 0 ]] || show_files client in httpd
    check "the file arrived intact (SHA-256)" \
        test "$(sha "$work/www/file.bin")" = "$(sha "$work/file.got")"
    check "the wire between the client and the gateway carried TLS 1.3 records only" \
        python3 "$compat/wire.py" check "$work/sealed.wire" "$marker"
    check "the client's shim audit: open then close, peer CN=localhost" \
        python3 "$audit_check" "$work/client.audit" open,close open.peer_subject=CN=localhost
}

scenario_refused() {
    pair bob
    printf 'secret request %s\n' "$marker" >"$work/req.bin"
    send req "$out_port" "$work/req.bin"
    check "bob's client got no byte back" test ! -s "$work/req.got"
    sleep 1
    check "the backend saw no connection at all" test ! -s "$work/backend.log"
    check "the inbound gateway logged the refusal (relay log, no backend connection)" \
        grep -q '"outcome":"refused".*no backend connection was made' "$work/in.relay"
    check "the inbound shim audit: refuse, naming the access list" \
        python3 "$audit_check" "$work/in.audit" refuse "refuse.reason~(access|allow|denied)"
    check "the sealed leg carried TLS records only, never the marker" \
        python3 "$compat/wire.py" check "$work/sealed.wire" "$marker"
}

scenario_proxy() {
    pair alice --proxy-v2
    payload "$work/data.bin" 1
    send data "$out_port" "$work/data.bin"
    check "the transfer completed intact (SHA-256)" \
        test "$(sha "$work/data.bin")" = "$(sha "$work/data.got")"
    local fp
    fp=$(openssl x509 -in "$pki/alice.pem" -outform DER | sha256sum | cut -d' ' -f1)
    local header
    header=$(sed -n 's/^proxy //p' "$work/backend.log" | head -1)
    notes+=("header: $header")
    check "the backend parsed a PROXY v2 header" test -n "$header"
    check "header: SSL TLV with the CN alice, TLSv1.3, a TLS 1.3 suite, verified client cert" \
        python3 -c '
import json, sys
h = json.loads(sys.argv[1])
assert h["ssl_cn"] == "alice", h
assert h["ssl_version"] == "TLSv1.3", h
assert h["ssl_cipher"].startswith("TLS_"), h
assert h["ssl_client"] == 7 and h["ssl_verify"] == 0, h
assert h["subject"] == "CN=alice", h
assert h["fingerprint"] == sys.argv[2], (h["fingerprint"], sys.argv[2])
assert h["rule"] == "web", h
assert h["src"] == "127.0.0.1" and h["dst"] == "127.0.0.1" and h["dport"] == int(sys.argv[3]), h
' "$header" "$fp" "$in_port"
    check "the backend received the client's bytes after the header (SHA-256)" \
        grep -q "sha256 $(sha "$work/data.bin")" "$work/backend.log"
}

scenario_via() {
    command -v tinyproxy >/dev/null || { bad "tinyproxy is not installed (scripts/install-deps)"; return; }
    echo_backend backend
    in_port=$(free_port)
    inbound_config "$work/in.toml" "$in_port" "127.0.0.1:$be_port"
    start_gateway in "$work/in.toml" "$in_port"
    # tinyproxy -> recording relay -> inbound gateway: the relay sees what the proxy forwards
    wire_relay sealed "$in_port"
    local pport
    pport=$(free_port)
    cat >"$work/tinyproxy.conf" <<CONF
Port $pport
Listen 127.0.0.1
Timeout 60
MaxClients 20
LogLevel Connect
ConnectPort $rport
Allow 127.0.0.1
CONF
    bg tinyproxy tinyproxy -d -c "$work/tinyproxy.conf"
    wait_listen "$pport"
    local sealed_port=$rport
    # The proxy's side of the wire: recorded between the gateway and tinyproxy as well.
    wire_relay proxyleg "$pport"
    out_port=$(free_port)
    outbound_config "$work/out.toml" "$out_port" "127.0.0.1:$sealed_port" alice \
        "via = \"http://127.0.0.1:$rport\""
    start_gateway out "$work/out.toml" "$out_port"
    payload "$work/data.bin" 2
    # tinyproxy ends a CONNECT tunnel at the first end of file (no half-close): the client reads
    # the whole echo before it closes.
    send data "$out_port" "$work/data.bin" --no-half-close
    check "2 MiB through tinyproxy (CONNECT): intact (SHA-256)" \
        test "$(sha "$work/data.bin")" = "$(sha "$work/data.got")"
    check "tinyproxy forwarded a CONNECT" grep -qi 'connect' "$work/tinyproxy.err" "$work/tinyproxy.out"
    check "behind the proxy the wire carried TLS 1.3 records only, never the marker" \
        python3 "$compat/wire.py" check "$work/sealed.wire" "$marker"
    check "the proxy saw one CONNECT request, then TLS records only" python3 -c '
import glob, struct, sys
c2s = open(sorted(glob.glob(sys.argv[1] + ".*.c2s"))[0], "rb").read()
head, _, rest = c2s.partition(b"\r\n\r\n")
assert head.startswith(b"CONNECT "), head[:80]
assert rest[:1] == b"\x16" and rest[1:3] == b"\x03\x01", rest[:5]
assert sys.argv[2].encode() not in c2s
' "$work/proxyleg.wire" "$marker"
}

scenario_cache() {
    local ng=$work/nginx origin nport
    mkdir -p "$ng/tmp" "$ng/cache"
    bg origin python3 "$peer" http "$work/origin.port" "$work/origin.count"
    origin=$(port_of "$work/origin.port")
    nport=$(free_port)
    cat >"$ng/nginx.conf" <<CONF
user root;
worker_processes 1;
daemon off;
pid $ng/nginx.pid;
error_log stderr notice;
events {}
http {
    access_log off;
    client_body_temp_path $ng/tmp/body;
    proxy_temp_path $ng/tmp/proxy;
    fastcgi_temp_path $ng/tmp/fastcgi;
    uwsgi_temp_path $ng/tmp/uwsgi;
    scgi_temp_path $ng/tmp/scgi;
    proxy_cache_path $ng/cache keys_zone=gw:1m;
    server {
        listen 127.0.0.1:$nport;
        location / {
            proxy_pass http://127.0.0.1:$origin;
            proxy_cache gw;
            add_header X-Cache-Status \$upstream_cache_status always;
        }
    }
}
CONF
    bg nginx nginx -e stderr -p "$ng" -c "$ng/nginx.conf"
    wait_listen "$nport"
    in_port=$(free_port)
    inbound_config "$work/in.toml" "$in_port" "127.0.0.1:$nport"
    start_gateway in "$work/in.toml" "$in_port"
    wire_relay sealed "$in_port"
    out_port=$(free_port)
    outbound_config "$work/out.toml" "$out_port" "127.0.0.1:$rport" alice
    start_gateway out "$work/out.toml" "$out_port"
    local n
    for n in 1 2; do
        rc=0
        timeout "$limit" curl -sS --fail -D "$work/h$n" -o "$work/b$n" \
            "http://127.0.0.1:$out_port/object" 2>"$work/curl$n.err" || rc=$?
        check "request $n through the gateways to nginx: curl exit 0" test "$rc" -eq 0
    done
    python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 256)' >"$work/expected"
    check "both responses carry the origin's 64 KiB body (cmp)" bash -c \
        "cmp '$work/expected' '$work/b1' && cmp '$work/expected' '$work/b2'"
    check "first response: X-Cache-Status MISS" grep -qi '^X-Cache-Status: MISS' "$work/h1"
    check "second response: X-Cache-Status HIT (served from nginx's cache)" \
        grep -qi '^X-Cache-Status: HIT' "$work/h2"
    check "the origin counted one request" test "$(cat "$work/origin.count")" = 1
    check "the sealed leg carried TLS 1.3 records only" \
        python3 "$compat/wire.py" check "$work/sealed.wire" "no-such-marker-$$"
}

scenario_reload() {
    echo_backend backend
    in_port=$(free_port)
    inbound_config "$work/in.toml" "$in_port" "127.0.0.1:$be_port"
    start_gateway in "$work/in.toml" "$in_port"
    local gen1
    gen1=$(cat "$work/in.pid")
    out_port=$(free_port)
    outbound_config "$work/out.toml" "$out_port" "127.0.0.1:$in_port" alice
    start_gateway out "$work/out.toml" "$out_port"
    # A slow transfer: 2 MiB written over about 3 s, open across the reload.
    payload "$work/slow.bin" 2
    timeout "$limit" python3 -c '
import socket, sys, threading, time
data = open(sys.argv[2], "rb").read()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def write():
    for i in range(0, len(data), 65536):
        s.sendall(data[i:i + 65536]); time.sleep(0.1)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=write); t.start()
with open(sys.argv[3], "wb") as f:
    while True:
        c = s.recv(65536)
        if not c: break
        f.write(c)
t.join()' "$out_port" "$work/slow.bin" "$work/slow.got" 2>"$work/slow.err" &
    local slow=$!
    sleep 1
    # The new generation allows bob as well: the reload takes the new access list.
    sed -i 's/allow = \["cn:alice"\]/allow = ["cn:alice", "cn:bob"]/' "$work/in.toml"
    kill -HUP "$gen1"
    for _ in $(seq 100); do
        [[ $(cat "$work/in.pid") != "$gen1" ]] && break
        sleep 0.1
    done
    check "SIGHUP: a new generation serves (new pid in the pid file)" \
        test "$(cat "$work/in.pid")" != "$gen1"
    check "the old generation is still running its transfer" kill -0 "$gen1"
    outbound_config "$work/bob.toml" "$(free_port)" "127.0.0.1:$in_port" bob
    local bob_port
    bob_port=$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$work/bob.toml")
    start_gateway bob "$work/bob.toml" "$bob_port"
    printf 'hello from bob\n' >"$work/bob.bin"
    send bob "$bob_port" "$work/bob.bin"
    check "a new connection (bob, allowed by the new config) is served" cmp "$work/bob.bin" "$work/bob.got"
    wait "$slow" || true
    check "the transfer that spanned the reload completed intact (SHA-256)" \
        test "$(sha "$work/slow.bin")" = "$(sha "$work/slow.got")"
    for _ in $(seq 100); do kill -0 "$gen1" 2>/dev/null || break; sleep 0.1; done
    check "the old generation exited once its connection ended" bash -c "! kill -0 $gen1 2>/dev/null"
    check "the relay log has the spanning transfer closed by the old pid" \
        grep -q "\"pid\":$gen1,.*\"bytes_up\":2097[0-9]*,.*\"outcome\":\"closed\"" "$work/in.relay"
}

scenario_config() {
    cat >"$work/bad.toml" <<'TOML'
workers = 2

[[inbound]]
name = "web"
listen = "127.0.0.1:9443"
backend = "127.0.0.1:8080"
identity = "server"
alow = ["cn:alice"]

[[outbound]]
listen = "127.0.0.1:9443"
destination = "db1:5432"
suites = ["TLS_AES_128_CCM_SHA256"]
TOML
    rc=0
    "$gateway" --config "$work/bad.toml" --check >"$work/bad.out" 2>&1 || rc=$?
    notes+=("errors: $(tr '\n' '|' <"$work/bad.out")")
    check "--check on a bad config: exit 2" test "$rc" -eq 2
    check "an unknown key is named with its line" grep -q 'bad.toml:8:1: unknown key `alow`' "$work/bad.out"
    check "the shim's own check of suites reports at the gateway file's line" \
        grep -q 'bad.toml:13:.*TLS_AES_128_CCM_SHA256' "$work/bad.out"
    check "two listeners on one port are refused" grep -q 'both listen on port 9443' "$work/bad.out"
    inbound_config "$work/good.toml" 9443 "unix:/run/app.sock" 'proxy_protocol = "v2"'
    check "--check on a good config: exit 0" "$gateway" --config "$work/good.toml" --check
    check "sealsock gateway --check (the wrapper) on it: exit 0, says ok" bash -c \
        "SEALSOCK_SHIM='$shim' SEALSOCK_GATEWAY_BIN='$gateway' '$here/../../../scripts/sealsock' \
         gateway --config '$work/good.toml' --check | grep -q '1 listener(s), ok'"
    check "the generated sealsock config has the inbound rule" bash -c \
        "'$gateway' --config '$work/good.toml' --print-sealsock-config | grep -q 'ports = \[9443\]'"
    local port
    port=$(free_port)
    inbound_config "$work/noshim.toml" "$port" "127.0.0.1:9"
    rc=0
    env -u LD_PRELOAD SEALSOCK_GATEWAY_STAGE=sealed timeout 20 "$gateway" --config "$work/noshim.toml" \
        >"$work/noshim.out" 2>&1 || rc=$?
    check "without the shim in the process it refuses to run (exit 1, says why)" bash -c \
        "[[ $rc -eq 1 ]] && grep -q 'sealing library is not loaded' '$work/noshim.out'"
    check "... and nothing listens on its port" bash -c "[[ -z \$(ss -Htln 'sport = :$port') ]]"
}

"scenario_$scenario"
summary "gateway $scenario"
