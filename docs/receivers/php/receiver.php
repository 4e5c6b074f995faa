<?php
// A Standard Webhooks receiver for hookbox, PHP standard library only.
//
//   WEBHOOK_SECRET=whsec_... php -S 127.0.0.1:8000 receiver.php
//
// For production, the standard-webhooks/standard-webhooks Composer package does the
// verification: (new \StandardWebhooks\Webhook($secret))->verify($body, $headers);

// How far webhook-timestamp may be from now, in seconds (Standard Webhooks: 5 minutes).
define('TOLERANCE_SECONDS', (int) (getenv('WEBHOOK_TOLERANCE_SECONDS') ?: 300));

/** Checks the signature over the raw body and returns the parsed event. */
function verify_webhook(string $secret, array $server, string $body): array
{
    $id = $server['HTTP_WEBHOOK_ID'] ?? '';
    $timestamp = $server['HTTP_WEBHOOK_TIMESTAMP'] ?? '';
    $signatures = $server['HTTP_WEBHOOK_SIGNATURE'] ?? '';
    if ($id === '' || $timestamp === '' || $signatures === '') {
        throw new RuntimeException('missing webhook-* headers');
    }
    if (!ctype_digit($timestamp) || abs(time() - (int) $timestamp) > TOLERANCE_SECONDS) {
        throw new RuntimeException('timestamp outside the tolerance');
    }
    $key = base64_decode(preg_replace('/^whsec_/', '', $secret), true);
    $expected = base64_encode(hash_hmac('sha256', "$id.$timestamp.$body", $key, true));
    // Several space-separated signatures while the sender rotates its secret: any may match.
    foreach (explode(' ', $signatures) as $candidate) {
        [$version, $signature] = array_pad(explode(',', $candidate, 2), 2, '');
        if ($version === 'v1' && hash_equals($expected, $signature)) {
            return json_decode($body, true, 512, JSON_THROW_ON_ERROR);
        }
    }
    throw new RuntimeException('no matching signature');
}

// The raw bytes, exactly as sent: the signature covers them, not re-encoded JSON.
$body = file_get_contents('php://input');
// Signature and timestamp first: a replayed request is refused before the webhook-id check.
try {
    $event = verify_webhook(getenv('WEBHOOK_SECRET'), $_SERVER, $body);
} catch (RuntimeException $e) { // JsonException is one too
    error_log('rejected ' . $e->getMessage());
    http_response_code(401);
    exit;
}

// A duplicate is acknowledged, not redone. mkdir is atomic: the first request for an id
// creates the directory. In production: a unique key in your database.
$id = $_SERVER['HTTP_WEBHOOK_ID'];
$seen = sys_get_temp_dir() . '/webhooks-seen-' . getmypid();
@mkdir($seen);
$duplicate = !@mkdir($seen . '/' . hash('sha256', $id));
// Answer fast; hand real work to a queue.
error_log(($duplicate ? 'duplicate ' : 'accepted ') . $id . ' ' . $event['type']);
http_response_code(204);
