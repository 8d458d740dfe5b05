// The shim's one background thread per process (DESIGN, "Concurrency"): it finishes nonblocking
// connects, talks to the agent for every handshake in flight, flushes the tails of records the
// kernel took only in part (DESIGN I3), and closes and frees retired sessions.
//
// It is started lazily by the first call that needs it. It blocks every signal, owns an epoll
// set and an eventfd, and touches sockets only through session anchors (session.h), so the
// program's own fd numbers can be closed and reused at any time. Agent connections are
// nonblocking and multiplexed: a slow peer or a slow agent delays only its own handshake.
//
// Each call below posts a command and returns at once; none blocks on the network. They may be
// called from any thread except a signal handler (they lock and may allocate). A session passed
// in must stay alive until the background thread retires it: callers never free sessions.
#pragma once

#include <string>

namespace sealsock {
class Session;
}

namespace sealsock::background {

// The session's nonblocking connect is in progress: wait for the socket to turn writable, then
// ask the agent (or fail the session with the connect's error).
void await_connect(Session& session);

// Ask the agent for the handshake on the session's anchor (state handshaking).
void start_handshake(Session& session);

// The session has a tail or held bytes to send: pump() it whenever the anchor turns writable
// until it reports nothing left.
void await_writable(Session& session);

// The program closed the session's fd: cancel its handshake, finish its tail, close the anchor
// and free the session once no call is inside it.
void retire(Session& session);

// Takes `anchor` out of the epoll set now, from the calling thread (before the anchor is closed
// and its number can be reused).
void forget(int anchor);

// Around fork(), from the forking thread: before_fork() waits briefly for the thread to be idle
// and holds it there; after_fork_in_parent() (also after a failed fork) lets it go on.
void before_fork();
void after_fork_in_parent();

// At exit, once the sessions have ended: the thread stops working for good (it holds OpenSSL
// state, and OpenSSL's own exit handler frees OpenSSL right after).
void park_for_exit();

// In a forked child: the parent's thread does not exist here; forget it (closing the child's
// copies of its fds) so the next command starts a new one.
void reset_in_child();

// The agent socket sessions use (from the config, else the agent's default path); set before
// the first handshake.
void set_agent_socket(std::string path);

}  // namespace sealsock::background
