"""The ``judge`` reward, built by its entry-point name: pointwise and pairwise, from a tiny local model
(verdicts known from its lm_head bias) and from a loopback OpenAI-compatible server; bad options and
bad answers each give one error naming the cause."""

from __future__ import annotations

import logging
import math

import pytest

from rlhf_lightning import registry
from rlhf_lightning.errors import ConfigError, InvalidOption, PluginError
from rlhf_lightning.plugin_output import checked_scores
from tests.rewards.judges import build_judge_model, chat_behaviour, length_rater, longer_wins, user_text

PROMPTS = ["Explain gravity.", "Write a poem."]


def judge(**options):
    return registry.get("rewards", "judge")(**options)


@pytest.fixture(scope="module")
def judge_dirs(tmp_path_factory, tiny_tokenizer_dir):
    """Tiny Phi judges: "seven" always answers 7; "biased" gives p(A) = 3/4, p(B) = 1/4; "vague" gives
    p(A) = p(Z) = 1/2 (half its mass off the labels)."""
    make = lambda name, logits: str(build_judge_model(tmp_path_factory.mktemp(name), tiny_tokenizer_dir,  # noqa: E731
                                                      logits))
    return {"seven": make("seven", {"7": 0.0}), "biased": make("biased", {"A": math.log(3.0), "B": 0.0}),
            "vague": make("vague", {"A": 0.0, "Z": 0.0})}


# --------------------------------------------------------------------------- local model


def test_local_pointwise_number_is_normalised(judge_dirs):
    reward = judge(model=judge_dirs["seven"], max_new_tokens=1)
    assert reward(PROMPTS, ["a", "b"]) == [pytest.approx(6 / 9)] * 2  # (7 - 1) / (10 - 1)
    assert reward.metrics() == {"judgments": 2.0, "unparseable": 0.0, "unparseable_total": 0.0}


def test_local_choice_probabilities_give_the_expected_value(judge_dirs):
    reward = judge(model=judge_dirs["biased"], read="probabilities", choices={"A": 1.0, "B": -1.0})
    assert reward(PROMPTS, ["x", "y"]) == [pytest.approx(0.5, abs=1e-6)] * 2  # 3/4·1 + 1/4·(-1)
    assert reward.metrics()["choice_mass"] == pytest.approx(1.0, abs=1e-6)


def test_local_pairwise_both_orders_cancel_the_first_position_bias(judge_dirs):
    # the judge prefers whichever answer is shown first with p = 3/4: v(i, j) = 3/4 for every ordered pair.
    prompts = ["p", "q", "p", "p", "q"]
    completions = ["one", "two", "three", "four", "five"]
    both = judge(model=judge_dirs["biased"], mode="pairwise", read="probabilities")
    # p_ij = (3/4 + 1 - 3/4) / 2 = 1/2 for every pair: every win rate is 1/2
    assert both(prompts, completions) == [pytest.approx(0.5, abs=1e-6)] * 5
    assert both.metrics()["judgments"] == 3 * 2 + 1 * 2  # K(K-1) per prompt: 3 answers to p, 2 to q
    one = judge(model=judge_dirs["biased"], mode="pairwise", read="probabilities", both_orders=False)
    # one order, (i, j) with i before j: p_ij = 3/4. Prompt p (samples 0, 2, 3): s0 = (3/4 + 3/4) / 2,
    # s2 = (1/4 + 3/4) / 2, s3 = (1/4 + 1/4) / 2; prompt q (samples 1, 4): s1 = 3/4, s4 = 1/4
    assert one(prompts, completions) == pytest.approx([0.75, 0.75, 0.5, 0.25, 0.25], abs=1e-6)


def test_local_label_mass_below_the_minimum_is_unreadable(judge_dirs):
    reward = judge(model=judge_dirs["vague"], read="probabilities", choices={"A": 1.0, "B": 0.0},
                   min_choice_mass=0.6)
    with pytest.raises(PluginError, match=r"sample 0 \(prompt 'Explain gravity\.'\).*raw answer: "
                                          r"'label probabilities A: 0\.5, B: 0'"):
        reward(PROMPTS, ["x", "y"])
    # below the minimum no longer: EV over the labels alone, (1/2·1 + 0·0) / (1/2) = 1
    ok = judge(model=judge_dirs["vague"], read="probabilities", choices={"A": 1.0, "B": 0.0}, min_choice_mass=0.4)
    assert ok(PROMPTS, ["x", "y"]) == [pytest.approx(1.0)] * 2


