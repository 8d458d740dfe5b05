#!/usr/bin/env bash
# 61-wrapper-errors: `sealsock run` refuses, before the program runs, every config it cannot
# stand behind, and says where and what to do.
#
# The program is `session_probe payload` (it prints 64 bytes when it runs), so each case checks
# three things: the wrapper failed, the program printed nothing, and the message names the file
# and line (or the agent socket) and the fix. Cases: a TOML syntax error, an unknown key, an
# address glob, a network with host bits, a port range backwards, an inbound rule with no
# `allow`, several errors at once (all reported, in line order), an error in the user file found
# by the default precedence, a SEALSOCK_CONFIG that does not exist, an identity the running agent
# does not hold, identity files missing and a private key readable by others (no agent running:
# checked as `sealsock agent` would load them), a sealing rule with no agent running, and a
# statically linked program under a sealing rule. The control cases run the program.
# Usage: 61-wrapper-errors.sh AGENT LIBSEALSOCK SEALSOCK_CHECK PROBE plain|asan
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh" wrapper-errors "$@"
nobody=$run/nobody.sock  # no agent listens here

n=0
# conf LINES...: a new config file with these lines; its path in $f.
conf() {
    n=$((n + 1))
    f=$work/c$n.toml
    printf '%s\n' "$@" >"$f"
}
# attempt [ENV=VALUE...] [--no-config]: `sealsock run [--config $f] -- probe payload`; output in
# $work/out, messages in $work/err, status in $rc.
attempt() {
    local args=(--config "$f")
    if [[ ${1:-} == --no-config ]]; then args=(); shift; fi
    rc=0
    env "$@" "$wrapper" run "${args[@]}" -- "$probe" payload --size 64 --seed 3 \
        >"$work/out" 2>"$work/err" || rc=$?
}
# refused LABEL ERE [attempt arguments]: the wrapper failed, the program did not run, and the
# messages match ERE (extended, fixed strings escaped by the caller).
refused() {
    local label=$1 ere=$2
    shift 2
    attempt "$@"
    if [[ $rc -ne 0 && ! -s $work/out ]] && grep -Eq -- "$ere" "$work/err"; then ok "$label"; else
        bad "$label (status $rc, program output $(wc -c <"$work/out") bytes)"
        sed 's/^/     /' "$work/err"
    fi
}
ran() {  # ran LABEL [attempt arguments]: the program ran and printed its 64 bytes
    local label=$1
    shift
    attempt "$@"
    if [[ $rc -eq 0 && $(wc -c <"$work/out") -eq 64 ]]; then ok "$label"; else
        bad "$label (status $rc)"
        sed 's/^/     /' "$work/err"
    fi
}
# shellcheck disable=SC2001,SC2016  # a sed class is clearer here; the $ is literal
esc() { sed 's/[][\.*^$()+?{}|]/\\&/g' <<<"$1"; }  # a file name inside an ERE

echo "--- controls: valid configs run the program"
conf "agent_socket = \"$run/client.sock\"" '[[outbound]]' 'destinations = ["127.0.0.1"]' \
    'identity = "alice"' 'expect = "name:localhost"'
ran "control: a sealing rule, the agent holding its identity"
conf '[[outbound]]' 'destinations = ["127.0.0.1"]' 'programs = ["nothing-like-this"]'
ran "control: rules for other programs only, no agent needed"

echo "--- config errors: file:line:column and the fix"
conf 'enabled = true' '' 'audit_log = "/tmp/x' ''
refused "TOML: a string not closed" "^$(esc "$f"):3:[0-9]+: this string is not closed"
conf '[[outbound]]' 'name = "db"' 'destination = ["db.example.com"]'
refused "unknown key, with the nearest known one" \
    "^$(esc "$f"):3:1: unknown key \`destination\`.*did you mean \`destinations\`"
conf '[[outbound]]' 'destinations = [' '  "db.example.com",' '  "10.0.0.*",' ']'
refused "an address glob instead of a network" "^$(esc "$f"):4:[0-9]+: .*10\\.0\\.0\\.\\*.*networks"
conf '[[outbound]]' 'destinations = ["10.1.2.3/8"]'
refused "a network with host bits set" "^$(esc "$f"):2:[0-9]+: .*10\\.0\\.0\\.0/8"
conf '[[inbound]]' 'ports = ["7000-6000"]' 'allow = ["any"]'
refused "a port range backwards" "^$(esc "$f"):2:[0-9]+: port range .*6000-7000"
conf '[[inbound]]' 'name = "redis"' 'ports = [6379]'
refused "an inbound rule that seals with no allow list" \
    "^$(esc "$f"):1:[0-9]+: inbound rule \`redis\`.*allow = \\[\"any\"\\]"
