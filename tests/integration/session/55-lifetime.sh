#!/usr/bin/env bash
# 55-lifetime: a sealed connection belongs to the socket, not to the fd (DESIGN I5), and the calls
# that move bytes around the program keep it sealed. Unmodified programs under libsealsock.so.
#
# Same PKI, agents and configs as 50-sealed (tests/integration/lib.sh). lifetime_probe, a plain
# TCP program, runs every scenario first between two plain processes (the probe and the checks
# are right), then with both ends sealed:
#   1. dup, dup2, dup3(O_CLOEXEC), fcntl(F_DUPFD_CLOEXEC), then the original closed, on the
#      client and on the server: 1 MiB each way over the new name; closing it (the last name)
#      ends the connection: the peer reads EOF, no `sealsock:` line anywhere;
#   2. OpenSSH: the server forks per connection, the child dup2()s it onto 0 and 1 and execs
#      cat; the parent closes its copy and accepts the next; 4 MiB echoed, three times;
#   3. PostgreSQL: accept, fork, the parent closes its copy at once, the child serves and exits;
#      three connections in a row;
#   4. parent and child both write on one connection after fork (alternating turns through pipes,
#      and free-running): the reader (the probe, then openssl s_client) checks each writer's
#      bytes complete and in order; a repeated nonce would fail the peer's record authentication;
#   5. exec into a program without the shim (execve with LD_PRELOAD removed, and env -u
#      LD_PRELOAD): the connection ends, the client reads no plaintext and no garbage, the wire
#      carries no plaintext, a `sealsock:` line says why;
#   6. sendfile of 100 MiB (offset pointer, sendfile64's, and the file position), with sendfile(2)'s
#      offset rules checked after;
#   7. splice file -> pipe -> socket and socket -> pipe -> file (SPLICE_F_MOVE|SPLICE_F_MORE), 16 MiB;
#   8. close_range and closefrom over three sealed connections and a plain one: each peer reads
#      everything and a clean EOF; a new sealed connection works after;
#   9. syscall(SYS_write), SYS_read, SYS_getsockname, SYS_getpeername, SYS_close on a sealed fd;
#  10. fdopen: stdio on the connection (fwrite, fprintf, fflush out; fread, fgets in, on a second
#      stream over a dup), on the client and on the server: 1 MiB each way; fclose of both
#      streams ends the connection;
#  11. posix_spawn and posix_spawnp: the server puts each connection on 0 and 1 (not
#      close-on-exec) and spawns cat without file actions, then closes its copies; 1 MiB echoed,
#      twice each; posix_spawn with file actions that dup2 the connection onto 0 and 1; and a
#      spawn whose environment lacks LD_PRELOAD (as in 5: the connection ends, no plaintext);
#  12. sendmmsg and recvmmsg (three messages per call, three iovecs per message), through libc
#      and through syscall(), against the plain calls, and a sealed server against openssl
#      s_client: 1 MiB each way;
#  13. the fortified read family: lifetime_probe_fortify (-D_FORTIFY_SOURCE=2) must import
#      __read_chk, __recv_chk and __recvfrom_chk (nm -D), and reads with them: 1 MiB each way.
# The fork and exec scenarios, dup, syscall() and 10 to 13 also run through relay.py: TLS records
# from the first byte to the last, and the plaintext marker nowhere (in the plain run of 10 to 13
# the same capture must show the marker both ways, so the check can see plaintext).
# Usage: 55-lifetime.sh AGENT LIBSEALSOCK PROBE FORTIFY_PROBE plain|asan [CXX]
#   SEALSOCK_TEST_KEEP=1 keeps $work; LIFETIME_SCENARIOS="fdopen mmsg" runs only those.
#   The probe is built like the shim, so the shim alone is its preload. The programs it execs
#   under the shim (cat, env) are not instrumented: in the sanitizer tree they need the ASan
#   runtime first, found through CXX (as 40-shim-passthrough does) and handed to the probe in
#   LIFETIME_EXEC_PRELOAD, which it puts into LD_PRELOAD just before the exec.
set -euo pipefail

