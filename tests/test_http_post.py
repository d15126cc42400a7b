"""The webhook sender's HTTP client, against real local servers: kept-alive connections, a receiver that
closes them, a proxy named by the environment, redirects and timeouts."""

from __future__ import annotations

import base64
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from earshot.routing.http_post import KeepAliveClient


class Server:
    """Counts connections and records each POST's request line target and headers."""

    def __init__(self, status: int = 200, close_silently: bool = False) -> None:
        self.connections, self.posts = 0, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                server.connections += 1

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.posts.append((self.path, dict(self.headers.items()), body))
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                # HTTP/1.1 without "Connection: close", then the socket closed: as a receiver whose
                # idle timeout ended a kept connection; the client learns it on its next request
                self.close_connection = close_silently

            def log_message(self, *args) -> None:
                return

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy",
                 "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(no_proxy_env: None) -> Iterator[Server]:
    running = Server()
    yield running
    running.close()


def test_posts_from_one_thread_share_one_kept_connection(server: Server) -> None:
    client = KeepAliveClient(timeout=5)
    statuses = [client.post(server.url + "?n=1", b'{"a": 1}', {"Content-Type": "application/json"})
                for _ in range(5)]
    client.close()
    assert statuses == [200] * 5
    assert server.connections == 1
    assert [path for path, _, _ in server.posts] == ["/hook?n=1"] * 5
    assert server.posts[0][2] == b'{"a": 1}' and server.posts[0][1]["Content-Type"] == "application/json"


def test_each_thread_keeps_its_own_connection(server: Server) -> None:
    client = KeepAliveClient(timeout=5)
    threads = [threading.Thread(target=lambda: [client.post(server.url, b"{}", {}) for _ in range(3)]) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    assert len(server.posts) == 9 and server.connections == 3


def test_a_connection_the_receiver_closed_is_reopened_and_the_post_sent_once(no_proxy_env: None) -> None:
    closing = Server(close_silently=True)
    client = KeepAliveClient(timeout=5)
    try:
        statuses = [client.post(closing.url, str(n).encode(), {}) for n in range(4)]
    finally:
        client.close()
        closing.close()
    assert statuses == [200] * 4
    assert [body for _, _, body in closing.posts] == [b"0", b"1", b"2", b"3"]
    assert closing.connections == 4


def test_redirects_are_answered_not_followed(no_proxy_env: None) -> None:
    moved = Server(status=302)
    try:
        assert KeepAliveClient(timeout=5).post(moved.url, b"{}", {}) == 302
    finally:
        moved.close()
    assert len(moved.posts) == 1


def test_a_receiver_that_never_answers_fails_the_post_after_the_timeout(no_proxy_env: None) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # the kernel accepts the connection; nobody reads or answers
    started = time.monotonic()
    try:
        with pytest.raises(OSError):
            KeepAliveClient(timeout=0.5).post(f"http://127.0.0.1:{silent.getsockname()[1]}/hook", b"{}", {})
    finally:
        silent.close()
    assert time.monotonic() - started < 5


def test_an_http_proxy_from_the_environment_gets_the_absolute_url_and_its_credentials(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    port = server.http.server_address[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://jo:s%40cret@127.0.0.1:{port}")
    # the proxy server itself stands in for the receiver: it sees the request a proxy would
    assert KeepAliveClient(timeout=5).post("http://receiver.example:8080/in?x=1", b"{}", {}) == 200
    [(target, headers, _)] = server.posts
    assert target == "http://receiver.example:8080/in?x=1"
    assert headers["Proxy-Authorization"] == "Basic " + base64.b64encode(b"jo:s@cret").decode()


def test_no_proxy_spares_the_hosts_it_names(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert KeepAliveClient(timeout=5).post(server.url, b"{}", {}) == 200
    assert server.posts[0][0] == "/hook"


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="ftp://x/y"):
        KeepAliveClient(timeout=5).post("ftp://x/y", b"{}", {})
