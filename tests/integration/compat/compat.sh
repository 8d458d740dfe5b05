#!/usr/bin/env bash
# compat: one row of the compatibility matrix (docs/compatibility.md). Real server and client
# programs from Debian's packages, unmodified, both sealed by libsealsock.so with two agents and
# two identities (lib.sh: the client agent holds alice, the server agent `server`); each row
# checks what the programs did (bytes compared with sha256/cmp, counts, error totals), that the
# wire carried TLS 1.3 records only (wire.py, a recording relay that is never preloaded), and
# the shims' audit logs (the server saw CN=alice).
# Usage: compat.sh ROW AGENT LIBSEALSOCK RESULTS_DIR   (SEALSOCK_TEST_KEEP=1 keeps $work)
#   ROW names ROW.sh beside this file; the row's line for docs/compatibility.md is written to
#   RESULTS_DIR/ROW.md whatever the outcome (report.sh collects them).
set -euo pipefail

row=${1:?usage: compat.sh ROW AGENT LIBSEALSOCK RESULTS_DIR}
agent_bin=${2:?}
shim=${3:?}
results=${4:?}
variant=plain
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ -f $here/rows/$row.sh ]] || { echo "error: no row $row ($here/rows/$row.sh)" >&2; exit 2; }
# shellcheck source=../lib.sh
source "$here/../lib.sh"
# shellcheck source=harness.sh
source "$here/harness.sh"
lib_init "compat-$row"
trap compat_cleanup EXIT
row_aborted=1
make_pki
start_test_agents
# shellcheck source=/dev/null
source "$here/rows/$row.sh"
row_aborted=0
summary "compat.$row"
