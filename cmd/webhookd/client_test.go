package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/google/uuid"
)

// apiClient talks to the services under test; it keeps enough idle connections for the
// benchmark's parallel publishers.
var apiClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}, Timeout: time.Minute}

// reply is one API answer.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
	Env    struct {
		Success bool            `json:"success"`
		Data    json.RawMessage `json:"data"`
		Code    string          `json:"code"`
		Error   string          `json:"error"`
	}
}

// call makes one API request with key; header is name, value pairs.
func (s *service) call(tb testing.TB, key, method, path string, body any, header ...string) reply {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(tb.Context(), method, s.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := apiClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	r := reply{Status: res.StatusCode, Header: res.Header}
	if r.Body, err = io.ReadAll(res.Body); err != nil {
		tb.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if err := json.Unmarshal(r.Body, &r.Env); err != nil {
		tb.Fatalf("%s %s: answer is not a JSON envelope: %v: %s", method, path, err, r.Body)
	}
	return r
}

// want fails the test unless the answer has status, and decodes its data into v (if set).
func (r reply) want(tb testing.TB, status int, v any) reply {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
	if v != nil {
		if err := json.Unmarshal(r.Env.Data, v); err != nil {
			tb.Fatalf("decode data: %v: %s", err, r.Body)
		}
	}
	return r
}

// wantError fails the test unless the answer is the error envelope of code with message.
func (r reply) wantError(tb testing.TB, status int, code, message string) {
	tb.Helper()
	if r.Status != status || r.Env.Success || r.Env.Code != code || r.Env.Error != message {
		tb.Fatalf("got %d %s, want %d {success:false, code:%q, error:%q}", r.Status, r.Body, status, code, message)
	}
}

// endpointView is an endpoint as the API shows it (secret only on create).
type endpointView struct {
	ID                  string            `json:"id"`
	URL                 string            `json:"url"`
	Events              []string          `json:"events"`
	Headers             map[string]string `json:"headers"`
	Enabled             bool              `json:"enabled"`
	Status              string            `json:"status"`
	DisabledReason      *string           `json:"disabledReason"`
	ConsecutiveFailures int               `json:"consecutiveFailures"`
	Secret              string            `json:"secret"`
	RequeuedDeliveries  *int              `json:"requeuedDeliveries"`
}

type publishedView struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Deliveries int    `json:"deliveries"`
}

type attemptView struct {
	StartedAt    time.Time `json:"startedAt"`
	DurationMs   int64     `json:"durationMs"`
	StatusCode   int       `json:"statusCode"`
	Error        string    `json:"error"`
	ResponseBody string    `json:"responseBody"`
}

type deliveryView struct {
	ID            string        `json:"id"`
	WebhookID     string        `json:"webhookId"`
	EventID       string        `json:"eventId"`
	EventType     string        `json:"eventType"`
	Status        string        `json:"status"`
	AttemptCount  int           `json:"attemptCount"`
	NextAttemptAt *time.Time    `json:"nextAttemptAt"`
	Attempts      []attemptView `json:"attempts"`
}

// createEndpoint registers url for events with custom headers (may be nil).
func (s *service) createEndpoint(tb testing.TB, key, url string, events []string, headers map[string]string) endpointView {
	tb.Helper()
	body := map[string]any{"url": url, "events": events}
	if headers != nil {
		body["headers"] = headers
	}
	var e endpointView
	s.call(tb, key, http.MethodPost, "/api/v1/webhooks", body).want(tb, http.StatusCreated, &e)
	if e.ID == "" || !strings.HasPrefix(e.Secret, "whsec_") {
		tb.Fatalf("created endpoint has id %q and secret %q", e.ID, e.Secret)
	}
	return e
}

func (s *service) endpoint(tb testing.TB, key, eid string) endpointView {
	tb.Helper()
	var e endpointView
	s.call(tb, key, http.MethodGet, "/api/v1/webhooks/"+eid, nil).want(tb, http.StatusOK, &e)
	return e
}

// scanData is a valid event payload with a fresh scan id.
func scanData() map[string]any {
	return map[string]any{"scanId": uuid.NewString(), "scanType": "zap"}
}

// publish sends an event; header is name, value pairs (e.g. Idempotency-Key).
func (s *service) publish(tb testing.TB, key, typ string, data map[string]any, header ...string) publishedView {
	tb.Helper()
	var p publishedView
	s.call(tb, key, http.MethodPost, "/api/v1/events", map[string]any{"type": typ, "data": data}, header...).
		want(tb, http.StatusAccepted, &p)
	return p
}

// delivery reads one delivery with its attempts; its id is registry.DeliveryID(event, endpoint).
func (s *service) delivery(tb testing.TB, key, eid, did string) deliveryView {
	tb.Helper()
	var d deliveryView
	s.call(tb, key, http.MethodGet, "/api/v1/webhooks/"+eid+"/deliveries/"+did, nil).want(tb, http.StatusOK, &d)
	return d
}

// deliveries lists an endpoint's deliveries (first page of 100), optionally of one status.
func (s *service) deliveries(tb testing.TB, key, eid, status string) []deliveryView {
	tb.Helper()
	path := "/api/v1/webhooks/" + eid + "/deliveries?limit=100"
	if status != "" {
		path += "&status=" + status
	}
	var ds []deliveryView
	s.call(tb, key, http.MethodGet, path, nil).want(tb, http.StatusOK, &ds)
	return ds
}

// waitDelivery waits until the delivery of event evid to endpoint eid has status.
func (s *service) waitDelivery(tb testing.TB, key, eid, evid, status string) deliveryView {
	tb.Helper()
	did := registry.DeliveryID(evid, eid)
	var d deliveryView
	waitFor(tb, patience, "delivery "+did+" to be "+status, func() bool {
		r := s.call(tb, key, http.MethodGet, "/api/v1/webhooks/"+eid+"/deliveries/"+did, nil)
		if r.Status == http.StatusNotFound {
			return false // not fanned out yet
		}
		r.want(tb, http.StatusOK, &d)
		return d.Status == status
	})
	return d
}
