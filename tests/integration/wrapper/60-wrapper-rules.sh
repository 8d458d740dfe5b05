#!/usr/bin/env bash
# 60-wrapper-rules: `sealsock run` applies the config's rules, and a program no rule seals is
# untouched.
#
# session_probe (a plain TCP program) exchanges the same bytes (fixed seeds) through relay.py,
# which records the wire, under `sealsock run --config FILE`:
#   - plain, without sealsock: the reference capture (and the marker shows the check sees
#     plaintext when it is there);
#   - per-program enable: rules for `session_probe` on both ends: the wire is TLS records from
#     the first byte to the last, no plaintext;
#   - per-program disable: the same rules naming another program, and the same rules with
#     `enabled = false` on the rule: both captures have exactly the reference's sha256, each way;
#   - the global switch: the sealing rules with `enabled = false` at the top: the reference's
#     sha256 again;
#   - an LD_PRELOAD the user had is kept (the shim is added after it).
# Usage: 60-wrapper-rules.sh AGENT LIBSEALSOCK SEALSOCK_CHECK PROBE plain|asan
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh" wrapper-rules "$@"

# expect_same LABEL NAME: NAME ran clean and its wire is the reference's, byte for byte.
expect_same() {
    on_fail=$2 check "$1: both ends ran clean" ran_clean "$2"
    check "$1: same bytes on the wire as without sealsock (sha256 both ways)" same_wire "$2" plain
}

wire_differs() { ! same_wire "$@" >/dev/null; }

echo "--- reference: no sealsock"
exchange plain - -
on_fail=plain check "plain: both ends ran clean" ran_clean plain
check "plain: the wire check sees the plaintext marker" grep -qaF "$marker" "$work/plain.c2s"
check "plain: and the wire is not TLS records" bash -c "! python3 '$relay' records '$work/plain.c2s'"

echo "--- per-program enable: rules for session_probe"
sealing_pair "$work/on" session_probe
exchange on "$work/on.client.toml" "$work/on.server.toml"
on_fail=on check "enabled: both ends ran clean, sealed" ran_clean on
check "enabled: the wire is TLS 1.3 records both ways, no plaintext" sealed_wire on
check "enabled: the capture differs from the reference" wire_differs on plain

echo "--- per-program disable"
sealing_pair "$work/other" other-program
exchange other "$work/other.client.toml" "$work/other.server.toml"
expect_same "rules for another program" other
sealing_pair "$work/ruleoff" session_probe "enabled = false"
exchange ruleoff "$work/ruleoff.client.toml" "$work/ruleoff.server.toml"
expect_same "the rule's enabled = false" ruleoff
sealing_pair "$work/modeoff" session_probe 'mode = "off"'
exchange modeoff "$work/modeoff.client.toml" "$work/modeoff.server.toml"
expect_same "the rule's mode = \"off\"" modeoff

echo "--- the global switch"
sealing_pair "$work/global" session_probe
sed -i '1i enabled = false' "$work/global.client.toml" "$work/global.server.toml"
exchange global "$work/global.client.toml" "$work/global.server.toml"
expect_same "enabled = false at the top" global

echo "--- LD_PRELOAD"
# A sealed server started with the user's own LD_PRELOAD: its environment, read from /proc.
rm -f "$work/preload.port"
LD_PRELOAD=/nonexistent-user-lib.so side preload srv "$work/on.server.toml" \
    --port-file "$work/preload.port" --mode blocking
wait_file "$work/preload.port" || true
preloaded=$(preload_of "$srv_pid")
kill "$srv_pid" 2>/dev/null || true
check "run: the user's LD_PRELOAD is kept and the shim added after it ($preloaded)" \
    test "$preloaded" = "/nonexistent-user-lib.so:$(readlink -f "$shim")"

summary wrapper-rules
