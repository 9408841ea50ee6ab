"""The response bodies and error bodies of every dialect, as the OpenAPI document describes them.

Documentation only: the routes build their responses with the dialect renderers (functions/dialects/*.py)
and the request bodies are the models the handlers validate with. Imported when the document is first
generated (functions/api/openapi.py), never on a cold start. The schemathesis run
(tests/integration/test_fuzz_schemathesis.py) checks real responses against these, so they cannot drift.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.core.schema import Schema
from functions.dialects.openai import ImagesEditRequest, ImagesVariationRequest


class _Doc(Schema):
    # Responses may grow fields; a client must not break on one it does not know.
    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------- errors, one shape per dialect


class FieldErrorDetail(_Doc):
    field: str = Field(description="The request field at fault (dotted for nested ones, e.g. input.width).")
    message: str
    code: str


class NativeError(_Doc):
    """Artificial Studio's error: a message and each field error."""

    message: str
    errors: list[FieldErrorDetail]


class OpenAIErrorDetail(_Doc):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, permission_error, "
                                  "rate_limit_error, billing_error or api_error.")
    param: str | None = Field(description="The request parameter at fault, if one is.")
    code: str | None
    job_id: str | None = Field(None, description="The generation's id, when one was made (timeouts, failures).")


class OpenAIError(_Doc):
    """OpenAI's error envelope, so the official SDK raises its usual exception classes."""

    error: OpenAIErrorDetail


class AIMSError(_Doc):
    """AI Media Studio's error: the message as a string, with a machine-readable code."""

    error: str
    code: str
    job_id: str | None = Field(None, description="The generation's id, when one was made (timeouts, failures).")


# ---------------------------------------------------------------- Artificial Studio (native)


class RunAccepted(_Doc):
    id: str
    status: Literal["processing"]
    tool: str
    createdAt: str


class GenerateAccepted(_Doc):
    field_id: str = Field(alias="_id")
    id: str
    status: Literal["pending"]
    model: str
    output: None


class PromptEnhancementRecord(_Doc):
    model: str = Field(description="The prompt enhancer that ran (the catalog's prompt_enhancer id).")
    enhanced: bool = Field(description="Whether the prompt that ran is the enhancer's rewrite.")
    tokens: int = Field(description="Tokens the enhancer generated.")
    note: str | None = Field(None, description="Why the original prompt ran (enhanced false).")


class Generation(_Doc):
    id: str
    status: Literal["pending", "processing", "success", "error"]
    output: str | None = Field(description="The first output's URL (presigned, valid 24 h).")
    thumbnail: str | None
    tool: str | None
    model: str
    type: Literal["image", "video", "prompt"] = Field(description="prompt: a rewrite alone (POST /api/prompts/enhance).")
    payload: dict[str, Any] = Field(description="The input as it was sent.")
    error: str | None
    errorCode: str | None = Field(None, description="A failed generation's reason as a code: moderation_blocked "
                                                    "when the output safety checker blocked it (nothing stored).")
    createdAt: str
    outputs: list[str]
    shareUrl: str | None = None
    progress: float | None = None
    metadata: dict[str, Any] | None = None
    revisedPrompt: str | None = Field(None, description="With enhance_prompt: the prompt the model ran (the rewrite, "
                                                        "or the original when the rewrite was unusable).")
    promptEnhancement: PromptEnhancementRecord | None = None


class PromptEnhancement(_Doc):
    id: str = Field(description="The rewrite's job, readable through GET /api/generations/{id} (type prompt).")
    status: Literal["succeeded"]
    prompt: str = Field(description="The prompt as sent.")
    revised_prompt: str = Field(description="The rewrite; the original prompt when enhanced is false.")
    enhanced: bool
    note: str | None = Field(None, description="Why the original prompt came back (enhanced false).")
    enhancer: str | None = Field(description="The prompt enhancer that ran.")
    model: str = Field(description="The model whose GPU pool ran the rewrite.")
    credits_used: float


class PromptEnhancementPending(_Doc):
    id: str = Field(description="The rewrite's job: GET /api/generations/{id} shows its revisedPrompt once done.")
    status: Literal["processing"]
    prompt: str
    message: str


