# Row memcached: memcached (threaded, libevent) sealed, with libmemcached's tools: memccp stores
# a 512 KiB binary file, memccat reads it back (cmp), memcslap runs 20 concurrent clients, and
# memcstat's counters show the work arrived.
# shellcheck shell=bash
result "memcached; libmemcached-tools (memccp, memccat, memcslap, memcstat)" \
    "$(memcached -V); $(dpkg-query -W -f='libmemcached-tools ${Version}' libmemcached-tools) (the tools print no version)" \
    "memccp of a 512 KiB binary value, memccat back (cmp); memcslap with 20 concurrent clients, exit 0; the server's counters (memcstat) show the sets; the wire; both agents' logs"
port=$(free_port)
start_server memcached "$sconf" memcached -u root -l 127.0.0.1 -p "$port" -U 0 -t 2 -m 64 -I 2m
wait_listen "$port"
relay_to mc "$port"
servers=--servers=127.0.0.1:$rport
head -c 262144 /dev/urandom >"$work/value.bin"
printf '%s' "$marker" >>"$work/value.bin"
head -c 262144 /dev/urandom >>"$work/value.bin"
run_sealed memccp "$cconf" memccp "$servers" "$work/value.bin"
check "memccp: exit 0" test "$rc" -eq 0
[[ $rc -eq 0 ]] || show_files memccp memcached
run_sealed memccat "$cconf" memccat "$servers" value.bin
{ cat "$work/value.bin"; echo; } >"$work/value.nl"  # memccat ends the value with a newline
check "memccat: the 512 KiB value came back byte for byte (cmp)" cmp "$work/value.nl" "$work/memccat.out"
run_sealed memcslap "$cconf" memcslap "$servers" --concurrency=20 --execute-number=500 --test=set
check "memcslap: 20 concurrent clients, exit 0" test "$rc" -eq 0
[[ $rc -eq 0 ]] || show_files memcslap memcached
run_sealed memcstat "$cconf" memcstat "$servers"
sets=$(sed -n 's/^[[:space:]]*cmd_set: //p' "$work/memcstat.out")
check "memcstat: the server counted at least 10,001 sets (it says ${sets:-nothing})" \
    test "${sets:-0}" -ge 10001
stop_group "$server_pgid"
wire_checks mc memcached
agent_checks memcached /usr/bin/memcached "/usr/bin/memc(cp|cat|slap|stat)" 23
