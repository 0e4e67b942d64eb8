"""A PPO run scored by a loopback remote judge: the judge gets the secrets, the run folder never does."""

from __future__ import annotations

import yaml

from rlhf_lightning.cli import main
from tests.cli.test_ppo_cli import ppo_config, prompt_file

LITERAL = "Bearer literal-9c1e55"
FROM_ENV = "env-secret-3b7d02"


def test_saved_config_redacts_literal_secret_headers_and_keeps_env_names(tmp_path, tiny_llama_dir, judges,
                                                                         monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", FROM_ENV)
    judge = judges()
    remote = {"class_path": "remote", "init_args": {
        "url": judge.url("/score?api_key=q-secret-77"), "batch_size": 2,
        "headers": {"Authorization": LITERAL, "X-Team": "rl"}, "headers_from_env": {"X-API-Key": "JUDGE_KEY"}}}
    cfg = ppo_config(tmp_path, tiny_llama_dir, prompt_file(tmp_path), **{
        "trainer.max_steps": 2, "model.init_args.rewards": [remote], "model.init_args.reward_weights": [1.0],
        "export.enabled": False})
    assert main(["fit", "--config", str(cfg)]) == 0

    assert judge.requests, "the judge was never asked"
    _, _, headers = judge.requests[0]
    assert headers["Authorization"] == LITERAL and headers["X-API-Key"] == FROM_ENV
    saved = next(tmp_path.glob("lightning_logs/version_*/config.yaml"))
    init = yaml.safe_load(saved.read_text(encoding="utf-8"))["model"]["init_args"]["rewards"][0]["init_args"]
    assert init["headers"] == {"Authorization": "<redacted>", "X-Team": "rl"}
    assert init["headers_from_env"] == {"X-API-Key": "JUDGE_KEY"}
    assert init["url"].endswith("/score?api_key=<redacted>")
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != cfg]
    for path in written:  # config, hparams, metrics, checkpoints: no secret anywhere
        data = path.read_bytes()
        for secret in ("literal-9c1e55", FROM_ENV, "q-secret-77"):
            assert secret.encode() not in data, (path, secret)