agent_bin=${1:?usage: 55-lifetime.sh AGENT LIBSEALSOCK PROBE FORTIFY_PROBE plain|asan [CXX]}
shim=${2:?}
probe=${3:?}
fortify_probe=${4:?}
variant=${5:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
relay=$here/relay.py
# shellcheck source=../lib.sh
source "$here/../lib.sh"
lib_init lifetime
make_pki
start_test_agents
if [[ $variant == asan ]]; then
    cxx=${6:?the sanitizer tree needs CXX to find the ASan runtime}
    rt=""
    for rt_name in libclang_rt.asan-x86_64.so libasan.so; do
        candidate=$("$cxx" -print-file-name="$rt_name" 2>/dev/null || true)
        if [[ -n $candidate && -f $candidate ]]; then rt=$candidate; break; fi
    done
    [[ -n $rt ]] || { echo "error: sanitizer build, but no ASan runtime found through $cxx" >&2; exit 1; }
    export LIFETIME_EXEC_PRELOAD="$rt:$shim"
    # A sanitizer report in a preloaded program would start llvm-symbolizer with the same
    # LD_PRELOAD, which cannot load there, and the report would stall until the time limit: print
    # raw addresses instead (addr2line -e FILE OFFSET reads them).
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}symbolize=0"
fi
cat_bin=$(command -v cat)
sh_bin=$(command -v sh)
env_bin=$(command -v env)
# A program without the shim speaks first, in plaintext: the marker, then the echo of what it reads.
speak="printf '%s\\n' '$marker'; exec '$cat_bin'"

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
    srv_name=$name
    rm -f "$pf"
    probe_cmd "$config" server --port-file "$pf" "$@"
    "${cmd[@]}" >"$work/$name.srv" 2>"$work/$name.srv.err" &
    srv_pid=$!
    pids+=("$srv_pid")
    for _ in $(seq 200); do [[ -s $pf ]] && break; sleep 0.05; done
    port=$(cat "$pf" 2>/dev/null || echo 0)
}
client() {  # client NAME CONFIG ARGS...: runs a probe client to its end; sets $cli_rc
    local name=$1 config=$2
    shift 2
    probe_cmd "$config" client "$@"
    cli_rc=0
    "${cmd[@]}" >"$work/$name.cli" 2>"$work/$name.cli.err" || cli_rc=$?
}
# A server or relay that outlives its client by $grace seconds is stopped (a server waiting for a
# connection the failed client never made, a relay waiting for a close): a failure, not a wait
# for the full time limit.
grace=10
if [[ $variant == asan ]]; then grace=30; fi
stop_late() {  # stop_late PID WHAT: waits up to $grace s for PID, then stops it and says so
    local deadline=$((SECONDS + grace))
    while kill -0 "$1" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    if kill -0 "$1" 2>/dev/null; then
        echo "     ($2 still running $grace s after the client ended: stopped)"
        kill "$1" 2>/dev/null || true
    fi
}
server_done() {  # waits for the server; sets $srv_rc
    stop_late "$srv_pid" "server $srv_name"
    srv_rc=0
    wait "$srv_pid" || srv_rc=$?
}
# relay_front NAME: puts relay.py (never preloaded) in front of $port for one connection; $port
# becomes the relay's. Captures in $work/NAME.c2s and .s2c.
relay_front() {
    rm -f "$work/$1.rport"
    python3 "$relay" relay "$work/$1.rport" "$port" "$work/$1" >"$work/$1.relay" 2>&1 &
    relay_pid=$!
    pids+=("$relay_pid")
    for _ in $(seq 100); do [[ -s $work/$1.rport ]] && break; sleep 0.05; done
    port=$(cat "$work/$1.rport" 2>/dev/null || echo 0)
}
relay_done() {
    stop_late "$relay_pid" relay
    wait "$relay_pid" || true
}

# flows FILE client|server: sent/received lines as directions, sorted, comparable across sides.
flows() {
    if [[ $2 == client ]]; then
        sed -n -e 's/^sent /c2s /p' -e 's/^received /s2c /p' "$1"
    else
        sed -n -e 's/^received /c2s /p' -e 's/^sent /s2c /p' "$1"
    fi | sort
}
# quiet NAME: neither side logged a sealsock: line.
quiet() {
    ! cat "$work/$1.cli.err" "$work/$1.srv.err" 2>/dev/null | grep '^sealsock: '
}
# agree NAME LINES: both ends exited 0, each side printed LINES sent/received lines and they
# match the other side's (same size and sha256 each way), and no sealsock: line.
agree() {
    local n=$1 why=""
    [[ $cli_rc -eq 0 ]] || why+=" client exit $cli_rc;"
    [[ $srv_rc -eq 0 ]] || why+=" server exit $srv_rc;"
    flows "$work/$n.cli" client >"$work/$n.cflows"
    flows "$work/$n.srv" server >"$work/$n.sflows"
    [[ $(wc -l <"$work/$n.cflows") -eq $2 ]] || why+=" not $2 sent/received lines;"
    cmp -s "$work/$n.cflows" "$work/$n.sflows" || why+=" the two sides' sha256 differ;"
    quiet "$n" >/dev/null || why+=" a sealsock: line was logged;"
    [[ -z $why ]] && return 0
    echo "   $why"
    diff "$work/$n.cflows" "$work/$n.sflows" | head -6 || true
    quiet "$n" | head -3
    return 1
}
# judge LABEL NAME COMMAND...: one check that shows the scenario's outputs when it fails.
judge() {
    local label=$1
    on_fail=$2 check "$label" "${@:3}"
}
# wire NAME LABEL: the relay's capture of a sealed connection: TLS records from the first byte to
# the last both ways, and the plaintext marker nowhere.
wire() {
    judge "$2: wire: client to server is TLS records to the last byte" "$1" \
        python3 "$relay" records "$work/$1.c2s"
    judge "$2: wire: server to client is TLS records to the last byte" "$1" \
        python3 "$relay" records "$work/$1.s2c"
    check "$2: wire: the plaintext marker appears in neither direction" bash -c \
        "[[ -s '$work/$1.c2s' ]] && ! grep -qaF '$marker' '$work/$1.c2s' '$work/$1.s2c'"
}
# sealed CONFIG: whether a run with this config is sealed.
sealed() { [[ $1 != - ]]; }
mib=1048576

