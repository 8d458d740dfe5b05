# Row mixed-curl: real TLS clients, not preloaded, against a sealed plaintext server. Python's
# http.server (plain HTTP) under the shim with the inbound rule that lets in cn:alice only;
# curl --cert and openssl s_client -cert speak HTTPS to it with alice's certificate and get the
# file; the same clients with bob's certificate (outside the access list) or none are refused
# and get nothing. Without sealsock the server would answer a ClientHello with 400, not a file.
# shellcheck shell=bash
result "curl and openssl s_client (their own TLS, not sealed) against Python http.server (sealed)" \
    "$(curl --version | head -1 | cut -d' ' -f1-2); $(openssl version | cut -d' ' -f1-2); $(/usr/bin/python3 --version)" \
    "with alice's certificate: curl (two 8 MiB files, a connection each: http.server speaks HTTP/1.0) and s_client (HTTP/1.0 GET) get them intact (cmp); with bob's (not in the access list) or none: refused, no byte of the body, the agent says why; the wire; the server agent's log"
mkdir "$work/www"
payload "$work/www/a.bin" 8
payload "$work/www/b.bin" 8
port=$(free_port)
start_server http "$sconf" /usr/bin/python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$port"
wait_listen "$port"
relay_to tls "$port"
url=https://127.0.0.1:$rport
curl_tls=(curl -sS --fail --cacert "$pki/ca.pem")
s_client=(openssl s_client -connect "127.0.0.1:$rport" -CAfile "$pki/ca.pem" -verify_return_error -quiet -ign_eof)
http_get=$'GET /a.bin HTTP/1.0\r\n\r\n'
declare -A curl_rc s_client_rc
for who in alice bob none; do
    cert=()
    [[ $who == none ]] || cert=(--cert "$pki/$who.pem" --key "$pki/$who.key")
    run_sealed "curl-$who" - "${curl_tls[@]}" "${cert[@]}" -o "$work/a.$who" "$url/a.bin" -o "$work/b.$who" "$url/b.bin"
    curl_rc[$who]=$rc
    [[ $who == none ]] || cert=(-cert "$pki/$who.pem" -key "$pki/$who.key")
    with_config - "${s_client[@]}" "${cert[@]}"
    rc=0
    "${cmd[@]}" <<<"$http_get" >"$work/s_client-$who.out" 2>"$work/s_client-$who.err" || rc=$?
    s_client_rc[$who]=$rc
done
check "curl with alice's certificate: exit 0, two 8 MiB files intact (cmp)" bash -c \
    "[[ ${curl_rc[alice]} -eq 0 ]] && cmp '$work/www/a.bin' '$work/a.alice' && cmp '$work/www/b.bin' '$work/b.alice'"
[[ ${curl_rc[alice]} -eq 0 ]] || show_files curl-alice http
size=$(stat -c %s "$work/www/a.bin")
check "s_client with alice's certificate: exit 0, HTTP 200, the 8 MiB file intact after the headers (cmp)" bash -c \
    "[[ ${s_client_rc[alice]} -eq 0 ]] && head -1 '$work/s_client-alice.out' | grep -q '^HTTP/1.0 200 OK' &&
     tail -c $size '$work/s_client-alice.out' | cmp - '$work/www/a.bin'"
[[ ${s_client_rc[alice]} -eq 0 ]] || show_files s_client-alice http
for who in bob none; do
    check "curl with ${who/none/no} certificate: refused (TLS alert), no file written" bash -c \
        "[[ ${curl_rc[$who]} -ne 0 ]] && [[ ! -e '$work/a.$who' && ! -e '$work/b.$who' ]] &&
         grep -Eq 'alert (access denied|certificate required)' '$work/curl-$who.err'"
    check "s_client with ${who/none/no} certificate: refused (TLS alert), nothing read" bash -c \
        "[[ ${s_client_rc[$who]} -ne 0 && ! -s '$work/s_client-$who.out' ]] &&
         grep -Eq 'alert (access denied|certificate required)' '$work/s_client-$who.err'"
done
stop_group "$server_pgid"
wire_checks tls "curl and s_client -> http.server (sealed)"
# Each client's three connections (curl tries its second file after the first is refused).
check "9 connections crossed the relay" grep -q '^connections 9,' "$work/tls.wirecheck"
check "the server agent: 3 handshakes for python3 from CN=alice, 3 refused for bob (not in the access list), 3 for no certificate" bash -c \
    "grep -Eq 'handshake started: pid [0-9]+ \\(/usr/bin/python3[.0-9]*\\) as server' '$work/server.log' &&
     [[ \$(grep -c 'handshake done: .*: peer CN=alice, suite' '$work/server.log') -eq 3 &&
        \$(grep -c 'handshake failed: .*identity CN=bob is not in the access list of service echo' '$work/server.log') -eq 3 &&
        \$(grep -c 'handshake failed: .*presented no certificate' '$work/server.log') -eq 3 ]]"
