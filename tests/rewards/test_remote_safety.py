"""Remote reward safety and speed, against loopback servers that count what they receive.

Secrets from the environment only where they belong; credentials never over plain http to a
non-loopback host nor to another address on redirect; a whole-request deadline, a size cap,
Retry-After, a bound on concurrent requests, and one error (never a per-sample re-run) on failure.
"""

from __future__ import annotations

import json
import pickle
import time

import pytest

from rlhf_lightning.errors import ConfigError, PluginError
from rlhf_lightning.plugin_output import checked_scores
from rlhf_lightning.rewards.remote import RemoteReward
from tests.rewards.judge_server import send

SECRET = "tok-4f9a1c77e2"
PROMPTS, COMPS = ["p1", "p2", "p3"], ["a", "bb", "ccc"]


def test_secrets_come_from_the_environment_and_stay_out_of_repr_pickle_and_errors(judges, monkeypatch):
    monkeypatch.setenv("JUDGE_TOKEN", SECRET)
    monkeypatch.setenv("JUDGE_KEY", "key-81be20d4")

    def echo_headers(handler, n, body):  # from the 2nd request on, echoes the headers in an error
        if n == 1:
            return False
        send(handler, 400, json.dumps(dict(handler.headers)).encode())
        return True

    judge = judges(echo_headers)
    reward = RemoteReward(judge.url(), api_key_env="JUDGE_TOKEN", headers_from_env={"X-API-Key": "JUDGE_KEY"},
                          headers={"X-Team": "rl"}, retries=0)
    assert reward(PROMPTS, COMPS) == [1.0, 2.0, 3.0]
    _, _, headers = judge.requests[0]
    assert headers["Authorization"] == f"Bearer {SECRET}" and headers["X-API-Key"] == "key-81be20d4"
    assert headers["X-Team"] == "rl"
    for text in (repr(reward), str(pickle.dumps(reward))):
        assert SECRET not in text and "key-81be20d4" not in text
    with pytest.raises(PluginError, match="answered HTTP 400") as info:
        reward(PROMPTS, COMPS)
    assert SECRET not in str(info.value) and "key-81be20d4" not in str(info.value)
    assert "<redacted>" in str(info.value)


@pytest.mark.parametrize("options", [
    {"api_key_env": "JUDGE_TOKEN"},
    {"headers_from_env": {"X-API-Key": "JUDGE_TOKEN"}},
    {"headers": {"Authorization": "Bearer literal"}},
    {"url": "http://user:pw@judge.example.com/score"},
    {"url": "http://judge.example.com/score?api_key=abc"},
], ids=["api_key_env", "headers_from_env", "literal-authorization", "userinfo", "query-key"])
def test_credentials_over_plain_http_need_loopback_or_an_explicit_option(options, monkeypatch):
    monkeypatch.setenv("JUDGE_TOKEN", SECRET)
    options = {"url": "http://judge.example.com/score", **options}
    with pytest.raises(ConfigError, match=r"would go over plain http to judge\.example\.com; use an https:// url, "
                                          r"or set allow_insecure_http: true"):
        RemoteReward(**options)
    RemoteReward(**options, allow_insecure_http=True)
    RemoteReward(**{**options, "url": options["url"].replace("http://", "https://")})
    for host in ("localhost", "127.0.0.2", "[::1]"):
        RemoteReward(**{**options, "url": options["url"].replace("judge.example.com", host)})
    RemoteReward("http://judge.example.com/score", headers={"X-Team": "rl"})  # no credentials: fine


def test_redacted_header_from_a_saved_config_is_refused():
    with pytest.raises(ConfigError, match=r"headers.Authorization reads '<redacted>'.*headers_from_env"):
        RemoteReward("https://judge.example.com/", headers={"Authorization": "<redacted>"})


