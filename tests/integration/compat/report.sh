#!/usr/bin/env bash
# report: writes the compatibility matrix from the compat rows' result lines.
# Usage: report.sh RESULTS_DIR OUTPUT FAILING ROW...   (ctest's compat.report runs it after the rows)
#   Each row's line is RESULTS_DIR/ROW.md (compat.sh writes it whatever the outcome). FAILING
#   (rows separated by ";") are the rows ctest does not run because of a known shim bug: without
#   a line (from running compat.sh by hand into RESULTS_DIR) they say so; any other row without
#   a line did not run, and the report fails. limits.md beside this script (the known failures,
#   deployment notes, programs that cannot work) is appended. Prints the matrix.
set -euo pipefail
results=${1:?usage: report.sh RESULTS_DIR OUTPUT ROW...}
output=${2:?}
failing=";$3;"
shift 3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
missing=0
{
    cat <<'HEAD'
# Compatibility matrix

Real server and client programs from Debian 12's packages (and Node.js), unmodified, each
sealed by `libsealsock.so` on both ends (`LD_PRELOAD` with `SEALSOCK_CONFIG`), with two agents
and two identities: the client agent presents `alice`, the server agent `server`
(CN=localhost), and the server's inbound rule lets in `cn:alice` only. Every row checks what the
programs did (bytes by SHA-256 or cmp, row counts, error counts), that the wire between them
carried TLS 1.3 records from the first byte to the last and never a plaintext marker the
programs sent (`wire.py`, a recording relay that is not preloaded), and both agents' logs (the
server sealed connections for the server program, each from CN=alice; the client's for the
client program, each to CN=localhost; nothing failed or was refused).

The mixed-peer rows seal one end only: a sealed curl against nginx's own TLS, and curl and
openssl s_client with their own TLS against a sealed plain server. The rows for programs that
cannot carry the shim (static, Go) check that sealsock refuses them rather than letting them
send plaintext. The last row, baseline, runs programs without sealsock through the same wire
check and requires it to report plaintext, so no row can pass that check unsealed.

This file is the output of `ctest -L compat` in the release tree (`compat.report` writes it
into `build/release/tests/integration/compat/compatibility.md`); the harness is
`tests/integration/compat/` and docs/testing.md says how to run it. Versions are what the
programs print about themselves; times are each row's wall time on a 2-core machine.

| program | version | what was checked | result | time |
|---|---|---|---|---|
HEAD
    for row in "$@"; do
        if [[ -s $results/$row.md ]]; then
            cat "$results/$row.md"
        elif [[ $failing == *";$row;"* ]]; then
            echo "| $row | | | **fails** (shim bug, not run by ctest; see below) | |"
        else
            echo "| $row | | | **did not run** | |"
            missing=1
        fi
    done
    echo
    cat "$here/limits.md"
} >"$output"
cat "$output"
exit "$missing"
