#!/usr/bin/env bash
# bash configs/demo/run.sh
#
# The offline demo: pre-train a ~4M-parameter Llama from scratch, fine-tune it on prompt/response
# pairs, then answer held-out prompts and report how many answers stay on topic.
# Tested on 2 CPU cores, no GPU, no network, 2026-11-22 (about 3.5 minutes; the whole pipeline with the
# reward-model, DPO, GRPO and PPO demos, as tests/demo/test_demo_pipeline.py runs it: about 6.5 minutes). Outputs under runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

rlhf-lightning fit --config configs/demo/pretrain.yaml
rlhf-lightning fit --config configs/demo/sft.yaml
rlhf-lightning predict --config configs/demo/sft.yaml \
  --model.init_args.policy.name_or_path runs/demo/sft/export \
  --predictions.output runs/demo/sft/predictions_heldout.jsonl
python -m rlhf_lightning.demo.evaluate runs/demo/sft/predictions_heldout.jsonl
echo "Exported model: runs/demo/sft/export (loads with transformers.AutoModelForCausalLM.from_pretrained)"
