# Row mixed-nginx: a sealed client against a server with its own TLS. nginx, not preloaded,
# serves HTTPS itself (TLS 1.3 only, the server identity's certificate, ssl_verify_client on
# with the test CA); curl, sealed, speaks plain HTTP to 127.0.0.1 and the shim's TLS carries
# it (the client rule: identity alice, expect name:localhost). Without sealsock nginx would
# answer curl's plaintext with 400; the access log names the client certificate nginx verified.
# shellcheck shell=bash
nginx_seal=-
nginx_listen=ssl
nginx_http="log_format mixed '\$status \$body_bytes_sent \$ssl_protocol \$ssl_client_verify \"\$ssl_client_s_dn\"';
    access_log $work/nginx/access.log mixed;"
nginx_server="ssl_certificate $pki/server.pem;
        ssl_certificate_key $pki/server.key;
        ssl_protocols TLSv1.3;
        ssl_verify_client on;
        ssl_client_certificate $pki/ca.pem;"
# shellcheck source=../programs/nginx.sh
source "$here/programs/nginx.sh"
result "curl (sealed) against nginx with its own TLS (not sealed)" \
    "$nginx_version; $(curl --version | head -1 | cut -d' ' -f1-2); $(openssl version | cut -d' ' -f1-2) in nginx" \
    "curl speaks plain HTTP, the shim's TLS 1.3 reaches nginx's own (ssl_verify_client on, the test CA): two 8 MiB files on one connection (cmp); nginx's access log: 200, TLSv1.3, the client certificate verified as CN=alice; the wire; the client agent's log"
nginx_curl_both 8
stop_group "$server_pgid"
size=$(stat -c %s "$ng/www/a.bin")
check "nginx's access log: both answers 200 with the whole file, over TLSv1.3, to the client certificate it verified: CN=alice" \
    bash -c "cat '$ng/access.log'; [[ \$(grep -cx '200 $size TLSv1.3 SUCCESS \"CN=alice\"' '$ng/access.log') -eq 2 ]]"
wire_checks curl "nginx (its own TLS) <- curl (sealed)"
check "curl: both files came over one connection" grep -q '^connections 1,' "$work/curl.wirecheck"
check "the client agent sealed curl's connection as alice, to CN=localhost, nothing failed" bash -c \
    "grep -Eq 'handshake started: pid [0-9]+ \\(/usr/bin/curl\\) as client .*identity alice' '$work/client.log' &&
     grep -q 'handshake done: .*: peer CN=localhost, suite' '$work/client.log' &&
     ! grep -E 'handshake failed|refused a' '$work/client.log'"
