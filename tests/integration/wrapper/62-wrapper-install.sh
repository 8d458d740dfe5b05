#!/usr/bin/env bash
# 62-wrapper-install: `sealsock run` and `sealsock doctor` from the installed layout and from a
# checkout's build tree, with no variable telling the wrapper where anything is.
#
#   - `cmake --install BUILD --prefix DIR` gives bin/sealsock, bin/sealsock-agent,
#     lib/sealsock/libsealsock.so, lib/sealsock/sealsock-check and share/doc/sealsock;
#   - DIR/bin/sealsock run seals session_probe on both ends: the wire (relay.py) is TLS records
#     both ways with no plaintext, and the program's LD_PRELOAD is DIR's libsealsock.so;
#   - a checkout (scripts/sealsock with build/release beside it) does the same with its tree;
#   - DIR/bin/sealsock doctor: a certificate that expires within 30 days is the one thing to fix;
#     with a certificate for a year (from DIR/bin/sealsock pki) nothing is; with no agent it says
#     to start one; for a static program under a sealing rule it says so.
# Usage: 62-wrapper-install.sh AGENT LIBSEALSOCK SEALSOCK_CHECK PROBE plain|asan BUILD_DIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh" wrapper-install "$@"
[[ -n $build ]] || { echo "usage: 62-wrapper-install.sh ... BUILD_DIR"; exit 2; }
# From here on the wrapper finds every piece by itself.
unset SEALSOCK_AGENT_BIN SEALSOCK_SHIM SEALSOCK_CHECK_BIN SEALSOCK_BUILD
sealing_pair "$work/on" session_probe

# sealed_from LABEL WRAPPER SHIM: a sealed exchange through WRAPPER, whose programs preload SHIM.
sealed_from() {
    local name
    name=$(tr -c 'A-Za-z0-9' - <<<"$1")
    wrapper=$2
    exchange "$name" "$work/on.client.toml" "$work/on.server.toml"
    on_fail=$name check "$1: both ends ran clean" ran_clean "$name"
    check "$1: the wire is TLS 1.3 records both ways, no plaintext" sealed_wire "$name"
    rm -f "$work/$name.pf"
    side "$name-env" srv "$work/on.server.toml" --port-file "$work/$name.pf" --mode blocking
    wait_file "$work/$name.pf" || true
    local preloaded
    preloaded=$(preload_of "$srv_pid")
    kill "$srv_pid" 2>/dev/null || true
    check "$1: the program preloads $3" test "$preloaded" = "$3"
}

echo "--- cmake --install"
prefix=$work/prefix
check "cmake --install into a temporary prefix" cmake --install "$build" --prefix "$prefix"
for f in bin/sealsock bin/sealsock-agent lib/sealsock/libsealsock.so lib/sealsock/sealsock-check \
    share/doc/sealsock/README.md share/doc/sealsock/config.md; do
    check "installed: $f" test -f "$prefix/$f"
done
sealed_from "installed sealsock run" "$prefix/bin/sealsock" "$prefix/lib/sealsock/libsealsock.so"

echo "--- a checkout with its build tree"
co=$work/checkout
mkdir -p "$co/scripts" "$co/build/release/shim" "$co/build/release/keyagent"
cp "$here/../../../scripts/sealsock" "$co/scripts/"
ln -s "$shim" "$co/build/release/shim/libsealsock.so"
ln -s "$check_bin" "$co/build/release/shim/sealsock-check"
ln -s "$agent_bin" "$co/build/release/keyagent/sealsock-agent"
sealed_from "checkout sealsock run" "$co/scripts/sealsock" "$(readlink -f "$shim")"

echo "--- sealsock doctor"
doctor() {  # doctor SOCKET_CONFIG ARGS...: DIR/bin/sealsock doctor; output in $work/doctor.out
    doc_rc=0
    "$prefix/bin/sealsock" doctor --config "$@" >"$work/doctor.out" 2>&1 || doc_rc=$?
}
doctor "$work/on.client.toml" -- "$probe"
check "doctor, test certificates (3 days): the expiry is the one thing to fix, the rule is listed" bash -c \
    "[[ $doc_rc -ne 0 ]] && grep -q '^doctor: 1 thing(s) to fix' '$work/doctor.out' &&
     grep -q 'identity alice: its certificate expires in [0-3] days: renew it soon' '$work/doctor.out' &&
     grep -q 'outbound rule \`probe out\` (.*on.client.toml:4): seals as identity \`alice\`' '$work/doctor.out'"
# An identity for a year, from the installed `sealsock pki`, in an agent of its own.
"$prefix/bin/sealsock" pki init "$work/ca2" >/dev/null
"$prefix/bin/sealsock" pki issue "$work/ca2" --user carol >/dev/null
pki_saved=$pki
pki=$work/ca2
start_agent long --identity carol --cert "$pki/carol.crt" --key "$pki/carol.key"
pki=$pki_saved
printf '%s\n' "agent_socket = \"$run/long.sock\"" '[[outbound]]' 'destinations = ["127.0.0.1"]' \
    'identity = "carol"' >"$work/long.toml"
doctor "$work/long.toml" -- "$probe"
check "doctor, agent up with a certificate for a year: nothing to fix" bash -c \
    "[[ $doc_rc -eq 0 ]] && grep -q '^doctor: nothing to fix' '$work/doctor.out' &&
     grep -q 'identity: carol .*CN=carol.* (valid until ' '$work/doctor.out'"
sed "s|$run/client.sock|$run/nobody.sock|" "$work/on.client.toml" >"$work/noagent.toml"
doctor "$work/noagent.toml"
check "doctor, no agent: says so and how to start one" bash -c \
    "[[ $doc_rc -ne 0 ]] && grep -q 'no sealsock agent at $run/nobody.sock' '$work/doctor.out' &&
     grep -q 'fix: start it: eval \"\$(sealsock agent)\"' '$work/doctor.out'"
printf '%s\n' "agent_socket = \"$run/client.sock\"" '[[outbound]]' 'destinations = ["127.0.0.1"]' \
    >"$work/all.toml"
doctor "$work/all.toml" -- ldconfig
check "doctor, a static program under a sealing rule: says it cannot carry the shim" bash -c \
    "[[ $doc_rc -ne 0 ]] && grep -q 'cannot carry the shim: it is statically linked' '$work/doctor.out' &&
     grep -q 'fix: a rule seals its connections but nothing can be preloaded into it' '$work/doctor.out'"

summary wrapper-install
