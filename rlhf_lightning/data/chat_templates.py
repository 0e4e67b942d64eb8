"""Chat templates chosen in YAML: a built-in name, a ``.jinja`` file, or an inline Jinja string.

``chat_template:`` on a model spec (``policy:`` / ``backbone:``; the CLI links it to the data module)
replaces the template of the tokenizer folder. :func:`resolve_chat_template` turns the option into
template text, :func:`set_chat_template` puts it on a tokenizer, whose ``save_pretrained`` then writes
it as ``chat_template.jinja`` into every export, so ``generate``/``evaluate``/``score`` and plain
transformers render conversations exactly as training did.

The built-ins are written from the models' documented prompt formats:

* ``chatml``: OpenAI's ChatML (``<|im_start|>role\\n...<|im_end|>\\n``), no default system prompt; tools are
  listed in the system turn, calls are ``<tool_call>{json}</tool_call>`` in the assistant turn, results are
  ``tool`` turns.
* ``qwen2``: Qwen2 / Qwen2.5 (ChatML tokens, default system prompt "You are a helpful assistant.",
  Hermes-style function calling: ``<tools>`` in the system turn, ``<tool_call>`` in assistant turns, results
  as ``<tool_response>`` inside a ``user`` turn, consecutive results sharing one turn).
* ``llama3``: Llama 3 / 3.1 (``<|start_header_id|>role<|end_header_id|>\\n\\n...<|eot_id|>`` after the
  tokenizer's BOS; JSON tool calling: function schemas in the system turn, one call per assistant turn as
  ``{"name": ..., "parameters": ...}``, results as ``ipython`` turns).

Each wraps the assistant turn (content, tool calls and its end-of-turn token) in ``{% generation %}`` so
``apply_chat_template(return_assistant_tokens_mask=True)`` (and TRL's ``assistant_only_loss``) see the
same trained tokens as :mod:`rlhf_lightning.data.encoding`, which finds them by prefix rendering.
A tool call's ``arguments`` may be a dict (rendered as JSON) or a JSON string (rendered as given).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlhf_lightning.errors import InvalidOption

# Written in the style of the Hugging Face templates: every block tag trims the whitespace around it and
# all literal text is a Jinja expression, so the layout of this source never leaks into the rendering
# (transformers compiles templates with trim_blocks and lstrip_blocks).

# Hermes-style tool calling shared by chatml and qwen2 (the function-calling prompt Qwen2.5 documents).
_HERMES_MACROS = """
{%- macro tools_block(tools) -%}
    {{- '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' }}
    {{- 'You are provided with function signatures within <tools></tools> XML tags:\n<tools>' }}
    {%- for tool in tools %}
        {{- '\n' + (tool | tojson) }}
    {%- endfor %}
    {{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within '
        '<tool_call></tool_call> XML tags:\n<tool_call>\n'
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>' }}
{%- endmacro -%}
{%- macro tool_calls_block(message) -%}
    {%- for call in message.tool_calls %}
        {%- set fn = call.function if call.function is defined else call %}
        {%- if message.content or not loop.first %}{{- '\n' }}{% endif %}
        {{- '<tool_call>\n{"name": "' + fn.name + '", "arguments": ' }}
        {%- if fn.arguments is string %}{{- fn.arguments }}{% else %}{{- fn.arguments | tojson }}{% endif %}
        {{- '}\n</tool_call>' }}
    {%- endfor %}
{%- endmacro -%}
"""

_CHATML_ASSISTANT = """
        {{- '<|im_start|>assistant\n' }}
        {%- generation %}
            {{- message.content or '' }}
            {%- if message.tool_calls %}{{- tool_calls_block(message) }}{% endif %}
            {{- '<|im_end|>\n' }}
        {%- endgeneration %}
"""

CHATML = _HERMES_MACROS + """
{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}{{- messages[0].content + '\n\n' }}{% endif %}
    {{- tools_block(tools) + '<|im_end|>\n' }}
{%- elif messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'assistant' %}""" + _CHATML_ASSISTANT + """
    {%- elif message.role != 'system' or not loop.first %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{% endif %}
"""

QWEN2 = _HERMES_MACROS + """
{%- if messages[0].role == 'system' %}
    {%- set system = messages[0].content %}
{%- else %}
    {%- set system = 'You are a helpful assistant.' %}
{%- endif %}
{{- '<|im_start|>system\n' + system }}
{%- if tools %}{{- '\n\n' + tools_block(tools) }}{% endif %}
{{- '<|im_end|>\n' }}
{%- for message in messages %}
    {%- if message.role == 'assistant' %}""" + _CHATML_ASSISTANT + """
    {%- elif message.role == 'tool' %}
        {%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{% endif %}
        {{- '\n<tool_response>\n' + message.content + '\n</tool_response>' }}
        {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\n' }}{% endif %}
    {%- elif message.role != 'system' or not loop.first %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{% endif %}
"""

LLAMA3 = """
{{- bos_token }}
{%- if messages[0].role == 'system' %}
    {%- set system = messages[0].content %}
{%- else %}
    {%- set system = '' %}
{%- endif %}
{%- if system or tools %}
    {{- '<|start_header_id|>system<|end_header_id|>\n\n' + system }}
    {%- if tools %}
        {%- if system %}{{- '\n\n' }}{% endif %}
        {{- 'You have access to the following functions. To call a function, respond with a JSON object of the '
            'form {"name": function name, "parameters": dictionary of argument name and its value}. '
            'Do not use variables.' }}
        {%- for tool in tools %}{{- '\n\n' + (tool | tojson(indent=4)) }}{% endfor %}
    {%- endif %}
    {{- '<|eot_id|>' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'assistant' %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
        {%- generation %}
            {%- if message.tool_calls %}
                {%- if message.tool_calls | length != 1 %}
                    {{- raise_exception('the llama3 template takes one tool call per assistant turn') }}
                {%- endif %}
                {%- set call = message.tool_calls[0] %}
                {%- set fn = call.function if call.function is defined else call %}
                {{- (message.content or '') + '{"name": "' + fn.name + '", "parameters": ' }}
                {%- if fn.arguments is string %}{{- fn.arguments }}{% else %}{{- fn.arguments | tojson }}{% endif %}
                {{- '}' }}
            {%- else %}
                {{- message.content }}
            {%- endif %}
            {{- '<|eot_id|>' }}
        {%- endgeneration %}
    {%- elif message.role == 'tool' %}
        {{- '<|start_header_id|>ipython<|end_header_id|>\n\n' + message.content + '<|eot_id|>' }}
    {%- elif message.role != 'system' or not loop.first %}
        {{- '<|start_header_id|>' + message.role + '<|end_header_id|>\n\n' + message.content + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}
"""

BUILTIN_TEMPLATES: dict[str, str] = {"chatml": CHATML, "llama3": LLAMA3, "qwen2": QWEN2}
# Turn markers of each built-in: a tokenizer that lacks one as a single token splits it into pieces.
_MARKERS: dict[str, tuple[str, ...]] = {
    "chatml": ("<|im_start|>", "<|im_end|>"),
    "qwen2": ("<|im_start|>", "<|im_end|>"),
    "llama3": ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
}


def _looks_inline(value: str) -> bool:
    return "{{" in value or "{%" in value


def describe(value: str) -> str:
    """How a ``chat_template`` option value is named in messages: built-in, file or inline."""
    if value in BUILTIN_TEMPLATES:
        return f"built-in chat template {value!r}"
    if _looks_inline(value):
        return "the inline chat_template"
    return f"chat template file {value!r}"


def _refuse(rule: str, value: object, owner: object = None) -> InvalidOption:
    return InvalidOption(owner, "chat_template", rule, value)


def _check_parses(text: str, what: str, value: str) -> None:
    import jinja2
    from transformers.utils.chat_template_utils import _compile_jinja_template

    try:
        _compile_jinja_template(text)
    except jinja2.TemplateSyntaxError as e:
        raise _refuse(f"{what} does not parse as Jinja ({e.message}, line {e.lineno})", value) from e


def resolve_chat_template(value: str, *, owner: object = None) -> str:
    """The template text of a ``chat_template`` option: a built-in name (see :data:`BUILTIN_TEMPLATES`),
    inline Jinja (anything containing ``{{`` or ``{%``), or the path of a template file (``.jinja``).

    Raises :class:`~rlhf_lightning.errors.InvalidOption` (a ConfigError; ``owner`` lets the CLI name the
    config path) for an unknown built-in name (listing the built-ins), a missing or unreadable file, an empty
    template, or Jinja that does not parse.
    """
    if not isinstance(value, str) or not value.strip():
        raise _refuse(f"must be a built-in name ({', '.join(BUILTIN_TEMPLATES)}), a .jinja file or an inline "
                      "Jinja template", value, owner)
    if value in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[value]
    try:
        return _read(value)
    except InvalidOption as e:
        if owner is None:
            raise
        problem = e
    # Raised outside the except block, so the owner-less error is not its context: the CLI names the
    # innermost user error in the chain, and this one knows the config path.
    raise _refuse(problem.rule, value, owner) from problem.__cause__


def _read(value: str) -> str:
    """Inline template text or a template file's text, checked to parse (InvalidOption without owner)."""
    if _looks_inline(value):
        _check_parses(value, "the inline template", value)
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        if path.suffix or "/" in value or "\\" in value:
            raise _refuse("template file not found", value)
        raise _refuse(f"unknown built-in template; built-ins: {', '.join(BUILTIN_TEMPLATES)} (or give a "
                      ".jinja file path or an inline template)", value)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _refuse(f"cannot read the template file ({e})", value) from e
    if not text.strip():
        raise _refuse("the template file is empty", value)
    _check_parses(text, "the template file", value)
    return text


def missing_markers(tokenizer: Any, value: str) -> list[str]:
    """The built-in template's turn markers that ``tokenizer`` does not have as single tokens."""
    vocab = tokenizer.get_vocab()
    return [m for m in _MARKERS.get(value, ()) if m not in vocab]


def set_chat_template(tokenizer: Any, value: str) -> Any:
    """Put the template of the ``chat_template`` option ``value`` on ``tokenizer`` (in place) and return it.

    ``tokenizer.chat_template_source`` records where it came from, for error messages. A built-in whose turn
    markers are not tokens of this tokenizer still works (the markers are tokenised as text) but warns:
    generation will not stop at an end-of-turn token the model cannot emit as one token.
    """
    import warnings

    tokenizer.chat_template = resolve_chat_template(value)
    tokenizer.chat_template_source = describe(value)
    missing = missing_markers(tokenizer, value)
    if missing:
        warnings.warn(
            f"chat_template {value!r}: {', '.join(missing)} are not tokens of this tokenizer, so they are split "
            "into several tokens and generation cannot stop at the end-of-turn marker; use the template its "
            "model was trained with, or a tokenizer that has these tokens",
            UserWarning, stacklevel=2,
        )
    return tokenizer