class Pagination(_Doc):
    total: int
    limit: int
    offset: int
    hasMore: bool


class GenerationList(_Doc):
    data: list[Generation]
    pagination: Pagination


class ToolModel(_Doc):
    id: str
    name: str
    credits: float | None


class Tool(_Doc):
    slug: str
    name: str
    description: str | None
    type: str
    task: str
    defaultModel: str | None
    models: list[ToolModel]
    inputSchema: dict[str, Any] | None = Field(None, description="The JSON Schema of the tool's `input`.")


class ToolList(_Doc):
    data: list[Tool]


class Capabilities(_Doc):
    references: int = Field(description="Images each output draws on: composed together when above 1; 0: none.")
    mask: bool = Field(description="Inpaints: a mask repaints part of the image.")
    last_frame: bool = Field(description="Video: takes the last frame too (last_frame_url).")
    extend: bool = Field(description="Video: continues a given clip (extend_video_url).")
    audio: bool = Field(description="Video: makes a soundtrack, muxed into the mp4 (audio: true).")
    lora: bool
    negative_prompt: bool = Field(description="Takes a negative prompt (with guidance above its threshold).")


class ModelFacts(_Doc):
    """What every model listing reports (functions/core/catalog.py, Catalog.facts)."""

    tasks: list[str]
    capabilities: Capabilities
    sizes: dict[str, Any]
    credits: float
    pricing: dict[str, Any] = Field(description="The price rule: `credits` per `per` (image, or second of video) "
                                                "at `reference` size and steps, times the work (`formula`).")
    license: str
    license_url: str | None
    license_note: str | None = None
    commercial_use: bool
    enabled: bool = Field(description="Whether this deployment runs it: free for commercial use, or its license "
                                      "accepted by the operator.")
    durations: list[float] | None = None
    frame_rates: list[float] | None = None
    max_frames: int | None = None


class NativeModel(ModelFacts):
    id: str
    name: str
    task: str
    type: Literal["image", "video"]
    family: str | None
    tools: list[str]
    defaults: dict[str, Any]
    aliases: list[str]


class NativeModelList(_Doc):
    data: list[NativeModel]


class StylePreset(_Doc):
    slug: str
    name: str
    description: str
    prompt_template: str
    negative_prompt: str | None
    defaults: dict[str, Any]


class StyleList(_Doc):
    data: list[StylePreset]


class DeliveryList(_Doc):
    data: list[dict[str, Any]] = Field(description="Every delivery attempt: event, event_id, outcome, status, time.")
    webhook: str | None
    disabled: bool | None = None


class RedeliveryQueued(_Doc):
    event_id: str
    status: Literal["queued"]


class PreviousSecret(_Doc):
    secret: str
    expires_at: float | None


class WebhookSecret(_Doc):
    secret: str = Field(description="The Standard Webhooks signing secret (whsec_…).")
    previous: list[PreviousSecret] = Field(description="Older secrets that still sign during their grace period.")


class AccountWorkspace(_Doc):
    id: str
    name: str | None


class AccountUsage(_Doc):
    creditsUsed: float
    creditsRefunded: float
    creditsAdded: float


class AccountKey(_Doc):
    id: str
    scopes: list[str]
    rateLimit: int


class Account(_Doc):
    workspace: AccountWorkspace
    credits: float
    plan: str
    usage: AccountUsage
    key: AccountKey


class Key(_Doc):
    key_id: str
    workspace_id: str
    name: str
    scopes: list[str]
    rate_limit: int
    prefix: str
    created_at: float
    revoked_at: float | None = None


class CreatedKey(Key):
    key: str = Field(description="The secret: shown this once, never stored.")


class KeyList(_Doc):
    data: list[Key]


class WorkspaceCreated(_Doc):
    id: str
    name: str | None
    credits: float


class WorkspaceCredits(_Doc):
    id: str
    credits: float


class WorkspaceUsage(_Doc):
    id: str
    credits: float
    credits_used: float
    credits_refunded: float
    credits_added: float


