"""Secrets are redacted anywhere in a config tree, and nothing else is touched."""

from __future__ import annotations

from jsonargparse import Namespace

from rlhf_lightning.redaction import REDACTED, is_secret_key, redact_config, redact_url


def test_headers_named_like_secrets_are_redacted_at_any_depth():
    config = {"model": {"init_args": {"rewards": [
        {"class_path": "remote", "init_args": {
            "url": "https://judge.example.com/score",
            "headers": {"Authorization": "Bearer abc", "X-API-Key": "k1", "Cookie": "s=1", "X-Auth-Token": "t",
                        "Proxy-Authorization": "Basic x", "X-Team": "rl", "Accept": "application/json"},
            "headers_from_env": {"Authorization": "JUDGE_TOKEN"},
            "api_key_env": "JUDGE_TOKEN",
        }}]}}}
    init = redact_config(config)["model"]["init_args"]["rewards"][0]["init_args"]
    assert init["headers"] == {"Authorization": REDACTED, "X-API-Key": REDACTED, "Cookie": REDACTED,
                               "X-Auth-Token": REDACTED, "Proxy-Authorization": REDACTED, "X-Team": "rl",
                               "Accept": "application/json"}
    assert init["headers_from_env"] == {"Authorization": "JUDGE_TOKEN"}  # names of variables, not secrets
    assert init["api_key_env"] == "JUDGE_TOKEN" and init["url"] == "https://judge.example.com/score"
    assert config["model"]["init_args"]["rewards"][0]["init_args"]["headers"]["Authorization"] == "Bearer abc"


def test_jsonargparse_namespaces_are_copied_and_redacted():
    config = Namespace(model=Namespace(init_args=Namespace(
        rewards=[Namespace(class_path="x.Remote", init_args=Namespace(headers={"Authorization": "Bearer abc"},
                                                                      password="hunter2", tokenizer="gpt2"))])))
    out = redact_config(config)
    init = out.model.init_args.rewards[0].init_args
    assert isinstance(out, Namespace) and init.headers == {"Authorization": REDACTED}
    assert init.password == REDACTED and init.tokenizer == "gpt2"
    assert config.model.init_args.rewards[0].init_args.password == "hunter2"  # the original is untouched


def test_secret_keys_and_ordinary_keys():
    for key in ("password", "api_key", "apiKey", "client_secret", "token", "access_token", "private_key", "cookie"):
        assert is_secret_key(key), key
    for key in ("api_key_env", "tokenizer", "pad_token_id", "max_new_tokens", "score_key", "num_key_value_heads",
                "secret_file", "tokens_per_step"):
        assert not is_secret_key(key), key


def test_urls_lose_user_info_and_credential_query_values():
    assert redact_url("https://user:pw@judge.example.com/x?api_key=1&n=2&sig=3") == \
        f"https://{REDACTED}@judge.example.com/x?api_key={REDACTED}&n=2&sig={REDACTED}"
    assert redact_url("https://judge.example.com/x?n=2") == "https://judge.example.com/x?n=2"
    assert redact_config({"data": "postgres://u:p@db/x", "n": 3, "keep": ["a", None]}) == \
        {"data": f"postgres://{REDACTED}@db/x", "n": 3, "keep": ["a", None]}
