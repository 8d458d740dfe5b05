# Row node: a Node.js http server and client (programs/node_http.js: the http module on libuv's
# epoll loop), 4 POSTs at once over a keep-alive agent of 2 sockets, 8 MiB up and 8 MiB down
# on each, every body's SHA-256 checked by the side that read it.
# shellcheck shell=bash
node_js=$here/programs/node_http.js
result "Node.js http (server and client)" "Node.js $(node --version)" \
    "4 POSTs at once over 2 kept-alive connections, 8 MiB up and 8 MiB down on each, the server checks every upload's SHA-256 and the client every download's; the wire; both agents' logs"
payload "$work/up.bin" 8
payload "$work/down.bin" 8
size=$(stat -c %s "$work/up.bin")  # 8 MiB and the marker
start_server node-server "$sconf" /usr/bin/node "$node_js" server "$work/node.port" "$work/down.bin"
for _ in $(seq 100); do [[ -s $work/node.port ]] && break; sleep 0.05; done
relay_to node "$(cat "$work/node.port")"
run_sealed node-client "$cconf" /usr/bin/node "$node_js" client "$rport" "$work/up.bin" "$work/down.bin" 4
check "node client: 4 answers of 8 MiB, each body's SHA-256 the server's file's, each upload's SHA-256 as the server computed it" \
    bash -c "[[ $rc -eq 0 ]] && grep -qx 'verified 4 of 4, $size bytes each way' '$work/node-client.out'"
[[ $rc -eq 0 ]] || show_files node-client node-server
up_sum=$(sha256sum <"$work/up.bin" | cut -d' ' -f1)
check "node server: 4 uploads of 8 MiB read, each with the file's SHA-256" bash -c \
    "[[ \$(grep -cx 'received $size bytes, sha256 $up_sum' '$work/node-server.out') -eq 4 ]]"
stop_group "$server_pgid"
wire_checks node node
check "node: the 4 requests shared 2 kept-alive connections" grep -q '^connections 2,' "$work/node.wirecheck"
agent_checks node /usr/bin/node /usr/bin/node 2
