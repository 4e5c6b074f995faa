"""A Standard Webhooks receiver for hookbox, Python standard library only.

    WEBHOOK_SECRET=whsec_... PORT=8000 python3 receiver.py

For production, the `standardwebhooks` package on PyPI does the verification:
    from standardwebhooks import Webhook
    payload = Webhook(secret).verify(raw_body, headers)
"""

import base64
import hashlib
import hmac
import json
import logging
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# How far webhook-timestamp may be from now, in seconds (Standard Webhooks: 5 minutes).
TOLERANCE_SECONDS = int(os.environ.get("WEBHOOK_TOLERANCE_SECONDS", "300"))

# One line per request. The server answers on several threads: logging writes each line in
# one call under a lock, where print() from two threads can interleave two lines into one.
logging.basicConfig(stream=sys.stdout, format="%(message)s", level=logging.INFO)
log = logging.getLogger("receiver")


class VerificationError(Exception):
    pass


def verify(secret: str, headers, body: bytes) -> dict:
    """Checks the signature over the raw body and returns the parsed event."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        raise VerificationError("missing webhook-* headers")
    try:
        sent = int(timestamp)
    except ValueError:
        raise VerificationError("bad timestamp") from None
    if abs(time.time() - sent) > TOLERANCE_SECONDS:
        raise VerificationError("timestamp outside the tolerance")

    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # Several space-separated signatures while the sender rotates its secret: any may match.
    for candidate in signatures.split(" "):
        version, _, sig = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return json.loads(body)
    raise VerificationError("no matching signature")


SECRET = os.environ["WEBHOOK_SECRET"]
seen_ids = set()  # in production: a unique key in your database
seen_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        # The raw bytes, exactly as sent: the signature covers them, not re-encoded JSON.
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        # Signature and timestamp first: a replayed request is refused before the webhook-id check.
        try:
            event = verify(SECRET, self.headers, body)
        except (VerificationError, ValueError) as err:
            log.info("rejected %s", err)
            self.send_response(401)
            self.end_headers()
            return
        msg_id = self.headers["webhook-id"]
        with seen_lock:
            duplicate = msg_id in seen_ids
            seen_ids.add(msg_id)
        # Answer fast; hand real work to a queue. A duplicate is acknowledged, not redone.
        log.info("%s %s %s", "duplicate" if duplicate else "accepted", msg_id, event["type"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, format, *args):
        pass  # one line per request is printed above


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Handler)
log.info("listening on %s", server.server_address[1])
server.serve_forever()