class ModerationPolicy(_Doc):
    max_level: int = Field(description="The most permissive moderation level (1 strictest to 6) the workspace's "
                                       "keys may ask for.")
    allow_checker_off: bool
    blocked_terms: list[str]


class ModerationEvent(_Doc):
    job_id: str
    created_at: float | None = None
    finished_at: float | None = None
    dialect: str | None = None
    model: str | None = None
    prompt: str | None = None
    end_user: str | None = Field(None, description="The end user the request named (OpenAI's safety_identifier or "
                                                   "user), if any.")
    moderation: dict[str, Any] | None = Field(None, description="The checker, level, threshold, each output's "
                                                                "score and the blocked outputs.")
    credits_charged: float
    error: str | None = None


class WorkspaceModeration(_Doc):
    id: str
    policy: ModerationPolicy
    levels: dict[str, float] = Field(description="Each level's threshold: an output scoring at or above it is "
                                                 "blocked.")
    default_level: int
    events: list[ModerationEvent] = Field(description="Blocked generations, newest first (at most 50).")


class PresignedPost(_Doc):
    method: Literal["POST"]
    url: str
    fields: dict[str, str]


class PresignedUpload(_Doc):
    """POST the file to upload.url with upload.fields as form fields, then use `reference` as an image URL."""

    id: str
    reference: str = Field(description="upload://… : pass it wherever an image URL is taken.")
    upload: PresignedPost


class ShareState(_Doc):
    id: str
    public: bool
    share_url: str | None = Field(description="The share page (GET /shared/media/{share_id}, no key); "
                                              "null when private.")


class StoredUpload(_Doc):
    id: str
    reference: str = Field(description="upload://… : pass it wherever an image URL is taken.")
    url: str


class Lora(_Doc):
    """A LoRA adapter of the workspace; pass its id wherever a request takes LoRAs."""

    id: str
    object: Literal["lora"]
    name: str
    source: Literal["upload", "url", "hub"]
    url: str | None = Field(None, description="source url: where the file is read from.")
    hf_repo: str | None = None
    weight_name: str | None = None
    revision: str | None = None
    commit: str | None = Field(None, description="The Hub commit the revision named when it was registered.")
    size: int = Field(description="The file's size in bytes.")
    layout: Literal["diffusers", "kohya"]
    rank: int
    alpha: float | None = Field(None, description="lora_alpha, where the file's metadata says it.")
    module_count: int
    tensor_count: int
    families: list[str] = Field(description="The base model families it loads onto.")
    weights: Literal["real", "tiny"]
    created_at: float


class LoraUsage(_Doc):
    count: int
    bytes: int = Field(description="Bytes of uploaded LoRA files stored (URL and Hub LoRAs take none).")
    max_count: int
    max_bytes: int


class LoraList(_Doc):
    data: list[Lora]
    usage: LoraUsage


class LoraDeleted(_Doc):
    id: str
    object: Literal["lora"]
    deleted: bool


class LoraForm(Schema):
    """multipart/form-data: the .safetensors file (`file`; up to 4 MiB) and an optional name."""

    file: bytes
    name: str | None = None


class UploadForm(Schema):
    """multipart/form-data: the file (any part name; `file` is read first)."""

    file: bytes


# ---------------------------------------------------------------- OpenAI-compatible


class OpenAIImagesEditForm(ImagesEditRequest):
    """multipart/form-data: the edit's parameters as form fields, the image(s) and an optional mask as files."""

    image: list[bytes] = Field(description="One or more images to edit (`image[]` is accepted too).")
    mask: bytes | None = Field(None, description="A PNG with alpha, the size of the first image: its transparent "
                                                 "pixels are repainted, the rest is kept.")


class OpenAIImagesVariationForm(ImagesVariationRequest):
    """multipart/form-data: the variation's parameters as form fields, the image as a file."""

    image: bytes = Field(description="The image to make variations of.")


class ImageData(_Doc):
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesUsage(_Doc):
    input_tokens: int = Field(description="Always 0: Darkroom counts no tokens; images are priced in credits.")
    output_tokens: int = Field(description="Always 0.")
    total_tokens: int = Field(description="Always 0.")
    input_tokens_details: dict[str, int]
    credits: float = Field(description="What the generation cost, in the workspace's credits.")


