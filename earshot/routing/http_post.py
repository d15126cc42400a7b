"""POSTs webhook bodies over kept-alive connections, one per sending thread and host.

Every CPU millisecond the sender spends is taken from the service's requests on the same cores, and
the standard library's ``http.client`` costs a fraction of httpx's CPU per POST (``docs/routing.md``),
so the sender uses it directly. What a plain
``http.client`` lacks and a webhook sender needs is here: a connection kept per thread and
(scheme, host, port), one fresh try when a kept connection turns out closed by the receiver, TLS with
the system's certificates, and the ``HTTP(S)_PROXY`` / ``NO_PROXY`` environment (a tunnel for https).
Redirects are not followed: a 3xx is a failed try, as it was with httpx.

Example:
    >>> client = KeepAliveClient(timeout=10)
    >>> client.post("http://127.0.0.1:9/hook", b"{}", {"Content-Type": "application/json"})  # doctest: +SKIP
    204
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
import urllib.request
from urllib.parse import unquote, urlsplit

# what a receiver's closing of an idle kept-alive connection looks like on the next request
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class KeepAliveClient:
    """POST ``body`` to a URL; answers the status code or raises (``OSError``, ``http.client.HTTPException``).

    ``timeout`` bounds connecting, and each wait for the network after it, in seconds.
    """

    def __init__(self, timeout: float, ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[http.client.HTTPConnection] = []

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http:// or https:// URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, parts.hostname, port)
        connections = self._connections()
        reused = key in connections
        connection, prefix, proxy_headers = connections[key] if reused else self._connect(key, connections)
        path = prefix + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {**headers, **proxy_headers}
        try:
            return self._exchange(connection, path, body, headers)
        except _STALE:
            self._drop(key, connections)
            if not reused:
                raise
        except BaseException:
            self._drop(key, connections)
            raise
        # the receiver had closed the kept connection: this POST never reached it, so one fresh try
        connection, _, _ = self._connect(key, connections)
        try:
            return self._exchange(connection, path, body, headers)
        except BaseException:
            self._drop(key, connections)
            raise

    def close(self) -> None:
        """Close every connection any thread opened."""
        with self._lock:
            opened, self._open = self._open, []
        for connection in opened:
            connection.close()

    def _connections(self) -> dict:
        if not hasattr(self._local, "connections"):
            self._local.connections = {}
        return self._local.connections

    def _exchange(self, connection: http.client.HTTPConnection, path: str, body: bytes,
                  headers: dict[str, str]) -> int:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()  # the whole answer, so that the connection can carry the next request
        if response.will_close:
            connection.close()  # the next request on it reconnects
        return response.status

    def _connect(self, key: tuple[str, str, int], connections: dict) -> tuple[http.client.HTTPConnection, str, dict]:
        """A new connection for ``key``, what goes before a URL's path in the request line on it (the
        scheme and host through an http proxy, else nothing) and the headers each request adds."""
        scheme, host, port = key
        proxy = _proxy_for(scheme, host)
        prefix, proxy_headers = "", {}
        if proxy is None:
            connection = (http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self.ssl_context)
                          if scheme == "https" else http.client.HTTPConnection(host, port, timeout=self.timeout))
        else:
            proxy_host, proxy_port, authorization = proxy
            if scheme == "https":
                connection = http.client.HTTPSConnection(proxy_host, proxy_port, timeout=self.timeout,
                                                         context=self.ssl_context)
                connection.set_tunnel(host, port, headers=authorization)
            else:
                connection = http.client.HTTPConnection(proxy_host, proxy_port, timeout=self.timeout)
                prefix, proxy_headers = f"http://{host}:{port}", authorization
        connections[key] = (connection, prefix, proxy_headers)
        with self._lock:
            self._open.append(connection)
        return connection, prefix, proxy_headers

    def _drop(self, key: tuple[str, str, int], connections: dict) -> None:
        entry = connections.pop(key, None)
        if entry is not None:
            entry[0].close()
            with self._lock:
                if entry[0] in self._open:
                    self._open.remove(entry[0])


def _proxy_for(scheme: str, host: str) -> tuple[str, int, dict[str, str]] | None:
    """The proxy the environment names for ``scheme`` (``HTTPS_PROXY`` ...), unless ``NO_PROXY`` spares
    ``host``: its host, port and ``Proxy-Authorization`` header, if the proxy URL has a user."""
    proxy_url = urllib.request.getproxies().get(scheme)
    if not proxy_url or urllib.request.proxy_bypass(host):
        return None
    proxy = urlsplit(proxy_url if "://" in proxy_url else f"http://{proxy_url}")
    authorization = {}
    if proxy.username is not None:
        user = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
        authorization["Proxy-Authorization"] = "Basic " + base64.b64encode(user).decode()
    return proxy.hostname, proxy.port or 80, authorization