def test_garbage_answer_is_an_error_naming_the_sample_and_the_raw_answer(judge_dirs):
    reward = judge(model=judge_dirs["biased"], mode="pairwise", max_new_tokens=3)  # answers "AAA": no label
    with pytest.raises(PluginError, match=r"answer for samples 0 \(shown first\) and 1.*2 of 2 answers unreadable\)"
                                          r"; raw answer: 'AAA'"):
        checked_scores(reward, ["p", "p"], ["x", "y"], name="judge")


def test_garbage_answer_with_default_policy_is_counted_and_logged(judge_dirs, caplog):
    reward = judge(model=judge_dirs["seven"], max_new_tokens=2, on_unparseable="default", default_score=-1.0)
    with caplog.at_level(logging.WARNING, logger="rlhf_lightning.rewards.judge"):
        assert reward(PROMPTS, ["x", "y"]) == [-1.0, -1.0]  # "77" is out of [1, 10]
        assert reward(PROMPTS[:1], ["x"]) == [-1.0]
    assert reward.metrics() == {"judgments": 1.0, "unparseable": 1.0, "unparseable_total": 3.0}
    assert "2 of 2 answers unreadable as a number in [1, 10], scored -1.0" in caplog.text and "'77'" in caplog.text


# --------------------------------------------------------------------------- OpenAI-compatible endpoint


def endpoint_judge(server, **options):
    return judge(model="judge-7b", base_url=server.url("/v1"), api_key_env="JUDGE_KEY", timeout=2, retries=0,
                 **options)


