"""Remote reward: POST batches to an HTTP endpoint (an LLM judge, an RLAIF service, a sandbox).

Protocol (JSON over HTTP POST, ``Content-Type: application/json``)::

    request:  {"prompts": [str, ...], "completions": [str, ...], <column>: [..., ...], ...}
    response: {"scores": [float, ...]}          # exactly one finite number per sample, same order

The extra keys are the batch's other dataset columns (``send_columns=True``), each a list
aligned with ``prompts``. The key read from the response is ``score_key`` (default ``"scores"``).
Connection errors, timeouts, HTTP 429 and 5xx are retried ``retries`` times with exponential
backoff (``backoff``, ``2·backoff``, …); other HTTP errors, non-JSON answers, a missing key or a
wrong number of scores raise :class:`~rlhf_lightning.errors.PluginError` at once. Standard library
only (``urllib.request``).
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from rlhf_lightning.errors import ConfigError, PluginError
from rlhf_lightning.plugin_output import validate_scores
from rlhf_lightning.rewards.base import RewardFunction


class _Retryable(Exception):
    pass


class RemoteReward(RewardFunction):
    """Scores batches by POSTing them as JSON to an HTTP endpoint that answers ``{"scores": [...]}``.

    ``api_key_env`` names an environment variable whose value is sent as
    ``Authorization: Bearer <value>`` (keeps secrets out of YAML). ``batch_size`` splits large
    batches into several requests (``None`` = one request per call).
    """

    def __init__(self, url: str, timeout: float = 30.0, retries: int = 3, backoff: float = 1.0,
                 batch_size: int | None = None, score_key: str = "scores", send_columns: bool = True,
                 headers: dict[str, str] | None = None, api_key_env: str | None = None) -> None:
        super().__init__()
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"remote reward: url must start with http:// or https://, got {url!r}")
        if timeout <= 0 or retries < 0 or backoff < 0 or (batch_size is not None and batch_size < 1):
            raise ConfigError("remote reward: timeout must be > 0, retries and backoff >= 0, batch_size >= 1")
        self.url = url
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.batch_size = batch_size
        self.score_key = score_key
        self.send_columns = send_columns
        self.headers = dict(headers or {})
        self.api_key_env = api_key_env

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self.headers}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ConfigError(f"remote reward: environment variable {self.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post_once(self, body: bytes) -> bytes:
        request = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            if exc.code == 429 or exc.code >= 500:
                raise _Retryable(f"HTTP {exc.code}: {detail}") from exc
            raise PluginError(f"remote reward {self.url} answered HTTP {exc.code}: {detail}") from exc
        except urllib.error.URLError as exc:
            raise _Retryable(f"connection failed: {exc.reason}") from exc
        except (TimeoutError, socket.timeout) as exc:
            raise _Retryable(f"no answer within {self.timeout} s") from exc
        except ConnectionError as exc:
            raise _Retryable(f"connection failed: {exc}") from exc

    def _post(self, payload: dict[str, Any]) -> bytes:
        try:
            body = json.dumps(payload).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise PluginError(f"remote reward: batch is not JSON-serialisable ({exc}); "
                              "set send_columns: false or drop the column") from exc
        errors = []
        for attempt in range(self.retries + 1):
            try:
                return self._post_once(body)
            except _Retryable as exc:
                errors.append(str(exc))
                if attempt < self.retries:
                    time.sleep(self.backoff * 2 ** attempt)
        raise PluginError(f"remote reward {self.url} failed after {self.retries + 1} attempt(s): "
                          + "; ".join(errors))

    def _score(self, prompts: list[str], completions: list[str], columns: dict[str, Any]) -> list[float]:
        payload: dict[str, Any] = {"prompts": prompts, "completions": completions}
        if self.send_columns:
            for key, value in columns.items():
                if key not in payload:
                    payload[key] = list(value) if isinstance(value, (list, tuple)) else value
        raw = self._post(payload)
        try:
            answer = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            snippet = raw[:200].decode("utf-8", "replace")
            raise PluginError(f"remote reward {self.url} answered with invalid JSON ({exc}): {snippet!r}") from exc
        if not isinstance(answer, dict) or self.score_key not in answer:
            keys = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
            raise PluginError(f"remote reward {self.url} answer has no {self.score_key!r} key (got {keys}); "
                              f'expected {{"{self.score_key}": [one number per sample]}}')
        return validate_scores(answer[self.score_key], len(prompts), plugin=f"remote reward {self.url}",
                               prompts=prompts)

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        prompts, completions = list(prompts), list(completions)
        size = self.batch_size or max(len(prompts), 1)
        scores: list[float] = []
        for start in range(0, len(prompts), size):
            part = {k: v[start:start + size] if isinstance(v, (list, tuple)) else v for k, v in columns.items()}
            scores.extend(self._score(prompts[start:start + size], completions[start:start + size], part))
        return scores
