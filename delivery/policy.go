package delivery

import (
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/cert-ix/webhookd/registry"
	"github.com/hibiken/asynq"
)

// ErrInvalidPolicy is wrapped by RetryPolicy.Validate.
var ErrInvalidPolicy = errors.New("invalid retry policy")

// Default retry schedule: 5s, 15s, 45s, ... capped at 8h, ten attempts in all, which
// spreads the retries over about twelve and a half hours.
const (
	defaultRetryInitialInterval     = 5 * time.Second
	defaultRetryMultiplier          = 3.0
	defaultRetryMaxInterval         = 8 * time.Hour
	defaultRetryMaxAttempts         = 10
	defaultRetryRandomizationFactor = 0.25
)

// Delay steps the backoff n+1 times; past this many steps the interval has long reached
// MaxInterval for any sane policy, so a huge n from a task cannot make us spin.
const maxBackoffSteps = 1024

// RetryPolicy is the retry schedule. Zero values mean defaults. Because a zero
// RandomizationFactor means the default, a negative one is how to ask for no jitter.
type RetryPolicy struct {
	InitialInterval     time.Duration
	Multiplier          float64
	MaxInterval         time.Duration
	MaxAttempts         int // first attempt included
	RandomizationFactor float64
}

// WithDefaults returns p with every zero field set to its default.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	if p.InitialInterval == 0 {
		p.InitialInterval = defaultRetryInitialInterval
	}
	if p.Multiplier == 0 {
		p.Multiplier = defaultRetryMultiplier
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = defaultRetryMaxInterval
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = defaultRetryMaxAttempts
	}
	if p.RandomizationFactor == 0 {
		p.RandomizationFactor = defaultRetryRandomizationFactor
	}
	return p
}

// Validate reports whether p, after defaults, describes a usable schedule.
func (p RetryPolicy) Validate() error {
	p = p.WithDefaults()
	switch {
	case p.InitialInterval < 0 || p.MaxInterval < 0:
		return fmt.Errorf("%w: intervals must be positive", ErrInvalidPolicy)
	case p.InitialInterval > p.MaxInterval:
		return fmt.Errorf("%w: initial interval %s exceeds max interval %s", ErrInvalidPolicy, p.InitialInterval, p.MaxInterval)
	case !(p.Multiplier >= 1):
		return fmt.Errorf("%w: multiplier %g is below 1", ErrInvalidPolicy, p.Multiplier)
	case p.MaxAttempts < 1:
		return fmt.Errorf("%w: max attempts %d is below 1", ErrInvalidPolicy, p.MaxAttempts)
	case p.RandomizationFactor > 1:
		return fmt.Errorf("%w: randomization factor %g is above 1", ErrInvalidPolicy, p.RandomizationFactor)
	}
	return nil
}

// Delay returns the wait after the n-th failed attempt (n = 0 after the first attempt).
// It builds a fresh ExponentialBackOff per call, because that type is stateful and not safe
// for concurrent use, which makes Delay safe to call from any number of workers.
func (p RetryPolicy) Delay(n int) time.Duration {
	p = p.WithDefaults()
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.InitialInterval,
		RandomizationFactor: max(p.RandomizationFactor, 0),
		Multiplier:          p.Multiplier,
		MaxInterval:         p.MaxInterval,
		MaxElapsedTime:      0,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	var d time.Duration
	for range min(max(n, 0), maxBackoffSteps) + 1 {
		d = b.NextBackOff()
	}
	return d
}

// Next returns the wait before the next attempt after the n-th failed one (n = 0 after the
// first attempt): Delay(n), at least retryAfter when the receiver asked for one, and never more
// than MaxInterval.
func (p RetryPolicy) Next(n int, retryAfter time.Duration) time.Duration {
	p = p.WithDefaults()
	return min(max(p.Delay(n), retryAfter), p.MaxInterval)
}

// Step is what follows one attempt for its delivery.
type Step struct {
	// Status is registry.DeliverySucceeded, DeliveryRetrying or DeliveryFailed.
	Status string
	// NextAttemptAt is when a retrying delivery is attempted again.
	NextAttemptAt time.Time
	// Disable is the reason to disable the endpoint at once (registry.ReasonGone), or "".
	Disable string
}

