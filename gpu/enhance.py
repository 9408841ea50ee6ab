"""Prompt enhancement: a small instruct LLM (the catalog's `prompt_enhancer`) rewrites a prompt before generation,
or alone for POST /api/prompts/enhance.

The rewrite is deterministic: greedy decoding, so one prompt always gives one rewrite (on one kind of GPU), and
the generation that follows runs that rewrite with the job's seed, so a given rewritten prompt and seed give the
same image. The output is bounded (the catalog's max_new_tokens, and MAX_PROMPT_CHARS), stripped of chat-template
artefacts (role markers, special tokens, a "Prompt:" preamble, quotes, a reasoning block), and flattened to one
line. When nothing usable is left, the original prompt runs and the job records why (`Rewrite.note`): never a
silent fallback.

The same `from_pretrained` code loads the real checkpoint and the tiny random one (gpu/tiny.py). The model is
loaded once per process, on first use, beside whatever pipeline the container holds (gpu/README.md weighs this
against a class of its own). Importing this module is cheap: torch and transformers load with the model.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpu.loaded_once import LoadedOnce, pretrained_options

if TYPE_CHECKING:
    from functions.core.catalog import PromptEnhancerSpec

# The core's prompt limit (functions/core/generation.py MAX_PROMPT_CHARS): a rewrite never exceeds what a caller
# could have sent.
MAX_PROMPT_CHARS = 4000


@dataclass
class Enhancer:
    model: Any  # a transformers *ForCausalLM, in eval mode
    tokenizer: Any
    device: str
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Rewrite:
    prompt: str  # what the generation runs: the rewrite, or the original prompt when the rewrite was unusable
    enhanced: bool  # whether `prompt` is the model's rewrite
    note: str | None = None  # why the original prompt runs (enhanced False), for the job record
    tokens: int = 0  # tokens generated

    def record(self, enhancer_id: str) -> dict[str, Any]:
        """What the job records as `prompt_enhancement`."""
        out: dict[str, Any] = {"model": enhancer_id, "enhanced": self.enhanced, "tokens": self.tokens}
        if self.note:
            out["note"] = self.note
        return out


_loaded: LoadedOnce[Enhancer] = LoadedOnce()


def load_enhancer(source: str | Path, *, device: str = "cpu", dtype: str = "float32") -> Enhancer:
    """Load (once per process) the LLM and its tokenizer from a local dir or a Hub repo id."""

    def build() -> Enhancer:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        local = pretrained_options(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype), **local).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(source, **local)
        return Enhancer(model=model, tokenizer=tokenizer, device=device)

    return _loaded.get((str(source), device, dtype), build)


def rewrite(prompt: str, spec: PromptEnhancerSpec, source: str | Path, *, device: str = "cpu",
            dtype: str = "float32") -> Rewrite:
    """The prompt rewritten by the catalog's enhancer (greedy, at most spec.max_new_tokens), or the original with a
    note saying why."""
    enhancer = load_enhancer(source, device=device, dtype=dtype)
    text, tokens = generate(enhancer, spec.instruction, prompt, spec.max_new_tokens)
    cleaned = clean(text, enhancer.tokenizer)
    if not cleaned:
        shown = text.strip()[:80]
        return Rewrite(prompt, False, "the prompt enhancer returned no usable text "
                                      f"({tokens} tokens{': ' + repr(shown) if shown else ''}); the original prompt "
                                      "ran", tokens)
    return Rewrite(cleaned, True, None, tokens)


def generate(enhancer: Enhancer, instruction: str, prompt: str, max_new_tokens: int) -> tuple[str, int]:
    """(the decoded reply, tokens generated): the chat template's generation prompt, then greedy decoding."""
    import torch

    tokenizer = enhancer.tokenizer
    messages = [{"role": "system", "content": instruction}, {"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(enhancer.device)
    # The reply ends at the tokenizer's end of turn, or at any end token the checkpoint's generation config names
    # (Qwen2.5: <|im_end|> and <|endoftext|>).
    configured = enhancer.model.generation_config.eos_token_id
    configured = configured if isinstance(configured, list) else [configured]
    eos = [tokenizer.eos_token_id, *(i for i in configured if i is not None and i != tokenizer.eos_token_id)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    with enhancer.lock, torch.inference_mode():
        out = enhancer.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                      temperature=None, top_p=None, top_k=None, eos_token_id=eos,
                                      pad_token_id=pad)
    new = out[0, inputs["input_ids"].shape[1]:]
    return tokenizer.decode(new, skip_special_tokens=True), int(new.shape[0])


# Chat-template and special-token residue: <|im_start|>assistant, <|im_end|>, <|endoftext|>, <s>, [INST]...
_SPECIAL = re.compile(r"<\|[^|>]{0,40}\|>|</?s>|\[/?INST\]|<<SYS>>|<</SYS>>")
_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)
_ROLE = re.compile(r"^\s*(assistant|system|user)\s*[:\n]", re.IGNORECASE)
_PREAMBLE = re.compile(r"^\s*(here(?:'s| is) (?:the |an? )?(?:rewritten |enhanced |improved )?prompt|"
                       r"(?:rewritten |enhanced |improved )?prompt)\s*:\s*", re.IGNORECASE)
_QUOTES = ("\"\"", "''", "“”", "‘’", "``")


def clean(text: str, tokenizer: Any = None) -> str:
    """The reply as a prompt: special tokens (the tokenizer's own, and common chat markup), a reasoning block, a
    role marker, a "Prompt:" preamble and enclosing quotes removed; control and unprintable characters dropped;
    whitespace collapsed to one line; at most MAX_PROMPT_CHARS (cut at a word)."""
    for token in getattr(tokenizer, "all_special_tokens", None) or ():
        if token:
            text = text.replace(token, " ")
    text = _THINK.sub(" ", text)
    text = _SPECIAL.sub(" ", text)
    text = _ROLE.sub("", text)
    text = _PREAMBLE.sub("", text)
    text = "".join(ch if _printable(ch) else " " for ch in text)
    text = " ".join(text.split())
    while len(text) >= 2 and any(text[0] == a and text[-1] == b for a, b in _QUOTES):
        text = text[1:-1].strip()
    if len(text) > MAX_PROMPT_CHARS:
        text = text[:MAX_PROMPT_CHARS].rsplit(" ", 1)[0]
    # Something a generator can read: at least one letter or digit.
    return text if any(ch.isalnum() for ch in text) else ""


def _printable(ch: str) -> bool:
    if ch in "\n\t ":
        return True
    category = unicodedata.category(ch)
    # Control, format, surrogate, private use, unassigned; and U+FFFD, what undecodable bytes become.
    return not category.startswith("C") and ch != "\ufffd"


def clear_cache() -> None:
    _loaded.clear()
