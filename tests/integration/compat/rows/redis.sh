# Row redis: redis-server sealed, with redis-cli (SET and GET of a 1 MiB binary value, compared
# with cmp) and redis-benchmark (20 connections, SET/GET/INCR/LPUSH, then the counter and the
# list hold exactly the number of requests made: nothing lost, nothing doubled).
# shellcheck shell=bash
n=10000
result "redis-server; redis-cli; redis-benchmark" \
    "$(redis-server --version | sed 's/ sha=.*//'); $(redis-cli --version)" \
    "redis-cli: SET and GET of a 1 MiB binary value (cmp); redis-benchmark: 20 connections, $n each of SET, GET, INCR, LPUSH, no errors, then INCR's counter = $n and LLEN = $n; the wire; both agents' logs"
mkdir "$work/redis"
port=$(free_port)
start_server redis "$sconf" redis-server --bind 127.0.0.1 --port "$port" --dir "$work/redis" \
    --save "" --appendonly no --daemonize no --logfile ""
wait_listen "$port"
relay_to redis "$port"
cli=(redis-cli -h 127.0.0.1 -p "$rport")

payload "$work/value" 1
run_sealed redis-set "$cconf" bash -c '"$@" -x SET big <"$0"' "$work/value" "${cli[@]}"
check "redis-cli SET of 1 MiB: OK" grep -qx OK "$work/redis-set.out"
run_sealed redis-get "$cconf" "${cli[@]}" --raw GET big
{ cat "$work/value"; echo; } >"$work/value.nl"
check "redis-cli GET: the 1 MiB value came back byte for byte (cmp)" cmp "$work/value.nl" "$work/redis-get.out"

run_sealed redis-bench "$cconf" redis-benchmark -h 127.0.0.1 -p "$rport" -c 20 -n "$n" \
    -t set,get,incr,lpush --csv
check "redis-benchmark: exit 0, four tests reported, no error" bash -c \
    "[[ $rc -eq 0 ]] && [[ \$(grep -Ec '^\"(SET|GET|INCR|LPUSH[^\"]*)\",\"[0-9.]+\"' '$work/redis-bench.out') -eq 4 ]] &&
     ! grep -qi error '$work/redis-bench.out' '$work/redis-bench.err'"
[[ $rc -eq 0 ]] || show_files redis-bench redis
run_sealed redis-count "$cconf" "${cli[@]}" GET counter:__rand_int__
check "redis-benchmark: INCR ran exactly $n times (the counter says $(cat "$work/redis-count.out"))" \
    grep -qx "$n" "$work/redis-count.out"
run_sealed redis-llen "$cconf" "${cli[@]}" LLEN mylist
check "redis-benchmark: LPUSH ran exactly $n times (LLEN says $(cat "$work/redis-llen.out"))" \
    grep -qx "$n" "$work/redis-llen.out"

stop_group "$server_pgid"
wire_checks redis redis
agent_checks redis "/usr/bin/redis-check-rdb" "/usr/bin/redis-(cli|benchmark)" 24
# (redis-server is a link to redis-check-rdb; the agent logs the resolved executable)
