"""``rlhf-lightning export``: checkpoints read without running code from them, FSDP2 checkpoint folders
(LoRA merged from them, as the FSDP2 merge error advises), and output folders it must not replace."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlhf_lightning.cli import main
from tests.cli.conftest import sft_config, sft_files  # noqa: F401 - fixture
from tests.test_checkpoint_weights import Pwn

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "rlhf-lightning")
LORA = {"r": 4, "alpha": 8, "dropout": 0.0}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def trained(tmp_path, tiny_llama_dir, sft_files):  # noqa: F811
    """A 2-step SFT run without an export: its config and ``last.ckpt``."""
    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{"trainer.max_steps": 2, "export.enabled": False,
                                                             "trainer.num_sanity_val_steps": 0})
    assert main(["fit", "--config", str(cfg)]) == 0
    return cfg, tmp_path / "checkpoints" / "last.ckpt"


def test_a_checkpoint_that_would_run_code_is_refused(trained, tmp_path, capsys):
    cfg, last = trained
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)  # the test's own, trusted file
    checkpoint["callbacks"]["zz"] = Pwn(tmp_path / "pwned")
    torch.save(checkpoint, tmp_path / "evil.ckpt")
    capsys.readouterr()
    assert main(["export", "--config", str(cfg), "--ckpt_path", str(tmp_path / "evil.ckpt"),
                 "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"refusing to load checkpoint {tmp_path / 'evil.ckpt'}: it holds objects that only arbitrary code can " \
           "rebuild (it asks for" in err, err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("output", [".", "run folder", "folder with notes"])
def test_an_output_it_must_not_replace_is_refused_before_loading(trained, tmp_path, monkeypatch, capsys, output):
    cfg, last = trained
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my notes")
    if output == ".":
        monkeypatch.chdir(tmp_path)
    target = {".": ".", "run folder": str(tmp_path), "folder with notes": str(tmp_path / "mine")}[output]
    before = _tree(tmp_path)
    capsys.readouterr()
    assert main(["export", "--config", str(cfg), "--ckpt_path", str(last), "--output", target]) == 2
    err = capsys.readouterr().err
    expected = {".": "it is the current folder",
                "run folder": f"it is or contains {tmp_path}, which the export would delete",
                "folder with notes": "it holds notes.txt. Nothing was changed"}[output]
    assert f"cannot write the export to {target}: " in err and expected in err, err
    assert _tree(tmp_path) == before


def test_fsdp2_lora_run_merges_through_the_command_its_error_advises(tmp_path, tiny_llama_dir, sft_files):  # noqa: F811
    """An FSDP2 run (one gloo process: the same sharded model and checkpoint folder as with more)
    with ``export.merge_lora`` stops after training with exit 2 and a command; that command, run as
    printed, merges the LoRA of the sharded ``last.ckpt`` folder into a plain model whose weights are
    the checkpoint's base weights plus (alpha / r) * B @ A, as torch's own DCP converter reads them."""
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    cfg = sft_config(tmp_path, tiny_llama_dir, sft_files, **{
        "trainer.max_steps": 2, "trainer.num_sanity_val_steps": 0, "export.merge_lora": True,
        "model.init_args.policy.lora": LORA})
    res = subprocess.run([EXE, "fit", "--config", str(cfg), "--config", str(ROOT / "configs/strategies/fsdp.yaml"),
                          "--trainer.devices", "1"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 2, res.stderr[-3000:]
    folder = tmp_path / "checkpoints" / "last.ckpt"
    assert folder.is_dir() and (folder / ".metadata").is_file()  # a distributed checkpoint folder
    advice = res.stderr.split("merge it from the run's checkpoint: ", 1)[1].splitlines()[0]
    args = shlex.split(advice)
    assert args[:2] == ["rlhf-lightning", "export"] and args[-1] == "--merge_lora"
    assert args[args.index("--ckpt_path") + 1] == str(folder)
    assert not (tmp_path / "export").exists()

    assert main(args[1:]) == 0
    merged = load_file(tmp_path / "export" / "model.safetensors")
    assert not any("lora_" in k for k in merged) and (tmp_path / "export" / "adapter" / "adapter_config.json").is_file()
    dcp_to_torch_save(folder, tmp_path / "full.pt")
    state = torch.load(tmp_path / "full.pt", weights_only=False)["state_dict"]
    lora_a = [k for k in state if k.endswith("lora_A.default.weight")]
    assert lora_a
    for key in lora_a:
        prefix = key[:-len("lora_A.default.weight")]
        b = state[prefix + "lora_B.default.weight"]
        assert b.abs().sum() > 0  # trained: B starts at zero
        expected = state[prefix + "base_layer.weight"] + (LORA["alpha"] / LORA["r"]) * b @ state[key]
        name = prefix.removeprefix("model.base_model.model.") + "weight"
        torch.testing.assert_close(merged[name], expected)
