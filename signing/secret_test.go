package signing_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/signing"
)

func b64(raw []byte) string { return base64.StdEncoding.EncodeToString(raw) }

func TestNewSecret(t *testing.T) {
	first, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	second, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if first == second {
		t.Errorf("two calls returned the same secret")
	}
	for _, s := range []string{first, second} {
		enc, ok := strings.CutPrefix(s, signing.SecretPrefix)
		if !ok {
			t.Fatalf("secret lacks %q prefix", signing.SecretPrefix)
		}
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			t.Fatalf("secret is not standard base64: %v", err)
		}
		if got, want := len(raw), 32; got != want {
			t.Errorf("decoded length = %d, want %d", got, want)
		}
		if _, err := signing.ParseSecret(s); err != nil {
			t.Errorf("ParseSecret(NewSecret()) = %v", err)
		}
	}
}

func TestParseSecret(t *testing.T) {
	n := func(size int) []byte { return bytes.Repeat([]byte{0xA5}, size) }
	cases := []struct {
		name   string
		secret string
		want   error
	}{
		{"24 bytes", secretOf(n(24)), nil},
		{"32 bytes", secretOf(n(32)), nil},
		{"64 bytes", secretOf(n(64)), nil},
		{"reference vector", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", nil},
		{"empty", "", signing.ErrInvalidSecret},
		{"prefix only", signing.SecretPrefix, signing.ErrInvalidSecret},
		{"no prefix", b64(n(32)), signing.ErrInvalidSecret},
		{"uppercase prefix", "WHSEC_" + b64(n(32)), signing.ErrInvalidSecret},
		{"asymmetric prefix", "whsk_" + b64(n(32)), signing.ErrInvalidSecret},
		{"bad base64", "whsec_%%%%" + b64(n(32)), signing.ErrInvalidSecret},
		{"url-safe alphabet", signing.SecretPrefix + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xFB}, 33)), signing.ErrInvalidSecret},
		{"missing padding", signing.SecretPrefix + base64.RawStdEncoding.EncodeToString(n(32)), signing.ErrInvalidSecret},
		{"embedded line break", signing.SecretPrefix + b64(n(32))[:20] + "\n" + b64(n(32))[20:], signing.ErrInvalidSecret},
		{"trailing line break", secretOf(n(32)) + "\r\n", signing.ErrInvalidSecret},
		{"23 bytes", secretOf(n(23)), signing.ErrInvalidSecret},
		{"65 bytes", secretOf(n(65)), signing.ErrInvalidSecret},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, got := signing.ParseSecret(tc.secret)
			if !errors.Is(got, tc.want) || (tc.want == nil) != (got == nil) {
				t.Fatalf("ParseSecret = %v, want %v", got, tc.want)
			}
			if got != nil {
				assertNoLeak(t, got, tc.secret, "v1,-")
			}
		})
	}
}
