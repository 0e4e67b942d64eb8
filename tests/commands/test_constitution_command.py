"""``rlhf-lightning constitution``: a tiny Llama answers, critiques and revises; the trace's conversations are
checked against turns written out by hand (chat template, and the plain transcript without one), reruns
reproduce by seed, the SFT and DPO stages fit on the outputs through the CLI, and bad input exits 2 with
one message and nothing deleted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from transformers import AutoTokenizer

from rlhf_lightning.cli import main as cli_main
from rlhf_lightning.data.comparisons import to_comparison
from tests import tiny
from tests.cli.conftest import sft_config, write_config

PROMPTS = [{"prompt": "Write a poem about spring."},
           {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "请解释什么是人工智能。"}]},
           {"prompt": "Explain gravity."},
           {"prompt": "Say hello."}]
PRINCIPLES = [
    {"name": "harmful",
     "critique_request": "Identify specific ways in which the assistant's last response is harmful.",
     "revision_request": "Please rewrite the assistant response to remove any harmful content."},
    {"name": "honest",
     "critique_request": "Point out anything in the last response that is not true.",
     "revision_request": "Please rewrite the response so that it says only what is true."},
    {"name": "polite",
     "critique_request": "Is the response rude? Say where.",
     "revision_request": "Rewrite the response politely."},
]
FEW_SHOT = [{"prompt": "How do I pick a lock?", "answer": "Use a pin.", "critique_request": "Is it harmful?",
             "critique": "It helps break in.", "revision_request": "Remove the harm.",
             "revision": "Ask a locksmith."}]


def _config(tmp_path: Path, policy: str, rows: list[dict] | None = None, **overrides) -> str:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (rows or PROMPTS)), encoding="utf-8")
    values = {
        "policy": policy, "prompts": str(path), "principles": PRINCIPLES, "few_shot": FEW_SHOT,
        "principles_per_prompt": 2, "rounds": 2, "seed": 5, "batch_size": 3, "max_prompt_length": 512,
        "generation": {"max_new_tokens": 6, "min_new_tokens": 2, "do_sample": True},
        "output": str(tmp_path / "cai"),
    }
    values.update(overrides)
    config = tmp_path / "cai.yaml"
    config.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    return str(config)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _turns(*pairs: tuple[str, str]) -> list[dict]:
    return [{"role": role, "content": content} for role, content in pairs]


def test_trace_holds_each_step_critique_and_revision_conversation(tmp_path, tiny_llama_dir, capsys):
    assert cli_main(["constitution", "--config", _config(tmp_path, str(tiny_llama_dir))]) == 0
    out = tmp_path / "cai"
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out.absolute())
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    requests = {p["name"]: p for p in PRINCIPLES}
    shot = FEW_SHOT[0]
    few = _turns(("user", shot["prompt"]), ("assistant", shot["answer"]), ("user", shot["critique_request"]),
                 ("assistant", shot["critique"]), ("user", shot["revision_request"]), ("assistant", shot["revision"]))
    traces = _jsonl(out / "trace.jsonl")
    assert [t["prompt_index"] for t in traces] == [0, 1, 2, 3]
    for row, trace in zip(PROMPTS, traces, strict=True):
        steps = trace["steps"]
        names = [s["principle"] for s in steps]
        # two distinct principles drawn per prompt, applied in the same order in both rounds
        assert len(steps) == 4 and names[:2] == names[2:] and len(set(names[:2])) == 2
        assert [s["round"] for s in steps] == [0, 0, 1, 1]
        system = [] if "prompt" in row else row["messages"][:1]
        asked = _turns(("user", row["prompt"])) if "prompt" in row else row["messages"][1:]
        current = trace["answer"]
        for s in steps:
            principle = requests[s["principle"]]
            critique_turns = [*system, *few, *asked, *_turns(("assistant", current),
                                                             ("user", principle["critique_request"]))]
            assert s["critique_prompt"] == tok.apply_chat_template(critique_turns, tokenize=False,
                                                                   add_generation_prompt=True)
            assert current in s["critique_prompt"] and principle["critique_request"] in s["critique_prompt"]
            revision_turns = [*critique_turns, *_turns(("assistant", s["critique"]),
                                                       ("user", principle["revision_request"]))]
            assert s["revision_prompt"] == tok.apply_chat_template(revision_turns, tokenize=False,
                                                                   add_generation_prompt=True)
            assert s["critique"] in s["revision_prompt"]
            current = s["revision"]  # the next step critiques this revision
        assert trace["final"] == steps[-1]["revision"]

    sft = _jsonl(out / "sft.jsonl")
    pairs = _jsonl(out / "pairs.jsonl")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    finals = [t["final"] for t in traces if t["final"].strip()]
    assert [r["messages"][-1]["content"] for r in sft] == finals
    # one layout per file: PROMPTS mixes plain and chat prompts, so every row is a chat
    assert sft[0] == {"messages": [{"role": "user", "content": PROMPTS[0]["prompt"]},
                                   {"role": "assistant", "content": traces[0]["final"]}]}
    if traces[1]["final"].strip():
        assert sft[1]["messages"] == [*PROMPTS[1]["messages"], {"role": "assistant", "content": traces[1]["final"]}]
    expected = [t for t in traces if t["final"].strip() and t["answer"].strip()
                and t["final"].strip() != t["answer"].strip()]
    assert len(pairs) == len(expected) >= 3  # random tiny-model texts rarely repeat
    for i, (pair, trace) in enumerate(zip(pairs, expected, strict=True)):
        prompt = trace["prompt"]
        assert pair["prompt"] == ([{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt)
        assert pair["chosen"] == [{"role": "assistant", "content": trace["final"]}]
        assert pair["rejected"] == [{"role": "assistant", "content": trace["answer"]}]
        to_comparison(pair, "pairwise", source="pairs.jsonl", index=i)  # the stages read it unchanged
    assert summary["pairs"] + summary["pairs_dropped_empty"] + summary["pairs_dropped_identical"] == 4
    assert (summary["revisions"], summary["sft_rows"], summary["few_shot_examples"]) == (16, len(sft), 1)
    assert sum(summary["principle_uses"].values()) == 16 and summary["chat_template"] is True


def test_same_seed_same_trace_other_seed_other_draws(tmp_path, tiny_llama_dir):
    config = _config(tmp_path, str(tiny_llama_dir), few_shot=None, rounds=1, principles_per_prompt=1)
    assert cli_main(["constitution", "--config", config]) == 0
    first = (tmp_path / "cai" / "trace.jsonl").read_text(encoding="utf-8")
    assert cli_main(["constitution", "--config", config]) == 0  # replaces its own earlier output
    assert (tmp_path / "cai" / "trace.jsonl").read_text(encoding="utf-8") == first
    assert cli_main(["constitution", "--config", _config(tmp_path, str(tiny_llama_dir), few_shot=None, rounds=1,
                                                          principles_per_prompt=1, seed=6)]) == 0
    assert (tmp_path / "cai" / "trace.jsonl").read_text(encoding="utf-8") != first


def test_without_a_chat_template_the_turns_are_a_plain_human_assistant_transcript(tmp_path):
    tok_dir = tiny.build_tokenizer(tmp_path / "tok", chat_template=False)
    vocab = len(AutoTokenizer.from_pretrained(tok_dir))
    model = tiny.build_llama(tmp_path / "plain", vocab_size=vocab, tokenizer_dir=tok_dir)
    prompts = [{"prompt": "Explain gravity."}, {"prompt": "Say hello."}]
    config = _config(tmp_path, str(model), prompts, few_shot=None, rounds=1, principles_per_prompt=1)
    assert cli_main(["constitution", "--config", config]) == 0
    requests = {p["name"]: p for p in PRINCIPLES}
    for row, trace in zip(prompts, _jsonl(tmp_path / "cai" / "trace.jsonl"), strict=True):
        (s,) = trace["steps"]
        p = requests[s["principle"]]
        critique = (f"Human: {row['prompt']}\n\nAssistant: {trace['answer'].strip()}\n\n"
                    f"Human: {p['critique_request']}\n\nAssistant:")
        assert s["critique_prompt"] == critique
        assert s["revision_prompt"] == (f"{critique} {s['critique'].strip()}\n\nHuman: {p['revision_request']}"
                                        "\n\nAssistant:")
    summary = json.loads((tmp_path / "cai" / "summary.json").read_text(encoding="utf-8"))
    assert summary["chat_template"] is False


def test_sft_and_dpo_fit_on_the_outputs_through_the_cli(tmp_path, tiny_llama_dir):
    prompts = [{"prompt": p} for p in ("Write a poem about spring.", "Explain gravity.", "Say hello.",
                                       "Translate to French: good morning", "Write a poem about the moon.",
                                       "What is AI?")]
    config = _config(tmp_path, str(tiny_llama_dir), prompts, few_shot=None, rounds=1, principles_per_prompt=1,
                     generation={"max_new_tokens": 8, "min_new_tokens": 3, "do_sample": True})
    assert cli_main(["constitution", "--config", config]) == 0
    out = tmp_path / "cai"
    assert len(_jsonl(out / "pairs.jsonl")) >= 2 and len(_jsonl(out / "sft.jsonl")) >= 2
    assert all(set(r) == {"prompt", "completion"} for r in _jsonl(out / "sft.jsonl"))  # plain prompts: plain rows

    sft_root = tmp_path / "sft"
    sft_root.mkdir()
    files = {"train": out / "sft.jsonl", "val": out / "sft.jsonl", "prompts": out / "sft.jsonl"}
    run = sft_config(sft_root, tiny_llama_dir, files, **{"trainer.max_steps": 3, "trainer.val_check_interval": None,
                                                        "trainer.num_sanity_val_steps": 0,
                                                        "data.init_args.batch_size": 2,
                                                        "data.init_args.predict": None})
    assert cli_main(["fit", "--config", str(run)]) == 0
    assert (sft_root / "export" / "model.safetensors").is_file()

    from tests.cli.test_dpo_cli import dpo_config

    dpo_root = tmp_path / "dpo"
    dpo_root.mkdir()
    run = dpo_config(dpo_root, tiny_llama_dir, {"train": out / "pairs.jsonl", "val": out / "pairs.jsonl"},
                     **{"trainer.max_steps": 2, "trainer.val_check_interval": None})
    assert cli_main(["fit", "--config", str(run)]) == 0
    assert (dpo_root / "export" / "model.safetensors").is_file()


@pytest.mark.parametrize("overrides, message", [
    ({"principles": []}, "principles is empty"),
    ({"principles": [PRINCIPLES[0], {"name": "b", "critique_request": "Why?"}]},
     "principles[1] ('b'): field 'revision_request' is missing (needs a non-empty string)"),
    ({"principles": [{**PRINCIPLES[0], "critque_request": "x"}]}, "principles[0] ('harmful'): unknown field "
                                                                   "'critque_request'"),
    ({"principles": [PRINCIPLES[0], PRINCIPLES[0]]}, "name 'harmful' is used twice"),
    ({"few_shot": [{"prompt": "p", "answer": "a"}]}, "few_shot[0]: field 'critique_request' is missing"),
    ({"principles_per_prompt": 4}, "principles_per_prompt must be in [1, 3]"),
    ({"rounds": 0}, "rounds must be >= 1, got 0"),
    ({"generation": {"max_new_tokens": 4, "num_return_sequences": 2}}, "generation.num_return_sequences"),
    ({"policy": "/no/such/policy"}, "folder /no/such/policy does not exist"),
    ({"prompts": "EMPTY"}, "no prompts (the file holds no rows)"),
    ({"prompts": "/no/such/prompts.jsonl"}, "prompts file not found: /no/such/prompts.jsonl"),
])
def test_bad_input_exits_2_with_one_message_and_writes_nothing(tmp_path, tiny_llama_dir, capsys, overrides, message):
    if overrides.get("prompts") == "EMPTY":
        (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
        overrides["prompts"] = str(tmp_path / "empty.jsonl")
    overrides.setdefault("policy", str(tiny_llama_dir))
    config = _config(tmp_path, **overrides)
    assert cli_main(["constitution", "--config", config]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("error") == 1, err
    assert not (tmp_path / "cai").exists()


def test_an_output_folder_that_is_not_ours_is_refused_and_kept(tmp_path, tiny_llama_dir, capsys):
    out = tmp_path / "cai"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    assert cli_main(["constitution", "--config", _config(tmp_path, str(tiny_llama_dir))]) == 2
    err = capsys.readouterr().err
    assert "not an earlier constitution (no .rlhf-lightning-constitution file); it holds notes.txt" in err, err
    assert "Traceback" not in err and sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_a_pipeline_constitution_step_is_keyed_and_skipped_when_done(tmp_path, tiny_llama_dir, capsys):
    config = _config(tmp_path, str(tiny_llama_dir), few_shot=None, rounds=1, principles_per_prompt=1)
    sft_root = tmp_path / "runs" / "tuned"
    sft_root.mkdir(parents=True)
    tuned = sft_config(sft_root, tiny_llama_dir, {"train": "x", "val": "x", "prompts": "x"},
                       **{"trainer.max_steps": 2, "trainer.val_check_interval": None,
                          "trainer.num_sanity_val_steps": 0, "data.init_args.batch_size": 2,
                          "data.init_args.val": None, "data.init_args.predict": None})
    pipeline = tmp_path / "pipeline.yaml"
    write_config(pipeline, {"log_dir": str(tmp_path / "runs"), "steps": [
        {"name": "cai", "command": "constitution", "config": config},
        {"name": "tuned", "config": str(tuned), "set": {"data.init_args.train": "${cai.export}/sft.jsonl"}}]}, {})
    assert cli_main(["pipeline", "--config", str(pipeline)]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "[1/2] cai: running; log " + str(tmp_path / "runs/pipeline/cai/pipeline.log") in out, out
    assert (tmp_path / "cai" / "pipeline_step.json").is_file()
    assert "sft.jsonl" in (sft_root / "pipeline.log").read_text(encoding="utf-8")
    stamp = (tmp_path / "cai" / "trace.jsonl").stat().st_mtime_ns
    assert cli_main(["pipeline", "--config", str(pipeline)]) == 0
    out = capsys.readouterr().out
    assert "[1/2] cai: done" in out and "[2/2] tuned: done" in out, out
    assert (tmp_path / "cai" / "trace.jsonl").stat().st_mtime_ns == stamp
