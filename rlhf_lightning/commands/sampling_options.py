"""Options shared by the commands that sample a policy's answers to a prompt file and score them
with reward plugins (``evaluate``, ``sample``): one definition, one check."""

from __future__ import annotations

from typing import Any, Literal, Optional

from rlhf_lightning.errors import ConfigError


def add_sampling_arguments(parser: Any, *, prompts_help: str, seed_help: str) -> None:
    """``--prompts``, ``--samples_per_prompt``, ``--seed``, ``--generation``, ``--max_prompt_length``,
    ``--batch_size``, ``--rewards``, ``--reward_names``, ``--device``, ``--dtype`` and ``--prompt_template``."""
    from rlhf_lightning.rewards.base import RewardFunction
    from rlhf_lightning.rollout.generation import GenerationSpec

    parser.add_argument("--prompts", type=str, required=True, help=prompts_help)
    parser.add_argument("--samples_per_prompt", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help=seed_help)
    parser.add_argument("--generation", type=GenerationSpec, default=GenerationSpec(max_new_tokens=64, do_sample=True))
    parser.add_argument("--max_prompt_length", type=int, default=256, help="longer prompts keep their last tokens")
    parser.add_argument("--batch_size", type=int, default=16, help="prompts per generation batch")
    parser.add_argument("--rewards", type=list[RewardFunction], default=[], help="reward plugins")
    parser.add_argument("--reward_names", type=Optional[list[str]], default=None)
    parser.add_argument("--device", type=Optional[str], default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--dtype", type=Literal["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--prompt_template", type=Optional[str], default=None,
                        help="builds each row's prompt from its columns, e.g. 'Summarize:\\n{text}\\n\\nTL;DR:'")


def check_sampling_settings(init: Any) -> None:
    """ConfigError for shared settings that cannot work (counts below 1; draws given twice; a malformed
    prompt template)."""
    from rlhf_lightning.data.prompt_templates import template_fields

    for option in ("samples_per_prompt", "batch_size", "max_prompt_length"):
        if getattr(init, option) < 1:
            raise ConfigError(f"{option} must be >= 1, got {getattr(init, option)}")
    if init.generation.num_return_sequences != 1:
        raise ConfigError("set samples_per_prompt, not generation.num_return_sequences "
                          f"(got {init.generation.num_return_sequences})")
    if init.prompt_template is not None:
        template_fields(init.prompt_template, option="prompt_template")
