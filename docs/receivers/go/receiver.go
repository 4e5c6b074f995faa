// A Standard Webhooks receiver for hookbox, Go standard library only.
//
//	WEBHOOK_SECRET=whsec_... PORT=8000 go run receiver.go
//
// For production, github.com/standard-webhooks/standard-webhooks/libraries/go does the
// verification: wh, _ := standardwebhooks.NewWebhook(secret); err := wh.Verify(body, r.Header)
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// How far webhook-timestamp may be from now: WEBHOOK_TOLERANCE_SECONDS, default 5 minutes.
var tolerance = 5 * time.Minute

type event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// verify checks the signature over the raw body and returns the parsed event.
func verify(secret string, h http.Header, body []byte) (*event, error) {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return nil, errors.New("missing webhook-* headers")
	}
	sent, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, errors.New("bad timestamp")
	}
	if math.Abs(float64(time.Now().Unix()-sent)) > tolerance.Seconds() {
		return nil, errors.New("timestamp outside the tolerance")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return nil, errors.New("bad secret")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	expected := []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	// Several space-separated signatures while the sender rotates its secret: any may match.
	for _, candidate := range strings.Split(sigs, " ") {
		version, sig, _ := strings.Cut(candidate, ",")
		if version == "v1" && hmac.Equal([]byte(sig), expected) {
			var e event
			if err := json.Unmarshal(body, &e); err != nil {
				return nil, errors.New("body is not JSON")
			}
			return &e, nil
		}
	}
	return nil, errors.New("no matching signature")
}

func main() {
	secret := os.Getenv("WEBHOOK_SECRET")
	if s := os.Getenv("WEBHOOK_TOLERANCE_SECONDS"); s != "" {
		seconds, err := strconv.Atoi(s)
		if err != nil {
			log.Fatal("WEBHOOK_TOLERANCE_SECONDS: ", err)
		}
		tolerance = time.Duration(seconds) * time.Second
	}
	var mu sync.Mutex
	seen := map[string]bool{} // in production: a unique key in your database

	http.HandleFunc("/webhooks", func(w http.ResponseWriter, r *http.Request) {
		// The raw bytes, exactly as sent: the signature covers them, not re-encoded JSON.
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		// Signature and timestamp first: a replayed request is refused before the webhook-id check.
		e, err := verify(secret, r.Header, body)
		if err != nil {
			fmt.Println("rejected", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		id := r.Header.Get("webhook-id")
		mu.Lock()
		duplicate := seen[id]
		seen[id] = true
		mu.Unlock()
		// Answer fast; hand real work to a queue. A duplicate is acknowledged, not redone.
		if duplicate {
			fmt.Println("duplicate", id, e.Type)
		} else {
			fmt.Println("accepted", id, e.Type)
		}
		w.WriteHeader(http.StatusNoContent)
	})

	port := os.Getenv("PORT")
	if port == "" {
		port = "8000"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("listening on", ln.Addr().(*net.TCPAddr).Port)
	log.Fatal(http.Serve(ln, nil))
}
