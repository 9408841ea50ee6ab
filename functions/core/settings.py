"""Configuration, parsed from the environment once per cold start.

A plain pydantic model filled from os.environ, not pydantic-settings: the same names (DARKROOM_ + the field,
case-insensitive), the same validation and coercion of the strings, for ~70 ms less of every cold start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from pydantic import ConfigDict, Field

from .schema import Schema

ENV_PREFIX = "DARKROOM_"


class Settings(Schema):
    """Every DARKROOM_* variable. template.yaml sets them in AWS; the local stack sets them from the same template."""

    model_config = ConfigDict(extra="ignore")

    jobs_table: str = "darkroom-jobs"
    keys_table: str = "darkroom-api-keys"
    workspaces_table: str = "darkroom-workspaces"
    idempotency_table: str = "darkroom-idempotency"
    rate_limits_table: str = "darkroom-rate-limits"
    jobs_queue_url: str = ""
    results_queue_url: str = ""
    webhooks_queue_url: str = ""
    webhooks_dlq_url: str = ""
    outputs_bucket: str = "darkroom-outputs"
    # Uploaded LoRA files, kept until deleted (template.yaml: AdaptersBucket, no expiry rule).
    adapters_bucket: str = "darkroom-adapters"

    # "modal" in AWS; the local stack runs the worker in-process.
    dispatcher: Literal["modal", "local"] = "modal"
    modal_app: str = "darkroom"
    # The Modal environment the app is deployed in (template.yaml: ModalEnvironment).
    modal_environment: str = "main"
    modal_token_secret_arn: str = ""
    # The role the Modal worker assumes by web identity (template.yaml: ModalWorkerRole); empty locally.
    worker_role_arn: str = ""

    # True only in the local stack: loopback webhook targets and reference URLs are allowed.
    local: bool = False
    job_retention_days: int = Field(30, ge=1)
    # How long output and upload links work (functions/core/links.py); the APIs promise 24 h.
    url_ttl_seconds: int = Field(24 * 3600, ge=60, le=7 * 24 * 3600)
    # Revoked keys stop working after at most this long in a warm Lambda (see README: API keys).
    key_cache_ttl_seconds: float = Field(30.0, ge=0)
    # Deadlines after which the sweeper acts on an unfinished job.
    dispatch_deadline_seconds: int = Field(300, ge=10)
    # Once spawned, a GPU call must take its job within its class's startup_timeout plus this (Modal's
    # scheduling); past that the dispatcher asks Modal about the call before replacing it.
    start_margin_seconds: int = Field(120, ge=10)
    # A call still waiting in Modal's queue (every container of its pool busy) is given up this long after the
    # job was submitted, and the job failed and refunded.
    queue_deadline_seconds: int = Field(3600, ge=60)
    run_deadline_seconds: int = Field(1800, ge=30)
    # Webhook delivery: seconds between attempts after the first (Standard Webhooks' schedule, jittered).
    # The local stack and tests can compress it, e.g. DARKROOM_WEBHOOK_RETRY_SCHEDULE="1,1,1".
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,50400,72000,86400"
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=30)
    # How long a rotated-out secret keeps signing, unless the rotate call says otherwise.
    webhook_secret_grace_seconds: int = Field(24 * 3600, ge=0)
    # The API's public origin for the links it hands out (share pages, media): this if set (a custom domain, or
    # the local stack's), else the SSM parameter the stack writes (template.yaml: PublicBaseUrlParameter).
    # Never the request's Host header (functions/core/links.py).
    public_base_url: str | None = None
    public_base_url_parameter: str = ""
    # The HMAC key that signs media links (template.yaml: MediaSigningSecret).
    media_signing_secret_arn: str = ""
    # Credits a new workspace starts with (operators top up with `darkroom workspaces add-credits`).
    default_credits: float = Field(1000, ge=0)
    # How long synchronous dialects (OpenAI, AI Media Studio) wait for a job on the function URL: a GPU cold
    # start plus a video. Below the OpenAI SDK's 600 s; the API Gateway host waits at most 25 s whatever this
    # is (functions/core/waiting.py has each host's limit). template.yaml: SyncWaitSeconds.
    sync_wait_seconds: float = Field(300.0, gt=0, le=570)
    # Synchronous calls one key, and one workspace, may have waiting at once (functions/core/inflight.py);
    # beyond them, 429. template.yaml: SyncCallsPerKey, SyncCallsPerWorkspace.
    sync_calls_per_key: int = Field(10, ge=1, le=1000)
    sync_calls_per_workspace: int = Field(25, ge=1, le=10000)
    # Model licenses the operator accepts (comma-separated ids, or *): models not free for every commercial use
    # run only once theirs is listed (functions/core/catalog.py, ModelSpec.license). template.yaml: AcceptedLicenses.
    accepted_licenses: str = ""
    # A workspace's own LoRA adapters (functions/core/loras.py): how many it may register (every source), and
    # how many bytes of uploaded files it may store. Over either, a registration is a 409.
    lora_max_per_workspace: int = Field(50, ge=1, le=100)
    lora_max_bytes_per_workspace: int = Field(10 * 1024 ** 3, ge=0)
    # How long reading a LoRA's header from a URL or the Hugging Face Hub may take, every redirect included.
    lora_fetch_timeout_seconds: float = Field(10.0, gt=0, le=25)
    # Which weights' signatures a LoRA must fit (functions/core/lora_files.py: fits): "tiny" in the local stack
    # (its tiny offline pipelines) unless set, "real" elsewhere.
    lora_weights: Literal["real", "tiny"] | None = None
    # Output moderation (functions/core/moderation.py): when set, every level's threshold is this one (an output
    # whose unsafe score is at least it is blocked): 0 blocks every output, 1 passes all but a certain one. For
    # tests and a local stack, whose tiny random classifier's score means nothing; unset, the catalog's table.
    moderation_threshold: float | None = Field(None, ge=0, le=1)
    # Provenance (gpu/provenance.py): the C2PA signing certificate the GPU worker signs every output with. Deployed,
    # the Secrets Manager secret holding it (template.yaml: ProvenanceSecretArn; the worker role may read that one
    # secret); locally, PEM files (`darkroom dev` makes a test chain in its data directory). None set: outputs are
    # not signed, and each job's record says so.
    provenance_secret_arn: str = ""
    provenance_cert_file: str = ""
    provenance_key_file: str = ""
    # An invisible watermark in every output image's pixels (template.yaml: ProvenanceWatermark).
    provenance_watermark: bool = False
    # Where the local stack keeps tiny models and its env file.
    data_dir: str = ".darkroom"


    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The DARKROOM_* variables of `environ` (default os.environ); unset ones keep their defaults."""
        environ = os.environ if environ is None else environ
        values = {key[len(ENV_PREFIX):].lower(): value for key, value in environ.items()
                  if key.upper().startswith(ENV_PREFIX)}
        return cls.model_validate({name: values[name] for name in cls.model_fields if name in values})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


def retry_delays(settings: Settings) -> list[float]:
    return [float(x) for x in settings.webhook_retry_schedule.split(",") if x.strip()]