# --- 1. dup family ------------------------------------------------------------------------------
# dup_case PREFIX CC SC SIDE METHOD [relay]: SIDE (client|server) renames its fd with METHOD,
# closes the original, exchanges 1 MiB each way, and closes first; the other side reads EOF.
dup_case() {
    local p=$1 cc=$2 sc=$3 side=$4 method=$5 via=${6:-} name
    name=${p%% *}-dup-$side-$method${via:+-relay}
    local copt=() sopt=()
    if [[ $side == client ]]; then copt=(--dup "$method" --close-first); else
        sopt=(--dup "$method" --close-first)
    fi
    serve "$name" "$sc" --mode exchange --size $mib --seed 11 --marker "$marker" "${sopt[@]}"
    [[ -z $via ]] || relay_front "$name"
    client "$name" "$cc" --mode exchange --connect "127.0.0.1:$port" --size $mib --seed 11 \
        --marker "$marker" "${copt[@]}"
    server_done
    [[ -z $via ]] || relay_done
    judge "$p: $side $method, original closed: 1 MiB each way, both sides agree, no sealsock: line" \
        "$name" agree "$name" 2
    local mine=cli other=srv
    [[ $side == client ]] || { mine=srv; other=cli; }
    judge "$p: $side $method: the renamed fd carried it and closing it ended the connection (the peer read EOF)" \
        "$name" bash -c "grep -q '^$method .* original closed\$' '$work/$name.$mine' &&
                         grep -qx eof '$work/$name.$other'"
    if [[ -n $via ]]; then wire "$name" "$p: $side $method"; fi
}
scenario_dup() {
    local p=$1 cc=$2 sc=$3 side method
    for side in client server; do
        for method in dup dup2 dup3 fcntl; do dup_case "$p dup" "$cc" "$sc" "$side" "$method"; done
    done
    if sealed "$cc"; then dup_case "$p dup" "$cc" "$sc" client dup relay; fi
}

# --- 2. OpenSSH: fork, dup2 onto 0 and 1, exec cat ----------------------------------------------
# echoed NAME N SIZE [CLIENT_RC]: both ends exited 0 (the client's status $cli_rc unless given)
# and the echo client verified N connections of SIZE bytes, each echo's sha256 equal to what was
# sent.
echoed() {
    [[ ${4:-$cli_rc} -eq 0 && $srv_rc -eq 0 &&
        $(grep -c '^verified$' "$work/$1.cli") -eq $2 &&
        $(grep -c "^sent $3 " "$work/$1.cli") -eq $2 ]] &&
        diff <(sed -n 's/^sent //p' "$work/$1.cli") <(sed -n 's/^received //p' "$work/$1.cli")
}
# children_quiet NAME N: the server saw its N children exit 0, and no sealsock: line anywhere.
children_quiet() {
    grep -qx "children $2, each exited 0" "$work/$1.srv" && quiet "$1"
}
scenario_openssh() {
    local p=$1 cc=$2 sc=$3 name=$1-openssh n=3 size=$((4 * mib))
    serve "$name" "$sc" --mode exec-child --connections $n -- "$cat_bin"
    client "$name" "$cc" --mode echo --connect "127.0.0.1:$port" --connections $n --size $size \
        --seed 21 --marker "$marker"
    server_done
    judge "$p openssh: fork, dup2 onto 0/1, exec cat: $n connections, 4 MiB echoed each, sha256 equal" \
        "$name" echoed "$name" $n $size
    judge "$p openssh: the parent closed its copies, each child (cat) exited 0, no sealsock: line" \
        "$name" children_quiet "$name" $n
    if sealed "$cc"; then
        name=$1-openssh-relay
        serve "$name" "$sc" --mode exec-child --connections 1 -- "$cat_bin"
        relay_front "$name"
        client "$name" "$cc" --mode echo --connect "127.0.0.1:$port" --size $mib --seed 22 \
            --marker "$marker"
        server_done
        relay_done
        judge "$p openssh through the relay: 1 MiB echoed by cat, no sealsock: line" "$name" \
            bash -c "[[ $cli_rc -eq 0 && $srv_rc -eq 0 ]] && grep -qx verified '$work/$name.cli' &&
                     ! grep '^sealsock: ' '$work/$name.cli.err' '$work/$name.srv.err'"
        wire "$name" "$p openssh"
    fi
}

