package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// allEvents is every scan event type; bench endpoints subscribe to all of them.
var allEvents = []string{"scan.started", "scan.completed", "scan.failed", "scan.cancelled"}

// apiClient talks to webhookd's public API with one key over keep-alive connections.
type apiClient struct {
	base, key string
	hc        *http.Client
}

func newAPIClient(base, key string, conns int) *apiClient {
	tr := &http.Transport{MaxIdleConns: conns + 8, MaxIdleConnsPerHost: conns + 8, IdleConnTimeout: time.Minute}
	return &apiClient{base: base, key: key, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (a *apiClient) close() { a.hc.CloseIdleConnections() }

// apiError is a non-2xx answer.
type apiError struct {
	Status int
	Code   string
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d %s", e.Status, e.Code) }

// envelope is webhookd's answer: data, the pagination of lists, the code of errors.
type envelope struct {
	Data       json.RawMessage `json:"data"`
	Code       string          `json:"code"`
	Pagination struct {
		Total int `json:"total"`
	} `json:"pagination"`
}

// call sends body as JSON and decodes the envelope's data into out (when not nil).
func (a *apiClient) call(ctx context.Context, method, path string, body, out any) error {
	env, err := a.send(ctx, method, path, body)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(env.Data, out)
}

// send sends body as JSON and returns the envelope; an *apiError for a non-2xx answer.
func (a *apiClient) send(ctx context.Context, method, path string, body any) (*envelope, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-API-Key", a.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var env envelope
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil && resp.StatusCode != http.StatusNoContent {
		return nil, fmt.Errorf("HTTP %d with an unreadable body: %w", resp.StatusCode, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, &apiError{Status: resp.StatusCode, Code: env.Code}
	}
	return &env, nil
}

// createdEndpoint is the part of the create answer the bench uses.
type createdEndpoint struct {
	ID       string `json:"id"`
	Secret   string `json:"secret"`
	Ordering string `json:"ordering"`
}

// createEndpointFor registers url for events; webhookd probes it once.
func (a *apiClient) createEndpointFor(ctx context.Context, url string, events []string) (createdEndpoint, error) {
	return a.createEndpoint(ctx, url, events, "")
}

// createEndpoint registers url for events with ordering ("scan", "none", or "" for the
// default) and checks that the answer shows the ordering asked for ("none" by default).
func (a *apiClient) createEndpoint(ctx context.Context, url string, events []string, ordering string) (createdEndpoint, error) {
	body := map[string]any{"url": url, "events": events}
	if ordering != "" {
		body["ordering"] = ordering
	}
	var e createdEndpoint
	err := a.call(ctx, http.MethodPost, "/api/v1/webhooks", body, &e)
	switch {
	case err != nil:
	case e.ID == "" || e.Secret == "":
		err = fmt.Errorf("create webhook answered no id or secret")
	case e.Ordering != cmp.Or(ordering, "none"):
		err = fmt.Errorf("create webhook with ordering %q answered ordering %q", ordering, e.Ordering)
	}
	return e, err
}

// endpointState is an endpoint's status as the API shows it.
type endpointState struct {
	Status               string  `json:"status"`
	DisabledReason       *string `json:"disabledReason"`
	ConsecutiveFailures  int     `json:"consecutiveFailures"`
	EffectiveConcurrency int     `json:"effectiveConcurrency"`
	RateLimitPerSecond   *int    `json:"rateLimitPerSecond"`
}

// patchEndpoint changes fields of an endpoint and returns its state after.
func (a *apiClient) patchEndpoint(ctx context.Context, id string, fields map[string]any) (endpointState, error) {
	var s endpointState
	err := a.call(ctx, http.MethodPatch, "/api/v1/webhooks/"+id, fields, &s)
	return s, err
}

func (a *apiClient) endpoint(ctx context.Context, id string) (endpointState, error) {
	var s endpointState
	err := a.call(ctx, http.MethodGet, "/api/v1/webhooks/"+id, nil, &s)
	return s, err
}

func (a *apiClient) deleteEndpoint(ctx context.Context, id string) error {
	return a.call(ctx, http.MethodDelete, "/api/v1/webhooks/"+id, nil, nil)
}

// countDeliveries returns how many deliveries of an endpoint have status.
func (a *apiClient) countDeliveries(ctx context.Context, id, status string) (int, error) {
	env, err := a.send(ctx, http.MethodGet, "/api/v1/webhooks/"+id+"/deliveries?limit=1&status="+status, nil)
	if err != nil {
		return 0, err
	}
	return env.Pagination.Total, nil
}

// deliveryIDs returns the ids of an endpoint's newest 100 deliveries.
func (a *apiClient) deliveryIDs(ctx context.Context, id string) ([]string, error) {
	var ds []struct {
		ID string `json:"id"`
	}
	if err := a.call(ctx, http.MethodGet, "/api/v1/webhooks/"+id+"/deliveries?limit=100", nil, &ds); err != nil {
		return nil, err
	}
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out, nil
}

// published is the part of the publish answer the bench uses.
type published struct {
	ID         string `json:"id"`
	Deliveries int    `json:"deliveries"`
}

// publish sends one scan.completed event of a scan of its own.
func (a *apiClient) publish(ctx context.Context, sentAt time.Time, seq int) (published, error) {
	return a.publishEvent(ctx, "scan.completed", uuid.NewString(), sentAt, seq)
}

// publishEvent sends one event of type typ of scan scanID carrying sentAt, the clock the
// receivers measure latency from.
func (a *apiClient) publishEvent(ctx context.Context, typ, scanID string, sentAt time.Time, seq int) (published, error) {
	body := map[string]any{"type": typ, "data": map[string]any{
		"scanId": scanID, "scanType": "zap", "seq": strconv.Itoa(seq),
		"sentAtUnixNano": sentAt.UnixNano(),
	}}
	var p published
	err := a.call(ctx, http.MethodPost, "/api/v1/events", body, &p)
	return p, err
}
