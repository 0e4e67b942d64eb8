"""Judge backends: a tiny local Phi whose next-token distribution is set by its lm_head bias (so the
probabilities are known by hand), and a loopback OpenAI-compatible chat-completions server."""

from __future__ import annotations

import math

import pytest

from rlhf_lightning.errors import ConfigError, PluginError
from rlhf_lightning.rewards.http_post import Limits
from rlhf_lightning.rewards.judge_backends import ChatEndpoint, LocalJudgeModel
from rlhf_lightning.rewards.request_auth import RequestAuth
from tests.rewards.judge_server import send
from tests.rewards.judges import build_judge_model, chat_behaviour, first_token

CONVERSATION = [{"role": "system", "content": "Be fair."}, {"role": "user", "content": "Is 2 + 2 = 4? A or B."}]


@pytest.fixture(scope="module")
def biased_judge(tmp_path_factory, tiny_tokenizer_dir):
    """Next token: "A" with logit ln 3, "B" with logit 0, nothing else: p(A) = 3/4, p(B) = 1/4."""
    return build_judge_model(tmp_path_factory.mktemp("judge"), tiny_tokenizer_dir, {"A": math.log(3.0), "B": 0.0})


def test_choice_probabilities_are_the_softmax_of_the_bias(biased_judge):
    judge = LocalJudgeModel(str(biased_judge), batch_size=2)
    tokens = judge.label_tokens(["A", "B"])
    assert tokens["A"][0] == first_token(judge.tokenizer, "A") and tokens["B"][0] == first_token(judge.tokenizer, "B")
    short = [{"role": "user", "content": "A or B?"}]
    probs = judge.choice_probabilities([CONVERSATION, short, CONVERSATION], tokens)  # two batches, left-padded
    assert len(probs) == 3
    for p in probs:  # exp(ln 3) / (exp(ln 3) + exp(0)) = 3/4
        assert p["A"] == pytest.approx(0.75, abs=1e-6) and p["B"] == pytest.approx(0.25, abs=1e-6)


def test_greedy_answers_repeat_the_argmax_token(biased_judge):
    assert LocalJudgeModel(str(biased_judge), max_new_tokens=1).answers([CONVERSATION]) == ["A"]
    assert LocalJudgeModel(str(biased_judge), max_new_tokens=3).answers([CONVERSATION, CONVERSATION]) == ["AAA"] * 2


def test_rendering_uses_the_chat_template_or_plain_text(biased_judge):
    templated = LocalJudgeModel(str(biased_judge)).render(CONVERSATION)
    assert "<|im_start|>system\nBe fair." in templated and templated.endswith("<|im_start|>assistant\n")
    plain = LocalJudgeModel(str(biased_judge), chat_template=False).render(CONVERSATION)
    assert plain == "Be fair.\n\nIs 2 + 2 = 4? A or B."


def test_labels_sharing_a_first_token_are_refused(biased_judge):
    judge = LocalJudgeModel(str(biased_judge))
    judge._load()
    assert first_token(judge.tokenizer, "10") == first_token(judge.tokenizer, "1")  # the premise of this test
    with pytest.raises(ConfigError, match=r"choices '1' and '10' begin with the same token"):
        judge.label_tokens(["1", "10"])


def test_missing_judge_folder_is_a_model_error(tmp_path):
    from rlhf_lightning.errors import ModelError

    with pytest.raises(ModelError, match="no-such-judge"):
        LocalJudgeModel(str(tmp_path / "no-such-judge")).answers([CONVERSATION])


def _endpoint(url: str, **options) -> ChatEndpoint:
    return ChatEndpoint(url, "judge-7b", auth=RequestAuth("judge", api_key_env="JUDGE_KEY"),
                        limits=Limits(2.0, 4.0, 0, 0.0, 4096), max_concurrency=2, max_new_tokens=8,
                        temperature=0.0, request_options=options)


def test_endpoint_sends_a_chat_completion_request_and_reads_the_content(judges, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test-5e1f")
    judge = judges(chat_behaviour(lambda body: body["messages"][-1]["content"][-2:]))
    endpoint = _endpoint(judge.url("/v1/"), seed=7, temperature=None)
    assert endpoint.answers([CONVERSATION, [{"role": "user", "content": "xyz"}]]) == ["B.", "yz"]
    path, body, headers = next(r for r in judge.requests if r[1]["messages"] == CONVERSATION)  # sent concurrently
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-test-5e1f"
    # max_tokens from max_new_tokens; request_options add keys, and null removes one (temperature)
    assert body == {"model": "judge-7b", "messages": CONVERSATION, "max_tokens": 8, "seed": 7}


@pytest.mark.parametrize("payload, message", [
    (b"not json", "did not answer as a chat completion"),
    (b'{"result": "A"}', "did not answer as a chat completion"),
    (b'{"choices": []}', "did not answer as a chat completion"),
    (b'{"choices": [{"message": {"content": ["A"]}}]}', "non-text content"),
])
def test_endpoint_answers_that_are_not_chat_completions_are_errors(judges, monkeypatch, payload, message):
    monkeypatch.setenv("JUDGE_KEY", "sk-test-5e1f")
    judge = judges(lambda handler, n, body: send(handler, 200, payload) or True)
    with pytest.raises(PluginError, match=message):
        _endpoint(judge.url("/v1")).answers([CONVERSATION])


def test_endpoint_without_content_answers_empty_text(judges, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test-5e1f")
    judge = judges(chat_behaviour(lambda body: None))
    assert _endpoint(judge.url("/v1")).answers([CONVERSATION]) == [""]


def test_endpoint_refuses_to_override_model_or_messages():
    with pytest.raises(ConfigError, match=r"request_options may not set \['messages'\]"):
        _endpoint("http://127.0.0.1:1/v1", messages=[])