# --- 3. PostgreSQL: fork, the parent closes at once, the child serves ---------------------------
scenario_postgres() {
    local p=$1 cc=$2 sc=$3 name=$1-postgres n=3 via
    for via in "" relay; do
        if [[ -n $via ]]; then
            sealed "$cc" || continue
            name=$1-postgres-relay
            n=1
        fi
        serve "$name" "$sc" --mode fork-serve --connections $n --size $mib --seed 31 --close-first \
            --marker "$marker"
        [[ -z $via ]] || relay_front "$name"
        client "$name" "$cc" --mode exchange --connect "127.0.0.1:$port" --connections $n \
            --size $mib --seed 31 --marker "$marker"
        server_done
        [[ -z $via ]] || relay_done
        judge "$p postgres${via:+ through the relay}: $n connections in a row, each served by a forked child: 1 MiB each way agrees" \
            "$name" agree "$name" $((2 * n))
        judge "$p postgres${via:+ through the relay}: each child's close ended its connection (EOF $n times), children exited 0" \
            "$name" bash -c "[[ \$(grep -cx eof '$work/$name.cli') -eq $n ]] &&
                             grep -qx 'children $n, each exited 0' '$work/$name.srv'"
        if [[ -n $via ]]; then wire "$name" "$p postgres"; fi
    done
}

# --- 4. parent and child write on one connection ------------------------------------------------
# writers_agree NAME READER_OUTPUT: each writer's sent line equals what the reader got from it.
writers_agree() {
    diff <(sed -n 's/^sent \([01] \)/\1/p' "$work/$1.srv" | sort) \
        <(sed -n 's/^writer //p' "$2" | sort) && grep -qx verified "$2"
}
scenario_forkwrite() {
    local p=$1 cc=$2 sc=$3 how name opts
    for how in alternate concurrent; do
        name=$1-forkwrite-$how
        opts=(--seed 41 --size $((4 * mib)) --marker "$marker")
        [[ $how == concurrent ]] || opts+=(--alternate --turns 64)
        serve "$name" "$sc" --mode forkwrite "${opts[@]}"
        relay_front "$name"
        client "$name" "$cc" --mode demux --connect "127.0.0.1:$port" "${opts[@]}"
        server_done
        relay_done
        judge "$p forkwrite $how: parent and child wrote and exited 0, the reader got each writer's bytes complete and in order" \
            "$name" bash -c "[[ $cli_rc -eq 0 && $srv_rc -eq 0 ]] && grep -qx 'children 1, each exited 0' '$work/$name.srv'"
        judge "$p forkwrite $how: each writer's sha256 equals what the reader demultiplexed" \
            "$name" writers_agree "$name" "$work/$name.cli"
        judge "$p forkwrite $how: no sealsock: line" "$name" quiet "$name"
        if sealed "$cc"; then
            wire "$name" "$p forkwrite $how"
        else
            # The demultiplexer reads a file too (the s_client check below uses that): the
            # relay's capture of the plain stream must pass it.
            "$probe" demux --file "$work/$name.s2c" "${opts[@]}" >"$work/$name.demux" 2>&1 || true
            check "$p forkwrite $how: the relay's capture demultiplexes like the live stream" \
                writers_agree "$name" "$work/$name.demux"
            check "$p forkwrite $how: the wire check sees the marker on a plain connection" \
                grep -qaF "$marker" "$work/$name.s2c"
        fi
    done
    sealed "$cc" || return 0
    # An independent reader: openssl s_client, not preloaded, with alice's certificate.
    for how in alternate concurrent; do
        name=$1-forkwrite-s_client-$how
        opts=(--seed 43 --size $((4 * mib)) --marker "$marker")
        [[ $how == concurrent ]] || opts+=(--alternate --turns 64)
        serve "$name" "$sc" --mode forkwrite "${opts[@]}"
        printf g | timeout "$limit" "$openssl" s_client -connect "127.0.0.1:$port" \
            -servername localhost -CAfile "$pki/ca.pem" -verify_return_error \
            -cert "$pki/alice.pem" -key "$pki/alice.key" -quiet \
            >"$work/$name.out" 2>"$work/$name.cli.err" || true
        server_done
        "$probe" demux --file "$work/$name.out" "${opts[@]}" >"$work/$name.cli" 2>&1 || true
        judge "$p forkwrite $how read by openssl s_client: the server exited 0" "$name" \
            test "$srv_rc" -eq 0
        judge "$p forkwrite $how read by openssl s_client: each writer complete and in order, sha256 equal" \
            "$name" writers_agree "$name" "$work/$name.cli"
        judge "$p forkwrite $how read by openssl s_client: no TLS error at s_client, no sealsock: line" \
            "$name" bash -c "! grep -Ei 'error|alert|unexpected eof' '$work/$name.cli.err' &&
                             ! grep '^sealsock: ' '$work/$name.srv.err'"
    done
}