def test_redirect_to_another_port_is_not_followed(judges, monkeypatch):
    monkeypatch.setenv("JUDGE_TOKEN", SECRET)
    other = judges()
    target = other.url("/score?token=abc123")

    def redirect(handler, n, body):
        send(handler, 307, b"", {"Location": target})
        return True

    judge = judges(redirect)
    reward = RemoteReward(judge.url(), api_key_env="JUDGE_TOKEN", retries=2, backoff=0)
    with pytest.raises(PluginError, match=r"answered HTTP 307 redirect to http://127\.0\.0\.1:\d+/score\?"
                                          r"token=<redacted>; redirects are not followed") as info:
        checked_scores(reward, PROMPTS, COMPS, name="judge")
    assert "abc123" not in str(info.value)
    assert len(judge.requests) == 1 and other.requests == []  # not retried, nothing sent elsewhere


def _trickle(handler) -> bool:
    """Answer 200 with its headers at once, then one byte of the body every 0.1 s for 3 s."""
    handler.send_response(200)
    handler.send_header("Content-Length", "30")
    handler.end_headers()
    for _ in range(30):
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.1)
    return True


def test_deadline_bounds_an_answer_that_trickles_in(judges):
    def trickle(handler, n, body):
        return _trickle(handler)

    reward = RemoteReward(judges(trickle).url(), timeout=0.5, retries=0)
    start = time.monotonic()
    with pytest.raises(PluginError, match=r"gave no complete answer within 0.5 s"):
        reward(PROMPTS, COMPS)
    assert time.monotonic() - start < 1.5  # per socket operation, each byte would reset the clock


def test_deadline_bounds_the_retries(judges):
    def busy(handler, n, body):
        send(handler, 503, b"busy")
        return True

    judge = judges(busy)
    reward = RemoteReward(judge.url(), timeout=1, retries=10, backoff=0.2, deadline=1.0)
    start = time.monotonic()
    with pytest.raises(PluginError, match=r"failed after \d attempt\(s\): answered HTTP 503: busy; .*"
                                          r"would pass the deadline of 1 s"):
        reward(PROMPTS, COMPS)
    assert time.monotonic() - start < 1.5
    assert 2 <= len(judge.requests) <= 4  # 0.2 + 0.4 s of backoff fit, 0.8 s more does not


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "no-content-length"])
def test_huge_answer_is_refused(judges, declared):
    huge = b'{"scores": [' + b" " * (2 * 2 ** 20) + b"1, 2, 3]}"

    def flood(handler, n, body):
        if declared:
            send(handler, 200, huge)
        else:  # HTTP/1.0 style: the body ends when the connection closes
            handler.protocol_version = "HTTP/1.0"
            handler.send_response(200)
            handler.end_headers()
            handler.wfile.write(huge)
        return True

    judge = judges(flood)
    reward = RemoteReward(judge.url(), max_response_bytes=2 ** 20, retries=2, backoff=0)
    with pytest.raises(PluginError, match=r"over max_response_bytes=1048576"):
        reward(PROMPTS, COMPS)
    assert len(judge.requests) == 1  # not retried
    assert RemoteReward(judge.url(), max_response_bytes=3 * 2 ** 20)(PROMPTS, COMPS) == [1.0, 2.0, 3.0]


def test_429_waits_for_retry_after(judges):
    def limited(handler, n, body):
        if n == 1:
            send(handler, 429, b"slow down", {"Retry-After": "1"})
            return True
        return False

    judge = judges(limited)
    reward = RemoteReward(judge.url(), retries=1, backoff=0)
    start = time.monotonic()
    assert reward(PROMPTS, COMPS) == [1.0, 2.0, 3.0]
    assert time.monotonic() - start >= 1.0  # the server's wait, not the backoff of 0 s
    assert len(judge.requests) == 2


def test_retry_after_past_the_deadline_gives_up_at_once(judges):
    def unavailable(handler, n, body):
        send(handler, 503, b"maintenance", {"Retry-After": "30"})
        return True

    judge = judges(unavailable)
    start = time.monotonic()
    with pytest.raises(PluginError, match=r"failed after 1 attempt\(s\): answered HTTP 503: maintenance; "
                                          r"gave up: waiting 30 s more would pass the deadline of 5 s"):
        RemoteReward(judge.url(), retries=3, deadline=5)(PROMPTS, COMPS)
    assert time.monotonic() - start < 1.0 and len(judge.requests) == 1