def test_endpoint_pointwise_scores_and_request(judges, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-9d2c")
    server = judges(chat_behaviour(length_rater))
    reward = endpoint_judge(server)
    # lengths 3 and 12 -> ratings 3 and 10 -> (3 - 1) / 9 and 1
    assert checked_scores(reward, PROMPTS, ["abc", "abcdefghijkl"], name="judge") == [pytest.approx(2 / 9), 1.0]
    _, body, headers = min(server.requests, key=lambda r: len(user_text(r[1])))  # sent concurrently
    assert headers["Authorization"] == "Bearer sk-9d2c" and body["model"] == "judge-7b"
    assert body["messages"][0]["role"] == "system" and "[Question]\nExplain gravity." in user_text(body)


def test_endpoint_pairwise_round_robin_ranks_by_wins(judges, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-9d2c")
    server = judges(chat_behaviour(longer_wins))
    reward = endpoint_judge(server, mode="pairwise")
    prompts = ["p"] * 4 + ["q"] * 2
    completions = ["bb", "a", "cccc", "a", "same", "same"]
    # prompt p: "cccc" beats all (1); "bb" beats both "a" (2/3); the two "a" are identical (1/2 without asking)
    # and lose to the rest: (0 + 0 + 1/2) / 3 = 1/6. Prompt q: two identical answers: 1/2 each, no request.
    assert reward(prompts, completions) == pytest.approx([2 / 3, 1 / 6, 1.0, 1 / 6, 0.5, 0.5])
    assert len(server.requests) == 4 * 3 - 2  # K(K-1) ordered pairs, less the identical pair's two


def test_endpoint_pairwise_against_a_reference_column(judges, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-9d2c")
    server = judges(chat_behaviour(longer_wins))
    reward = endpoint_judge(server, mode="pairwise", reference="answer")
    # longer than the reference: wins both orders (1); shorter: 0; equal length: "A" both times -> (1 + 1 - 1)/2
    scores = reward(PROMPTS + ["r"], ["long answer", "x", "abc"], answer=["short", "ref", "xyz"])
    assert scores == [1.0, 0.0, 0.5]
    with pytest.raises(PluginError, match=r"needs the dataset column 'answer', which this batch lacks"):
        reward(PROMPTS, ["a", "b"])


def test_template_columns_are_filled_from_the_batch(judges, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-9d2c")
    server = judges(chat_behaviour(lambda body: "10" if "gold: 4" in user_text(body) else "1"))
    reward = endpoint_judge(server, columns=["answer"], system=None,
                            template="{prompt} => {completion} (gold: {answer}). Score 1-10.")
    assert reward(["2+2", "3+3"], ["4", "5"], answer=["4", "6"]) == [1.0, 0.0]
    sent = sorted(user_text(body) for _, body, _ in server.requests)  # sent concurrently, in either order
    assert sent == ["2+2 => 4 (gold: 4). Score 1-10.", "3+3 => 5 (gold: 6). Score 1-10."]
    assert all(len(body["messages"]) == 1 for _, body, _ in server.requests)  # system: null sends none


def test_endpoint_garbage_answer_names_sample_and_answer(judges, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-9d2c")
    server = judges(chat_behaviour(lambda body: "I cannot judge this." if "poem" in user_text(body) else "8"))
    with pytest.raises(PluginError, match=r"judge failed: judge: cannot read a number in \[1, 10\] from the judge's "
                                          r"answer for sample 1 \(prompt 'Write a poem\.'\).*'I cannot judge this\.'"):
        checked_scores(endpoint_judge(server), PROMPTS, ["a", "b"], name="judge")


def test_unreachable_endpoint_is_one_error_naming_the_url():
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reward = judge(model="m", base_url=f"http://127.0.0.1:{port}/v1", timeout=1, retries=1, backoff=0.01)
    with pytest.raises(PluginError, match=rf"judge http://127\.0\.0\.1:{port}/v1/chat/completions failed after 2 "
                                          r"attempt\(s\): connection failed"):
        checked_scores(reward, PROMPTS, ["a", "b"], name="judge")


def test_missing_api_key_variable_is_named_at_setup_and_call(judges, monkeypatch):
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    server = judges(chat_behaviour(length_rater))
    reward = endpoint_judge(server)
    with pytest.raises(ConfigError, match="judge: environment variable JUDGE_KEY is not set"):
        reward.setup("cpu")
    with pytest.raises(PluginError, match="environment variable JUDGE_KEY is not set"):
        checked_scores(reward, PROMPTS, ["a", "b"], name="judge")
    assert not server.requests


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("options, option, message", [
    ({"template": "Rate {completion} against {answer}"}, "template", r"unknown field\(s\) \{answer\}"),
    ({"template": "Rate {completion} {}"}, "template", "positional field"),
    ({"template": "Rate the answer"}, "template", r"lacks \{completion\}"),
    ({"mode": "pairwise", "template": "{prompt}: {first} or {completion}?"}, "template",
     r"unknown field\(s\) \{completion\}"),
    ({"scale": [5, 1]}, "scale", "finite low < high"),
    ({"scale": [1, 5], "choices": {"A": 1}}, "choices", "not both"),
    ({"mode": "pairwise", "choices": {"A": 2.0, "B": 0.0}}, "choices", r"in \[0, 1\] in pairwise mode"),
    ({"read": "probabilities"}, "read", "needs choices"),
    ({"on_unparseable": "default"}, "default_score", "finite number"),
    ({"pattern": "(unclosed"}, "pattern", "not a regular expression"),
    ({"reference": "answer"}, "reference", "mode: pairwise"),
    ({"api_key_env": "JUDGE_KEY"}, "api_key_env", "set base_url"),
    ({"base_url": "http://127.0.0.1:9/v1", "read": "probabilities", "choices": {"A": 1}}, "read",
     "'text' for an endpoint judge"),
    ({"batch_size": 0}, "batch_size", ">= 1"),
])
def test_bad_options_name_the_option(options, option, message):
    with pytest.raises(InvalidOption, match=message) as info:
        judge(model="some/judge", **options)
    assert info.value.option == option


def test_credentials_over_plain_http_to_another_host_are_refused():
    with pytest.raises(ConfigError, match=r"judge: the api_key_env token \(JUDGE_KEY\) would go over plain http"):
        judge(model="m", base_url="http://judge.example.com/v1", api_key_env="JUDGE_KEY")
    judge(model="m", base_url="https://judge.example.com/v1", api_key_env="JUDGE_KEY")  # https: fine


def test_pairwise_answer_alone_with_its_prompt_is_an_error(judges, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-9d2c")
    reward = endpoint_judge(judges(chat_behaviour(longer_wins)), mode="pairwise")
    with pytest.raises(PluginError, match=r"sample 2 is the only answer to its prompt in this batch of 3.*reference"):
        reward(["p", "p", "q"], ["a", "bb", "c"])


def test_pairwise_lone_answers_score_neutral_when_asked(judges, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-9d2c")
    server = judges(chat_behaviour(longer_wins))
    reward = endpoint_judge(server, mode="pairwise", unpaired="neutral")
    # q and r have one answer each: 1/2; p's two answers are judged (longer wins both orders)
    assert reward(["p", "q", "p", "r"], ["a", "b", "cc", "d"]) == [0.0, 0.5, 1.0, 0.5]
    assert reward.metrics()["unpaired"] == 2.0 and len(server.requests) == 2
    assert reward(["q"], ["b"]) == [0.5] and reward.metrics()["judgments"] == 0.0  # nothing asked this time
