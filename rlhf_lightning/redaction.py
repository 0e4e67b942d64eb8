"""Secrets out of saved configs, logs and error messages.

:func:`redact_config` walks any config tree (dicts, lists, ``argparse``/jsonargparse namespaces)
and returns a copy in which these string values read :data:`REDACTED`:

- entries of a ``headers`` mapping (any key ending in ``headers``, at any depth) whose header
  name looks like a credential (``Authorization``, ``X-API-Key``, ``Cookie``, ``X-Auth-Token`` …);
- values of keys that name a secret (``password``, ``api_key``, ``token``, ``client_secret`` …);
  keys ending in ``_env`` (``api_key_env``, ``headers_from_env``) hold *names* of environment
  variables and are kept as they are;
- the user-info part (``user:pass@``) and credential-like query parameters of URLs.

Standard library only, so plugins and the CLI can both use it.
"""

from __future__ import annotations

import argparse
import copy
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: what a redacted value reads; a plugin given it back (a rerun of a saved config) should refuse it
REDACTED = "<redacted>"

# header and query-parameter names: any of these words anywhere in the name
_SECRET_PART = re.compile(r"auth|token|key|secret|passw|cookie|credential|session|signature|^sig$", re.I)
# config keys: stricter (``tokenizer``, ``pad_token_id``, ``score_key`` are not secrets)
_SECRET_KEY = re.compile(r"(^|_)(password|passwd|secret|token|api_?key|access_?key|private_?key|"
                         r"credentials?|authorization|cookie)$")


def is_secret_header(name: str) -> bool:
    """Whether an HTTP header (or URL query parameter) of this name likely carries a credential."""
    return bool(_SECRET_PART.search(name))


def is_secret_key(name: str) -> bool:
    """Whether a config key names a secret value (``api_key``, ``client_secret``; not ``api_key_env``)."""
    return bool(_SECRET_KEY.search(name.lower().replace("-", "_")))


def redact_url(url: str) -> str:
    """``url`` without user-info and with credential-like query values replaced by :data:`REDACTED`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = "&".join(_redact_param(p) for p in parts.query.split("&"))
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_param(param: str) -> str:
    name, eq, _ = param.partition("=")
    return f"{name}={REDACTED}" if eq and is_secret_header(name) else param


def _is_headers_key(key: Any) -> bool:
    return isinstance(key, str) and key.lower().endswith("headers")


def _redact_headers(headers: Any) -> Any:
    items = vars(headers) if isinstance(headers, argparse.Namespace) else headers
    if not isinstance(items, Mapping):
        return redact_config(headers)
    clean = {k: REDACTED if isinstance(v, str) and is_secret_header(str(k)) else redact_config(v)
             for k, v in items.items()}
    if isinstance(headers, argparse.Namespace):
        out = copy.copy(headers)
        out.__dict__.update(clean)
        return out
    return clean


def _redact_entry(key: Any, value: Any) -> Any:
    if isinstance(key, str) and key.lower().endswith("_env"):  # names of environment variables
        return value
    if _is_headers_key(key):
        return _redact_headers(value)
    if isinstance(value, str) and isinstance(key, str) and is_secret_key(key) and value:
        return REDACTED
    return redact_config(value)


def redact_config(node: Any) -> Any:
    """A copy of the config tree ``node`` with secrets replaced by :data:`REDACTED` (see the module doc).

    Containers are copied; the input is left untouched. Only string values are replaced, so the
    redacted tree still validates against the same types.
    """
    if isinstance(node, argparse.Namespace):
        out = copy.copy(node)
        out.__dict__.update({k: _redact_entry(k, v) for k, v in vars(node).items()})
        return out
    if isinstance(node, Mapping):
        return {k: _redact_entry(k, v) for k, v in node.items()}
    if isinstance(node, list):
        return [redact_config(v) for v in node]
    if isinstance(node, tuple):
        return tuple(redact_config(v) for v in node)
    if isinstance(node, str) and "://" in node:
        return redact_url(node)
    return node