def test_requests_run_concurrently_within_the_bound_and_keep_their_order(judges):
    def slow(handler, n, body):
        time.sleep(0.5)
        return False

    judge = judges(slow)
    completions = ["x" * k for k in range(1, 9)]
    reward = RemoteReward(judge.url(), batch_size=1, max_concurrency=3)
    assert reward(["p"] * 8, completions) == [float(k) for k in range(1, 9)]
    assert len(judge.requests) == 8 and judge.max_in_flight == 3


def test_a_failure_cancels_the_requests_not_yet_sent(judges):
    def reject(handler, n, body):
        time.sleep(0.3)
        send(handler, 400, b"no")
        return True

    judge = judges(reject)
    reward = RemoteReward(judge.url(), batch_size=1, max_concurrency=2)
    with pytest.raises(PluginError, match=r"answered HTTP 400: no"):
        checked_scores(reward, ["p"] * 10, ["c"] * 10, name="judge")
    assert len(judge.requests) <= 4  # the 2 first, and at most 2 the free workers took before the cancel


def test_transport_error_is_raised_once_not_per_sample(judges):
    def cut_short(handler, n, body):  # promises 100 bytes, sends 10, closes: http.client.IncompleteRead
        send(handler, 200, b'{"scores":', length=100)
        handler.close_connection = True
        return True

    judge = judges(cut_short)
    reward = RemoteReward(judge.url("/score?key=abc123"), retries=0)
    with pytest.raises(PluginError, match=r"'judge' failed: remote reward http://127\.0\.0\.1:\d+/score\?"
                                          r"key=<redacted> .*IncompleteRead") as info:
        checked_scores(reward, PROMPTS, COMPS, name="'judge'")
    assert "abc123" not in str(info.value)
    assert len(judge.requests) == 1


def test_proxy_from_the_environment_is_used_except_for_loopback(judges, monkeypatch):
    proxy, direct = judges(), judges()
    monkeypatch.setenv("http_proxy", proxy.url(""))
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert RemoteReward("http://judge.invalid/score")(PROMPTS, COMPS) == [1.0, 2.0, 3.0]
    assert [path for path, _, _ in proxy.requests] == ["http://judge.invalid/score"]
    assert RemoteReward(direct.url())(PROMPTS, COMPS) == [1.0, 2.0, 3.0]
    assert len(proxy.requests) == 1 and len(direct.requests) == 1


def test_https_sends_credentials_checks_the_certificate_and_keeps_the_deadline(judges, tls_files, monkeypatch):
    monkeypatch.setenv("JUDGE_TOKEN", SECRET)

    def trickle(handler, n, body):
        return handler.path == "/trickle" and _trickle(handler)

    judge = judges(trickle, tls=tls_files)
    with pytest.raises(PluginError, match=r"has a certificate that failed verification \(self.signed"):
        RemoteReward(judge.url(), api_key_env="JUDGE_TOKEN", retries=3, backoff=0)(PROMPTS, COMPS)
    assert judge.requests == []  # not retried, nothing sent: the handshake failed
    monkeypatch.setenv("SSL_CERT_FILE", tls_files[0])  # trust the test certificate
    assert RemoteReward(judge.url(), api_key_env="JUDGE_TOKEN")(PROMPTS, COMPS) == [1.0, 2.0, 3.0]
    assert judge.requests[0][2]["Authorization"] == f"Bearer {SECRET}"
    start = time.monotonic()
    with pytest.raises(PluginError, match=r"gave no complete answer within 0.5 s"):
        RemoteReward(judge.url("/trickle"), timeout=0.5, retries=0)(PROMPTS, COMPS)
    assert time.monotonic() - start < 1.5
