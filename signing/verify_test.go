package signing_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/signing"
)

// request is what Verify sees; cases mutate a valid one.
type request struct {
	secret string
	header http.Header
	body   []byte
	now    time.Time
}

func validRequest(v vector) request {
	return request{secret: v.Secret, header: v.header(), body: []byte(v.Body), now: v.time()}
}

func secretOf(raw []byte) string { return signing.SecretPrefix + b64(raw) }

func TestVerify(t *testing.T) {
	v := loadVectors(t)[0]
	otherSecret := loadVectors(t)[1].Secret
	tol := signing.Tolerance
	cases := []struct {
		name   string
		mutate func(r *request)
		want   error
	}{
		{"valid", func(r *request) {}, nil},
		{"exactly tolerance old", func(r *request) { r.now = r.now.Add(tol) }, nil},
		{"exactly tolerance ahead", func(r *request) { r.now = r.now.Add(-tol) }, nil},
		{"lowercase header keys via Set", func(r *request) {
			r.header = http.Header{}
			r.header.Set("WEBHOOK-ID", v.MsgID)
			r.header.Set("Webhook-Timestamp", strconv.FormatInt(v.Timestamp, 10))
			r.header.Set("webhook-signature", v.Signature)
		}, nil},
		{"missing id", func(r *request) { r.header.Del(signing.HeaderID) }, signing.ErrMissingHeaders},
		{"missing timestamp", func(r *request) { r.header.Del(signing.HeaderTimestamp) }, signing.ErrMissingHeaders},
		{"missing signature", func(r *request) { r.header.Del(signing.HeaderSignature) }, signing.ErrMissingHeaders},
		{"empty signature", func(r *request) { r.header.Set(signing.HeaderSignature, "") }, signing.ErrMissingHeaders},
		{"svix headers only", func(r *request) {
			for _, name := range []string{"id", "timestamp", "signature"} {
				r.header.Set("svix-"+name, r.header.Get("webhook-"+name))
				r.header.Del("webhook-" + name)
			}
		}, signing.ErrMissingHeaders},
		{"non-numeric timestamp", setHeader(signing.HeaderTimestamp, "yesterday"), signing.ErrInvalidTimestamp},
		{"fractional timestamp", setHeader(signing.HeaderTimestamp, "1614265330.0"), signing.ErrInvalidTimestamp},
		{"plus-signed timestamp", setHeader(signing.HeaderTimestamp, "+1614265330"), signing.ErrInvalidTimestamp},
		{"zero-padded timestamp", setHeader(signing.HeaderTimestamp, "01614265330"), signing.ErrInvalidTimestamp},
		{"milliseconds overflow", setHeader(signing.HeaderTimestamp, "99999999999999999999"), signing.ErrInvalidTimestamp},
		{"5m01s old", func(r *request) { r.now = r.now.Add(tol + time.Second) }, signing.ErrTimestampTooOld},
		{"5m01s ahead", func(r *request) { r.now = r.now.Add(-tol - time.Second) }, signing.ErrTimestampTooNew},
		{"far future timestamp", setHeader(signing.HeaderTimestamp, "9223372036854775807"), signing.ErrTimestampTooNew},
		{"far past timestamp", setHeader(signing.HeaderTimestamp, "-9223372036854775808"), signing.ErrTimestampTooOld},
		{"tampered body", func(r *request) { r.body = []byte(`{"test": 2432232315}`) }, signing.ErrNoMatch},
		{"tampered id", setHeader(signing.HeaderID, "msg_p5jXN8AQM9LWM0D4loKWxJel"), signing.ErrNoMatch},
		{"tampered timestamp", func(r *request) {
			r.header.Set(signing.HeaderTimestamp, strconv.FormatInt(v.Timestamp+1, 10))
		}, signing.ErrNoMatch},
		{"wrong secret", func(r *request) { r.secret = otherSecret }, signing.ErrNoMatch},
		{"v2 only", setHeader(signing.HeaderSignature, "v2,"+strings.TrimPrefix(v.Signature, "v1,")), signing.ErrNoMatch},
		{"v1a only", setHeader(signing.HeaderSignature, "v1a,"+strings.TrimPrefix(v.Signature, "v1,")), signing.ErrNoMatch},
		{"malformed base64", setHeader(signing.HeaderSignature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O!="), signing.ErrNoMatch},
		{"no version", setHeader(signing.HeaderSignature, strings.TrimPrefix(v.Signature, "v1,")), signing.ErrNoMatch},
		{"version only", setHeader(signing.HeaderSignature, "v1,"), signing.ErrNoMatch},
		{"truncated", setHeader(signing.HeaderSignature, v.Signature[:len(v.Signature)-1]), signing.ErrNoMatch},
		{"trailing garbage", setHeader(signing.HeaderSignature, v.Signature+",x"), signing.ErrNoMatch},
		{"spaces only", setHeader(signing.HeaderSignature, "   "), signing.ErrNoMatch},
		{"secret without prefix", func(r *request) { r.secret = strings.TrimPrefix(r.secret, signing.SecretPrefix) }, signing.ErrInvalidSecret},
		{"secret bad base64", func(r *request) { r.secret = "whsec_not*base64" }, signing.ErrInvalidSecret},
		{"secret too short", func(r *request) { r.secret = secretOf(make([]byte, 16)) }, signing.ErrInvalidSecret},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := validRequest(v)
			tc.mutate(&r)
			got := signing.Verify(r.secret, r.header, r.body, r.now)
			if !errors.Is(got, tc.want) || (tc.want == nil) != (got == nil) {
				t.Fatalf("Verify = %v, want %v", got, tc.want)
			}
			if got != nil {
				assertNoLeak(t, got, r.secret, v.Signature)
			}
		})
	}
}

func setHeader(name, value string) func(*request) {
	return func(r *request) { r.header.Set(name, value) }
}

// assertNoLeak guards against error strings carrying key material or a
// signature into logs.
func assertNoLeak(t *testing.T, err error, secret, signature string) {
	t.Helper()
	msg := err.Error()
	enc := strings.TrimPrefix(secret, signing.SecretPrefix)
	sig := strings.TrimPrefix(signature, "v1,")
	if (enc != "" && strings.Contains(msg, enc)) || strings.Contains(msg, sig) {
		t.Errorf("error %q leaks the secret or the signature", msg)
	}
}

func TestVerifyMultipleSignatures(t *testing.T) {
	v := loadVectors(t)[0]
	wrong := "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
	cases := []struct {
		name   string
		header string
		want   error
	}{
		{"wrong then right", wrong + " " + v.Signature, nil},
		{"right then wrong", v.Signature + " " + wrong, nil},
		{"other versions around right", "v2,abc " + v.Signature + " v1a,xyz", nil},
		{"double space", wrong + "  " + v.Signature, nil},
		{"only wrong entries", wrong + " " + wrong, signing.ErrNoMatch},
		{"right signature under v2", wrong + " v2," + strings.TrimPrefix(v.Signature, "v1,"), signing.ErrNoMatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := v.header()
			h.Set(signing.HeaderSignature, tc.header)
			got := signing.Verify(v.Secret, h, []byte(v.Body), v.time())
			if !errors.Is(got, tc.want) || (tc.want == nil) != (got == nil) {
				t.Fatalf("Verify = %v, want %v", got, tc.want)
			}
		})
	}
}