conf 'audit_log = "relative.log"' '[[outbound]]' 'suites = ["TLS_AES_128_CCM_SHA256"]' \
    'rotate_bytes = "12 parsecs"'
refused "several errors: all reported, in line order" "^$(esc "$f"):1:13: \`audit_log\`"
check "several errors: lines 1, 3 and 4, in that order" bash -c \
    "[[ \$(grep -Eo '^$(esc "$f"):[0-9]+' '$work/err' | cut -d: -f2 | tr '\n' ' ') == '1 3 4 ' ]]"

mkdir -p "$HOME/.config/sealsock"
user_file=$HOME/.config/sealsock/sealsock.toml
printf '%s\n' '# mine' '[[outbound]]' 'programz = ["psql"]' >"$user_file"
refused "no --config: an error in the user file names that file" \
    "^$(esc "$user_file"):3:1: unknown key \`programz\`" --no-config
rm "$user_file"
refused "SEALSOCK_CONFIG names a file that does not exist" \
    "^$(esc "$work/none.toml"): SEALSOCK_CONFIG names this file, which does not exist" \
    --no-config SEALSOCK_CONFIG="$work/none.toml"

echo "--- identities and the agent"
conf "agent_socket = \"$run/client.sock\"" '[[outbound]]' 'name = "to db"' \
    'destinations = ["127.0.0.1"]' 'identity = "carol"'
refused "an identity the running agent does not hold" \
    "^$(esc "$f"):2: rule \`to db\`: the agent at .*client\\.sock holds no identity \`carol\` \\(it holds: alice, bob\\)"
ids=$work/xdg/sealsock/identities
mkdir -p "$ids"
cp "$pki/ca.pem" "$work/xdg/sealsock/trust.pem"
conf "agent_socket = \"$nobody\"" '' '[[inbound]]' 'identity = "dave"' 'allow = ["any"]'
refused "no agent: identity files missing, as \`sealsock agent\` would load them" \
    "^$(esc "$f"):3: rule .*identity \`dave\`.*$(esc "$ids/dave.crt")" XDG_CONFIG_HOME="$work/xdg"
cp "$pki/alice.pem" "$ids/dave.crt"
install -m 644 "$pki/alice.key" "$ids/dave.key"
refused "no agent: a private key readable by others" \
    "^$(esc "$f"):3: rule .*$(esc "$ids/dave.key") is unencrypted and readable by others: chmod 600" \
    XDG_CONFIG_HOME="$work/xdg"
chmod 600 "$ids/dave.key"
refused "no agent, identity files fine: says so and how to start one" \
    "^sealsock: rule \`inbound #1\` \\($(esc "$f"):3\\) seals connections, but no sealsock agent at $(esc "$nobody").*eval \"\\\$\\(sealsock agent\\)\"" \
    XDG_CONFIG_HOME="$work/xdg"
check "no agent, identity files fine: no identity error" bash -c "! grep -q 'identity' '$work/err'"

echo "--- programs the shim cannot be in"
static=$(type -P ldconfig || echo /sbin/ldconfig)
conf "agent_socket = \"$run/client.sock\"" '[[outbound]]' 'destinations = ["127.0.0.1"]'
rc=0
"$wrapper" run --config "$f" -- "$static" --version >"$work/out" 2>"$work/err" || rc=$?
check "a static program under a sealing rule is not started, and the message says why" bash -c \
    "[[ $rc -ne 0 && ! -s '$work/out' ]] &&
     grep -q 'cannot carry the shim: it is statically linked.*a rule seals its connections, so it was not started' '$work/err'"
conf "agent_socket = \"$nobody\"" '[[outbound]]' 'programs = ["ldconfig"]' 'mode = "off"' \
    '[[outbound]]' 'destinations = ["127.0.0.1"]'
rc=0
"$wrapper" run --config "$f" -- "$static" --version >"$work/out" 2>"$work/err" || rc=$?
check "a static program no rule seals: a warning names it, and it runs" bash -c \
    "[[ $rc -eq 0 && -s '$work/out' ]] &&
     grep -q 'warning: .*cannot carry the shim: it is statically linked.*no rule seals its connections' '$work/err'"

summary wrapper-errors
