package delivery

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// OutcomeKind is what one delivery attempt means for the endpoint and the retry schedule.
// The zero value is deliberately none of the kinds, so a forgotten assignment is never
// mistaken for a success.
type OutcomeKind int

// Outcome kinds, as decided by Classify.
const (
	// Success is a 2xx answer: the event is delivered.
	Success OutcomeKind = iota + 1
	// Failure is any other answer or no answer: retry on the normal schedule.
	Failure
	// Gone is 410: the receiver asks us to stop, so the endpoint is disabled at once.
	Gone
	// Throttled is 429 or 503 with a usable Retry-After: retry no sooner than asked.
	Throttled
	// Expired means nothing was sent: the event expired before its delivery's attempt.
	Expired
)

// String returns the kind's lower-case name, as stored in delivery logs.
func (k OutcomeKind) String() string {
	switch k {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Gone:
		return "gone"
	case Throttled:
		return "throttled"
	case Expired:
		return "expired"
	}
	return fmt.Sprintf("OutcomeKind(%d)", int(k))
}

// Outcome is Classify's verdict. RetryAfter is set only for Throttled.
type Outcome struct {
	Kind       OutcomeKind
	RetryAfter time.Duration
}

// Classify decides what one attempt's result means. err is the transport error (nil if a
// response arrived). 2xx is Success, 410 is Gone, 429 or 503 with a valid Retry-After
// (delta-seconds, or an HTTP-date relative to now, past dates meaning 0) is Throttled;
// everything else, including 1xx, 3xx and any transport error, is Failure.
func Classify(status int, header http.Header, err error, now time.Time) Outcome {
	if err != nil {
		return Outcome{Kind: Failure}
	}
	switch {
	case status >= 200 && status <= 299:
		return Outcome{Kind: Success}
	case status == http.StatusGone:
		return Outcome{Kind: Gone}
	case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
		if d, ok := parseRetryAfter(header.Get("Retry-After"), now); ok {
			return Outcome{Kind: Throttled, RetryAfter: d}
		}
	}
	return Outcome{Kind: Failure}
}

// parseRetryAfter follows RFC 9110 section 10.2.3 strictly: a signed or fractional number
// is not delta-seconds, and an unusable header must not suspend the normal schedule.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if strings.Trim(v, "0123456789") == "" {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil || secs > uint64(math.MaxInt64/int64(time.Second)) {
			// Absurdly far in the future; the retry policy caps it anyway.
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}
