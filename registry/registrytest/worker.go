package registrytest

import (
	"context"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// Attempt is one finished attempt of a delivery run, for Record.
type Attempt struct {
	TenantID, EndpointID, DeliveryID string
	Generation                       int
	Outcome                          registry.AttemptOutcome
	Attempt                          registry.Attempt
	NextAttemptAt                    time.Time
	// MaxAttempts is the run's attempt budget; Streak the auto-disable rule.
	MaxAttempts int
	Streak      registry.StreakRule
}

// Record records a as a worker would, for tests that play the worker's part: a delivery
// retrying in a's run has its retry timer fired first (Store.Due); then its endpoint's drain
// finishes the attempt (Store.Finish) with the status delivery.RetryPolicy.Decide gives. An
// attempt of a run that is not queued is finished as a stale one. It returns the delivery's
// status and the reason the attempt disabled its endpoint, if it did.
func Record(ctx context.Context, s *registry.Store, a Attempt) (status, disabled string, err error) {
	d, err := s.Delivery(ctx, a.TenantID, a.EndpointID, a.DeliveryID, false)
	if err == nil && d.Status == registry.DeliveryRetrying && d.Generation == a.Generation {
		if _, err := s.Due(ctx, a.TenantID, registry.Retry{DeliveryID: a.DeliveryID, EndpointID: a.EndpointID,
			Generation: a.Generation, Run: -1}); err != nil {
			return "", "", err
		}
	}
	it, ok, err := s.QueuedItem(ctx, a.TenantID, a.EndpointID, a.DeliveryID)
	if err != nil {
		return "", "", err
	}
	if !ok || it.Generation != a.Generation {
		it = registry.QueueItem{DeliveryID: a.DeliveryID} // its entry matches none: stale
	}
	st, disable := Step(a.MaxAttempts, it.Run+1, a.Outcome)
	fin, err := s.Finish(ctx, registry.FinishRequest{TenantID: a.TenantID, EndpointID: a.EndpointID, Streak: a.Streak,
		Outcomes: []registry.Outcome{{Item: it, Outcome: a.Outcome, Attempt: &a.Attempt, Status: st,
			NextAttemptAt: a.NextAttemptAt, Disable: disable}}})
	if err != nil {
		return "", "", err
	}
	return fin.Statuses[0], fin.DisabledReason, nil
}

// Step is the status that attempt number run of a delivery's run leads to under a budget of
// maxAttempts, and the reason to disable its endpoint at once: what delivery.RetryPolicy.Decide
// says, without the retry's time.
func Step(maxAttempts, run int, out registry.AttemptOutcome) (status, disable string) {
	if out == registry.OutcomeGone {
		disable = registry.ReasonGone
	}
	switch {
	case out == registry.OutcomeSuccess:
		return registry.DeliverySucceeded, ""
	case out == registry.OutcomeExpired || run >= maxAttempts:
		return registry.DeliveryFailed, disable
	}
	return registry.DeliveryRetrying, disable
}