// Decide turns one attempt of a delivery into its next step. run is the attempt's number in
// the delivery's run (1 for the first; a manual retry or a re-enable starts a new run) and
// ended is when the attempt ended. A retry waits Next(run-1, the receiver's Retry-After) after
// that, stretched to end on a whole second: asynq keeps a task's time in whole Unix seconds and
// runs it as soon as that second begins, so an unrounded time could come up to a second early,
// sooner than a receiver's Retry-After allows. The endpoint's failure streak is not decided
// here but where it is kept, atomically across workers (registry.StreakRule).
func (p RetryPolicy) Decide(run int, o Outcome, ended time.Time) Step {
	p = p.WithDefaults()
	var st Step
	switch {
	case o.Kind == Success:
		return Step{Status: registry.DeliverySucceeded}
	case o.Kind == Expired:
		return Step{Status: registry.DeliveryFailed}
	case o.Kind == Gone:
		st.Disable = registry.ReasonGone
	}
	if run >= p.MaxAttempts {
		st.Status = registry.DeliveryFailed
		return st
	}
	st.Status = registry.DeliveryRetrying
	st.NextAttemptAt = ceilSecond(ended.Add(p.Next(run-1, o.RetryAfter)))
	return st
}

// ceilSecond rounds t up to a whole second.
func ceilSecond(t time.Time) time.Time {
	if w := t.Truncate(time.Second); w.Before(t) {
		return w.Add(time.Second)
	}
	return t
}

// OutageRetryDelay is the wait before a task that stopped because Redis could not be reached
// runs again. It is short and fixed: an outage says nothing about the receiver, so it neither
// follows the backoff schedule nor grows with the task's retries.
const OutageRetryDelay = time.Second

// OutageError is returned by a task handler that could not do its work because Redis (the
// registry or the queue) could not be reached. Nothing was recorded, so the attempt budget and
// the endpoint's failure streak are untouched; asynq runs the task again after
// OutageRetryDelay without counting a retry.
type OutageError struct{ Err error }

// Error names the outage without the driver's text about addresses.
func (e *OutageError) Error() string {
	return "redis unavailable: retry in " + OutageRetryDelay.String()
}

// Unwrap returns the store or queue error.
func (e *OutageError) Unwrap() error { return e.Err }

// IsOutage reports whether err means Redis could not be reached: an *OutageError, a registry
// SERVICE_UNAVAILABLE, or a queue (KAFKA_ERROR) error whose cause is an unreachable Redis.
func IsOutage(err error) bool {
	var oe *OutageError
	if errors.As(err, &oe) {
		return true
	}
	var re *registry.Error
	if !errors.As(err, &re) {
		return false
	}
	switch re.Code {
	case registry.CodeServiceUnavailable:
		return true
	case registry.CodeQueue:
		return registry.IsUnavailable(re.Err)
	}
	return false
}

// asOutage wraps err in an *OutageError when it means Redis could not be reached.
func asOutage(err error) error {
	if err != nil && IsOutage(err) {
		var oe *OutageError
		if !errors.As(err, &oe) {
			return &OutageError{Err: err}
		}
	}
	return err
}

// RetryDelayFunc matches asynq.RetryDelayFunc. asynq retries a task only when its handler
// could not do its work: OutageRetryDelay after an outage, else Next(n, 0). Attempts are never
// retried this way: a failed attempt is recorded, and its delivery's retry timer (a task of its
// own) puts it back on its endpoint's queue at the time Decide chose.
func (p RetryPolicy) RetryDelayFunc(n int, err error, _ *asynq.Task) time.Duration {
	if IsOutage(err) {
		return OutageRetryDelay
	}
	return p.Next(n, 0)
}

// IsFailure is for asynq.Config.IsFailure: a Redis outage is not a failure, so asynq does not
// count it against the task's retries.
func IsFailure(err error) bool {
	return err != nil && !IsOutage(err)
}
