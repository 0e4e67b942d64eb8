"""Constitutional AI data helpers: principle checks, seeded draws, the conversations and transcript, rows."""

from __future__ import annotations

import pytest

from rlhf_lightning.data import constitution as cai
from rlhf_lightning.errors import ConfigError

P = [{"name": f"p{i}", "critique_request": f"critique {i}?", "revision_request": f"revise {i}."} for i in range(5)]


def test_parse_principles_keeps_order_and_fields():
    assert cai.parse_principles(P[:2]) == [cai.Principle("p0", "critique 0?", "revise 0."),
                                           cai.Principle("p1", "critique 1?", "revise 1.")]


@pytest.mark.parametrize("items, message", [
    ([], "principles is empty"),
    (None, "principles is empty"),
    (["be nice"], "principles[0] must be a mapping"),
    ([{"name": "a", "critique_request": " ", "revision_request": "r"}],
     "principles[0] ('a'): field 'critique_request' is empty"),
    ([{"name": "a", "critique_request": "c", "revision_request": 3}],
     "principles[0] ('a'): field 'revision_request' is a int"),
    ([{"critique_request": "c", "revision_request": "r"}], "principles[0]: field 'name' is missing"),
])
def test_bad_principles_name_the_entry_and_field(items, message):
    with pytest.raises(ConfigError) as err:
        cai.parse_principles(items)
    assert message in str(err.value)


def test_draws_are_distinct_seeded_and_vary_by_prompt():
    principles = cai.parse_principles(P)
    draws = [cai.draw_principles(principles, 3, seed=7, index=i) for i in range(20)]
    assert all(len({p.name for p in d}) == 3 for d in draws)
    assert draws == [cai.draw_principles(principles, 3, seed=7, index=i) for i in range(20)]
    assert len({tuple(p.name for p in d) for d in draws}) > 1
    assert draws != [cai.draw_principles(principles, 3, seed=8, index=i) for i in range(20)]
    with pytest.raises(ValueError):
        cai.draw_principles(principles, 6, seed=0, index=0)


def test_conversations_put_few_shot_after_system_turns():
    principle = cai.Principle("h", "Is it harmful?", "Rewrite it.")
    shot = cai.few_shot_turns([{"prompt": "q", "answer": "a", "critique_request": "cr", "critique": "c",
                                "revision_request": "rr", "revision": "r"}])
    assert [(t["role"], t["content"]) for t in shot] == [("user", "q"), ("assistant", "a"), ("user", "cr"),
                                                          ("assistant", "c"), ("user", "rr"), ("assistant", "r")]
    prompt = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    critique = cai.critique_conversation(prompt, "ANS", principle, shot)
    assert critique == [prompt[0], *shot, prompt[1], {"role": "assistant", "content": "ANS"},
                        {"role": "user", "content": "Is it harmful?"}]
    revision = cai.revision_conversation(critique, "CRIT", principle)
    assert revision == [*critique, {"role": "assistant", "content": "CRIT"}, {"role": "user", "content": "Rewrite it."}]
    assert cai.critique_conversation("U", "ANS", principle)[0] == {"role": "user", "content": "U"}


def test_plain_transcript_is_the_papers_human_assistant_dialogue():
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " Hello \n"},
             {"role": "user", "content": "Critique it."}]
    assert cai.plain_transcript(turns) == "Human: Hi\n\nAssistant: Hello\n\nHuman: Critique it.\n\nAssistant:"


def test_rows_and_pair_problems():
    assert cai.sft_row("q", "r") == {"prompt": "q", "completion": "r"}
    chat = [{"role": "user", "content": "q"}]
    assert cai.sft_row(chat, "r") == {"messages": [*chat, {"role": "assistant", "content": "r"}]}
    assert cai.pair_row("q", "good", "bad") == {"prompt": "q", "chosen": "good", "rejected": "bad"}
    assert cai.pair_row(chat, "good", "bad")["chosen"] == [{"role": "assistant", "content": "good"}]
    assert cai.uniform_prompts(["a", "b"]) == ["a", "b"]
    assert cai.uniform_prompts(["a", chat]) == [[{"role": "user", "content": "a"}], chat]
    assert [cai.pair_problem(r, a) for r, a in (("x", "y"), (" x ", "x"), ("", "y"), ("x", "  "))] == [
        None, "identical", "empty", "empty"]
