"""A processor class that tiny pipelines save and load (gpu/tiny.py), kept apart so that importing gpu.tiny stays cheap.

A saved pipeline names this module in its model_index.json, and gpu.pipelines.load_pipeline imports it before
`from_pretrained` (diffusers resolves a component's library only among modules already imported).
"""

from __future__ import annotations

from typing import Any

from transformers import Qwen2VLProcessor
from transformers.processing_utils import ProcessorMixin


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor without its video processor, for Qwen-Image-Edit-Plus's tiny twin.

    The real repo's `processor` is a Qwen2VLProcessor. In transformers 5.24 that class requires a video processor,
    and every video processor requires torchvision; the CPU test venv cannot have torchvision (PyPI's build for torch
    2.13.0 is a CUDA build: gpu/requirements-image.txt), and the pipeline never sends video. Images go through the
    same Qwen2-VL image processing (its PIL backend here, torchvision's in the image), and the same chat expansion of
    `<|image_pad|>` into one token per merged patch. transformers reads the sub-processors from this __init__'s
    signature, so save_pretrained and from_pretrained handle the image processor and the tokenizer only.
    """

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs: Any):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)
