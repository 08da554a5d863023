package signing_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/signing"
)

// TestSignatureHeaderRotation checks the rotation scheme: one entry per key,
// in order, each verifiable with its own secret alone.
func TestSignatureHeaderRotation(t *testing.T) {
	vs := loadVectors(t)
	v := vs[0]
	secrets := []string{vs[1].Secret, v.Secret}
	keys := make([]signing.Key, len(secrets))
	for i, s := range secrets {
		k, err := signing.ParseSecret(s)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	header := signing.SignatureHeader(keys, v.MsgID, v.time(), []byte(v.Body))
	entries := strings.Split(header, " ")
	if got, want := len(entries), len(keys); got != want {
		t.Fatalf("SignatureHeader has %d entries, want %d: %q", got, want, header)
	}
	for i, k := range keys {
		if got, want := entries[i], k.Sign(v.MsgID, v.time(), []byte(v.Body)); got != want {
			t.Errorf("entry %d = %q, want %q", i, got, want)
		}
	}
	if got, want := entries[1], v.Signature; got != want {
		t.Errorf("entry 1 = %q, want reference %q", got, want)
	}
	for i, s := range secrets {
		t.Run("secret"+strconv.Itoa(i), func(t *testing.T) {
			h := signing.Headers(keys, v.MsgID, v.time(), []byte(v.Body))
			if err := signing.Verify(s, h, []byte(v.Body), v.time()); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	v := loadVectors(t)[0]
	key, err := signing.ParseSecret(v.Secret)
	if err != nil {
		t.Fatal(err)
	}
	h := signing.Headers([]signing.Key{key}, v.MsgID, v.time(), []byte(v.Body))
	want := v.header()
	for _, name := range []string{signing.HeaderID, signing.HeaderTimestamp, signing.HeaderSignature} {
		if got, want := h.Values(name), want.Values(name); len(got) != 1 || got[0] != want[0] {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got, want := len(h), 3; got != want {
		t.Errorf("Headers has %d names, want %d: %v", got, want, h)
	}
}

func TestSignatureHeaderNoKeys(t *testing.T) {
	if got := signing.SignatureHeader(nil, "msg", loadVectors(t)[0].time(), nil); got != "" {
		t.Errorf("SignatureHeader(nil) = %q, want empty", got)
	}
}
