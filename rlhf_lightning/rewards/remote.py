"""Remote reward: POST batches to an HTTP endpoint (an LLM judge, an RLAIF service, a sandbox).

Protocol (JSON over HTTP POST, ``Content-Type: application/json``)::

    request:  {"prompts": [str, ...], "completions": [str, ...], <column>: [..., ...], ...}
    response: {"scores": [float, ...]}          # exactly one finite number per sample, same order

The extra keys are the batch's other dataset columns (``send_columns=True``), each a list
aligned with ``prompts``. The key read from the response is ``score_key`` (default ``"scores"``).

Secrets: ``api_key_env`` and ``headers_from_env`` name environment variables, read at each call
and kept nowhere else, so they never reach a saved config, a log, a repr or an error message.
Literal ``headers`` work too, but secret-looking ones (``Authorization``, ``X-API-Key``, …) are
written as ``<redacted>`` in a run's saved ``config.yaml`` (:mod:`rlhf_lightning.redaction`).
Credentials go only over https, or over plain http to a loopback host, unless
``allow_insecure_http`` is set.

Transport (:mod:`rlhf_lightning.rewards.http_post`): redirects are not followed (an error names
the new address); ``timeout`` bounds each attempt as a whole, ``deadline`` the request with its
retries; answers over ``max_response_bytes`` are refused; 429/5xx, timeouts and connection
failures are retried ``retries`` times (``Retry-After`` honoured, else ``backoff · 2^attempt``).
``batch_size`` splits a call into requests, sent ``max_concurrency`` at a time; scores keep the
input order. Any failure raises one :class:`~rlhf_lightning.errors.PluginError` naming the URL
(credentials removed) and the cause; requests not yet sent are cancelled.
"""

from __future__ import annotations

import json
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, Callable, Sequence, TypeVar

from rlhf_lightning.errors import ConfigError, PluginError
from rlhf_lightning.plugin_output import validate_scores
from rlhf_lightning.redaction import redact_url
from rlhf_lightning.rewards.base import RewardFunction
from rlhf_lightning.rewards.http_post import HTTPFailure, Limits, post
from rlhf_lightning.rewards.request_auth import RequestAuth

T = TypeVar("T")
R = TypeVar("R")


