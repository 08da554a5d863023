package delivery

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// defaultSchedule is the unjittered default schedule, one entry per retry.
var defaultSchedule = []time.Duration{
	5 * time.Second,
	15 * time.Second,
	45 * time.Second,
	2*time.Minute + 15*time.Second,
	6*time.Minute + 45*time.Second,
	20*time.Minute + 15*time.Second,
	time.Hour + 45*time.Second,
	3*time.Hour + 2*time.Minute + 15*time.Second,
	8 * time.Hour,
	8 * time.Hour,
}

var noJitter = RetryPolicy{RandomizationFactor: -1}

func TestRetryPolicyDelayWithoutJitter(t *testing.T) {
	for n, want := range defaultSchedule {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			if got := noJitter.Delay(n); got != want {
				t.Errorf("Delay(%d) = %s, want %s", n, got, want)
			}
		})
	}
}

func TestRetryPolicyDelayOutOfRange(t *testing.T) {
	tests := []struct {
		n    int
		want time.Duration
	}{
		{-1, 5 * time.Second},
		{50, 8 * time.Hour},
		{1 << 40, 8 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			if got := noJitter.Delay(tt.n); got != tt.want {
				t.Errorf("Delay(%d) = %s, want %s", tt.n, got, tt.want)
			}
		})
	}
}

func TestRetryPolicyDelayJitter(t *testing.T) {
	var p RetryPolicy // all defaults, factor 0.25
	for n, base := range defaultSchedule {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			lo := time.Duration(float64(base) * 0.75)
			// The backoff library's interval is inclusive of its upper bound, plus 1ns.
			hi := time.Duration(float64(base)*1.25) + 1
			for range 200 {
				if got := p.Delay(n); got < lo || got > hi {
					t.Fatalf("Delay(%d) = %s, want within [%s, %s]", n, got, lo, hi)
				}
			}
		})
	}
}

func TestRetryPolicyDelayConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	var p RetryPolicy
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				n := (g + i) % len(defaultSchedule)
				if got := noJitter.Delay(n); got != defaultSchedule[n] {
					t.Errorf("Delay(%d) = %s, want %s", n, got, defaultSchedule[n])
					return
				}
				_ = p.Delay(n)
			}
		})
	}
	wg.Wait()
}

func TestRetryPolicyWithDefaults(t *testing.T) {
	got := RetryPolicy{}.WithDefaults()
	want := RetryPolicy{
		InitialInterval:     5 * time.Second,
		Multiplier:          3,
		MaxInterval:         8 * time.Hour,
		MaxAttempts:         10,
		RandomizationFactor: 0.25,
	}
	if got != want {
		t.Errorf("WithDefaults() = %+v, want %+v", got, want)
	}
	custom := RetryPolicy{InitialInterval: time.Second, Multiplier: 2, MaxInterval: time.Minute, MaxAttempts: 3, RandomizationFactor: 0.1}
	if got := custom.WithDefaults(); got != custom {
		t.Errorf("WithDefaults() changed set fields: got %+v, want %+v", got, custom)
	}
}

func TestRetryPolicyValidate(t *testing.T) {
	tests := []struct {
		name    string
		policy  RetryPolicy
		wantErr bool
	}{
		{"zero means defaults", RetryPolicy{}, false},
		{"no jitter", noJitter, false},
		{"constant interval", RetryPolicy{Multiplier: 1, InitialInterval: time.Minute, MaxInterval: time.Minute}, false},
		{"full jitter", RetryPolicy{RandomizationFactor: 1}, false},
		{"multiplier below 1", RetryPolicy{Multiplier: 0.5}, true},
		{"negative multiplier", RetryPolicy{Multiplier: -2}, true},
		{"negative attempts", RetryPolicy{MaxAttempts: -1}, true},
		{"negative initial", RetryPolicy{InitialInterval: -time.Second}, true},
		{"negative max", RetryPolicy{MaxInterval: -time.Second}, true},
		{"initial above max", RetryPolicy{InitialInterval: time.Hour, MaxInterval: time.Minute}, true},
		{"initial above default max", RetryPolicy{InitialInterval: 9 * time.Hour}, true},
		{"jitter above 1", RetryPolicy{RandomizationFactor: 1.5}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("Validate() = %v, want error: %t", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("Validate() = %v, want it to wrap ErrInvalidPolicy", err)
			}
		})
	}
}

func TestRetryPolicyNext(t *testing.T) {
	tests := []struct {
		name       string
		n          int
		retryAfter time.Duration
		want       time.Duration
	}{
		{"no retry-after", 2, 0, 45 * time.Second},
		{"retry-after shorter than schedule", 2, 10 * time.Second, 45 * time.Second},
		{"retry-after longer than schedule", 0, 10 * time.Minute, 10 * time.Minute},
		{"retry-after beyond cap", 0, 72 * time.Hour, 8 * time.Hour},
		{"schedule at cap", 9, 9 * time.Hour, 8 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := noJitter.Next(tt.n, tt.retryAfter); got != tt.want {
				t.Errorf("Next(%d, %s) = %s, want %s", tt.n, tt.retryAfter, got, tt.want)
			}
		})
	}
}

func TestNextCapsJitter(t *testing.T) {
	var p RetryPolicy
	for range 100 {
		if got := p.Next(9, time.Hour); got > 8*time.Hour {
			t.Fatalf("Next = %s, want at most 8h", got)
		}
	}
}

