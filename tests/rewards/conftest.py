"""Fixtures of the reward tests: loopback judge servers."""

from __future__ import annotations

import shutil
import subprocess
from typing import Callable, Optional

import pytest

from tests.rewards.judge_server import Judge


@pytest.fixture()
def judges():
    """``judges(behave=None, tls=None)`` starts a :class:`~tests.rewards.judge_server.Judge`; all stop
    after the test."""
    started: list[Judge] = []

    def start(behave: Optional[Callable] = None, tls: Optional[tuple[str, str]] = None) -> Judge:
        started.append(Judge(behave, tls))
        return started[-1]

    yield start
    for judge in started:
        judge.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate and key for ``localhost`` and 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", key,
                    "-out", cert, "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key
