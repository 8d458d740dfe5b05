# Row exec-handshake: a sealed server that execs a program carrying the shim right after
# accept(), while the agent is still running the handshake. socat with `nofork` does exactly
# that (accept, dup2 onto 0 and 1, exec): into cat (EXEC: execvp), the connection stays sealed
# across the exec (the shim finishes the handshake first): the sealed nc client gets its bytes
# echoed and the wire is TLS only. Into sh through system() (SYSTEM:), which the C library spawns
# past every hook, so no hand-off can reach the shell: the shell must not get the connection at
# all (fail closed): the client gets nothing back, the wire is TLS only, and socat's stderr says
# why.
# shellcheck shell=bash
result "socat EXEC/SYSTEM with nofork (exec during the server's handshake)" \
    "$(socat -V | sed -n 's/^socat version \([^ ]*\).*/socat \1/p'); $(dpkg-query -W -f='dash ${Version}' dash)" \
    "sealed socat execs cat (EXEC:/bin/cat,nofork) right after accept: a sealed nc gets back what it sent, 64 KiB (cmp); the wire. Through system() (SYSTEM:...,nofork) the shell gets no sealed fd: nothing comes back, the wire stays TLS, one sealsock: line says why"
{ printf 'hello\n'; head -c 32768 /dev/urandom | base64 -w 76; printf '%s\n' "$marker"; } >"$work/in"
# exec_case NAME ADDRESS EXPECTED: socat's second address is ADDRESS; the client must read EXPECTED.
exec_case() {
    port=$(free_port)
    start_server "$1" "$sconf" socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" "$2"
    wait_listen "$port"
    relay_to "$1" "$port"
    with_config "$cconf" nc.openbsd -N 127.0.0.1 "$rport"
    "${cmd[@]}" <"$work/in" >"$work/$1-client.out" 2>"$work/$1-client.err" || true
    stop_group "$server_pgid"
    if [[ -n $3 ]]; then
        check "$1: the sealed client got back what it sent (cmp)" cmp "$3" "$work/$1-client.out"
        cmp -s "$3" "$work/$1-client.out" || show_files "$1-client" "$1"
    else
        check "$1: the sealed client got nothing back" test ! -s "$work/$1-client.out"
        check "$1: one sealsock: line says system() cannot hand the connection on" \
            grep -q '^sealsock: .*system() and popen() start /bin/sh inside the C library' \
            "$work/$1.err"
    fi
    wire_checks "$1" "$1"
}
exec_case cat "EXEC:/bin/cat,nofork" "$work/in"
exec_case sh 'SYSTEM:read line && echo got-$line && exec /bin/cat,nofork' ""
