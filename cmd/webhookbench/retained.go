package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// retainedPayloads are the data sizes a retained delivered event is measured with.
var retainedPayloads = []struct {
	label string
	bytes int
}{{"150 B", 150}, {"2 KB", 2048}}

// listpackValue is the hash-max-listpack-value the retained measurement is repeated with: large
// enough that an event's body and a delivery's first attempt stay in a hash's compact encoding.
const listpackValue = 4096

// retained measures Redis memory per retained delivered event: webhookd (--role all) delivers
// --retained-events events to one endpoint, and used_memory's growth from before the first
// publish to the moment every delivery is recorded as succeeded, divided by the events, is what
// one delivered event keeps for the retention window (event, delivery record with its attempt,
// indexes, TTLs). It runs for a 150-byte and a 2 KB data payload, with redis-server's default
// hash-max-listpack-value and, when the bench started redis-server, again with 4096.
func (b *bench) retained(ctx context.Context, r *runResult) error {
	settings := []int{0}
	if b.redis != nil {
		settings = append(settings, listpackValue)
	}
	for _, lp := range settings {
		if err := b.retainedWith(ctx, r, lp); err != nil {
			return err
		}
	}
	return nil
}

// retainedWith runs the measurement once per payload with hash-max-listpack-value lp (0: the
// server's own).
func (b *bench) retainedWith(ctx context.Context, r *runResult, lp int) error {
	suffix := ""
	if lp > 0 {
		restore, err := b.setListpackValue(ctx, lp)
		if err != nil {
			return err
		}
		defer restore()
		suffix = fmt.Sprintf(", hash-max-listpack-value %d", lp)
	}
	e, eid, err := b.oneEndpoint(ctx, "retained")
	if err != nil {
		return err
	}
	defer e.close(ctx)
	// A first, unmeasured phase grows webhookd's connection pools and makes the shared keys.
	if _, err := e.retainedPhase(ctx, eid, 150, 8*b.opt.Publishers, 0); err != nil {
		return err
	}
	done := 8 * b.opt.Publishers
	for _, p := range retainedPayloads {
		m := b.opt.RetainedEvents
		grew, err := e.retainedPhase(ctx, eid, p.bytes, m, done)
		if err != nil {
			return fmt.Errorf("%s payload: %w", p.label, err)
		}
		done += m
		per := float64(grew) / float64(m)
		r.add(fmt.Sprintf("retained delivered event, %s payload%s: Redis memory/event", p.label, suffix), "B", per)
		r.add(fmt.Sprintf("retained delivered event, %s payload%s: beyond the payload", p.label, suffix), "B", per-float64(p.bytes))
		if lp == 0 && p.bytes == retainedPayloads[0].bytes {
			if err := e.memoryBreakdown(ctx, r, done, "delivered events ("+p.label+" payload)"); err != nil {
				r.note("key breakdown failed: %v", err)
			}
		}
	}
	return nil
}

// setListpackValue sets the bench's redis-server's hash-max-listpack-value to lp and returns
// what puts the old value back.
func (b *bench) setListpackValue(ctx context.Context, lp int) (func(), error) {
	old, err := b.rdb.ConfigGet(ctx, "hash-max-listpack-value").Result()
	if err != nil {
		return nil, err
	}
	if err := b.rdb.ConfigSet(ctx, "hash-max-listpack-value", strconv.Itoa(lp)).Err(); err != nil {
		return nil, err
	}
	return func() {
		b.rdb.ConfigSet(context.WithoutCancel(ctx), "hash-max-listpack-value", old["hash-max-listpack-value"])
	}, nil
}

// retainedPhase publishes m events whose data is size bytes of JSON to endpoint eid, waits
// until the API lists before+m succeeded deliveries, and returns used_memory's growth.
func (e *env) retainedPhase(ctx context.Context, eid string, size, m, before int) (int64, error) {
	m0, err := usedMemory(ctx, e.b.rdb)
	if err != nil {
		return 0, err
	}
	pad := payloadPad(size)
	load := publishClosed(ctx, m, e.b.opt.Publishers, func(ctx context.Context, sentAt time.Time, seq int) (string, error) {
		return e.api.publishPadded(ctx, sentAt, seq, pad)
	})
	if load.rejected > 0 {
		return 0, fmt.Errorf("%d publishes rejected; first: %s", load.rejected, load.firstErr)
	}
	err = poll(ctx, 5*time.Minute, func() (bool, error) {
		n, err := e.api.countDeliveries(ctx, eid, "succeeded")
		return err == nil && n >= before+m, nil
	})
	if err != nil {
		return 0, fmt.Errorf("waiting for %d succeeded deliveries: %w", before+m, err)
	}
	m1, err := usedMemory(ctx, e.b.rdb)
	return m1 - m0, err
}

// payloadPad is the "findings" field that makes an event's data (scanId, scanType, seq,
// sentAtUnixNano and findings, as publishPadded sends it) size bytes of JSON: CVE-like
// records, as a scan report has.
func payloadPad(size int) string {
	base, _ := json.Marshal(paddedData(time.Now(), 0, ""))
	var sb strings.Builder
	for i := 0; sb.Len() < size-len(base); i++ {
		fmt.Fprintf(&sb, "CVE-2026-%05d:%s:%d;", (i*7919)%100000, []string{"low", "high", "critical"}[i%3], 1+i%65535)
	}
	return sb.String()[:max(size-len(base), 0)]
}

// paddedData is the data of one event of the retained measurement.
func paddedData(sentAt time.Time, seq int, pad string) map[string]any {
	return map[string]any{"scanId": uuid.NewString(), "scanType": "zap", "seq": fmt.Sprintf("%08d", seq),
		"sentAtUnixNano": sentAt.UnixNano(), "findings": pad}
}

// publishPadded publishes one scan.completed event whose data carries pad as findings.
func (a *apiClient) publishPadded(ctx context.Context, sentAt time.Time, seq int, pad string) (string, error) {
	body := map[string]any{"type": "scan.completed", "data": paddedData(sentAt, seq, pad)}
	var p published
	err := a.call(ctx, http.MethodPost, "/api/v1/events", body, &p)
	return p.ID, err
}
