#!/usr/bin/env bash
# 70-demo: ./scripts/demo against an already built release tree (SEALSOCK_DEMO_PREBUILT, so
# nothing is installed or rebuilt). It must exit 0, print its summary and the wire verdict (TLS
# records only, the secret value nowhere), and leave no process and no file behind.
# Usage: 70-demo.sh DEMO BUILD_DIR
set -euo pipefail
demo=${1:?usage: 70-demo.sh DEMO BUILD_DIR}
build=${2:?usage: 70-demo.sh DEMO BUILD_DIR}

# The demo's temporary directory goes under this one, so what it leaves behind can be found.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sealsock-demo-test.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
rc=0
TMPDIR=$tmp SEALSOCK_DEMO_PREBUILT=$build bash "$demo" >"$tmp.out" 2>&1 || rc=$?
out=$(cat "$tmp.out")
rm -f "$tmp.out"
echo "$out"
echo "---"

failed=0
expect() {  # expect WHAT ERE: the demo's output has a line matching ERE
    if grep -Eq -- "$2" <<<"$out"; then echo "ok   $1"; else echo "FAIL $1"; failed=1; fi
}
if [[ $rc -eq 0 ]]; then echo "ok   the demo exited 0"; else echo "FAIL the demo exited $rc"; failed=1; fi
expect "SET/GET returned the value" '^   sealsock-demo-secret$'
expect "the 1 MiB value came back (sha256)" 'the 1 MiB value came back byte for byte'
expect "bob was refused, with the reason" '^   server audit log: refuse: access_denied: .*CN=bob is not in the access list'
expect "wire verdict: TLS records only, the value never on the wire" \
    'wire check: connections 6, records [0-9]+, bytes [0-9]+; "sealsock-demo-secret" appears 0 times'
expect "bob's PING never reached redis" 'ran 4 commands, alice.s: bob.s PING never reached it'
expect "the summary" '^== demo passed in [0-9]+ s$'
expect "summary: the wire" '^   - The wire was TLS 1.3'
expect "summary: the refusal" '^   - bob, outside redis.s access list, was refused'
if grep -q 'FAILED' <<<"$out"; then echo "FAIL the output says FAILED"; failed=1; fi
left=$(find "$tmp" -mindepth 1 | head -5)
if [[ -z $left ]]; then echo "ok   the demo removed its directory"; else
    echo "FAIL the demo left files behind: $left"
    failed=1
fi
# Every process the demo started inherited TMPDIR=$tmp (redis-server rewrites its command line).
left=$(for p in /proc/[0-9]*; do
    grep -qzxF "TMPDIR=$tmp" "$p/environ" 2>/dev/null && echo "${p#/proc/}: $(tr '\0' ' ' <"$p/cmdline")"
done || true)
if [[ -z $left ]]; then echo "ok   no process of the demo is left"; else
    echo "FAIL processes of the demo are still running: $left"
    failed=1
fi
exit "$failed"
