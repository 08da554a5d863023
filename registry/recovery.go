package registry

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// What a recovery may include.
const (
	RecoverFailed  = "failed"
	RecoverMissing = "missing"
)

// NewRecovery asks to recover an endpoint's deliveries of the events created in [Since, Until).
type NewRecovery struct {
	Since, Until time.Time
	// Include is RecoverFailed and/or RecoverMissing.
	Include []string
}

// Recovery is a recovery's progress: Requeued failed deliveries queued again, Created missing
// ones made. Status is "running" or "done".
type Recovery struct {
	ID         string     `json:"id"`
	WebhookID  string     `json:"webhookId"`
	Since      time.Time  `json:"since"`
	Until      time.Time  `json:"until"`
	Include    []string   `json:"include"`
	Status     string     `json:"status"`
	Requeued   int        `json:"requeued"`
	Created    int        `json:"created"`
	CreatedAt  time.Time  `json:"createdAt"`
	FinishedAt *time.Time `json:"finishedAt"`
}

// RecoveryRef names a recovery whose work may not be on the task queue (outbox.go).
type RecoveryRef struct {
	ID string
}

// OutboxEntry is the entry of a recovery, kept until it is done.
func (r RecoveryRef) OutboxEntry() OutboxEntry { return OutboxEntry("v:" + r.ID) }

var startRecoveryScript = script("startrecovery")

// StartRecovery records a recovery of an active endpoint and returns it, running;
// WEBHOOK_NOT_FOUND or WEBHOOK_DISABLED otherwise. Its work is done by RecoverStep.
func (s *Store) StartRecovery(ctx context.Context, tid, eid string, n NewRecovery) (*Recovery, error) {
	e, err := s.Endpoint(ctx, tid, eid)
	if err != nil {
		return nil, err
	}
	now := s.now()
	rid := "rcv_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	res, err := startRecoveryScript.Run(ctx, s.rdb, []string{recoveryKey(tid, rid), endpointKey(tid, eid), outboxKey(tid)},
		rid, eid, ms(n.Since), ms(n.Until), strings.Join(n.Include, ","), strings.Join(e.Events, ","), ms(now),
		s.retentionSec(), string(RecoveryRef{ID: rid}.OutboxEntry())).Text()
	switch {
	case err != nil:
		return nil, storeErr("start recovery", err)
	case res == "nowebhook":
		return nil, E(CodeWebhookNotFound)
	case res == "disabled":
		return nil, E(CodeWebhookDisabled)
	}
	// As stored, to the millisecond: the answer now and a later GET agree.
	stored := func(t time.Time) time.Time { return time.UnixMilli(ms(t)).UTC() }
	return &Recovery{ID: rid, WebhookID: eid, Since: stored(n.Since), Until: stored(n.Until), Include: n.Include,
		Status: "running", CreatedAt: stored(now)}, nil
}

// Recovery returns one recovery of an endpoint; RECOVERY_NOT_FOUND when unknown, expired or
// another endpoint's.
func (s *Store) Recovery(ctx context.Context, tid, eid, rid string) (*Recovery, error) {
	m, err := s.rdb.HGetAll(ctx, recoveryKey(tid, rid)).Result()
	if err != nil {
		return nil, storeErr("get recovery", err)
	}
	if len(m) == 0 || m["webhookId"] != eid {
		return nil, E(CodeRecoveryNotFound)
	}
	return recoveryFromFields(m), nil
}

func recoveryFromFields(m map[string]string) *Recovery {
	r := &Recovery{ID: m["id"], WebhookID: m["webhookId"], Since: fromMs(m["since"]), Until: fromMs(m["until"]),
		Include: strings.Split(m["include"], ","), Status: m["status"], CreatedAt: fromMs(m["createdAt"]),
		FinishedAt: timePtr(fromMs(m["finishedAt"]))}
	r.Requeued, _ = strconv.Atoi(m["requeued"])
	r.Created, _ = strconv.Atoi(m["created"])
	return r
}

// RecoveryStep is what one step of a recovery did: whether the recovery is done, how many
// steps it has run, and the drain to queue for the deliveries it queued. Finished is the
// recovery as the step that finished it left it (nil otherwise); it is set again by every
// later step until ReportRecovery claims the report, so a lost reply loses no report.
type RecoveryStep struct {
	Done     bool
	Steps    int
	Drains   []Drain
	Finished *Recovery
}

var recoverScript = script("recover")

// RecoverStep runs the next step of a recovery (lua/recover.lua). A recovery that is done,
// unknown or expired is Done.
func (s *Store) RecoverStep(ctx context.Context, tid, rid string) (RecoveryStep, error) {
	eid, err := s.rdb.HGet(ctx, recoveryKey(tid, rid), "webhookId").Result()
	if errors.Is(err, redis.Nil) {
		return RecoveryStep{Done: true}, nil
	}
	if err != nil {
		return RecoveryStep{}, storeErr("recover", err)
	}
	keys := []string{recoveryKey(tid, rid), endpointKey(tid, eid), outboxKey(tid)}
	for _, t := range slices.Concat(EventTypes, OperationalEventTypes) {
		keys = append(keys, eventsKey(tid, t))
	}
	res, err := recoverScript.Run(ctx, s.rdb, keys, tenantTag(tid), eid, ms(s.now()), s.recBatch, s.retentionSec(),
		namespace, string(RecoveryRef{ID: rid}.OutboxEntry())).StringSlice()
	if err != nil {
		return RecoveryStep{}, storeErr("recover", err)
	}
	st := RecoveryStep{Done: res[0] == "done", Drains: parseDrains(res[2:])}
	st.Steps, _ = strconv.Atoi(res[1])
	if st.Done && st.Steps > 0 {
		m, err := s.rdb.HGetAll(ctx, recoveryKey(tid, rid)).Result()
		if err != nil {
			return st, storeErr("recover", err)
		}
		st.Finished = recoveryFromFields(m)
	}
	return st, nil
}

// ReportRecovery claims the report of a finished recovery's end (its log line and metrics):
// true for exactly one caller, however many steps saw it finished.
func (s *Store) ReportRecovery(ctx context.Context, tid, rid string) (bool, error) {
	won, err := s.rdb.HSetNX(ctx, recoveryKey(tid, rid), "reported", "1").Result()
	if err != nil {
		return false, storeErr("report recovery", err)
	}
	return won, nil
}
