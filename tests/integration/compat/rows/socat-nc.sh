# Row socat-nc: socat and OpenBSD netcat, each as client and as server, 8 MiB each time:
#   nc client -> socat server writing a file; socat client -> nc server writing stdout;
#   nc client <-> socat server running sha256sum on what it reads (an answer on the same
#   connection after the client's half-close); nc server writing first -> socat client.
# shellcheck shell=bash
nc_bin=/usr/bin/nc.openbsd
result "socat; netcat-openbsd (nc)" \
    "$(socat -V | sed -n 's/^socat version \([^ ]*\).*/socat \1/p'); $(dpkg-query -W -f='netcat-openbsd ${Version}' netcat-openbsd) (nc has no version option)" \
    "each as client and as server: 8 MiB one way (cmp), the other way with the server writing first (cmp), and a request answered after the client's half-close (sha256sum); the wire; both agents' logs"
payload "$work/in" 8
in_sum=$(sha256sum <"$work/in" | cut -d' ' -f1)

# one_case NAME LABEL: the server is up on $port; relays to it, runs the client ($client_cmd, its
# stdin from $client_in), stops the server's group after, checks the wire.
one_case() {
    wait_listen "$port"
    relay_to "$1" "$port"
    with_config "$cconf" "${client_cmd[@]//RPORT/$rport}"
    rc=0
    "${cmd[@]}" <"$client_in" >"$work/$1-client.out" 2>"$work/$1-client.err" || rc=$?
    for _ in $(seq 100); do kill -0 "$server_pgid" 2>/dev/null || break; sleep 0.1; done
    stop_group "$server_pgid"
}

port=$(free_port)
start_server nc-socat "$sconf" socat -u "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" "CREATE:$work/nc-socat.got"
client_cmd=("$nc_bin" -N 127.0.0.1 RPORT)
client_in=$work/in
one_case nc-socat
check "nc client -> socat server: 8 MiB arrived intact (cmp)" cmp "$work/in" "$work/nc-socat.got"
wire_checks nc-socat "nc -> socat"

port=$(free_port)
start_server socat-nc "$sconf" "$nc_bin" -l 127.0.0.1 "$port"
client_cmd=(socat -u "OPEN:$work/in" "TCP:127.0.0.1:RPORT")
one_case socat-nc
check "socat client -> nc server: 8 MiB arrived intact (cmp)" cmp "$work/in" "$work/socat-nc.out"
wire_checks socat-nc "socat -> nc"

port=$(free_port)
start_server nc-sum "$sconf" socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" "EXEC:sha256sum"
client_cmd=("$nc_bin" -N 127.0.0.1 RPORT)
one_case nc-sum
check "nc client <-> socat server running sha256sum: the answer is the sum of the 8 MiB sent" \
    grep -q "^$in_sum " "$work/nc-sum-client.out"
[[ $rc -eq 0 ]] || show_files nc-sum-client nc-sum
wire_checks nc-sum "nc <-> socat EXEC"

port=$(free_port)
server_in=$work/in start_server nc-first "$sconf" "$nc_bin" -N -l 127.0.0.1 "$port"
client_cmd=(socat -u "TCP:127.0.0.1:RPORT" "CREATE:$work/nc-first.got")
client_in=/dev/null
one_case nc-first
check "nc server writing first -> socat client: 8 MiB arrived intact (cmp)" cmp "$work/in" "$work/nc-first.got"
wire_checks nc-first "nc (writes first) -> socat"

agent_checks "socat and nc" "/usr/bin/(socat|nc.openbsd)" "/usr/bin/(socat|nc.openbsd)" 4
check "socat and nc: each program sealed both as client and as server" bash -c \
    "for role in server client; do for p in socat nc.openbsd; do
         grep -Eq \"handshake started: pid [0-9]+ \\\\(/usr/bin/\$p\\\\) as \$role\" '$work/'\$role.log || exit 1
     done; done"
