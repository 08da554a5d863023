package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"
)

// Publishing: an event, or a batch of them, stored with one script (answering once it is
// durable in Redis), then its work queued. A single event is a batch of one.

// PublishRequest is a validated event from the API.
type PublishRequest struct {
	TenantID       string
	Type           string
	Data           json.RawMessage
	IdempotencyKey string
	// RequestHash identifies the request's content for the idempotency key (see registry.NewEvent).
	RequestHash string
	// ScanID is data.scanId: it orders the event's deliveries to endpoints ordered by scan.
	ScanID string
	Quota  int64
	// Key, when set, is the request's authentication, answered by the publish (registry.KeyCheck).
	Key *registry.KeyCheck
}

// Published is the publish answer.
type Published struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	CreatedAt  time.Time `json:"createdAt"`
	Deliveries int       `json:"deliveries"`
	Replayed   bool      `json:"-"`
}

// NewEventID returns "evt_" and a time-ordered UUIDv7 in hex.
func NewEventID() string {
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	return "evt_" + strings.ReplaceAll(id.String(), "-", "")
}

// EventBody is the JSON every receiver gets: {"id","type","timestamp","data"}, as
// encoding/json writes it (FuzzEventBodyAsMarshalled): data compacted, with <, >, & and
// U+2028/U+2029 escaped in it.
func EventBody(id, typ string, ts time.Time, data json.RawMessage) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(id) + len(typ) + len(data) + 80)
	b.WriteString(`{"id":`)
	writeString(&b, id)
	b.WriteString(`,"type":`)
	writeString(&b, typ)
	b.WriteString(`,"timestamp":"`)
	b.Write(ts.UTC().AppendFormat(b.AvailableBuffer(), time.RFC3339Nano))
	b.WriteString(`","data":`)
	compact, err := jsontext.AppendFormat(b.AvailableBuffer(), data, compactData...)
	if err != nil {
		return nil, err
	}
	b.Write(compact)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// compactData is how EventBody writes data, as encoding/json compacts a raw message: without
// whitespace, its strings and numbers as written (invalid UTF-8 and duplicate names included),
// with <, >, &, U+2028 and U+2029 escaped.
var compactData = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true),
	jsontext.PreserveRawStrings(true), jsontext.EscapeForHTML(true), jsontext.EscapeForJS(true)}

// writeString writes s as a JSON string: between quotes when nothing in it needs escaping, as
// encoding/json escapes it otherwise.
func writeString(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			b.Write(q)
			return
		}
	}
	b.WriteByte('"')
	b.WriteString(s)
	b.WriteByte('"')
}

// Publish stores one event and queues its work: PublishBatch with a batch of one.
func (s *Service) Publish(ctx context.Context, p PublishRequest) (*Published, error) {
	b, err := s.PublishBatch(ctx, BatchRequest{TenantID: p.TenantID, IdempotencyKey: p.IdempotencyKey,
		RequestHash: p.RequestHash, Quota: p.Quota, Key: p.Key,
		Events: []BatchEvent{{Type: p.Type, Data: p.Data, ScanID: p.ScanID}}})
	if err != nil {
		return nil, err
	}
	return b.Events[0], nil
}

// BatchEvent is one validated event of a batch.
type BatchEvent struct {
	Type string
	Data json.RawMessage
	// ScanID is data.scanId: it orders the event's deliveries to endpoints ordered by scan.
	ScanID string
}

// BatchRequest is a validated batch of events from the API, stored all or none: one
// idempotency key covers it, and every event counts against the quota.
type BatchRequest struct {
	TenantID       string
	Events         []BatchEvent
	IdempotencyKey string
	// RequestHash identifies the whole request's content (see registry.NewBatch).
	RequestHash string
	Quota       int64
	// Key, when set, is the request's authentication, answered by the publish (registry.KeyCheck).
	Key *registry.KeyCheck
}

// PublishedBatch is the batch publish answer: each event as Publish answers it, in order.
type PublishedBatch struct {
	Events   []*Published `json:"events"`
	Replayed bool         `json:"-"`
}

// PublishBatch stores a batch of events with one script, all or none, answering once they
// are durable in Redis, then queues their work as Publish does for one event: the drains of
// the endpoints their deliveries were queued on, and a fan-out task for each event with a
// large fan-out. When none of it could be queued the batch is withdrawn and KAFKA_ERROR
// returned; once anything is queued the batch stands, and the outbox sweeper queues the rest.
func (s *Service) PublishBatch(ctx context.Context, p BatchRequest) (*PublishedBatch, error) {
	now := s.store.Now().UTC()
	b := registry.NewBatch{Events: make([]registry.NewEvent, len(p.Events)), IdempotencyKey: p.IdempotencyKey,
		RequestHash: p.RequestHash, Quota: p.Quota, Key: p.Key}
	for i, e := range p.Events {
		id := NewEventID()
		body, err := EventBody(id, e.Type, now, e.Data)
		if err != nil {
			return nil, registry.Wrap(registry.CodeInvalidJSON, err)
		}
		b.Events[i] = registry.NewEvent{ID: id, Type: e.Type, CreatedAt: now, Body: body, ScanID: e.ScanID}
	}
	sb, err := s.store.PublishEvents(ctx, p.TenantID, b)
	if err != nil {
		return nil, err
	}
	out := &PublishedBatch{Events: make([]*Published, len(sb.Events)), Replayed: sb.Replayed}
	for i, st := range sb.Events {
		ev := st.Event
		out.Events[i] = &Published{ID: ev.ID, Type: ev.Type, CreatedAt: ev.CreatedAt, Deliveries: st.Deliveries,
			Replayed: sb.Replayed}
	}
	if sb.Replayed {
		return out, nil
	}
	if err := s.queueBatch(ctx, p, sb); err != nil {
		return nil, err
	}
	return out, nil
}

// queueBatch queues a stored batch's work: the first piece decides (see PublishBatch), the
// rest is left to the sweeper when it fails.
func (s *Service) queueBatch(ctx context.Context, p BatchRequest, sb *registry.StoredBatch) error {
	var work []func() error
	for _, d := range sb.Drains {
		work = append(work, func() error { return s.q.drain(ctx, p.TenantID, d) })
	}
	for _, st := range sb.Events {
		if !st.Inline {
			work = append(work, func() error { return s.q.fanout(ctx, p.TenantID, st.Event.ID, st.Event.Type) })
		}
	}
	if len(work) == 0 {
		return nil
	}
	if first := work[0](); first != nil {
		retracted, rerr := s.store.RetractEvents(context.WithoutCancel(ctx), p.TenantID, p.IdempotencyKey, sb)
		s.log.ErrorContext(ctx, "queueing a published batch failed", "tenantId", p.TenantID,
			"events", len(sb.Events), "error", first.Error(), "retracted", retracted)
		if rerr != nil {
			return rerr
		}
		if retracted {
			return first
		}
		return nil
	}
	failed, last := 0, error(nil)
	for _, w := range work[1:] {
		if err := w(); err != nil {
			failed, last = failed+1, err
		}
	}
	if failed > 0 {
		s.log.WarnContext(ctx, "some work of a batch was not queued; the outbox sweeper will", "tenantId",
			p.TenantID, "failed", failed, "error", last.Error())
	}
	return nil
}