class RemoteReward(RewardFunction):
    """Scores batches by POSTing them as JSON to an HTTP endpoint that answers ``{"scores": [...]}``.

    Args:
        url: the endpoint, ``https://`` (or ``http://`` to loopback, or with ``allow_insecure_http``).
        timeout: seconds for one attempt: connecting, sending and reading the whole answer.
        retries: further attempts after a 429/5xx answer, a timeout or a connection failure.
        backoff: first wait between attempts (doubles each time) when the server sends no Retry-After.
        batch_size: samples per request (``None``: one request per call).
        score_key: key of the scores in the answer.
        send_columns: send the batch's other dataset columns too.
        headers: extra literal headers (secret-looking ones are redacted in saved configs).
        api_key_env: environment variable sent as ``Authorization: Bearer <value>``.
        headers_from_env: ``{header: environment variable}``, sent verbatim.
        deadline: seconds for one request with its retries and waits (default: room for every
            attempt and backoff wait, ``timeout·(retries+1) + backoff·(2^retries − 1)``).
        max_response_bytes: largest answer accepted (default 8 MiB).
        max_concurrency: requests in flight at once.
        allow_insecure_http: allow credentials over plain http to a non-loopback host.
    """

    def __init__(self, url: str, timeout: float = 30.0, retries: int = 3, backoff: float = 1.0,
                 batch_size: int | None = None, score_key: str = "scores", send_columns: bool = True,
                 headers: dict[str, str] | None = None, api_key_env: str | None = None,
                 headers_from_env: dict[str, str] | None = None, deadline: float | None = None,
                 max_response_bytes: int = 8 * 2 ** 20, max_concurrency: int = 4,
                 allow_insecure_http: bool = False) -> None:
        super().__init__()
        _check_numbers(timeout, retries, backoff, batch_size, deadline, max_response_bytes, max_concurrency)
        self.url = url
        self.batch_size = batch_size
        self.score_key = score_key
        self.send_columns = send_columns
        self.headers = dict(headers or {})
        self.api_key_env = api_key_env
        self.headers_from_env = dict(headers_from_env or {})
        self.max_concurrency = int(max_concurrency)
        self.allow_insecure_http = allow_insecure_http
        if deadline is None:
            deadline = timeout * (retries + 1) + backoff * (2 ** retries - 1)
        self.limits = Limits(float(timeout), float(deadline), int(retries), float(backoff), int(max_response_bytes))
        self.label = f"remote reward {redact_url(url)}"
        self.auth = RequestAuth("remote reward", self.headers, self.headers_from_env, api_key_env)
        self.auth.check(url, allow_insecure_http)

    def __repr__(self) -> str:  # header values and URL credentials stay out
        return (f"RemoteReward(url={redact_url(self.url)!r}, headers={sorted(self.headers)}, "
                f"headers_from_env={self.headers_from_env}, api_key_env={self.api_key_env!r}, "
                f"batch_size={self.batch_size}, max_concurrency={self.max_concurrency})")

    def _request_headers(self) -> dict[str, str]:
        return self.auth.request_headers({"Content-Type": "application/json", "Accept": "application/json"})

    def _body(self, prompts: list[str], completions: list[str], columns: dict[str, Any]) -> bytes:
        payload: dict[str, Any] = {"prompts": prompts, "completions": completions}
        if self.send_columns:
            for key, value in columns.items():
                payload.setdefault(key, list(value) if isinstance(value, (list, tuple)) else value)
        try:
            return json.dumps(payload).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise PluginError(f"{self.label}: batch is not JSON-serialisable ({exc}); "
                              "set send_columns: false or drop the column") from exc

    def _score(self, start: int, prompts: list[str], body: bytes, headers: dict[str, str]) -> list[float]:
        try:
            raw = post(self.url, body, headers, self.limits)
        except HTTPFailure as exc:
            raise PluginError(RequestAuth.scrub(f"{self.label} {exc}", headers)) from exc
        try:
            answer = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            snippet = RequestAuth.scrub(raw[:200].decode("utf-8", "replace"), headers)
            raise PluginError(f"{self.label} answered with invalid JSON ({exc}): {snippet!r}") from exc
        if not isinstance(answer, dict) or self.score_key not in answer:
            keys = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
            raise PluginError(f"{self.label} answer has no {self.score_key!r} key (got {keys}); "
                              f'expected {{"{self.score_key}": [one number per sample]}}')
        return validate_scores(answer[self.score_key], len(prompts), plugin=self.label, prompts=prompts,
                               offset=start)

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        prompts, completions = list(prompts), list(completions)
        headers = self._request_headers()
        size = self.batch_size or max(len(prompts), 1)
        jobs = []
        for start in range(0, len(prompts), size):
            part = {k: v[start:start + size] if isinstance(v, (list, tuple)) else v for k, v in columns.items()}
            body = self._body(prompts[start:start + size], completions[start:start + size], part)
            jobs.append((start, prompts[start:start + size], body))
        parts = map_ordered(lambda job: self._score(*job, headers), jobs, self.max_concurrency)
        return [score for part in parts for score in part]


def map_ordered(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``[fn(x) for x in items]`` with at most ``workers`` calls at once, results in input order.

    The first failure cancels the calls not yet started and is raised (the earliest item's, if
    several failed); calls already running finish first.
    """
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="remote-reward") as pool:
        futures = [pool.submit(fn, x) for x in items]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
        if failed:
            for future in futures:
                future.cancel()
            raise failed[0].exception()
        return [f.result() for f in futures]


def _check_numbers(timeout: float, retries: int, backoff: float, batch_size: int | None,
                   deadline: float | None, max_response_bytes: int, max_concurrency: int) -> None:
    if (timeout <= 0 or retries < 0 or backoff < 0 or (batch_size is not None and batch_size < 1)
            or (deadline is not None and deadline <= 0) or max_response_bytes < 1 or max_concurrency < 1):
        raise ConfigError("remote reward: timeout and deadline must be > 0, retries and backoff >= 0, "
                          "batch_size, max_response_bytes and max_concurrency >= 1")