# --- 5. exec into a program without the shim -----------------------------------------------------
scenario_noshim() {
    local p=$1 cc=$2 sc=$3 how name
    for how in execve-clean-env env-u; do
        name=$1-noshim-$how
        if [[ $how == env-u ]]; then
            serve "$name" "$sc" --mode exec-noshim -- "$env_bin" -u LD_PRELOAD "$sh_bin" -c "$speak"
        else
            serve "$name" "$sc" --mode exec-noshim --clean-env -- "$sh_bin" -c "$speak"
        fi
        noshim_peer "$p noshim $how" "$name" "$cc"
    done
}
# noshim_peer LABEL NAME CLIENT_CONFIG: the server (started, $port set) hands the connection to a
# program without the shim, which speaks the marker first, in plaintext. Sealed: the client sees
# the connection end, reads nothing, the wire carries TLS records only and a sealsock: line says
# why. Plain: the client and the wire check see the marker (the checks can see it).
noshim_peer() {  # noshim_peer LABEL NAME CLIENT_CONFIG [refused]: "refused" when the server's
    # hand-over itself must fail (a posix_spawn whose file actions would leak the socket)
    local l=$1 name=$2 refused=${4:-}
    relay_front "$name"
    client "$name" "$3" --mode exec-peer --connect "127.0.0.1:$port" --size 65536 --seed 51 \
        --marker "$marker"
    server_done
    relay_done
    if ! sealed "$3"; then
        check "$l: the client read the plaintext marker (the check sees it when it is there)" \
            grep -qx 'marker seen yes' "$work/$name.cli"
        check "$l: the wire check sees the marker on a plain connection" \
            grep -qaF "$marker" "$work/$name.s2c"
        return
    fi
    judge "$l: the client saw the connection end (EOF or an error) in time, nothing read" \
        "$name" bash -c "[[ $cli_rc -eq 0 ]] && grep -Eqx 'end (eof|error E[A-Z]+)' '$work/$name.cli' &&
                         grep -q '^received 0 ' '$work/$name.cli' && grep -qx 'marker seen no' '$work/$name.cli'"
    if [[ -n $refused ]]; then
        judge "$l: the spawn is refused (EACCES), the server exits with its error, not a crash" \
            "$name" bash -c "[[ $srv_rc -eq 1 ]] &&
                grep -Eq '^error: posix_spawn.*\\(errno EACCES\\)$' '$work/$name.srv' &&
                grep -q '^sealsock: posix_spawn refused: its file actions would give the sealed connection on fd' '$work/$name.srv.err'"
    else
        judge "$l: the server handed it over (no error before it)" "$name" \
            bash -c "! grep -q '^error: ' '$work/$name.srv'"
    fi
    judge "$l: a sealsock: line says why (a program without the shim)" "$name" \
        grep -Eiq '^sealsock: .*(exec|LD_PRELOAD|shim|preload)' "$work/$name.srv.err"
    judge "$l: wire: server to client is TLS records to the last byte, no marker" "$name" \
        bash -c "python3 '$relay' records '$work/$name.s2c' && ! grep -qaF '$marker' '$work/$name.s2c' '$work/$name.c2s'"
}

# --- 6. sendfile -------------------------------------------------------------------------------
scenario_sendfile() {
    local p=$1 cc=$2 sc=$3 how name
    for how in ptr ptr64 pos; do
        name=$1-sendfile-$how
        serve "$name" "$sc" --mode sink
        client "$name" "$cc" --mode sendfile --connect "127.0.0.1:$port" --file "$work/big" \
            --offset "$how"
        server_done
        judge "$p sendfile ($how) of 100 MiB: the receiver's sha256 is the file's, offset rules kept, no sealsock: line" \
            "$name" bash -c "[[ $cli_rc -eq 0 && $srv_rc -eq 0 ]] &&
                grep -qx 'received $big_size $big_sha' '$work/$name.srv' && grep -qx eof '$work/$name.srv' &&
                grep -q '^sendfile ($how) $big_size bytes, offset rules kept\$' '$work/$name.cli' &&
                ! grep '^sealsock: ' '$work/$name.cli.err' '$work/$name.srv.err'"
    done
}

