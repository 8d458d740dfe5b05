# Shared preamble of the sealed-connection scenarios (session/50-sealed.sh, session/55-lifetime.sh).
# Sourced, never run. The caller sets `agent_bin`, `shim` and `variant` (plain|asan) first, then
# calls, in this order:
#   lib_init NAME        a work directory ($work) removed at exit unless SEALSOCK_TEST_KEEP is
#                        set, the cleanup trap (kills every pid in `pids`), the ok/bad counters
#                        and the probe time limit ($limit: 60 s, 180 s under ASan)
#   make_pki             a throwaway CA, `server` (CN=localhost), `alice` and `bob` (client
#                        certificates), alice's key also encrypted ($pki/alice-enc.key, passphrase
#                        in $work/pass)
#   start_test_agents    the client agent (alice and bob) and the server agent (server), and the
#                        config files $cconf (seal 127.0.0.1 and ::1 as alice, expect
#                        name:localhost) and $sconf (inbound rule "echo": allow cn:alice)
# Helpers: ok, bad, check, show, start_agent, client_config, one_log_line, first_bytes, summary.
# shellcheck shell=bash

openssl=${OPENSSL:-openssl}

lib_init() {  # lib_init NAME
    work=$(mktemp -d "${TMPDIR:-/tmp}/sealsock-$1-test.XXXXXX")
    pids=()
    passed=0
    failed=0
    notes=()
    trap lib_cleanup EXIT
    # Every probe run has a time limit, so a hang is a failure with output, not a stalled ctest.
    limit=60
    if [[ $variant == asan ]]; then limit=180; fi
    marker="SEALSOCK-PLAINTEXT-MARKER-$$"
}

lib_cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    # SEALSOCK_TEST_KEEP=1 keeps every scenario's output, captures and agent logs for a look.
    if [[ -n ${SEALSOCK_TEST_KEEP:-} ]]; then echo "kept $work"; else rm -rf -- "$work"; fi
}

ok() {
    echo "ok   $1"
    passed=$((passed + 1))
}
bad() {
    echo "FAIL $1"
    failed=$((failed + 1))
}
# check NAME COMMAND...: passes when the command succeeds. With on_fail=SCENARIO set for the
# call, a failure also shows that scenario's outputs.
check() {
    local name=$1
    shift
    if "$@" >"$work/check.out" 2>&1; then ok "$name"; else
        bad "$name"
        sed 's/^/     /' "$work/check.out"
        if [[ -n ${on_fail:-} ]]; then show "$on_fail"; fi
    fi
}
show() {  # show NAME: both sides' output ($work/NAME.cli, .cli.err, .srv, .srv.err), indented
    local f
    for f in "$work/$1.cli" "$work/$1.cli.err" "$work/$1.srv" "$work/$1.srv.err"; do
        [[ -s $f ]] || continue
        echo "     --- ${f##*/}"
        head -25 "$f" | sed 's/^/     /'
    done
}
# one_log_line FILE ERE: FILE (a program's stderr) has exactly one sealsock: line, and it matches
# ERE (case-insensitive): one failure, one line that says why.
one_log_line() {
    [[ $(grep -c '^sealsock: ' "$1") -eq 1 ]] && grep -Eiq "^sealsock: .*($2)" "$1"
}
first_bytes() { head -c 3 "$1" | od -An -tx1 | tr -d ' \n'; }

# --- PKI --------------------------------------------------------------------------------------
make_pki() {
    pki=$work/pki
    mkdir -m 700 "$pki"
    lib_openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$pki/ca.key" -subj "/CN=sealsock test ca" -days 3 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$pki/ca.pem"
    lib_issue server /CN=localhost 'basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'
    local user
    for user in alice bob; do
        lib_issue "$user" "/CN=$user" 'basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
    done
    lib_openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$pki/alice.key" -passout pass:correct-horse \
        -out "$pki/alice-enc.key"
    printf 'correct-horse\n' >"$work/pass"
}
lib_openssl() {  # quiet unless it fails
    "$openssl" "$@" >"$work/openssl.log" 2>&1 || { cat "$work/openssl.log" >&2; exit 1; }
}
lib_issue() {  # lib_issue NAME SUBJECT EXTENSIONS
    lib_openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$pki/$1.key" -subj "$2" -out "$pki/$1.csr"
    printf '%s\n' "$3" >"$pki/$1.ext"
    lib_openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" \
        -CAcreateserial -days 3 -sha256 -extfile "$pki/$1.ext" -out "$pki/$1.pem"
    chmod 600 "$pki/$1.key"
}

# --- agents and configs -------------------------------------------------------------------------
wait_socket() {  # wait_socket PATH: the agent is listening
    for _ in $(seq 100); do [[ -S $1 ]] && return 0; sleep 0.1; done
    return 1
}
start_agent() {  # start_agent NAME ARGS...: an agent on $run/NAME.sock, log in $work/NAME.log
    "$agent_bin" --foreground --socket "$run/$1.sock" --trust "$pki/ca.pem" "${@:2}" \
        2>"$work/$1.log" &
    pids+=($!)
    wait_socket "$run/$1.sock" || { cat "$work/$1.log"; echo "FAIL agent $1 did not start"; exit 1; }
}
client_config() {  # client_config FILE AGENT_SOCKET IDENTITY (audit log: FILE less .toml, .audit)
    cat >"$1" <<TOML
agent_socket = "$2"
audit_log = "${1%.toml}.audit"

[[outbound]]
name = "test"
destinations = ["127.0.0.1", "::1"]
identity = "$3"
expect = "name:localhost"
TOML
}
start_test_agents() {
    run=$work/run
    mkdir -m 700 "$run"
    start_agent client --identity alice --cert "$pki/alice.pem" --key "$pki/alice.key" \
        --identity bob --cert "$pki/bob.pem" --key "$pki/bob.key"
    start_agent server --identity server --cert "$pki/server.pem" --key "$pki/server.key"
    ok "agents started (client: alice and bob; server: server)"
    client_config "$work/client.toml" "$run/client.sock" alice
    cat >"$work/server.toml" <<TOML
agent_socket = "$run/server.sock"
audit_log = "$work/server.audit"

[[inbound]]
name = "echo"
identity = "server"
allow = ["cn:alice"]
TOML
    cconf=$work/client.toml
    sconf=$work/server.toml
}

# summary NAME: the notes, the counts, the agents' last log lines after a failure; the status.
summary() {
    local n a
    for n in "${notes[@]}"; do echo "note: $n"; done
    echo "$1: $passed passed, $failed failed"
    if [[ $failed -ne 0 ]]; then
        for a in client server; do
            echo "--- $a agent log (last lines) ---"
            tail -15 "$work/$a.log"
        done
    fi
    [[ $failed -eq 0 ]]
}
