"""A client for a running app's /api/ask that keeps its connection open, so that a query's time
is the app's and not the TCP handshake's."""

from __future__ import annotations

import http.client
import urllib.parse


class ApiClient:
    """GET /api/ask over one keep-alive connection; reconnects once if the server closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def ask(self, question: str) -> bytes:
        path = "/api/ask?" + urllib.parse.urlencode({"q": question, "k": 3})
        for attempt in (1, 2):
            try:
                self.conn.request("GET", path)
                response = self.conn.getresponse()
                body = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt == 2:
                    raise
        if response.status != 200:
            raise RuntimeError(f"/api/ask returned {response.status}: {body[:200]!r}")
        return body

    def close(self) -> None:
        self.conn.close()