# --- 7. splice through a pipe on both ends --------------------------------------------------------
scenario_splice() {
    local p=$1 cc=$2 sc=$3 name=$1-splice
    serve "$name" "$sc" --mode splice-sink --out "$work/$name.out"
    client "$name" "$cc" --mode splice --connect "127.0.0.1:$port" --file "$work/mid"
    server_done
    judge "$p splice file -> pipe -> socket -> pipe -> file, 16 MiB: sha256 equal, no sealsock: line" \
        "$name" bash -c "[[ $cli_rc -eq 0 && $srv_rc -eq 0 ]] &&
            [[ \$(sha256sum <'$work/$name.out' | cut -d' ' -f1) == $mid_sha ]] &&
            grep -qx 'spliced $((16 * mib))' '$work/$name.cli' && grep -qx eof '$work/$name.srv' &&
            ! grep '^sealsock: ' '$work/$name.cli.err' '$work/$name.srv.err'"
}

# --- 8. close_range and closefrom -------------------------------------------------------------------
scenario_closerange() {
    local p=$1 cc=$2 sc=$3 how name plain_port
    for how in close_range closefrom; do
        name=$1-$how
        # The plain peer listens on 127.0.0.2, which no rule seals.
        serve "$name-plain" - --mode sink --listen 127.0.0.2
        plain_port=$port
        local plain_pid=$srv_pid
        serve "$name" "$sc" --mode sink --connections 4
        client "$name" "$cc" --mode closerange --connect "127.0.0.1:$port" \
            --plain "127.0.0.2:$plain_port" --count 3 --size 100000 --seed 81 --how "$how"
        server_done
        local sealed_rc=$srv_rc
        srv_pid=$plain_pid
        server_done
        judge "$p $how over 3 sealed connections and a plain one: every peer read all of it and a clean EOF" \
            "$name" bash -c "[[ $cli_rc -eq 0 && $sealed_rc -eq 0 && $srv_rc -eq 0 ]] &&
                diff <(sed -n 's/^sent //p' '$work/$name.cli' | sort) \
                     <(sed -n 's/^received //p' '$work/$name.srv' '$work/$name-plain.srv' | sort) &&
                [[ \$(cat '$work/$name.srv' '$work/$name-plain.srv' | grep -cx eof) -eq 5 ]]"
        judge "$p $how: the fds are closed and a new sealed connection after it works, no sealsock: line" \
            "$name" bash -c "grep -q '^$how .* closed\$' '$work/$name.cli' &&
                grep -qx 'a new connection after it: sent and closed' '$work/$name.cli' &&
                ! grep '^sealsock: ' '$work/$name.cli.err' '$work/$name.srv.err'"
    done
}

# --- 9. syscall() -------------------------------------------------------------------------------
scenario_syscall() {
    local p=$1 cc=$2 sc=$3 name=$1-syscall
    serve "$name" "$sc" --mode echo
    sealed "$cc" && relay_front "$name"
    client "$name" "$cc" --mode syscall --connect "127.0.0.1:$port" --size $mib --seed 91 \
        --marker "$marker"
    server_done
    sealed "$cc" && relay_done
    judge "$p syscall(SYS_getsockname, SYS_getpeername) on the connection: forwarded, same answers as libc" \
        "$name" grep -qx 'syscall getsockname, getpeername: as the libc calls' "$work/$name.cli"
    judge "$p syscall(SYS_write, SYS_read): 1 MiB echoed intact, the echo server's sha256 agrees" \
        "$name" bash -c "[[ $cli_rc -eq 0 && $srv_rc -eq 0 ]] &&
            [[ \$(sed -n 's/^sent //p' '$work/$name.cli') == \$(sed -n 's/^received //p' '$work/$name.cli') ]] &&
            [[ \$(sed -n 's/^sent //p' '$work/$name.cli') == \$(sed -n 's/^received //p' '$work/$name.srv') ]]"
    judge "$p syscall(SYS_close) ended the connection cleanly (the server read EOF), no sealsock: line" \
        "$name" bash -c "grep -qx closed '$work/$name.cli' && grep -qx eof '$work/$name.srv' &&
            ! grep '^sealsock: ' '$work/$name.cli.err' '$work/$name.srv.err'"
    if sealed "$cc"; then wire "$name" "$p syscall"; fi
}

# --- 10 to 13: entry points that move the bytes ---------------------------------------------------
# on_wire NAME LABEL CONFIG: the relay's capture: sealed, TLS records only and no marker (wire);
# plain, the marker both ways (the same check would see plaintext).
on_wire() {
    if sealed "$3"; then wire "$1" "$2"; else
        check "$2: the wire check sees the marker both ways on a plain connection" bash -c \
            "grep -qaF '$marker' '$work/$1.c2s' && grep -qaF '$marker' '$work/$1.s2c'"
    fi
}
# exchange_via LABEL NAME CC SC SEED CLIENT_OPTS SERVER_OPTS: an exchange of 1 MiB each way
# through the relay, the client closing first; both sides agree, the server read EOF, the wire.
exchange_via() {
    local l=$1 name=$2 cc=$3 sc=$4 seed=$5
    local -a copt=($6) sopt=($7)
    serve "$name" "$sc" --mode exchange --size $mib --seed "$seed" --marker "$marker" "${sopt[@]}"
    relay_front "$name"
    client "$name" "$cc" --mode exchange --connect "127.0.0.1:$port" --size $mib --seed "$seed" \
        --marker "$marker" --close-first "${copt[@]}"
    server_done
    relay_done
    judge "$l: 1 MiB each way, both sides' sha256 agree, no sealsock: line" "$name" agree "$name" 2
    judge "$l: the client's close ended the connection (the server read EOF)" "$name" \
        grep -qx eof "$work/$name.srv"
    on_wire "$name" "$l" "$cc"
}

