"""uvicorn's h11 protocol with a deadline on each request: its head and body must have arrived
`timeout_s` after the connection began waiting for it, or the connection is closed.

uvicorn (0.54, h11) has no such timeout: its keep-alive timer stops at the first byte that comes,
so a client sending its headers a byte at a time, or a body that never ends, would hold a
connection forever. The deadline starts when the connection opens or a response has been sent,
and stops once the request is complete (the route's own work is not timed). A body refused
early (413) is read and thrown away until it ends or the same deadline passes.
"""

from __future__ import annotations

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_RECEIVING = (h11.IDLE, h11.SEND_BODY)


class DeadlineH11Protocol(H11Protocol):
    timeout_s: float = 15.0
    _deadline = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Start the deadline when the connection waits for (more of) a request; stop it when not."""
        receiving = self.conn.their_state in _RECEIVING and not self.transport.is_closing()
        if receiving and self._deadline is None:
            self._deadline = self.loop.call_later(self.timeout_s, self._expired)
        elif not receiving and self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.logger.info("Closed a connection that sent no complete request within %g s.", self.timeout_s)
            self.transport.close()


def with_deadline(timeout_s: float) -> type[DeadlineH11Protocol]:
    """The protocol class (uvicorn's `http=`) with this deadline."""
    return type("DeadlineH11Protocol", (DeadlineH11Protocol,), {"timeout_s": timeout_s})
