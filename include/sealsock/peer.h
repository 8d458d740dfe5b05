/* What a sealed program may ask the shim about one of its sealed connections: who the peer
   proved to be. libsealsock.so exports sealsock_peer(); a program that wants it looks it up with
   dlsym(RTLD_DEFAULT, "sealsock_peer") so that it still runs without the shim (and then knows it
   runs without it: a null symbol). Plain C, so any program can use it. */
#ifndef SEALSOCK_PEER_H
#define SEALSOCK_PEER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sealsock_peer_info {
    char subject[256];    /* the peer certificate's subject, RFC 2253 form ("CN=alice,O=eng") */
    char fingerprint[65]; /* hex SHA-256 of the peer's DER certificate, lower case */
    char identity[96];    /* the identity this end presented (the agent's NAME) */
    char rule[96];        /* the config rule that sealed the connection */
    uint16_t suite;       /* the TLS 1.3 cipher suite, IANA number (0x1301, 0x1302, 0x1303) */
    uint8_t server;       /* 1: this end accepted the connection; 0: it connected */
};

/* Fills *out for the sealed connection on `fd` once its handshake has succeeded.
   timeout_ms: how long to wait for a handshake still running (0: do not wait; -1: until it
   ends). Returns 0, or -1 with errno:
     ENOTCONN   fd is not a sealed connection (a plain socket, or not a socket at all: EBADF)
     EAGAIN     the handshake is still running after timeout_ms
     ECONNREFUSED, ECONNRESET, EACCES, ...  the handshake failed (the errno the program's own
                calls on the fd report)
   Never blocks a signal or takes a lock another process may hold for long. */
typedef int (*sealsock_peer_fn)(int fd, struct sealsock_peer_info* out, int timeout_ms);
int sealsock_peer(int fd, struct sealsock_peer_info* out, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* SEALSOCK_PEER_H */
