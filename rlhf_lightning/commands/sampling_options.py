"""Options shared by the commands that sample a policy's answers to a prompt file and score them
with reward plugins (``evaluate``, ``sample``): one definition, one check."""

from __future__ import annotations

from typing import Any, Literal, Optional

from rlhf_lightning.errors import ConfigError


def add_sampling_arguments(parser: Any, *, prompts_help: str, seed_help: str) -> None:
    """``--prompts``, ``--samples_per_prompt``, ``--seed``, ``--generation``, ``--max_prompt_length``,
    ``--batch_size``, ``--rewards``, ``--reward_names``, ``--device``, ``--dtype`` and ``--prompt_template``."""
    from rlhf_lightning.rewards.base import RewardFunction

    add_generation_arguments(parser, prompts_help=prompts_help, seed_help=seed_help)
    parser.add_argument("--samples_per_prompt", type=int, default=4)
    parser.add_argument("--rewards", type=list[RewardFunction], default=[], help="reward plugins")
    parser.add_argument("--reward_names", type=Optional[list[str]], default=None)


def add_generation_arguments(parser: Any, *, prompts_help: str, seed_help: str,
                             generation: Optional[Any] = None, max_prompt_length: int = 256) -> None:
    """The options of every command that generates from a prompt file, without scoring (``constitution``):
    ``--prompts``, ``--seed``, ``--generation``, ``--max_prompt_length``, ``--batch_size``, ``--device``,
    ``--dtype`` and ``--prompt_template``."""
    from rlhf_lightning.rollout.generation import GenerationSpec

    parser.add_argument("--prompts", type=str, required=True, help=prompts_help)
    parser.add_argument("--seed", type=int, default=0, help=seed_help)
    parser.add_argument("--generation", type=GenerationSpec,
                        default=generation or GenerationSpec(max_new_tokens=64, do_sample=True))
    parser.add_argument("--max_prompt_length", type=int, default=max_prompt_length,
                        help="longer prompts keep their last tokens")
    parser.add_argument("--batch_size", type=int, default=16, help="prompts per generation batch")
    parser.add_argument("--device", type=Optional[str], default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--dtype", type=Literal["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--prompt_template", type=Optional[str], default=None,
                        help="builds each row's prompt from its columns, e.g. 'Summarize:\\n{text}\\n\\nTL;DR:'")


def check_sampling_settings(init: Any) -> None:
    """ConfigError for shared settings that cannot work (counts below 1; draws given twice; a malformed
    prompt template)."""
    if init.samples_per_prompt < 1:
        raise ConfigError(f"samples_per_prompt must be >= 1, got {init.samples_per_prompt}")
    check_generation_settings(init, draws_option="samples_per_prompt")


def check_generation_settings(init: Any, *, draws_option: Optional[str] = None) -> None:
    """ConfigError for generation settings that cannot work: ``batch_size`` or ``max_prompt_length``
    below 1, ``generation.num_return_sequences`` other than 1 (``draws_option`` names the option that
    sets the draws, if the command has one), a malformed prompt template."""
    from rlhf_lightning.data.prompt_templates import template_fields

    for option in ("batch_size", "max_prompt_length"):
        if getattr(init, option) < 1:
            raise ConfigError(f"{option} must be >= 1, got {getattr(init, option)}")
    if init.generation.num_return_sequences != 1:
        instead = f"set {draws_option}, not" if draws_option else "one answer per prompt: remove"
        raise ConfigError(f"{instead} generation.num_return_sequences (got {init.generation.num_return_sequences})")
    if init.prompt_template is not None:
        template_fields(init.prompt_template, option="prompt_template")
