package main

import (
	"context"
	"time"
)

// raw measures the ceiling of the machine: the bare sender. --concurrency closed-loop senders
// (the setting that is webhookd's delivery concurrency and the baseline's asynq concurrency)
// each build the next event, sign it (Standard Webhooks headers from the signing package) and
// POST it over a pooled TLS client to a receiver like the flood's, which verifies and counts
// every delivery. No queue, no API, no Redis: its CPU is the bench process alone (senders and
// receiver), as nothing else works for it.
func (b *bench) raw(ctx context.Context) (*runResult, error) {
	rec := newRecorder()
	rcv, err := startReceiver(b.ca, rec, receiverConfig{})
	if err != nil {
		return nil, err
	}
	defer rcv.Close()
	send, err := b.signedSender(rcv, "raw")
	if err != nil {
		return nil, err
	}
	return b.measureRaw(ctx, rec, rawPublisher(send)), nil
}

// measureRaw sends --events events with pub from --concurrency senders and checks that each
// arrived once, signed, at the receivers recording into rec.
func (b *bench) measureRaw(ctx context.Context, rec *recorder, pub publishFunc) *runResult {
	before := snapSelf()
	load := publishClosed(ctx, b.opt.Events, b.opt.Concurrency, pub)
	b.logf("raw: %d events sent at %.0f/s", len(load.ids), load.rate())
	after := snapSelf()
	// Every POST has been answered, and the receiver records a delivery before it answers:
	// a delivery missing now will not come.
	t := rec.check(load.ids, []string{"raw"})
	r := &runResult{}
	r.addPhase("sent", "POST round trip", phase{load: load, tally: t, rec: rec, before: before, after: after})
	return r
}

// rawPublisher "publishes" an event by sending it: its publish time is when it was built, so
// its latency is the signed POST's.
func rawPublisher(send sendFunc) publishFunc {
	return func(ctx context.Context, sentAt time.Time, seq int) (string, error) {
		id, body, err := newEvent(sentAt, seq)
		if err != nil {
			return "", err
		}
		return id, send(ctx, id, body)
	}
}
