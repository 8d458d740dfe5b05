# Row postgres: PostgreSQL's postmaster (it forks a backend per connection, which carries the
# sealed connection on) sealed, with psql (CREATE, \copy in of 10,000 rows, queries, \copy out
# compared with cmp) and pgbench (8 clients for 5 s: no failed transaction, and the TPC-B
# books balance: the accounts' balances add up to the history's deltas).
# The postmaster refuses to run as root, so it runs as `postgres` with an agent of its own (an
# agent serves its own uid only) holding a copy of the server identity.
# shellcheck shell=bash
pgbin=/usr/lib/postgresql/15/bin
result "PostgreSQL (postmaster); psql; pgbench" \
    "$("$pgbin/postgres" --version); $("$pgbin/psql" --version); $("$pgbin/pgbench" --version)" \
    "postmaster forking a backend per connection; psql: CREATE TABLE, \\copy in of 10,000 rows, count and sum, \\copy out compared with cmp; pgbench: 8 clients for 5 s, 0 failed transactions, sum(abalance) = sum(delta); the wire; both agents' logs"
pg=$work/pg
chmod 711 "$work"
mkdir -m 700 "$pg"
cp "$pki/ca.pem" "$pki/server.pem" "$pki/server.key" "$pg/"
chown -R postgres:postgres "$pg"
as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)
"${as_pg[@]}" "$agent_bin" --foreground --socket "$pg/agent.sock" --trust "$pg/ca.pem" \
    --identity server --cert "$pg/server.pem" --key "$pg/server.key" 2>"$pg/agent.log" &
pids+=($!)
wait_socket "$pg/agent.sock" || { cat "$pg/agent.log"; echo "FAIL the postgres agent did not start"; exit 1; }
agent_log_server=$pg/agent.log
sed "s#^agent_socket = .*#agent_socket = \"$pg/agent.sock\"#; s#^audit_log = .*#audit_log = \"stderr\"#" \
    "$sconf" >"$pg/server.toml"
check "initdb" "${as_pg[@]}" "$pgbin/initdb" -D "$pg/data" -A trust -U postgres --no-sync
port=$(free_port)
start_server postgres "$pg/server.toml" "${as_pg[@]}" "$pgbin/postgres" -D "$pg/data" \
    -h 127.0.0.1 -p "$port" -k "$pg" -c fsync=off -c max_connections=40
wait_listen "$port"
relay_to pg "$port"
db=(-h 127.0.0.1 -p "$rport" -U postgres -d postgres)

# 10,000 rows: id, a text with the plaintext marker in it, a number.
for i in $(seq 10000); do printf '%d\t%s-%d-%s\t%d\n' "$i" "$marker" "$i" "$RANDOM$RANDOM" "$((i * 7))"; done \
    >"$work/rows.tsv"
cat >"$work/psql.sql" <<SQL
\\set ON_ERROR_STOP 1
CREATE TABLE t (id integer PRIMARY KEY, note text NOT NULL, n bigint NOT NULL);
\\copy t FROM '$work/rows.tsv'
SELECT count(*), sum(id), sum(n) FROM t;
\\copy (SELECT * FROM t ORDER BY id) TO '$work/rows.out'
SQL
run_sealed psql "$cconf" "$pgbin/psql" "${db[@]}" -X -A -t -f "$work/psql.sql"
check "psql: exit 0 (CREATE TABLE, \\copy in, SELECT, \\copy out)" test "$rc" -eq 0
[[ $rc -eq 0 ]] || show_files psql postgres
check "psql: count, sum(id), sum(n) are 10000, 50005000, 350035000" grep -qx '10000|50005000|350035000' "$work/psql.out"
check "psql: the 10,000 rows read back are the rows written (cmp)" cmp "$work/rows.tsv" "$work/rows.out"

run_sealed pgbench-init "$cconf" "$pgbin/pgbench" "${db[@]}" -i -s 1 -q
check "pgbench -i: exit 0" test "$rc" -eq 0
[[ $rc -eq 0 ]] || show_files pgbench-init postgres
run_sealed pgbench "$cconf" "$pgbin/pgbench" "${db[@]}" -c 8 -j 2 -T 5
check "pgbench: 8 clients, transactions processed, none failed" bash -c \
    "[[ $rc -eq 0 ]] && grep -Eq '^number of transactions actually processed: [1-9]' '$work/pgbench.out' &&
     grep -qx 'number of failed transactions: 0 (0.000%)' '$work/pgbench.out'"
[[ $rc -eq 0 ]] || show_files pgbench postgres
notes+=("pgbench: $(grep -E '^(number of transactions actually|tps)' "$work/pgbench.out" | tr '\n' ' ')")
run_sealed pg-books "$cconf" "$pgbin/psql" "${db[@]}" -X -A -t -c \
    "SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(delta) FROM pgbench_history), (SELECT count(*) FROM pgbench_history)"
check "pgbench: sum(abalance) = sum(delta) over $(cut -d'|' -f2 "$work/pg-books.out") history rows" \
    grep -Eqx 't\|[1-9][0-9]*' "$work/pg-books.out"

stop_group "$server_pgid"
wire_checks pg postgres
agent_checks postgres "$pgbin/postgres" "$pgbin/(psql|pgbench)" 12
