# A Standard Webhooks receiver for hookbox: Ruby's standard library and WEBrick
# (gem install webrick, or Debian's ruby-webrick).
#
#   WEBHOOK_SECRET=whsec_... PORT=8000 ruby receiver.rb
#
# For production, the standardwebhooks gem does the verification:
#   StandardWebhooks::Webhook.new(secret).verify(body, headers)
require 'base64'
require 'json'
require 'openssl'
require 'set'
require 'webrick'

# How far webhook-timestamp may be from now, in seconds (Standard Webhooks: 5 minutes).
TOLERANCE_SECONDS = Integer(ENV.fetch('WEBHOOK_TOLERANCE_SECONDS', '300'))

class VerificationError < StandardError; end

# Checks the signature over the raw body and returns the parsed event.
def verify(secret, headers, body)
  id, timestamp, signatures = headers.values_at('webhook-id', 'webhook-timestamp', 'webhook-signature')
  raise VerificationError, 'missing webhook-* headers' if [id, timestamp, signatures].any? { |v| v.to_s.empty? }
  raise VerificationError, 'bad timestamp' unless timestamp.match?(/\A\d+\z/)
  raise VerificationError, 'timestamp outside the tolerance' if (Time.now.to_i - timestamp.to_i).abs > TOLERANCE_SECONDS

  key = Base64.strict_decode64(secret.delete_prefix('whsec_'))
  expected = Base64.strict_encode64(OpenSSL::HMAC.digest('SHA256', key, "#{id}.#{timestamp}.#{body}"))
  # Several space-separated signatures while the sender rotates its secret: any may match.
  matched = signatures.split(' ').any? do |candidate|
    version, signature = candidate.split(',', 2)
    version == 'v1' && signature && OpenSSL.secure_compare(signature, expected)
  end
  raise VerificationError, 'no matching signature' unless matched

  JSON.parse(body)
end

secret = ENV.fetch('WEBHOOK_SECRET')
seen_ids = Set.new # in production: a unique key in your database
lock = Mutex.new
$stdout.sync = true

server = WEBrick::HTTPServer.new(BindAddress: '127.0.0.1', Port: Integer(ENV.fetch('PORT', '8000')),
                                 Logger: WEBrick::Log.new(File::NULL), AccessLog: [])
server.mount_proc '/webhooks' do |req, res|
  # The raw bytes, exactly as sent: the signature covers them, not re-encoded JSON.
  body = req.body || ''
  headers = { 'webhook-id' => req['webhook-id'], 'webhook-timestamp' => req['webhook-timestamp'],
              'webhook-signature' => req['webhook-signature'] }
  # Signature and timestamp first: a replayed request is refused before the webhook-id check.
  begin
    event = verify(secret, headers, body)
  rescue VerificationError, JSON::ParserError => e
    puts "rejected #{e.message}"
    res.status = 401
    next
  end
  id = headers['webhook-id']
  duplicate = lock.synchronize { !seen_ids.add?(id) }
  # Answer fast; hand real work to a queue. A duplicate is acknowledged, not redone.
  puts "#{duplicate ? 'duplicate' : 'accepted'} #{id} #{event['type']}"
  res.status = 204
end

trap('TERM') { server.shutdown }
trap('INT') { server.shutdown }
puts "listening on #{server.config[:Port]}"
server.start
