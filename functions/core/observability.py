"""One Logger, Tracer and Metrics for every handler (service name and namespace come from the template)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
