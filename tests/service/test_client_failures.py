"""The client against a server that breaks off mid-reply or is not the bridge: one sentence each."""

from __future__ import annotations

import http.server
import threading

import pytest

from bridge.errors import BridgeError
from bridge.service.client import BridgeClient


class _Broken(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 -- the standard library's name
        if self.path == "/v1/health" or self.path.startswith("/v1/jobs/"):  # promises 442 bytes, sends 5, hangs up
            self.send_response(200)
            self.send_header("Content-Length", "442")
            self.end_headers()
            self.wfile.write(b'{"sta')
            self.wfile.flush()
            self.close_connection = True
        else:  # another program on the port
            body = b"<html>hello</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def broken_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_reply_cut_off_midway_is_one_sentence(broken_url):
    with pytest.raises(BridgeError, match="No answer from the bridge .*IncompleteRead.*start it with"):
        BridgeClient(broken_url, token="x", timeout=5).health()


def test_an_answer_that_is_not_json_says_another_program_may_hold_the_port(broken_url):
    with pytest.raises(BridgeError, match="not JSON; is another program on that port"):
        BridgeClient(broken_url, token="x", timeout=5).info()


def test_a_download_cut_off_midway_is_one_sentence_and_leaves_no_file(broken_url, tmp_path):
    target = tmp_path / "field.npz"
    with pytest.raises(BridgeError, match="No answer from the bridge .*start it with"):
        BridgeClient(broken_url, token="x", timeout=5).download("0123456789abcdef", "field.npz", target)
    assert list(tmp_path.iterdir()) == []