class ImagesResponse(_Doc):
    created: int
    data: list[ImageData]
    model: str = Field(description="The catalog model that ran (the request may name an alias, e.g. dall-e-3).")
    output_format: str
    size: str | None
    quality: str
    background: str
    usage: ImagesUsage


class OpenAIModel(_Doc):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    darkroom_model: str = Field(description="The catalog model that answers this id (itself, or an alias's).")


class OpenAIModelList(_Doc):
    object: Literal["list"]
    data: list[OpenAIModel]


# ---------------------------------------------------------------- AI Media Studio


class AIMSImage(_Doc):
    id: str
    generation_id: str
    url: str
    status: Literal["completed"]
    width: int | None
    height: int | None
    share_url: str | None = None


class AIMSImagesResponse(_Doc):
    success: bool
    images: list[AIMSImage]
    credits_used: float
    credits_remaining: float | None
    style_applied: str | None = None
    revised_prompt: str | None = Field(None, description="With enhance_prompt: the prompt the model ran.")
    prompt_enhancement: PromptEnhancementRecord | None = None


class AIMSVideo(_Doc):
    id: str
    url: str | None
    status: Literal["completed", "failed", "processing"]
    model: str
    duration: float | None
    aspect_ratio: str | None
    audio: bool
    width: int | None
    height: int | None
    fps: float | None
    frames: int | None
    thumbnail_url: str | None
    share_url: str | None = None


class AIMSVideoResponse(_Doc):
    success: bool
    video: AIMSVideo
    credits_used: float
    credits_remaining: float | None
    revised_prompt: str | None = Field(None, description="With enhance_prompt: the prompt the model ran.")
    prompt_enhancement: PromptEnhancementRecord | None = None


class AIMSModel(ModelFacts):
    id: str
    name: str
    model_type: str
    type: Literal["image", "video"]
    aliases: list[str]
    description: str | None
    credit_cost: float | None
    credit_unit: Literal["image", "second"]
    defaults: dict[str, Any]
    durations: list[float] | None = None
    audio: bool | None = None


class AIMSModelList(_Doc):
    success: bool
    models: list[AIMSModel]


class AIMSDiscovery(_Doc):
    success: bool
    available_models: list[AIMSModel]
    defaults: dict[str, Any]


class AIMSStyleList(_Doc):
    success: bool
    styles: list[StylePreset]


# Every model above that a route names; functions/api/openapi.py adds each to components/schemas.
# ---------------------------------------------------------------- Replicate


class ReplicateError(_Doc):
    """Replicate's problem details (RFC 7807); invalid input is a 422 naming each field in invalid_fields."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    invalid_fields: list[dict[str, str]] | None = Field(None, description="{type, field, description} per field.")
    prediction_id: str | None = None


class ReplicatePredictionUrls(_Doc):
    get: str
    cancel: str
    stream: str


class ReplicatePrediction(_Doc):
    """A job as Replicate shows a prediction, whichever dialect made it."""

    id: str
    model: str = Field(description="owner/name: a catalog alias, or darkroom/<id>.")
    version: str
    input: dict[str, Any]
    output: list[str] | str | None = Field(description="Image URLs (a list), or a video's URL.")
    logs: str = Field(description="Includes tqdm-style progress lines (`50%|█████     | 2/4`).")
    error: str | None
    status: Literal["starting", "processing", "succeeded", "failed", "canceled", "aborted"]
    metrics: dict[str, Any] = Field(description="predict_time and total_time (seconds) once finished.")
    created_at: str
    started_at: str | None
    completed_at: str | None
    urls: ReplicatePredictionUrls


class ReplicatePredictionList(_Doc):
    previous: str | None
    next: str | None = Field(description="The next page's URL (cursor pagination); null on the last page.")
    results: list[ReplicatePrediction]


class ReplicateVersion(_Doc):
    id: str
    created_at: str
    cog_version: str
    openapi_schema: dict[str, Any] = Field(description="components.schemas.Input and Output describe the model.")


class ReplicateModel(_Doc):
    url: str
    owner: str
    name: str
    description: str | None
    visibility: str
    latest_version: ReplicateVersion


class ReplicateFile(_Doc):
    id: str
    name: str
    content_type: str
    size: int
    etag: str
    checksums: dict[str, str]
    metadata: dict[str, Any]
    created_at: str
    expires_at: str | None
    urls: dict[str, str] = Field(description="get: the URL to give as a prediction's image input.")


class ReplicateFileList(_Doc):
    previous: str | None
    next: str | None
    results: list[ReplicateFile]


class ReplicateFileForm(Schema):
    """multipart/form-data: the file as `content`, and optionally `metadata` (a JSON object)."""

    content: bytes
    metadata: str | None = None
    filename: str | None = None
    type: str | None = None


class ReplicateWebhookSecret(_Doc):
    key: str = Field(description="The Standard Webhooks secret (whsec_…) webhooks are signed with.")


# ---------------------------------------------------------------- fal


class FalError(_Doc):
    """fal's error: `detail` is the message, or (422, invalid input) a list of {loc, msg, type} per field."""

    detail: str | list[dict[str, Any]]
    message: str = Field(description="The whole message (what @fal-ai/client's ApiError shows).")
    status: str | None = Field(None, description="A cancel's outcome word (ALREADY_COMPLETED).")
    request_id: str | None = Field(None, description="The request, when one was made (timeouts, failures).")


