package signing_test

import (
	"bytes"
	"errors"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/signing"
)

func FuzzVerify(f *testing.F) {
	for _, v := range loadVectors(f) {
		ts := strconv.FormatInt(v.Timestamp, 10)
		f.Add(v.Secret, v.MsgID, ts, v.Signature, []byte(v.Body), v.Timestamp, uint16(0))
		f.Add(v.Secret, v.MsgID, ts, "v2,x "+v.Signature, []byte(v.Body), v.Timestamp+300, uint16(0x0107))
	}
	f.Fuzz(func(t *testing.T, secret, msgID, ts, sigs string, body []byte, nowUnix int64, flip uint16) {
		checkAcceptsOnlyGenuine(t, secret, msgID, ts, sigs, body, time.Unix(nowUnix, 0))
		checkRejectsTamperedBody(t, secret, msgID, body, time.Unix(int64(uint32(nowUnix)), 0), flip)
	})
}

// checkAcceptsOnlyGenuine feeds arbitrary headers to Verify and, when it
// accepts, confirms independently that the header held the right signature.
func checkAcceptsOnlyGenuine(t *testing.T, secret, msgID, ts, sigs string, body []byte, now time.Time) {
	h := http.Header{}
	h.Set(signing.HeaderID, msgID)
	h.Set(signing.HeaderTimestamp, ts)
	h.Set(signing.HeaderSignature, sigs)
	if signing.Verify(secret, h, body, now) != nil {
		return
	}
	key, err := signing.ParseSecret(secret)
	if err != nil {
		t.Fatalf("Verify accepted a secret ParseSecret rejects: %v", err)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("Verify accepted timestamp %q", ts)
	}
	// big.Int because both values are attacker-chosen and may overflow.
	d := new(big.Int).Sub(big.NewInt(now.Unix()), big.NewInt(unix))
	if d.Abs(d).Cmp(big.NewInt(int64(signing.Tolerance/time.Second))) > 0 {
		t.Fatalf("Verify accepted a timestamp %ss away", d)
	}
	want := key.Sign(msgID, time.Unix(unix, 0), body)
	for _, entry := range strings.Split(sigs, " ") {
		if entry == want {
			return
		}
	}
	t.Fatalf("Verify accepted %q, which lacks %q", sigs, want)
}

// checkRejectsTamperedBody signs body properly, then changes one byte of it.
func checkRejectsTamperedBody(t *testing.T, secret, msgID string, body []byte, now time.Time, flip uint16) {
	key, err := signing.ParseSecret(secret)
	if err != nil || msgID == "" {
		return
	}
	h := signing.Headers([]signing.Key{key}, msgID, now, body)
	if err := signing.Verify(secret, h, body, now); err != nil {
		t.Fatalf("Verify rejected a genuine signature: %v", err)
	}
	tampered := bytes.Clone(body)
	if len(tampered) == 0 {
		tampered = []byte{byte(flip)}
	} else {
		tampered[int(flip)%len(tampered)] ^= byte(flip>>8) | 1
	}
	if err := signing.Verify(secret, h, tampered, now); !errors.Is(err, signing.ErrNoMatch) {
		t.Fatalf("Verify(tampered body) = %v, want %v", err, signing.ErrNoMatch)
	}
}
