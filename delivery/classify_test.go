package delivery

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	retryAfter := func(v string) http.Header { return http.Header{"Retry-After": []string{v}} }
	transportErr := errors.New("connect: connection refused")

	tests := []struct {
		name   string
		status int
		header http.Header
		err    error
		want   Outcome
	}{
		{"100 continue", 100, nil, nil, Outcome{Kind: Failure}},
		{"200", 200, nil, nil, Outcome{Kind: Success}},
		{"201", 201, nil, nil, Outcome{Kind: Success}},
		{"204", 204, nil, nil, Outcome{Kind: Success}},
		{"299", 299, nil, nil, Outcome{Kind: Success}},
		{"301", 301, nil, nil, Outcome{Kind: Failure}},
		{"302", 302, http.Header{"Location": []string{"https://elsewhere.example/"}}, nil, Outcome{Kind: Failure}},
		{"304", 304, nil, nil, Outcome{Kind: Failure}},
		{"307", 307, nil, nil, Outcome{Kind: Failure}},
		{"400", 400, nil, nil, Outcome{Kind: Failure}},
		{"401", 401, nil, nil, Outcome{Kind: Failure}},
		{"404", 404, nil, nil, Outcome{Kind: Failure}},
		{"408", 408, nil, nil, Outcome{Kind: Failure}},
		{"409", 409, nil, nil, Outcome{Kind: Failure}},
		{"410", 410, nil, nil, Outcome{Kind: Gone}},
		{"410 with retry-after", 410, retryAfter("30"), nil, Outcome{Kind: Gone}},
		{"413", 413, nil, nil, Outcome{Kind: Failure}},
		{"429 no retry-after", 429, nil, nil, Outcome{Kind: Failure}},
		{"429 seconds", 429, retryAfter("120"), nil, Outcome{Kind: Throttled, RetryAfter: 2 * time.Minute}},
		{"429 zero seconds", 429, retryAfter("0"), nil, Outcome{Kind: Throttled, RetryAfter: 0}},
		{"429 seconds padded", 429, retryAfter(" 7 "), nil, Outcome{Kind: Throttled, RetryAfter: 7 * time.Second}},
		{"429 huge seconds", 429, retryAfter("99999999999999999999999"), nil, Outcome{Kind: Throttled, RetryAfter: time.Duration(math.MaxInt64)}},
		{"429 empty", 429, retryAfter(""), nil, Outcome{Kind: Failure}},
		{"429 garbage", 429, retryAfter("soon"), nil, Outcome{Kind: Failure}},
		{"429 negative seconds", 429, retryAfter("-5"), nil, Outcome{Kind: Failure}},
		{"429 signed seconds", 429, retryAfter("+5"), nil, Outcome{Kind: Failure}},
		{"429 fractional seconds", 429, retryAfter("1.5"), nil, Outcome{Kind: Failure}},
		{"429 future date", 429, retryAfter(now.Add(90 * time.Second).Format(http.TimeFormat)), nil, Outcome{Kind: Throttled, RetryAfter: 90 * time.Second}},
		{"429 past date", 429, retryAfter(now.Add(-time.Hour).Format(http.TimeFormat)), nil, Outcome{Kind: Throttled, RetryAfter: 0}},
		{"429 RFC 850 date", 429, retryAfter(now.Add(time.Hour).Format(time.RFC850)), nil, Outcome{Kind: Throttled, RetryAfter: time.Hour}},
		{"429 ANSI C date", 429, retryAfter(now.Add(time.Minute).Format(time.ANSIC)), nil, Outcome{Kind: Throttled, RetryAfter: time.Minute}},
		{"429 RFC 3339 is not an HTTP-date", 429, retryAfter(now.Add(time.Minute).Format(time.RFC3339)), nil, Outcome{Kind: Failure}},
		{"500", 500, nil, nil, Outcome{Kind: Failure}},
		{"500 with retry-after", 500, retryAfter("30"), nil, Outcome{Kind: Failure}},
		{"502", 502, nil, nil, Outcome{Kind: Failure}},
		{"503 no retry-after", 503, nil, nil, Outcome{Kind: Failure}},
		{"503 seconds", 503, retryAfter("30"), nil, Outcome{Kind: Throttled, RetryAfter: 30 * time.Second}},
		{"503 date", 503, retryAfter(now.Add(10 * time.Minute).Format(http.TimeFormat)), nil, Outcome{Kind: Throttled, RetryAfter: 10 * time.Minute}},
		{"504", 504, nil, nil, Outcome{Kind: Failure}},
		{"no status, no error", 0, nil, nil, Outcome{Kind: Failure}},
		{"transport error", 0, nil, transportErr, Outcome{Kind: Failure}},
		{"context deadline", 0, nil, context.DeadlineExceeded, Outcome{Kind: Failure}},
		{"wrapped context deadline", 0, nil, fmt.Errorf("timeout after 15s: %w", context.DeadlineExceeded), Outcome{Kind: Failure}},
		{"error wins over a status", 200, nil, transportErr, Outcome{Kind: Failure}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.status, tt.header, tt.err, now)
			if got != tt.want {
				t.Errorf("Classify(%d, %v, %v) = %+v, want %+v", tt.status, tt.header, tt.err, got, tt.want)
			}
		})
	}
}

func TestOutcomeKindString(t *testing.T) {
	tests := []struct {
		kind OutcomeKind
		want string
	}{
		{Success, "success"},
		{Failure, "failure"},
		{Gone, "gone"},
		{Throttled, "throttled"},
		{0, "OutcomeKind(0)"},
		{42, "OutcomeKind(42)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.kind.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
