"""Peak GPU memory of the ``configs/examples`` runs, as parameters x bytes: the arithmetic of their headers.

An estimate, not a measurement. The terms (GiB = 2**30 bytes):

* model states of each trainable model: weights + gradients + AdamW's two fp32 moments. Full fine-tuning
  in ``bf16-mixed`` with fp32 weights: 4 + 4 + 8 = 16 bytes per parameter (DeepSpeed's bf16 mode
  holds bf16 weights and gradients beside an fp32 master copy: 2 + 2 + 4 + 8, the same 16). FSDP and
  ZeRO-3 divide them by the number of GPUs and add the weights gathered at a time: FSDP2's root unit
  (embeddings, LM head, final norm: not resharded after forward) plus two transformer blocks (the
  current one and the prefetched one) at the weights' dtype; ZeRO-3 up to its default
  ``stage3_max_live_parameters`` (1e9) in bf16.
* QLoRA: the transformer blocks' Linear weights in 4-bit NF4 with double quantization (0.5 bytes plus
  0.127 bits per parameter, Dettmers et al. 2023, sec. 3); the other weights (embeddings, LM head,
  norms) in fp32, because ``peft.prepare_model_for_kbit_training`` upcasts them; LoRA weights in fp32
  with 16 bytes of states per parameter.
* frozen models (a reference policy, a reward model): parameters x their dtype.
* activations of one micro-batch of ``tokens = sequences x length``: with gradient checkpointing each
  block keeps its bf16 input (layers x tokens x hidden x 2 bytes) and one block at a time is recomputed
  (34 x tokens x hidden bytes: Korthikanti et al. 2022, eq. 2, without the attention-score term that
  SDPA/flash attention never stores); without it every block keeps its 34 x tokens x hidden bytes.
* logits: logit rows x vocab x 8 bytes (bf16 logits, their fp32 copy in the loss, the bf16 gradient).
* online RL also generates: the KV cache of a whole rollout batch (sequences x length x layers x 2 x
  kv heads x head dim x 2 bytes); the peak is the larger of generation and the training step.
* 1 GiB of CUDA context and allocator slack.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GIB = 2 ** 30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
FULL_STATE_BYTES = 16  # fp32 weight + fp32 gradient + AdamW exp_avg + exp_avg_sq
NF4_BYTES = 0.5 + 0.127 / 8  # 4-bit weights + double-quantized block constants
ZERO3_LIVE_PARAMETERS = 1e9  # DeepSpeed's default stage3_max_live_parameters
ACTIVATION_BYTES_PER_BLOCK = 34  # per token per hidden unit (Korthikanti et al. 2022, without s^2 term)
LOGIT_BYTES = 8  # bf16 logits + fp32 copy + bf16 gradient
OVERHEAD_GIB = 1.0


@dataclass
class Architecture:
    """The dimensions the estimate needs, read from a (meta-device) model."""

    total: int  # all parameters
    trainable: int  # parameters with requires_grad
    block_linear: int  # Linear weights inside the transformer blocks (what bitsandbytes quantizes)
    non_block: int  # embeddings, LM head, final norm (FSDP2's root unit)
    per_block: int  # parameters of one transformer block
    layers: int
    hidden: int
    vocab: int
    kv_width: int  # kv heads x head dim


@dataclass
class Run:
    """How the config trains: the inputs of :func:`estimate`."""

    arch: Architecture
    shards: int = 1  # GPUs the model states are split over (FSDP / ZeRO-3); 1 = not sharded
    sharding: str = "none"  # "none", "fsdp" or "zero3"
    weight_dtype: str = "float32"
    quantized: bool = False
    checkpointing: bool = True
    act_tokens: int = 0  # tokens of one micro-batch through the model
    logit_rows: int = 0  # positions that get logits in that micro-batch
    kv_tokens: int = 0  # tokens cached while generating one rollout batch (online RL)
    frozen_bytes: dict[str, float] = field(default_factory=dict)  # frozen models: name -> bytes


def estimate(run: Run) -> dict[str, float]:
    """Terms of the peak (GiB) and their ``total``; see the module docstring for each term."""
    a = run.arch
    terms: dict[str, float] = {}
    if run.quantized:
        rest = a.total - a.trainable - a.block_linear
        terms["weights (4-bit blocks + fp32 rest)"] = (a.block_linear * NF4_BYTES + rest * 4) / GIB
        terms["LoRA weights + grads + AdamW"] = a.trainable * FULL_STATE_BYTES / GIB
    else:
        states = a.trainable * FULL_STATE_BYTES + (a.total - a.trainable) * DTYPE_BYTES[run.weight_dtype]
        terms["weights + grads + AdamW"] = states / run.shards / GIB
        if run.sharding == "fsdp":
            gathered = (a.non_block + 2 * a.per_block) * DTYPE_BYTES[run.weight_dtype]
            terms["gathered (root unit + 2 blocks)"] = gathered / GIB
        elif run.sharding == "zero3":
            terms["gathered (live parameters)"] = min(ZERO3_LIVE_PARAMETERS, a.total) * 2 / GIB
    for name, nbytes in run.frozen_bytes.items():
        terms[name] = nbytes / GIB
    per_block = ACTIVATION_BYTES_PER_BLOCK * run.act_tokens * a.hidden
    activations = (a.layers * run.act_tokens * a.hidden * 2 + per_block) if run.checkpointing \
        else a.layers * per_block
    train = (activations + run.logit_rows * a.vocab * LOGIT_BYTES) / GIB
    generation = run.kv_tokens * a.layers * 2 * a.kv_width * 2 / GIB
    if run.kv_tokens:
        terms["max(training activations + logits, generation KV cache)"] = max(train, generation)
    else:
        terms["activations + logits"] = train
    terms["CUDA context + allocator"] = OVERHEAD_GIB
    terms["total"] = sum(terms.values())
    return terms


def architecture(model) -> Architecture:
    """Read :class:`Architecture` from a transformers model (or a peft model wrapping one), on any device."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config
    blocks = _blocks(base)
    block_ids = {id(p) for b in blocks for p in b.parameters()}
    params = list(model.parameters())
    block_linear = sum(m.weight.numel() for b in blocks for name, m in b.named_modules()
                       if isinstance(m, torch.nn.Linear) and "lora_" not in name)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return Architecture(
        total=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in params if p.requires_grad),
        block_linear=block_linear,
        non_block=sum(p.numel() for p in params if id(p) not in block_ids),
        per_block=sum(p.numel() for p in blocks[0].parameters()),
        layers=config.num_hidden_layers, hidden=config.hidden_size, vocab=config.vocab_size,
        kv_width=kv_heads * head_dim,
    )


def _blocks(model) -> list:
    """The transformer blocks: the longest ``ModuleList`` in the model."""
    import torch

    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    return list(max(lists, key=len))