# --- 10. fdopen: stdio on the connection ----------------------------------------------------------
scenario_fdopen() {
    local p=$1 cc=$2 sc=$3
    exchange_via "$p fdopen client (fwrite, fprintf, fflush; fread, fgets; fclose)" \
        "$1-fdopen-client" "$cc" "$sc" 101 "--io stdio" "--io plain"
    exchange_via "$p fdopen server (fwrite, fprintf, fflush; fread, fgets; fclose)" \
        "$1-fdopen-server" "$cc" "$sc" 103 "--io plain" "--io stdio"
}

# --- 11. posix_spawn ----------------------------------------------------------------------------
scenario_spawn() {
    local p=$1 cc=$2 sc=$3 name=$1-spawn-noshim
    serve "$name" "$sc" --mode spawn --spawn posix_spawn --clean-env -- "$sh_bin" -c "$speak"
    noshim_peer "$p posix_spawn without LD_PRELOAD in its environment" "$name" "$cc"
}
# spawn-handoff: a child that carries the shim, the parent closing its copies at once (the
#   parent counts the child's names before the spawn, so its close cannot end the session under
#   the child). spawn-actions-noshim: file actions that would dup2 the connection onto 0/1 in a
#   child without the shim: the spawn is refused.
spawn_echoed() {  # spawn_echoed NAME FIRST_CLIENT_RC: NAME and NAME-2 each echoed 1 MiB
    echoed "$1" 1 $mib "$2" && echoed "$1-2" 1 $mib
}
scenario_spawn-handoff() {
    local p=$1 cc=$2 sc=$3 how name n=2 prog
    for how in posix_spawn posix_spawnp; do
        name=$1-$how
        prog=$cat_bin
        [[ $how == posix_spawn ]] || prog=cat  # found on PATH
        serve "$name" "$sc" --mode spawn --spawn $how --connections $n -- "$prog"
        relay_front "$name"  # in front of the first connection
        client "$name" "$cc" --mode echo --connect "127.0.0.1:$port" --size $mib --seed 111 \
            --marker "$marker"
        relay_done
        local first_rc=$cli_rc
        client "$name-2" "$cc" --mode echo --connect "127.0.0.1:$(cat "$work/$name.port")" \
            --size $mib --seed 112 --marker "$marker"
        server_done
        judge "$p $how: cat inherits the connection on 0/1 (no file actions), the parent closes its copies: 1 MiB echoed on each of $n connections, sha256 equal" \
            "$name" spawn_echoed "$name" "$first_rc"
        judge "$p $how: each child (cat) exited 0, no sealsock: line" "$name" children_quiet "$name" $n
        on_wire "$name" "$p $how" "$cc"
    done
    name=$1-spawn-file-actions
    serve "$name" "$sc" --mode spawn --spawn posix_spawn --file-actions -- "$cat_bin"
    client "$name" "$cc" --mode echo --connect "127.0.0.1:$port" --size $mib --seed 113 \
        --marker "$marker"
    server_done
    judge "$p posix_spawn with file actions (dup2 onto 0/1 in the child), child with the shim: 1 MiB echoed, sha256 equal" \
        "$name" echoed "$name" 1 $mib
    judge "$p posix_spawn with file actions: cat exited 0, no sealsock: line" "$name" \
        children_quiet "$name" 1
}
scenario_spawn-actions-noshim() {
    local p=$1 cc=$2 sc=$3 name=$1-spawn-actions-noshim
    serve "$name" "$sc" --mode spawn --spawn posix_spawn --file-actions --clean-env -- \
        "$sh_bin" -c "$speak"
    noshim_peer "$p posix_spawn, file actions dup2 onto 0/1, no LD_PRELOAD" "$name" "$cc" refused
}

