"""Lambda's event sources, locally: SQS pollers and schedules feeding the same handlers.

An SQS poller long-polls its queue, hands the handler batches of up to BatchSize records in the Lambda
event shape, deletes what succeeded and leaves the `batchItemFailures` (or the whole batch when the
handler raises) to come back after the visibility timeout, so redrive to the dead-letter queue happens
exactly as in AWS.
"""

from __future__ import annotations

import re
import threading
import traceback
from typing import Any

import boto3

from .lambda_runtime import LocalFunction
from .template import REGION


class SqsPoller:
    def __init__(self, function: LocalFunction, queue_url: str, queue_arn: str, *, batch_size: int = 10,
                 concurrency: int = 1, endpoint: str, wait_seconds: int = 1) -> None:
        self.function = function
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.batch_size = max(1, min(batch_size, 10))
        self.concurrency = max(1, concurrency)
        self.wait_seconds = wait_seconds
        self.sqs = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local",
                                         region_name=REGION).client("sqs", endpoint_url=endpoint)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.concurrency):
            thread = threading.Thread(target=self._loop, name=f"poll-{self.function.spec.logical_id}-{i}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.wait_seconds + 5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - a poller must outlive one bad batch, as Lambda's does
                traceback.print_exc()
                self._stop.wait(1)

    def poll_once(self) -> int:
        resp = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size,
                                        WaitTimeSeconds=self.wait_seconds, AttributeNames=["All"],
                                        MessageAttributeNames=["All"])
        messages = resp.get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [self._record(m) for m in messages]}
        try:
            result = self.function.invoke(event)
        except Exception:  # noqa: BLE001 - the whole batch returns to the queue, as in Lambda
            traceback.print_exc()
            return 0
        failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
        return len(done)

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                k: {"stringValue": v.get("StringValue"), "binaryValue": v.get("BinaryValue"),
                    "dataType": v["DataType"]} for k, v in message.get("MessageAttributes", {}).items()},
            "md5OfBody": message.get("MD5OfBody"),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": REGION,
        }


def parse_rate(expression: str) -> float:
    """'rate(1 minute)' / 'rate(5 minutes)' / 'rate(1 hour)' -> seconds."""
    match = re.fullmatch(r"rate\((\d+) (second|minute|hour|day)s?\)", expression.strip())
    if not match:
        raise ValueError(f"unsupported schedule {expression!r} (the local stack supports rate(...))")
    unit = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}[match.group(2)]
    return int(match.group(1)) * unit


class Schedule:
    """An EventBridge schedule: invokes the function every `interval` seconds."""

    def __init__(self, function: LocalFunction, interval: float) -> None:
        self.function = function
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"schedule-{function.spec.logical_id}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.function.invoke({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
            except Exception:  # noqa: BLE001
                traceback.print_exc()
