"""Chat templates from YAML (built-in, file, inline) and tool conversations rendered through them.

The hand-checked case: one conversation with a tool call and a tool result, rendered by the ``qwen2``
built-in on the tiny tokenizer. The whole expected text is written out below from Qwen's documented
format; the trained tokens must be exactly the two assistant turns (the tool call with its
``<|im_end|>\\n``, then the answer with its ``<|im_end|>\\n``), and the tool's output is never trained.
"""

from __future__ import annotations

import re
import warnings

import pytest

from rlhf_lightning.data.chat_templates import BUILTIN_TEMPLATES, resolve_chat_template, set_chat_template
from rlhf_lightning.data.encoding import IGNORE_INDEX, encode
from rlhf_lightning.data.tools import chat_messages
from rlhf_lightning.errors import ConfigError, InvalidOption

TOOL = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
ROW = {
    "messages": [
        {"role": "user", "content": "Paris?"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "name": "weather", "content": "18C"},
        {"role": "assistant", "content": "It is 18C."},
    ],
    "tools": [TOOL],
}

QWEN2_TEXT = (
    "<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n\n"
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    '{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}\n</tools>\n\n'
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
    "<|im_start|>user\nParis?<|im_end|>\n"
    "<|im_start|>assistant\n"
    '<tool_call>\n{"name": "weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n'
    "<|im_start|>user\n<tool_response>\n18C\n</tool_response><|im_end|>\n"
    "<|im_start|>assistant\nIt is 18C.<|im_end|>\n"
)
QWEN2_TRAINED = ['<tool_call>\n{"name": "weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n',
                 "It is 18C.<|im_end|>\n"]


@pytest.fixture()
def tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def _trained_runs(tok, enc) -> list[str]:
    """The trained tokens of ``enc`` decoded run by run (consecutive trained tokens form one run)."""
    runs, current = [], []
    for tid, label in zip(enc["input_ids"], enc["labels"], strict=True):
        if label != IGNORE_INDEX:
            assert label == tid
            current.append(tid)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tok.decode(r) for r in runs]


def test_qwen2_tool_conversation_tokens_and_labels_by_hand(tokenizer):
    set_chat_template(tokenizer, "qwen2")
    enc = encode(ROW, "messages", tokenizer)
    # The ids are the tokenization of the text written out above, nothing added (the template has no BOS).
    assert enc["input_ids"] == tokenizer(QWEN2_TEXT, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(enc["input_ids"]) == QWEN2_TEXT
    # Trained: both assistant turns, the tool call included; not the tool's output nor anything else.
    assert _trained_runs(tokenizer, enc) == QWEN2_TRAINED
    n_trained = sum(label != IGNORE_INDEX for label in enc["labels"])
    assert n_trained == sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in QWEN2_TRAINED)
    # <|im_start|> and <|im_end|> are single tokens of the tiny tokenizer: each trained turn ends on <|im_end|>, "\n".
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    trained_ids = [t for t, label in zip(enc["input_ids"], enc["labels"], strict=True) if label != IGNORE_INDEX]
    assert trained_ids.count(im_end) == 2


@pytest.mark.parametrize("name", sorted(BUILTIN_TEMPLATES))
def test_builtin_label_mask_matches_its_generation_markers(tokenizer, name):
    """Our prefix-rendered mask equals transformers' {% generation %} mask (what TRL's assistant_only_loss
    uses) for every built-in, on the tool conversation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # llama3's markers are not tokens of the tiny tokenizer
        set_chat_template(tokenizer, name)
    enc = encode(ROW, "messages", tokenizer)
    hf = tokenizer.apply_chat_template(chat_messages(ROW["messages"]), tools=ROW["tools"], tokenize=True,
                                       return_dict=True, return_assistant_tokens_mask=True)
    assert hf["input_ids"] == enc["input_ids"]
    assert [bool(m) for m in hf["assistant_masks"]] == [label != IGNORE_INDEX for label in enc["labels"]]
    runs = _trained_runs(tokenizer, enc)
    assert len(runs) == 2 and "Paris" in runs[0] and runs[1].startswith("It is 18C.")
    assert all("18C\n" not in r and "<tool_response>" not in r for r in runs)


def test_llama3_renders_the_documented_layout(tokenizer):
    with pytest.warns(UserWarning, match=re.escape("<|eot_id|> are not tokens")):  # the tiny tokenizer lacks Llama 3's special tokens
        set_chat_template(tokenizer, "llama3")
    text = tokenizer.apply_chat_template(chat_messages(ROW["messages"]), tools=ROW["tools"], tokenize=False)
    assert text.startswith(tokenizer.bos_token + "<|start_header_id|>system<|end_header_id|>\n\nYou have access")
    assert ('<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "weather", "parameters": {"city": "Paris"}}'
            "<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n18C<|eot_id|>") in text
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\nIt is 18C.<|eot_id|>")


def test_chatml_has_no_default_system_and_qwen2_has_one(tokenizer):
    plain = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    set_chat_template(tokenizer, "chatml")
    assert tokenizer.apply_chat_template(plain, tokenize=False) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n")
    set_chat_template(tokenizer, "qwen2")
    assert tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=False).startswith(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi")


def test_file_and_inline_templates(tmp_path):
    inline = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    assert resolve_chat_template(inline) == inline
    path = tmp_path / "t.jinja"
    path.write_text(inline, encoding="utf-8")
    assert resolve_chat_template(str(path)) == inline


@pytest.mark.parametrize("value, words", [
    ("chatmll", "unknown built-in template; built-ins: chatml, llama3, qwen2"),
    ("missing/template.jinja", "template file not found"),
    ("{% for m in messages %}", "does not parse as Jinja"),
    ("  ", "must be a built-in name"),
])
def test_bad_values_name_the_cause(value, words):
    with pytest.raises(InvalidOption, match="chat_template: ") as info:
        resolve_chat_template(value)
    assert words in str(info.value)


def test_empty_template_file(tmp_path):
    path = tmp_path / "empty.jinja"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="template file is empty"):
        resolve_chat_template(str(path))


def test_not_prefix_stable_template_is_named(tokenizer):
    # The last turn gets a marker the earlier renderings do not: an assistant turn's text changes with what follows.
    unstable = "{% for m in messages %}{{ m.role }}: {{ m.content }}{% if loop.last %} [END]{% endif %}\n{% endfor %}"
    set_chat_template(tokenizer, unstable)
    row = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                        {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye"}]}
    with pytest.raises(ConfigError, match="the inline chat_template is not prefix-stable"):
        encode(row, "messages", tokenizer)
