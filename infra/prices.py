"""List prices the cost page (infra/bench_calls.py) and the warm-pool costs (infra/deploy/warm_pool.py)
are computed from: one table, so the two cannot disagree."""

# List prices, us-east-1, as published in mid-2025 (USD). Check them before relying on the totals.
PRICES = {
    "api_gateway_http_per_million": 1.00,        # HTTP API, first 300 M requests/month
    "lambda_request_per_million": 0.20,
    "lambda_gb_second_arm64": 0.0000133334,      # x86_64: 0.0000166667
    "dynamodb_wru_per_million": 0.625,           # on-demand, after the Nov 2024 price cut
    "dynamodb_rru_per_million": 0.125,
    "dynamodb_storage_gb_month": 0.25,
    "dynamodb_pitr_gb_month": 0.20,
    "sqs_standard_per_million": 0.40,            # per 64 KB chunk; first 1 M/month free
    "s3_put_per_thousand": 0.005,                # PUT, COPY, POST, LIST
    "s3_get_per_thousand": 0.0004,               # GET, HEAD and the rest
    "s3_storage_gb_month": 0.023,                # Standard, first 50 TB
    "data_transfer_out_gb": 0.09,                # to the internet, after 100 GB/month free
    "secrets_manager_secret_month": 0.40,
    "secrets_manager_per_10k_calls": 0.05,
    "cloudwatch_alarm_month": 0.10,              # standard resolution metric alarm
    "cloudwatch_logs_ingest_gb": 0.50,
    "cloudwatch_logs_storage_gb_month": 0.03,
    "xray_traces_per_million": 5.00,             # recorded; first 100 k/month free
    "modal_gpu_second": {"H100": 0.001097, "H200": 0.001261, "A100-80GB": 0.000694, "L40S": 0.000542},
    "modal_cpu_core_second": 0.0000131,
    "modal_memory_gib_second": 0.00000222,
}


def gpu_price_key(accelerator: str) -> str | None:
    """The modal_gpu_second key of a GPU as torch names it ("NVIDIA H100 80GB HBM3" -> "H100"), or None."""
    name = accelerator.upper()
    if "A100" in name:
        return "A100-80GB" if "80G" in name else None
    return next((key for key in PRICES["modal_gpu_second"] if key in name), None)