func TestRetryPolicyRetryDelayFunc(t *testing.T) {
	tests := []struct {
		name string
		n    int
		err  error
		want time.Duration
	}{
		{"plain error uses the schedule", 2, errors.New("redis down"), 45 * time.Second},
		{"outage is short and fixed", 8, &OutageError{Err: unavailable}, OutageRetryDelay},
		{"registry unavailable", 5, fmt.Errorf("fan-out: %w", unavailable), OutageRetryDelay},
		{"queue unreachable", 5, queueDown, OutageRetryDelay},
		{"database error uses the schedule", 1, registry.Wrap(registry.CodeDatabase, errors.New("ERR script")), 15 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := noJitter.RetryDelayFunc(tt.n, tt.err, nil); got != tt.want {
				t.Errorf("RetryDelayFunc(%d, %v) = %s, want %s", tt.n, tt.err, got, tt.want)
			}
		})
	}
}

func TestIsFailure(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", errors.New("boom"), true},
		{"blocked", ErrBlockedAddress, true},
		{"outage", &OutageError{Err: unavailable}, false},
		{"registry unavailable", unavailable, false},
		{"wrapped registry unavailable", fmt.Errorf("load: %w", unavailable), false},
		{"queue unreachable", queueDown, false},
		{"queue error with Redis up", registry.Wrap(registry.CodeQueue, errors.New("ERR unknown command")), true},
		{"database error", registry.Wrap(registry.CodeDatabase, errors.New("ERR script")), true},
		{"not found", registry.E(registry.CodeWebhookNotFound), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsFailure(tt.err); got != tt.want {
				t.Errorf("IsFailure(%v) = %t, want %t", tt.err, got, tt.want)
			}
		})
	}
}

// Errors the registry and the queue return when Redis cannot be reached.
var (
	unavailable = registry.Wrap(registry.CodeServiceUnavailable, fmt.Errorf("load attempt: %w", syscall.ECONNREFUSED))
	queueDown   = registry.Wrap(registry.CodeQueue, fmt.Errorf("enqueue webhookd:deliver: %w",
		&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}))
)

func TestAsOutage(t *testing.T) {
	if err := asOutage(nil); err != nil {
		t.Errorf("asOutage(nil) = %v", err)
	}
	plain := errors.New("boom")
	if err := asOutage(plain); err != plain {
		t.Errorf("asOutage(plain) = %v, want it unchanged", err)
	}
	err := asOutage(unavailable)
	var oe *OutageError
	if !errors.As(err, &oe) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("asOutage(unavailable) = %#v, want an *OutageError wrapping the cause", err)
	}
	if again := asOutage(err); again != err {
		t.Errorf("asOutage wrapped an *OutageError twice")
	}
	if got, want := err.Error(), "redis unavailable: retry in 1s"; got != want {
		t.Errorf("Error() = %q, want %q (no driver text: it is stored in the task record)", got, want)
	}
}

// TestDecide covers the whole policy over outcomes and attempt numbers: what follows one
// attempt, and when a retry comes (the end of the attempt plus the delay, on a whole second).
func TestDecide(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 3, RandomizationFactor: -1} // 5s, 15s, ...
	ended := time.Date(2031, time.March, 14, 9, 0, 0, 400*int(time.Millisecond), time.UTC)
	at := func(d time.Duration) time.Time { return ended.Add(d).Truncate(time.Second).Add(time.Second) }
	tests := []struct {
		name string
		run  int
		o    Outcome
		want Step
	}{
		{"success", 1, Outcome{Kind: Success}, Step{Status: registry.DeliverySucceeded}},
		{"success on the last attempt", 3, Outcome{Kind: Success}, Step{Status: registry.DeliverySucceeded}},
		{"first failure", 1, Outcome{Kind: Failure}, Step{Status: registry.DeliveryRetrying, NextAttemptAt: at(5 * time.Second)}},
		{"second failure", 2, Outcome{Kind: Failure}, Step{Status: registry.DeliveryRetrying, NextAttemptAt: at(15 * time.Second)}},
		{"last failure", 3, Outcome{Kind: Failure}, Step{Status: registry.DeliveryFailed}},
		{"throttled waits as asked", 1, Outcome{Kind: Throttled, RetryAfter: time.Minute},
			Step{Status: registry.DeliveryRetrying, NextAttemptAt: at(time.Minute)}},
		{"throttled never sooner than the schedule", 2, Outcome{Kind: Throttled, RetryAfter: time.Second},
			Step{Status: registry.DeliveryRetrying, NextAttemptAt: at(15 * time.Second)}},
		{"throttled on the last attempt", 3, Outcome{Kind: Throttled, RetryAfter: time.Second}, Step{Status: registry.DeliveryFailed}},
		{"gone disables", 1, Outcome{Kind: Gone},
			Step{Status: registry.DeliveryRetrying, NextAttemptAt: at(5 * time.Second), Disable: registry.ReasonGone}},
		{"gone on the last attempt", 3, Outcome{Kind: Gone}, Step{Status: registry.DeliveryFailed, Disable: registry.ReasonGone}},
		{"expired", 1, Outcome{Kind: Expired}, Step{Status: registry.DeliveryFailed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Decide(tt.run, tt.o, ended); got != tt.want {
				t.Errorf("Decide(%d, %+v) = %+v, want %+v", tt.run, tt.o, got, tt.want)
			}
		})
	}
	// A retry time already on a whole second stays there.
	whole := time.Date(2031, time.March, 14, 9, 0, 0, 0, time.UTC)
	if got := p.Decide(1, Outcome{Kind: Failure}, whole); !got.NextAttemptAt.Equal(whole.Add(5 * time.Second)) {
		t.Errorf("Decide at a whole second = %v, want %v", got.NextAttemptAt, whole.Add(5*time.Second))
	}
}
