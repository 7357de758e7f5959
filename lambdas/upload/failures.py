"""Rejected manifests go to the function's failure queue, shaped like the records
Lambda itself sends there after its retries, so one reader handles both.

A record Lambda sends on failure has ``requestContext.condition``
``RetriesExhausted`` (or ``EventAgeExceeded``) and the error in
``responsePayload``; a manifest the function refused has ``condition``
``ManifestRejected``, the reason in ``responsePayload.errorMessage``, and the S3
record it came from in ``requestPayload`` (an event the function can be invoked
with again once the manifest is fixed).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

CONDITION = "ManifestRejected"
ERROR_TYPE = "ManifestError"


def rejection(record: dict[str, Any], bucket: str, key: str, reason: str, context: Any, now: dt.datetime) -> dict[str, Any]:
    return {
        "version": "1.0",
        "timestamp": now.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": getattr(context, "aws_request_id", None),
            "functionArn": getattr(context, "invoked_function_arn", None),
            "condition": CONDITION,
        },
        "requestPayload": {"Records": [record]},
        "responsePayload": {"errorType": ERROR_TYPE, "errorMessage": reason, "bucket": bucket, "key": key},
    }


class FailureQueue:
    """The SQS queue of failed events (``FAILED_EVENTS_QUEUE_URL``)."""

    def __init__(self, sqs: Any, queue_url: str | None, context: Any = None):
        self.sqs = sqs
        self.queue_url = queue_url
        self.context = context

    def reject(self, record: dict[str, Any], bucket: str, key: str, reason: str) -> None:
        if not self.queue_url:
            # Misconfigured: fail the invocation, so Lambda's own failure path keeps the event.
            raise RuntimeError(f"FAILED_EVENTS_QUEUE_URL is not set; cannot park rejected {key}: {reason}")
        body = rejection(record, bucket, key, reason, self.context, dt.datetime.now(dt.UTC))
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body, sort_keys=True))
