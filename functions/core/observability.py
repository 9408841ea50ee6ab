"""One Logger for every handler (service name from the template's POWERTOOLS_SERVICE_NAME).

No Tracer instance here on purpose: importing the X-Ray SDK costs about 90 ms of every cold start, and
the functions' active tracing (template.yaml) already records each invocation and its AWS calls' timing.
"""

from aws_lambda_powertools import Logger

logger = Logger()
