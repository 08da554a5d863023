package registry

import "time"

// StreakRule is the auto-disable rule: an active endpoint is disabled when Threshold attempts
// in a row have failed and the first of them is at least MinWindow old, at once when an
// attempt's policy says so (a 410), and at once when an attempt fails during probation (after
// a re-enable, until the first success). lua/health.lua applies it atomically across workers;
// Count is the same rule in Go, and a test holds the two to each other.
type StreakRule struct {
	Threshold int
	MinWindow time.Duration
}

// Streak is an endpoint's failure streak as the registry keeps it.
type Streak struct {
	// Active is false once the endpoint is disabled (its streak still counts).
	Active bool
	// Probation is true from a re-enable until the first success.
	Probation bool
	Failures  int
	// Start is when the streak's first failure ended; zero when there is none.
	Start time.Time
}

// Count applies one attempt's outcome to s: a failure or gone adds one, a success resets it,
// throttled and expired leave it. It returns the new streak and, when the attempt disabled
// the endpoint, the reason (disable, the one the policy gave, or consecutive_failures).
func (r StreakRule) Count(s Streak, o AttemptOutcome, disable string, at time.Time) (Streak, string) {
	at = time.UnixMilli(at.UnixMilli()).UTC() // the registry keeps milliseconds
	switch o {
	case OutcomeSuccess:
		return Streak{Active: s.Active}, ""
	case OutcomeFailure, OutcomeGone:
	default:
		return s, ""
	}
	s.Failures++
	if s.Failures == 1 || s.Start.IsZero() {
		s.Start = at
	}
	if !s.Active {
		return s, ""
	}
	reason := disable
	if reason == "" && s.Probation {
		reason = ReasonProbationFailed
	}
	if reason == "" && s.Failures >= r.Threshold && at.Sub(s.Start).Milliseconds() >= r.MinWindow.Milliseconds() {
		reason = ReasonConsecutiveFailures
	}
	if reason != "" {
		s.Active, s.Probation = false, false
	}
	return s, reason
}