class FalQueued(_Doc):
    """A queued request: poll status_url, read response_url, cancel with cancel_url."""

    request_id: str
    response_url: str
    status_url: str
    cancel_url: str
    status: Literal["IN_QUEUE"]
    queue_position: int


class FalLog(_Doc):
    message: str
    level: str
    source: str
    timestamp: str


class FalStatus(_Doc):
    status: Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    request_id: str
    response_url: str
    status_url: str
    cancel_url: str
    logs: list[FalLog] | None = Field(description="With logs=1; null otherwise.")
    queue_position: int | None = Field(None, description="IN_QUEUE: this workspace's queued requests ahead of it.")
    metrics: dict[str, Any] | None = Field(None, description="COMPLETED: {inference_time} in seconds.")
    error: str | None = Field(None, description="COMPLETED without success: why.")
    error_type: str | None = None


class FalFile(_Doc):
    url: str = Field(description="A media link (24 h), or a data: URI with sync_mode.")
    content_type: str
    file_name: str | None = None
    file_size: int | None = None
    width: int | None = None
    height: int | None = None


class FalImageResult(_Doc):
    images: list[FalFile]
    seed: int | None
    has_nsfw_concepts: list[bool] = Field(description="Always false: no safety checker runs yet.")
    timings: dict[str, float]
    prompt: str | None = None


class FalVideoResult(_Doc):
    video: FalFile
    seed: int | None
    prompt: str | None = None


class FalCancel(_Doc):
    status: Literal["CANCELLATION_REQUESTED"]


COMPONENTS: list[type[BaseModel]] = [
    NativeError, OpenAIError, AIMSError,
    RunAccepted, GenerateAccepted, Generation, GenerationList, Tool, ToolList, NativeModelList, StyleList,
    DeliveryList, RedeliveryQueued, ShareState, WebhookSecret, Account, Key, CreatedKey, KeyList, WorkspaceCreated,
    WorkspaceCredits, WorkspaceUsage, ModerationPolicy, ModerationEvent, WorkspaceModeration, PresignedUpload, StoredUpload, UploadForm,
    Lora, LoraList, LoraDeleted, LoraForm, PromptEnhancement, PromptEnhancementPending,
    OpenAIImagesEditForm, OpenAIImagesVariationForm, ImagesResponse, OpenAIModel, OpenAIModelList,
    AIMSImagesResponse, AIMSVideoResponse, AIMSModelList, AIMSDiscovery, AIMSStyleList,
    ReplicateError, ReplicatePrediction, ReplicatePredictionList, ReplicateModel, ReplicateVersion, ReplicateFile,
    ReplicateFileList, ReplicateFileForm, ReplicateWebhookSecret,
    FalError, FalQueued, FalStatus, FalImageResult, FalVideoResult, FalCancel,
]
