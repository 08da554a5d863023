package deliverytest

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/signing"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// CheckSigned fails the test unless h carries a Standard Webhooks signature of its body for
// event evid that both our verifier and the reference library accept with secret.
func CheckSigned(tb testing.TB, h Hit, evid, secret string) {
	tb.Helper()
	if got := h.Header.Get("webhook-id"); got != evid {
		tb.Errorf("webhook-id = %q, want the event id %q", got, evid)
	}
	ts, err := strconv.ParseInt(h.Header.Get("webhook-timestamp"), 10, 64)
	if err != nil {
		tb.Errorf("webhook-timestamp %q: %v", h.Header.Get("webhook-timestamp"), err)
	}
	if d := h.At.Sub(time.Unix(ts, 0)); d < -time.Second || d > time.Minute {
		tb.Errorf("webhook-timestamp %d is %s away from the attempt", ts, d)
	}
	if err := signing.Verify(secret, h.Header, h.Body, h.At); err != nil {
		tb.Errorf("signing.Verify: %v", err)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		tb.Fatal(err)
	}
	if err := wh.Verify(h.Body, h.Header); err != nil {
		tb.Errorf("standardwebhooks Verify: %v", err)
	}
}

// CheckBody fails the test unless body is exactly {"id","type","timestamp","data"} with data
// equal to what was published.
func CheckBody(tb testing.TB, body []byte, id, typ string, data map[string]any) {
	tb.Helper()
	var got map[string]json.RawMessage
	if err := json.Unmarshal(body, &got); err != nil {
		tb.Fatalf("body %s: %v", body, err)
	}
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"data", "id", "timestamp", "type"}; !slices.Equal(keys, want) {
		tb.Errorf("body fields = %v, want %v", keys, want)
	}
	var env struct {
		ID        string         `json:"id"`
		Type      string         `json:"type"`
		Timestamp string         `json:"timestamp"`
		Data      map[string]any `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		tb.Fatal(err)
	}
	if env.ID != id || env.Type != typ {
		tb.Errorf("body id, type = %q, %q; want %q, %q", env.ID, env.Type, id, typ)
	}
	if _, err := time.Parse(time.RFC3339, env.Timestamp); err != nil {
		tb.Errorf("body timestamp %q is not RFC 3339: %v", env.Timestamp, err)
	}
	if !reflect.DeepEqual(env.Data, data) {
		tb.Errorf("body data = %v, want %v", env.Data, data)
	}
}
