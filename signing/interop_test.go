package signing_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/cert-ix/webhookd/signing"
)

// The reference library reads the real clock in Verify, so these tests sign
// at time.Now() rather than at the vectors' timestamps.

func TestInteropReferenceVerifiesOurs(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			key, err := signing.ParseSecret(v.Secret)
			if err != nil {
				t.Fatal(err)
			}
			wh, err := standardwebhooks.NewWebhook(v.Secret)
			if err != nil {
				t.Fatal(err)
			}
			h := signing.Headers([]signing.Key{key}, v.MsgID, time.Now(), []byte(v.Body))
			if err := wh.Verify([]byte(v.Body), h); err != nil {
				t.Errorf("reference Verify: %v", err)
			}
		})
	}
}

func TestInteropOursVerifiesReference(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			wh, err := standardwebhooks.NewWebhook(v.Secret)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			sig, err := wh.Sign(v.MsgID, now, []byte(v.Body))
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			h.Set(standardwebhooks.HeaderWebhookID, v.MsgID)
			h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
			h.Set(standardwebhooks.HeaderWebhookSignature, sig)
			if err := signing.Verify(v.Secret, h, []byte(v.Body), now); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

// TestInteropRotation checks that the reference library, holding only one of
// the rotated secrets, accepts our two-entry header.
func TestInteropRotation(t *testing.T) {
	vs := loadVectors(t)
	var keys []signing.Key
	for _, v := range vs {
		k, err := signing.ParseSecret(v.Secret)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	body := []byte(vs[0].Body)
	h := signing.Headers(keys, vs[0].MsgID, time.Now(), body)
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			wh, err := standardwebhooks.NewWebhook(v.Secret)
			if err != nil {
				t.Fatal(err)
			}
			if err := wh.Verify(body, h); err != nil {
				t.Errorf("reference Verify: %v", err)
			}
		})
	}
}
