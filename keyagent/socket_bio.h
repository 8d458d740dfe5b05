// An OpenSSL BIO over a borrowed socket descriptor that never changes the socket's state.
//
// The descriptor is the program's own open file description (DESIGN fact 5): O_NONBLOCK, socket
// options, the receive queue and shutdown() are shared with the program. So this BIO reads with
// recv(MSG_DONTWAIT) and writes with send(MSG_DONTWAIT | MSG_NOSIGNAL), reports EAGAIN as a
// retry, and never calls fcntl, setsockopt, shutdown or close. OpenSSL's own socket BIO uses
// plain read/write (blocking if the program's socket is blocking, SIGPIPE on a reset peer).
//
// Thread-safety: the BIO_METHOD is created once (thread-safe); each BIO belongs to one SSL and is
// used by one thread at a time.
#pragma once

using BIO = struct bio_st;

namespace sealsock::keyagent {

// What the BIO saw on the socket, for turning a failed handshake into a clear reason.
struct SocketBioStatus {
    int last_errno = 0;  // errno of the last failed recv/send other than EAGAIN/EINTR, or 0
    bool eof = false;    // recv returned 0: the peer closed its side
};

// Creates a BIO over `fd`, which stays owned by the caller: freeing the BIO (BIO_free, or
// SSL_free for an SSL it was given to) leaves the descriptor open and untouched. Returns nullptr
// when OpenSSL cannot allocate. Any thread may call it.
BIO* socket_bio_new(int fd);

// What a BIO made by socket_bio_new has seen so far (a default status for any other BIO).
SocketBioStatus socket_bio_status(BIO* bio);

}  // namespace sealsock::keyagent
