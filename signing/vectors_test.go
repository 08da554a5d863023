package signing_test

import (
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/signing"
)

const vectorsPath = "../testdata/signing/vectors.json"

// vector is one published Standard Webhooks test case.
type vector struct {
	Name      string `json:"name"`
	Source    string `json:"source"`
	Secret    string `json:"secret"`
	MsgID     string `json:"msg_id"`
	Timestamp int64  `json:"timestamp"`
	Body      string `json:"body"`
	Signature string `json:"signature"`
}

func (v vector) time() time.Time { return time.Unix(v.Timestamp, 0) }

// header returns the headers a sender would have attached to the vector.
func (v vector) header() http.Header {
	h := http.Header{}
	h.Set(signing.HeaderID, v.MsgID)
	h.Set(signing.HeaderTimestamp, strconv.FormatInt(v.Timestamp, 10))
	h.Set(signing.HeaderSignature, v.Signature)
	return h
}

// loadVectors takes testing.TB so the fuzz target can seed from the same file.
func loadVectors(tb testing.TB) []vector {
	tb.Helper()
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		tb.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(data, &vs); err != nil {
		tb.Fatalf("parse %s: %v", vectorsPath, err)
	}
	if len(vs) == 0 {
		tb.Fatalf("%s holds no vectors", vectorsPath)
	}
	for _, v := range vs {
		if v.Name == "" || v.Source == "" {
			tb.Fatalf("%s: every vector needs a name and a source: %+v", vectorsPath, v)
		}
	}
	return vs
}

func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			key, err := signing.ParseSecret(v.Secret)
			if err != nil {
				t.Fatalf("ParseSecret: %v", err)
			}
			if got := key.Sign(v.MsgID, v.time(), []byte(v.Body)); got != v.Signature {
				t.Errorf("Sign = %q, want %q", got, v.Signature)
			}
			if err := signing.Verify(v.Secret, v.header(), []byte(v.Body), v.time()); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

// TestSignIgnoresSubSecond pins that only whole seconds are signed, since the
// timestamp header cannot carry more.
func TestSignIgnoresSubSecond(t *testing.T) {
	v := loadVectors(t)[0]
	key, err := signing.ParseSecret(v.Secret)
	if err != nil {
		t.Fatal(err)
	}
	got := key.Sign(v.MsgID, v.time().Add(999*time.Millisecond), []byte(v.Body))
	if got != v.Signature {
		t.Errorf("Sign = %q, want %q", got, v.Signature)
	}
}
