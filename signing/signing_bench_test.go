package signing_test

import (
	"bytes"
	"testing"

	"github.com/cert-ix/webhookd/signing"
)

func BenchmarkSign(b *testing.B) {
	v := loadVectors(b)[0]
	key, err := signing.ParseSecret(v.Secret)
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 1024)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		key.Sign(v.MsgID, v.time(), body)
	}
}

func BenchmarkVerify(b *testing.B) {
	v := loadVectors(b)[0]
	key, err := signing.ParseSecret(v.Secret)
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 1024)
	h := signing.Headers([]signing.Key{key}, v.MsgID, v.time(), body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := signing.Verify(v.Secret, h, body, v.time()); err != nil {
			b.Fatal(err)
		}
	}
}
