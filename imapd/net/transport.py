"""The transport methods the connections use, typed for mypy without the
zope plugin: shared by the line protocols (``imapd.net.connection``) and the
LMTP connection, which frames its input itself."""

from __future__ import annotations

from typing import Protocol


class Transport(Protocol):
    """The transport methods we use (``ITCPTransport`` and ``IProducer``),
    typed for mypy without the zope plugin."""

    def write(self, data: bytes) -> None: ...

    def loseConnection(self) -> None: ...

    def getPeer(self) -> object: ...

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    def startTLS(self, contextFactory: object) -> None: ...
