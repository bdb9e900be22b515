"""Verifies recorded webhook deliveries with the `standardwebhooks` package
from PyPI, as a receiver would, and checks that a tampered copy of each is
rejected. Reads {"secret": ..., "deliveries": [{"headers": {...}, "body": ...}]}
on stdin; prints {"verified": n, "rejected": n, "tamperedRejected": n,
"tamperedAccepted": n, "types": [...]} on stdout."""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

job = json.load(sys.stdin)
hook = Webhook(job["secret"])
result = {"verified": 0, "rejected": 0, "tamperedRejected": 0, "tamperedAccepted": 0, "types": []}
for delivery in job["deliveries"]:
    headers, body = delivery["headers"], delivery["body"]
    try:
        event = hook.verify(body, headers)
        result["verified"] += 1
        result["types"].append(event["type"])
    except WebhookVerificationError:
        result["rejected"] += 1
    tampered = body.replace('"onboarding.', '"onboarding.x', 1)
    assert tampered != body
    for forged_body, forged_headers in [
        (tampered, headers),
        # The right body with another event's id.
        (body, {**headers, "webhook-id": headers["webhook-id"] + "0"}),
    ]:
        try:
            hook.verify(forged_body, forged_headers)
            result["tamperedAccepted"] += 1
        except WebhookVerificationError:
            result["tamperedRejected"] += 1
json.dump(result, sys.stdout)
