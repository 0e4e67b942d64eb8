"""Headers and credentials of plugins that call an HTTP service (the ``remote`` reward, the ``judge``).

One :class:`RequestAuth` holds what a config says about a request's headers: literal ``headers``,
``headers_from_env`` (``{header: environment variable}``) and ``api_key_env`` (sent as
``Authorization: Bearer <value>``). Secrets are read from the environment at each request and kept
nowhere else, so they never reach a saved config, a log, a repr or an error message; a server that
echoes them back has them cut out of error messages (:meth:`RequestAuth.scrub`). Credentials go only
over https, or over plain http to a loopback host, unless ``allow_insecure_http`` is set.

Standard library only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import urlsplit

from rlhf_lightning.errors import ConfigError
from rlhf_lightning.redaction import REDACTED, is_secret_header, redact_url
from rlhf_lightning.rewards.http_post import is_loopback


@dataclass(frozen=True)
class RequestAuth:
    """A plugin's request headers (see the module doc); ``who`` names the plugin in errors."""

    who: str
    headers: dict[str, str] = field(default_factory=dict)
    headers_from_env: dict[str, str] = field(default_factory=dict)
    api_key_env: Optional[str] = None

    def check(self, url: str, allow_insecure_http: bool = False) -> None:
        """ConfigError for a malformed header, a redacted value given back, a bad url, or credentials
        that would go over plain http to a non-loopback host."""
        _check_headers(self.who, self.headers, self.headers_from_env, self.api_key_env)
        _check_transport(self.who, url, self.credentials(url), allow_insecure_http)

    def credentials(self, url: str) -> Optional[str]:
        """What in the config is a credential (for the plain-http check), or ``None``."""
        if self.api_key_env:
            return f"the api_key_env token ({self.api_key_env})"
        if self.headers_from_env:
            return f"headers_from_env ({', '.join(self.headers_from_env)})"
        secret = [name for name in self.headers if is_secret_header(name)]
        if secret:
            return f"the {secret[0]} header"
        return "credentials in the url" if redact_url(url) != url else None

    def request_headers(self, base: dict[str, str]) -> dict[str, str]:
        """``base``, the literal headers, then those read from the environment now (ConfigError if unset)."""
        headers = {**base, **self.headers}
        for name, var in self.headers_from_env.items():
            headers[name] = self.from_env(var)
        if self.api_key_env:
            headers["Authorization"] = f"Bearer {self.from_env(self.api_key_env)}"
        return headers

    def from_env(self, var: str) -> str:
        """The value of environment variable ``var``; ConfigError when unset, empty or multi-line."""
        value = os.environ.get(var)
        if not value:
            raise ConfigError(f"{self.who}: environment variable {var} is not set")
        if "\r" in value or "\n" in value:
            raise ConfigError(f"{self.who}: environment variable {var} holds a line break; not a header value")
        return value

    @staticmethod
    def scrub(message: str, headers: dict[str, str]) -> str:
        """``message`` with every secret-looking header value (e.g. echoed back by a server) redacted."""
        for name, value in headers.items():
            if is_secret_header(name):
                for secret in (value, value.partition(" ")[2]):  # "Bearer <token>": the token alone too
                    if len(secret) >= 4:
                        message = message.replace(secret, REDACTED)
        return message


def _check_headers(who: str, headers: dict[str, Any], from_env: dict[str, Any], api_key_env: Optional[str]) -> None:
    for name, value in headers.items():
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            raise ConfigError(f"{who}: headers.{name} must be a one-line string")
        if value == REDACTED:
            raise ConfigError(f"{who}: headers.{name} reads {REDACTED!r} (a saved config.yaml hides "
                              f"secrets); pass it from the environment: headers_from_env: {{{name}: VARIABLE}}")
    for name, var in from_env.items():
        if not isinstance(var, str) or not var:
            raise ConfigError(f"{who}: headers_from_env.{name} must name an environment variable")
    if api_key_env and "authorization" in {h.lower() for h in [*headers, *from_env]}:
        raise ConfigError(f"{who}: api_key_env sets the Authorization header; "
                          "do not give it in headers or headers_from_env too")


def _check_transport(who: str, url: str, credentials: Optional[str], allow_insecure_http: bool) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{who}: url must start with http:// or https:// and name a host, "
                          f"got {redact_url(url)!r}")
    if parts.scheme == "http" and credentials and not allow_insecure_http and not is_loopback(parts.hostname):
        raise ConfigError(f"{who}: {credentials} would go over plain http to {parts.hostname}; "
                          "use an https:// url, or set allow_insecure_http: true on a network you trust")
