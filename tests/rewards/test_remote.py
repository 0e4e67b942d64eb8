"""Remote reward against a JSON server on 127.0.0.1 started by the test (short timeouts, bounded retries)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rlhf_lightning.errors import ConfigError, PluginError
from rlhf_lightning.plugin_output import checked_scores
from rlhf_lightning.rewards.remote import RemoteReward


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        server.requests.append((self.path, body, dict(self.headers)))
        scores = [float(len(c)) for c in body["completions"]]
        status, payload = 200, json.dumps({"scores": scores}).encode()
        if self.path == "/slow":
            time.sleep(0.6)
        elif self.path == "/malformed":
            payload = b"{scores: oops"
        elif self.path == "/wrong-count":
            payload = json.dumps({"scores": scores[:-1]}).encode()
        elif self.path == "/missing-key":
            payload = json.dumps({"result": scores}).encode()
        elif self.path == "/nan":
            payload = b'{"scores": [1.0, NaN]}'
        elif self.path == "/strings":
            payload = json.dumps({"scores": ["good", "bad"]}).encode()
        elif self.path == "/flaky" and sum(p == "/flaky" for p, _, _ in server.requests) == 1:
            status, payload = 503, b"busy"
        elif self.path == "/bad-request":
            status, payload = 400, b"prompts too long"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture()
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server, path):
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_good_answer_sends_prompts_completions_and_columns(server, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "s3cret")
    reward = RemoteReward(url(server, "/good"), timeout=2, api_key_env="JUDGE_KEY", batch_size=2)
    scores = checked_scores(reward, ["p1", "p2", "p3"], ["a", "bb", "ccc"], {"answer": ["x", "y", "z"]}, name="judge")
    assert scores == [1.0, 2.0, 3.0]
    # batch_size 2 -> two requests, sent concurrently (in either order)
    (_, first, headers), (_, second, _) = sorted(server.requests, key=lambda r: r[1]["prompts"])
    assert first == {"prompts": ["p1", "p2"], "completions": ["a", "bb"], "answer": ["x", "y"]}
    assert second == {"prompts": ["p3"], "completions": ["ccc"], "answer": ["z"]}
    assert headers["Authorization"] == "Bearer s3cret" and headers["Content-Type"] == "application/json"


def test_slow_answer_times_out_after_bounded_retries(server):
    reward = RemoteReward(url(server, "/slow"), timeout=0.2, retries=1, backoff=0.05)
    start = time.monotonic()
    with pytest.raises(PluginError, match=r"failed after 2 attempt\(s\): gave no complete answer within 0.2 s"):
        reward(["p"], ["c"])
    assert time.monotonic() - start < 2.0
    assert len(server.requests) == 2


@pytest.mark.parametrize(("path", "match"), [
    ("/malformed", r"answered with invalid JSON .*'\{scores: oops'"),
    ("/wrong-count", r"returned 1 scores for 2 samples"),
    ("/missing-key", r"has no 'scores' key \(got \['result'\]\)"),
    ("/nan", r"non-finite score \(nan\) for sample 1 \(prompt 'p2'\)"),
    ("/strings", r"non-numeric score 'good' \(str\) for sample 0"),
    ("/bad-request", r"answered HTTP 400: prompts too long"),
])
def test_bad_answers_raise_at_once(server, path, match):
    reward = RemoteReward(url(server, path), timeout=2, retries=3, backoff=0)
    with pytest.raises(PluginError, match=match):
        reward(["p1", "p2"], ["a", "b"])
    assert len(server.requests) == 1  # not retried


def test_server_error_is_retried(server):
    reward = RemoteReward(url(server, "/flaky"), timeout=2, retries=2, backoff=0.01)
    assert reward(["p1", "p2"], ["a", "bb"]) == [1.0, 2.0]
    assert len(server.requests) == 2


def test_connection_refused_is_retried_then_reported():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reward = RemoteReward(f"http://127.0.0.1:{port}/", timeout=0.5, retries=2, backoff=0.01)
    with pytest.raises(PluginError, match=r"failed after 3 attempt\(s\): connection failed"):
        reward(["p"], ["c"])


def test_config_checks():
    with pytest.raises(ConfigError, match="http"):
        RemoteReward("ftp://x")
    with pytest.raises(ConfigError):
        RemoteReward("http://x", timeout=0)
    with pytest.raises(ConfigError, match="JUDGE_MISSING is not set"):
        RemoteReward("http://127.0.0.1:9/", api_key_env="JUDGE_MISSING")(["p"], ["c"])
    with pytest.raises(PluginError, match="not JSON-serialisable"):
        RemoteReward("http://127.0.0.1:9/")(["p"], ["c"], blob=[object()])