# --- 12. sendmmsg and recvmmsg --------------------------------------------------------------------
# several FILE...: each probe output reports its sendmmsg and recvmmsg calls, with more messages
# than calls (several messages per call really happened).
several() {
    local f way c m
    for f; do
        for way in sendmmsg recvmmsg; do
            read -r c m < <(sed -n "s/^$way calls \([0-9]*\) messages \([0-9]*\)\$/\1 \2/p" "$f") || true
            [[ -n ${c:-} && ${m:-0} -gt $c ]] || { echo "${f##*/}: $way calls ${c:-?} messages ${m:-?}"; return 1; }
        done
    done
}
scenario_mmsg() {
    local p=$1 cc=$2 sc=$3
    exchange_via "$p sendmmsg/recvmmsg client, plain server calls" "$1-mmsg-client" "$cc" "$sc" \
        121 "--io mmsg" "--io plain"
    exchange_via "$p sendmmsg/recvmmsg server, plain client calls" "$1-mmsg-server" "$cc" "$sc" \
        123 "--io plain" "--io mmsg"
    exchange_via "$p syscall(SYS_sendmmsg, SYS_recvmmsg) on both ends" "$1-mmsg-syscall" "$cc" \
        "$sc" 125 "--io syscall-mmsg" "--io syscall-mmsg"
    check "$p sendmmsg/recvmmsg: more messages than calls, each way, on every end that used them" \
        several "$work/$1-mmsg-client.cli" "$work/$1-mmsg-server.srv" \
        "$work/$1-mmsg-syscall.cli" "$work/$1-mmsg-syscall.srv"
    sealed "$cc" || return 0
    # An independent peer: openssl s_client, not preloaded, sends 1 MiB (its stdin) and prints
    # what the server sends with sendmmsg; the server checks every byte it reads with recvmmsg.
    local name=$1-mmsg-s_client
    serve "$name" "$sc" --mode exchange --io mmsg --size $mib --seed 127 --marker "$marker" \
        --close-first
    relay_front "$name"
    "$probe" payload --size $mib --seed 127 --marker "$marker" >"$work/$name.in"
    timeout "$limit" "$openssl" s_client -connect "127.0.0.1:$port" -servername localhost \
        -CAfile "$pki/ca.pem" -verify_return_error -cert "$pki/alice.pem" -key "$pki/alice.key" \
        -quiet <"$work/$name.in" >"$work/$name.out" 2>"$work/$name.cli.err" || true
    server_done
    relay_done
    local in_line out_line
    in_line="received $(stat -c %s "$work/$name.in") $(sha256sum <"$work/$name.in" | cut -d' ' -f1)"
    out_line="sent $(stat -c %s "$work/$name.out") $(sha256sum <"$work/$name.out" | cut -d' ' -f1)"
    judge "$p sendmmsg/recvmmsg server against openssl s_client: 1 MiB each way, sha256 equal on both ends" \
        "$name" bash -c "[[ $srv_rc -eq 0 ]] && grep -qx '$in_line' '$work/$name.srv' &&
            grep -qx '$out_line' '$work/$name.srv' && grep -q '^sent $mib ' '$work/$name.srv'"
    judge "$p sendmmsg/recvmmsg server against openssl s_client: more messages than calls" \
        "$name" several "$work/$name.srv"
    judge "$p sendmmsg/recvmmsg server against openssl s_client: no TLS error at s_client, no sealsock: line" \
        "$name" bash -c "! grep -Ei 'error|alert|unexpected eof' '$work/$name.cli.err' &&
                         ! grep '^sealsock: ' '$work/$name.srv.err'"
    wire "$name" "$p mmsg s_client"
}

# --- 13. the fortified read family ----------------------------------------------------------------
scenario_fortify() {
    local p=$1 cc=$2 sc=$3 probe=$fortify_probe
    exchange_via "$p __read_chk, __recv_chk, __recvfrom_chk on both ends" "$1-fortify" "$cc" "$sc" \
        131 "--io chk" "--io chk"
}

# --- the files sendfile and splice send ----------------------------------------------------------
head -c $((100 * mib)) /dev/urandom >"$work/big"
head -c $((16 * mib)) "$work/big" >"$work/mid"
big_size=$((100 * mib))
big_sha=$(sha256sum <"$work/big" | cut -d' ' -f1)
mid_sha=$(sha256sum <"$work/mid" | cut -d' ' -f1)

# The fortified probe must really call the __*_chk variants, or scenario 13 covers nothing.
for sym in __read_chk __recv_chk __recvfrom_chk; do
    check "lifetime_probe_fortify imports $sym (nm -D)" bash -c \
        "nm -D --undefined-only '$fortify_probe' | grep -qw '$sym'"
done

scenarios=${LIFETIME_SCENARIOS:-dup openssh postgres forkwrite noshim sendfile splice closerange syscall fdopen spawn spawn-handoff spawn-actions-noshim mmsg fortify}
all() {  # all PREFIX CLIENT_CONFIG SERVER_CONFIG
    local s
    for s in $scenarios; do
        echo "--- $1: $s"
        "scenario_$s" "$@"
    done
}
started=$SECONDS
all plain - -
all sealed "$cconf" "$sconf"
notes+=("took $((SECONDS - started)) s")
summary 55-lifetime
