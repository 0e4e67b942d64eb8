"""Public dataset shapes (Dolly, ShareGPT, OpenAssistant trees, UltraFeedback, Anthropic HH) read from a file in
their exact published layout through the stages' data modules, with rendered tokens and label masks checked
on the tiny ChatML tokenizer (``<s><|im_start|>role\\ncontent<|im_end|>\\n``)."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from rlhf_lightning.datamodules.comparisons import ComparisonDataModule
from rlhf_lightning.datamodules.sft import SFTDataModule
from rlhf_lightning.errors import DataError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def split(tok, example):
    """(whole decoded text, decoded trained tokens) of one encoded example; labels[0] never counts."""
    ids, labels = example["input_ids"], example["labels"]
    return tok.decode(ids), tok.decode([t for t, lab in zip(ids, labels, strict=True) if lab != -100])


def turn(role, content):
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


@pytest.fixture(scope="module")
def tok(tiny_tokenizer_dir):
    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def sft_rows(path, tokenizer_dir, **source):
    dm = SFTDataModule(train={"path": path, **source}, tokenizer=str(tokenizer_dir), max_length=256, batch_size=2)
    dm.setup("fit")
    return list(dm.train_data)


# -- supervised ------------------------------------------------------------------------------------

DOLLY = [  # databricks/databricks-dolly-15k
    {"instruction": "Explain gravity.", "context": "The earth pulls the moon.",
     "response": "Gravity pulls objects toward each other.", "category": "closed_qa"},
    {"instruction": "Write a poem about spring.", "context": "", "response": "Spring wind brings flowers.",
     "category": "creative_writing"},
]


def test_dolly(tmp_path, tiny_tokenizer_dir, tok):
    rows = sft_rows(write_jsonl(tmp_path / "dolly.jsonl", DOLLY), tiny_tokenizer_dir)
    text, trained = split(tok, rows[0])
    assert text == ("<s>" + turn("user", "Explain gravity.\n\nThe earth pulls the moon.")
                    + turn("assistant", "Gravity pulls objects toward each other."))
    assert trained == "Gravity pulls objects toward each other.<|im_end|>\n"
    text, trained = split(tok, rows[1])  # empty context: the instruction alone
    assert text == "<s>" + turn("user", "Write a poem about spring.") + turn("assistant", "Spring wind brings flowers.")
    assert trained == "Spring wind brings flowers.<|im_end|>\n"


SHAREGPT = [
    {"id": "a1", "conversations": [  # ShareGPT / Vicuna dumps
        {"from": "system", "value": "Be brief."}, {"from": "human", "value": "hello"},
        {"from": "gpt", "value": "hello world"}, {"from": "human", "value": "thank you"},
        {"from": "gpt", "value": "you are welcome"}]},
    {"id": "a2", "system": "Answer in Chinese.", "conversations": [  # LLaMA-Factory: system column, user/assistant
        {"from": "user", "value": "写一首诗"}, {"from": "assistant", "value": "春风拂面"}]},
]


def test_sharegpt(tmp_path, tiny_tokenizer_dir, tok):
    rows = sft_rows(write_jsonl(tmp_path / "sharegpt.jsonl", SHAREGPT), tiny_tokenizer_dir)
    text, trained = split(tok, rows[0])
    assert text == ("<s>" + turn("system", "Be brief.") + turn("user", "hello") + turn("assistant", "hello world")
                    + turn("user", "thank you") + turn("assistant", "you are welcome"))
    assert trained == "hello world<|im_end|>\nyou are welcome<|im_end|>\n"  # every assistant turn, nothing else
    text, trained = split(tok, rows[1])
    assert text == "<s>" + turn("system", "Answer in Chinese.") + turn("user", "写一首诗") + turn("assistant", "春风拂面")
    assert trained == "春风拂面<|im_end|>\n"


def test_conversations_in_openai_layout(tmp_path, tiny_tokenizer_dir, tok):
    row = {"conversations": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hello world"}]}
    (encoded,) = sft_rows(write_jsonl(tmp_path / "c.jsonl", [row]), tiny_tokenizer_dir)
    assert split(tok, encoded) == ("<s>" + turn("user", "hello") + turn("assistant", "hello world"),
                                   "hello world<|im_end|>\n")


def test_sharegpt_unknown_sender_names_file_row_and_value(tmp_path, tiny_tokenizer_dir):
    bad = [SHAREGPT[0], {"conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "hello"}]}]
    path = write_jsonl(tmp_path / "sg.jsonl", bad)
    with pytest.raises(DataError, match=r"sg\.jsonl row index 1: conversations\[1\] has from='bot'; known values: human"):
        sft_rows(path, tiny_tokenizer_dir)


def oasst(mid, parent, role, text, rank=None, tree="m1", deleted=False):
    """One row of OpenAssistant/oasst1 (one message per row)."""
    return {"message_id": mid, "parent_id": parent, "user_id": "u-" + mid,
            "created_date": "2023-02-05T14:23:50.983374+00:00", "text": text, "role": role, "lang": "en",
            "review_count": 3, "review_result": True, "deleted": deleted, "rank": rank, "synthetic": False,
            "model_name": None, "message_tree_id": tree, "tree_state": "ready_for_export",
            "emojis": {"name": ["+1"], "count": [2]}}


OASST = [
    oasst("m1", None, "prompter", "Explain gravity."),
    oasst("m2", "m1", "assistant", "It is a force.", rank=1),
    oasst("m3", "m1", "assistant", "Gravity pulls objects toward each other.", rank=0),
    oasst("m4", "m3", "prompter", "thank you"),
    oasst("m5", "m4", "assistant", "You are welcome."),
    oasst("m6", "m1", "assistant", "deleted reply", rank=None, deleted=True),
    oasst("p1", None, "prompter", "hello", tree="p1"),  # a prompt nobody answered: no conversation
]


def test_openassistant_trees_become_best_ranked_conversations(tmp_path, tiny_tokenizer_dir, tok):
    """Before: the rows were trained as seven unrelated plain texts."""
    (row,) = sft_rows(write_jsonl(tmp_path / "oasst.jsonl", OASST), tiny_tokenizer_dir)
    text, trained = split(tok, row)
    assert text == ("<s>" + turn("user", "Explain gravity.") + turn("assistant", "Gravity pulls objects toward each other.")
                    + turn("user", "thank you") + turn("assistant", "You are welcome."))
    assert trained == "Gravity pulls objects toward each other.<|im_end|>\nYou are welcome.<|im_end|>\n"
    assert len(sft_rows(write_jsonl(tmp_path / "o.jsonl", OASST), tiny_tokenizer_dir, format="text")) == 7  # declared


def test_openassistant_sibling_ranks_become_rankings(tmp_path, tiny_tokenizer_dir, tok):
    (comp,) = comparisons(write_jsonl(tmp_path / "oasst.jsonl", OASST), tiny_tokenizer_dir)
    head = "<s>" + turn("user", "Explain gravity.") + "<|im_start|>assistant\n"
    for response, answer in zip(comp["responses"], ["Gravity pulls objects toward each other.", "It is a force."], strict=True):
        assert split(tok, response) == (head + answer + "<|im_end|>\n", answer + "<|im_end|>\n")


def test_openassistant_broken_tree_names_row_and_field(tmp_path, tiny_tokenizer_dir):
    rows = OASST[:2] + [oasst("m9", "gone", "assistant", "orphan")]
    with pytest.raises(DataError, match=r"o\.jsonl row index 2: field 'parent_id' 'gone' names no message"):
        sft_rows(write_jsonl(tmp_path / "o.jsonl", rows), tiny_tokenizer_dir)
    rows = OASST[:1] + [oasst("m2", "m1", "moderator", "hi")]
    with pytest.raises(DataError, match=r"o\.jsonl row index 1: field 'role' is 'moderator'"):
        sft_rows(write_jsonl(tmp_path / "o.jsonl", rows), tiny_tokenizer_dir)


def test_ambiguous_columns_are_an_error_and_format_chooses(tmp_path, tiny_tokenizer_dir, tok):
    messages = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hello world"}]
    path = write_jsonl(tmp_path / "both.jsonl", [{"messages": messages, "text": "user hello assistant hello world"}])
    with pytest.raises(DataError, match=r"both\.jsonl: columns \[messages, text\] match several formats: "
                                        r"messages \(needs messages\), text \(needs text\); declare"):
        sft_rows(path, tiny_tokenizer_dir)
    _, trained = split(tok, sft_rows(path, tiny_tokenizer_dir, format="messages")[0])
    assert trained == "hello world<|im_end|>\n"
    text, trained = split(tok, sft_rows(path, tiny_tokenizer_dir, format="text")[0])
    assert text == "<s>user hello assistant hello world</s>" and trained == text[len("<s>"):]


def test_tatsu_alpaca_with_its_rendered_text_column_needs_a_declared_format(tmp_path, tiny_tokenizer_dir, tok):
    row = {"instruction": "Explain gravity.", "input": "", "output": "Gravity pulls objects toward each other.",
           "text": "Below is an instruction that describes a task. ### Instruction: Explain gravity. ### Response: "
                   "Gravity pulls objects toward each other."}  # tatsu-lab/alpaca
    path = write_jsonl(tmp_path / "alpaca.jsonl", [row])
    with pytest.raises(DataError, match=r"match several formats: alpaca \(needs instruction, output\), text"):
        sft_rows(path, tiny_tokenizer_dir)
    (encoded,) = sft_rows(path, tiny_tokenizer_dir, format="alpaca")
    assert split(tok, encoded) == ("<s>" + turn("user", "Explain gravity.")
                                   + turn("assistant", "Gravity pulls objects toward each other."),
                                   "Gravity pulls objects toward each other.<|im_end|>\n")


# -- comparisons -----------------------------------------------------------------------------------

def comparisons(path, tokenizer_dir, **options):
    dm = ComparisonDataModule(train=path, tokenizer=str(tokenizer_dir), max_length=256, **options)
    dm.setup("fit")
    return dm.train_data


def chat(prompt, answer):
    return [{"content": prompt, "role": "user"}, {"content": answer, "role": "assistant"}]


H4_ULTRAFEEDBACK = {  # HuggingFaceH4/ultrafeedback_binarized
    "prompt": "Explain gravity.", "prompt_id": "5d0a1c",
    "chosen": chat("Explain gravity.", "Gravity pulls objects toward each other."),
    "rejected": chat("Explain gravity.", "I do not know."),
    "messages": chat("Explain gravity.", "Gravity pulls objects toward each other."),
    "score_chosen": 8.0, "score_rejected": 3.0,
}
ARGILLA_ULTRAFEEDBACK = {  # argilla/ultrafeedback-binarized-preferences-cleaned
    "source": "evol_instruct", "prompt": "Explain gravity.",
    "chosen": chat("Explain gravity.", "Gravity pulls objects toward each other."), "chosen-rating": 5.0,
    "chosen-model": "gpt-4", "rejected": chat("Explain gravity.", "I do not know."), "rejected-rating": 2.0,
    "rejected-model": "llama-2-7b-chat",
}
TRL_ULTRAFEEDBACK = {  # trl-lib/ultrafeedback_binarized (implicit prompt)
    "chosen": chat("Explain gravity.", "Gravity pulls objects toward each other."),
    "rejected": chat("Explain gravity.", "I do not know."), "score_chosen": 8.0, "score_rejected": 3.0,
}


@pytest.mark.parametrize("row,scores", [(H4_ULTRAFEEDBACK, [8.0, 3.0]), (ARGILLA_ULTRAFEEDBACK, [5.0, 2.0]),
                                        (TRL_ULTRAFEEDBACK, [8.0, 3.0])], ids=["h4", "argilla", "trl"])
def test_ultrafeedback_binarized_prompt_is_not_repeated(tmp_path, tiny_tokenizer_dir, tok, row, scores):
    """Before: "the tokenizer's chat template is not prefix-stable" (the prompt was rendered twice)."""
    (comp,) = comparisons(write_jsonl(tmp_path / "uf.jsonl", [row]), tiny_tokenizer_dir, pairwise_only=True)
    head = "<s>" + turn("user", "Explain gravity.") + "<|im_start|>assistant\n"
    for response, answer in zip(comp["responses"], ["Gravity pulls objects toward each other.", "I do not know."], strict=True):
        text, trained = split(tok, response)
        assert text == head + answer + "<|im_end|>\n" and trained == answer + "<|im_end|>\n"
    assert comp["scores"] == scores


def test_ultrafeedback_binarized_with_a_different_prompt_names_row_and_field(tmp_path, tiny_tokenizer_dir):
    row = {**H4_ULTRAFEEDBACK, "prompt": "Explain magnets."}
    path = write_jsonl(tmp_path / "uf.jsonl", [H4_ULTRAFEEDBACK, row])
    with pytest.raises(DataError, match=r"uf\.jsonl row index 1: field 'chosen' is a whole conversation"):
        comparisons(path, tiny_tokenizer_dir)


def completion(response, overall, fine):
    return {"annotations": {"helpfulness": {"Rating": "4", "Rationale": "ok"}}, "critique": "fine",
            "custom_system_prompt": "Be helpful.", "fine-grained_score": fine, "model": "m",
            "overall_score": overall, "principle": "helpfulness", "response": response}


OPENBMB_ULTRAFEEDBACK = [  # openbmb/UltraFeedback
    {"source": "evol_instruct", "instruction": "Explain gravity.", "models": ["a", "b", "c", "d"],
     "completions": [completion("Gravity pulls objects.", 8.5, 4.5), completion("It is a force.", 6.0, 3.5),
                     completion("Gravity pulls things.", 8.5, 4.25), completion("I do not know.", 3.0, 1.0)],
     "correct_answers": ["None"], "incorrect_answers": ["None"]},
    {"source": "evol_instruct", "instruction": "Say hello.", "models": ["a", "b"],
     "completions": [completion("hello", 7.0, 4.0), completion("hello world", 7.0, 4.0)],
     "correct_answers": ["None"], "incorrect_answers": ["None"]},
]


def test_ultrafeedback_with_scores_becomes_a_ranking(tmp_path, tiny_tokenizer_dir, tok):
    rows = comparisons(write_jsonl(tmp_path / "uf.jsonl", OPENBMB_ULTRAFEEDBACK), tiny_tokenizer_dir)
    assert len(rows) == 1  # the all-tied row has nothing to compare and is skipped
    (comp,) = rows
    assert comp["scores"] == [8.5, 6.0, 3.0]  # best first; the later of the two 8.5s is left out (no strict order)
    trained = [split(tok, r)[1] for r in comp["responses"]]
    assert trained == ["Gravity pulls objects.<|im_end|>\n", "It is a force.<|im_end|>\n", "I do not know.<|im_end|>\n"]
    assert split(tok, comp["responses"][0])[0].startswith("<s>" + turn("user", "Explain gravity."))


def test_anthropic_hh(tmp_path, tiny_tokenizer_dir, tok):
    row = {  # Anthropic/hh-rlhf: two whole dialogues sharing every turn but the last answer
        "chosen": "\n\nHuman: What is gravity?\n\nAssistant: Gravity pulls objects toward each other."
                  "\n\nHuman: thank you\n\nAssistant: You are welcome.",
        "rejected": "\n\nHuman: What is gravity?\n\nAssistant: Gravity pulls objects toward each other."
                    "\n\nHuman: thank you\n\nAssistant: Go away.",
    }
    (comp,) = comparisons(write_jsonl(tmp_path / "hh.jsonl", [row]), tiny_tokenizer_dir, pairwise_only=True)
    prompt = "\n\nHuman: What is gravity?\n\nAssistant: Gravity pulls objects toward each other.\n\nHuman: thank you" \
             "\n\nAssistant:"
    for response, answer in zip(comp["responses"], [" You are welcome.", " Go away."], strict=True):
        text, trained = split(tok, response)
        assert trained.startswith(answer) and prompt in text[: len(text) - len(trained)]
        assert answer not in text[: len(text) - len(trained)]


def test_tldr_summarisation_comparisons(tmp_path, tiny_tokenizer_dir, tok):
    row = {  # openai/summarize_from_feedback, "comparisons"
        "info": {"id": "t3_1", "post": "The earth pulls the moon.", "title": "Explain gravity", "subreddit": "askscience",
                 "site": None, "article": None},
        "summaries": [{"text": " I do not know.", "policy": "sup2", "note": None},
                      {"text": " Gravity pulls objects.", "policy": "ppo_xl", "note": "good"}],
        "choice": 1, "worker": "w1", "batch": "batch3", "split": "train", "extra": {"confidence": 8},
    }
    (comp,) = comparisons(write_jsonl(tmp_path / "tldr.jsonl", [row]), tiny_tokenizer_dir, pairwise_only=True)
    prompt = "SUBREDDIT: r/askscience\n\nTITLE: Explain gravity\n\nPOST: The earth pulls the moon.\n\nTL;DR:"
    for response, summary in zip(comp["responses"], [" Gravity pulls objects.", " I do not know."], strict=True):  # chosen first
        text, trained = split(tok, response)
        assert trained.startswith(summary) and prompt in text[: len(text) - len(trained)]
    with pytest.raises(DataError, match=r"t\.jsonl row index 0: field 'choice' must be 0 or 1"):
        comparisons(write_jsonl(tmp_path / "t.jsonl", [{**row, "choice": 2}]), tiny_tokenizer_dir)


LLAMA_FACTORY_PREFERENCES = {
    "sharegpt": {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Explain gravity."}],
                 "chosen": {"from": "gpt", "value": "Gravity pulls objects toward each other."},
                 "rejected": {"from": "gpt", "value": "I do not know."}},
    "alpaca": {"instruction": "Explain gravity.", "input": "", "chosen": "Gravity pulls objects toward each other.",
               "rejected": "I do not know."},
}


@pytest.mark.parametrize("shape", ["sharegpt", "alpaca"])
def test_llama_factory_preference_rows(tmp_path, tiny_tokenizer_dir, tok, shape):
    """Before: sharegpt replies ({from, value}) were refused, alpaca rows read as implicit pairs ('share no prompt')."""
    row = LLAMA_FACTORY_PREFERENCES[shape]
    (comp,) = comparisons(write_jsonl(tmp_path / "lf.jsonl", [row]), tiny_tokenizer_dir, pairwise_only=True)
    head = "<s>" + turn("system", "Be brief.") + turn("user", "Explain gravity.") + "<|im_start|>assistant\n"
    for response, answer in zip(comp["responses"], ["Gravity pulls objects toward each other.", "I do not know."], strict=True):
        text, trained = split(tok, response)
        assert trained.startswith(answer)
        if shape == "sharegpt":  # conversational: the chat template renders it
            assert text == head + trained
        else:  # a plain-string prompt (whether it is templated is the tokenization policy's call)
            assert "Explain gravity." in text[: len(text) - len(trained)]


def test_llama_factory_sharegpt_preference_needs_a_human_turn_last(tmp_path, tiny_tokenizer_dir):
    row = {**LLAMA_FACTORY_PREFERENCES["sharegpt"], "conversations": [{"from": "human", "value": "hi"},
                                                                      {"from": "gpt", "value": "hello"}]}
    with pytest.raises(DataError, match=r"lf\.jsonl row index 0: field 'conversations' must end with a human turn"):
        comparisons(write_jsonl(tmp_path / "lf.jsonl", [row]), tiny_tokenizer_dir)
