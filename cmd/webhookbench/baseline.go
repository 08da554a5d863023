package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/signing"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"
)

const (
	baselineQueue = "webhookbench"
	baselineType  = "webhookbench:post"
)

// baseline measures bare asynq on the same Redis, receiver and machine: tasks enqueued
// straight with asynq.Client (no API, no registry) and a handler that makes one signed
// HTTPS POST. It is the ceiling webhookd's figures are compared with.
func (b *bench) baseline(ctx context.Context) (*runResult, error) {
	if b.rdb == nil {
		return nil, errSkipped
	}
	if err := b.flush(ctx); err != nil {
		return nil, err
	}
	rec := newRecorder()
	rcv, err := startReceiver(b.ca, rec, receiverConfig{})
	if err != nil {
		return nil, err
	}
	defer rcv.Close()
	h, err := b.baselineHandler(rcv)
	if err != nil {
		return nil, err
	}
	conn, err := asynq.ParseRedisURI(b.redisURL)
	if err != nil {
		return nil, err
	}
	srv := asynq.NewServer(conn, asynq.Config{
		Concurrency: b.opt.Concurrency, TaskCheckInterval: 10 * time.Millisecond,
		Queues: map[string]int{baselineQueue: 1}, LogLevel: asynq.ErrorLevel, Logger: quietLogger{},
	})
	if err := srv.Start(h); err != nil {
		return nil, err
	}
	defer srv.Shutdown()
	client := asynq.NewClient(conn)
	defer client.Close()
	return b.measureBaseline(ctx, rec, client), nil
}

func (b *bench) measureBaseline(ctx context.Context, rec *recorder, client *asynq.Client) *runResult {
	ls := []string{"baseline"}
	before := b.snap(ctx, nil)
	load := publishClosed(ctx, b.opt.Events, b.opt.Publishers, enqueuer(client))
	b.logf("baseline: %d tasks enqueued at %.0f/s; waiting for deliveries", len(load.ids), load.rate())
	done := rec.waitFor(ctx, len(load.ids), b.stall, time.Minute+time.Duration(len(load.ids))*5*time.Millisecond)
	after := b.snap(ctx, nil)
	sleepCtx(ctx, 300*time.Millisecond)
	t := rec.check(load.ids, ls)
	r := &runResult{}
	r.addPhase("enqueued", "enqueue round trip", phase{load: load, tally: t, rec: rec, before: before, after: after})
	if !done {
		r.problem("gave up waiting: %d of %d delivered", t.delivered, t.expected)
	}
	return r
}

// enqueuer publishes by enqueueing a task whose payload is the event body a receiver gets.
func enqueuer(client *asynq.Client) publishFunc {
	return func(ctx context.Context, sentAt time.Time, seq int) (string, error) {
		id, body, err := newEvent(sentAt, seq)
		if err != nil {
			return "", err
		}
		_, err = client.EnqueueContext(ctx, asynq.NewTask(baselineType, body), asynq.TaskID(id), asynq.Queue(baselineQueue))
		return id, err
	}
}

// newEvent builds a scan.completed event of a scan of its own as webhookd would deliver it.
func newEvent(sentAt time.Time, seq int) (id string, body []byte, err error) {
	return newScanEvent("scan.completed", uuid.NewString(), sentAt, seq)
}

// newScanEvent builds an event of type typ of scan scanID as webhookd would deliver it, with
// a fresh id and the publish time in its data for the receiver's latency.
func newScanEvent(typ, scanID string, sentAt time.Time, seq int) (id string, body []byte, err error) {
	id = "evt_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	data, _ := json.Marshal(map[string]any{"scanId": scanID, "scanType": "zap",
		"seq": fmt.Sprint(seq), "sentAtUnixNano": sentAt.UnixNano()})
	body, err = delivery.EventBody(id, typ, sentAt, data)
	return id, body, err
}

// baselineHandler signs each task's payload and POSTs it to the receiver.
func (b *bench) baselineHandler(rcv *receiver) (asynq.Handler, error) {
	send, err := b.signedSender(rcv, "baseline")
	if err != nil {
		return nil, err
	}
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		return send(ctx, id, t.Payload())
	}), nil
}

// sendFunc makes one signed POST of an event's body.
type sendFunc func(ctx context.Context, id string, body []byte) error

// signedSender registers label on rcv with a fresh secret and returns a sender POSTing to it,
// signed with that secret, over a client shaped like webhookd's (TLS 1.2+, keep-alive, a
// pool of --concurrency connections per host, no compression). The baseline and the raw
// sender share it, so they differ only in what comes before the POST.
func (b *bench) signedSender(rcv *receiver, label string) (sendFunc, error) {
	secret, err := signing.NewSecret()
	if err != nil {
		return nil, err
	}
	key, err := signing.ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	rcv.expect(label, secret, http.StatusOK)
	hc := &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: b.ca.Pool(), MinVersion: tls.VersionTLS12},
		MaxIdleConns:        b.opt.Concurrency,
		MaxIdleConnsPerHost: b.opt.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
	url := rcv.URL(label)
	return func(ctx context.Context, id string, body []byte) error {
		return signedPost(ctx, hc, url, key, id, body)
	}, nil
}

// signedPost makes one Standard Webhooks POST and fails unless the answer is 2xx.
func signedPost(ctx context.Context, hc *http.Client, url string, key signing.Key, id string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = signing.Headers([]signing.Key{key}, id, time.Now(), body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("receiver answered %d", resp.StatusCode)
	}
	return nil
}

// quietLogger keeps asynq's own lines out of the report; errors still reach stderr.
type quietLogger struct{}

func (quietLogger) Debug(...any)      {}
func (quietLogger) Info(...any)       {}
func (quietLogger) Warn(...any)       {}
func (quietLogger) Error(args ...any) { slog.Error(fmt.Sprint(args...), "component", "baseline asynq") }
func (quietLogger) Fatal(args ...any) { slog.Error(fmt.Sprint(args...), "component", "baseline asynq") }
