// A Standard Webhooks receiver for hookbox, Java standard library only (JDK 11+).
//
//   WEBHOOK_SECRET=whsec_... PORT=8000 java Receiver.java
//
// For production, com.standardwebhooks:standardwebhooks on Maven Central does the
// verification: new com.standardwebhooks.Webhook(secret).verify(body, headers), headers
// as java.net.http.HttpHeaders. Parse the verified JSON body with Jackson or Gson.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class Receiver {
    // How far webhook-timestamp may be from now, in seconds (Standard Webhooks: 5 minutes).
    static final long TOLERANCE_SECONDS =
            Long.parseLong(System.getenv().getOrDefault("WEBHOOK_TOLERANCE_SECONDS", "300"));

    static class VerificationException extends Exception {
        VerificationException(String message) {
            super(message);
        }
    }

    /** Checks the signature over the raw body; throws when it does not hold. */
    static void verify(String secret, String id, String timestamp, String signatures, byte[] body)
            throws VerificationException, GeneralSecurityException {
        if (id == null || timestamp == null || signatures == null) {
            throw new VerificationException("missing webhook-* headers");
        }
        long sent;
        try {
            sent = Long.parseLong(timestamp);
        } catch (NumberFormatException e) {
            throw new VerificationException("bad timestamp");
        }
        if (Math.abs(System.currentTimeMillis() / 1000 - sent) > TOLERANCE_SECONDS) {
            throw new VerificationException("timestamp outside the tolerance");
        }
        byte[] key = Base64.getDecoder().decode(secret.replaceFirst("^whsec_", ""));
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key, "HmacSHA256"));
        mac.update((id + "." + timestamp + ".").getBytes(StandardCharsets.UTF_8));
        byte[] expected = Base64.getEncoder().encode(mac.doFinal(body));
        // Several space-separated signatures while the sender rotates its secret: any may match.
        for (String candidate : signatures.split(" ")) {
            String[] parts = candidate.split(",", 2);
            if (parts.length == 2 && parts[0].equals("v1")
                    && MessageDigest.isEqual(parts[1].getBytes(StandardCharsets.US_ASCII), expected)) {
                return;
            }
        }
        throw new VerificationException("no matching signature");
    }

    public static void main(String[] args) throws IOException {
        String secret = System.getenv("WEBHOOK_SECRET");
        Set<String> seenIds = ConcurrentHashMap.newKeySet(); // in production: a unique key in your database
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "8000"));

        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 0);
        server.createContext("/webhooks", (HttpExchange exchange) -> {
            // The raw bytes, exactly as sent: the signature covers them, not re-encoded JSON.
            byte[] body;
            try (InputStream in = exchange.getRequestBody()) {
                body = in.readAllBytes();
            }
            var headers = exchange.getRequestHeaders(); // case-insensitive
            String id = headers.getFirst("webhook-id");
            // Signature and timestamp first: a replayed request is refused before the webhook-id check.
            try {
                verify(secret, id, headers.getFirst("webhook-timestamp"), headers.getFirst("webhook-signature"), body);
            } catch (VerificationException | GeneralSecurityException | IllegalArgumentException e) {
                System.out.println("rejected " + e.getMessage());
                exchange.sendResponseHeaders(401, -1);
                exchange.close();
                return;
            }
            // Answer fast; hand real work to a queue. A duplicate is acknowledged, not redone.
            System.out.println((seenIds.add(id) ? "accepted " : "duplicate ") + id);
            exchange.sendResponseHeaders(204, -1);
            exchange.close();
        });
        server.setExecutor(Executors.newFixedThreadPool(4));
        server.start();
        System.out.println("listening on " + server.getAddress().getPort());
    }
}
