package api_test

import (
	"net/http"
	"testing"
)

// TestRepeatedQueryParameters: a parameter a route reads, given more than once (whatever the
// values, however its name is encoded), is refused with the code an invalid value of it gets,
// saying it may be given once where the message has room for it; the reference's fixed messages
// (INVALID_PAGE, INVALID_LIMIT) stay as written. Parameters a route does not read are ignored.
func TestRepeatedQueryParameters(t *testing.T) {
	e, key, id := validationEnv(t)
	hook := "/api/v1/webhooks/" + id
	const once = ", given once"
	tests := []struct{ name, path, code, msg string }{
		{"events type", "/api/v1/events?type=scan.started&type=scan.failed", "INVALID_WEBHOOK_EVENT", "Invalid event type: type may be given once"},
		{"events page", "/api/v1/events?page=1&page=2", "INVALID_PAGE", "Page must be a positive integer"},
		{"events page, same value", "/api/v1/events?page=1&page=1", "INVALID_PAGE", "Page must be a positive integer"},
		{"events page, encoded name", "/api/v1/events?page=1&%70age=2", "INVALID_PAGE", "Page must be a positive integer"},
		{"events page, once undecodable", "/api/v1/events?page=%zz&page=1", "INVALID_PAGE", "Page must be a positive integer"},
		{"events limit", "/api/v1/events?limit=5&limit=50", "INVALID_LIMIT", "Limit must be between 1 and 100"},
		{"events scanId", "/api/v1/events?scanId=a&scanId=b", "INVALID_FIELD_TYPE", "Field scanId must be of type non-empty string" + once},
		{"events since", "/api/v1/events?since=2026-01-01T00:00:00Z&since=2026-01-02T00:00:00Z", "INVALID_FIELD_TYPE",
			"Field since must be of type RFC 3339 timestamp" + once},
		{"events until", "/api/v1/events?until=2026-01-01T00:00:00Z&until=", "INVALID_FIELD_TYPE", "Field until must be of type RFC 3339 timestamp" + once},
		{"webhooks status", "/api/v1/webhooks?status=active&status=disabled", "INVALID_FIELD_TYPE", "Field status must be of type active|disabled" + once},
		{"webhooks status, one empty", "/api/v1/webhooks?status=&status=active", "INVALID_FIELD_TYPE", "Field status must be of type active|disabled" + once},
		{"webhooks limit", "/api/v1/webhooks?limit=1&limit=2", "INVALID_LIMIT", "Limit must be between 1 and 100"},
		{"deliveries page", hook + "/deliveries?page=2&page=1", "INVALID_PAGE", "Page must be a positive integer"},
		{"deliveries status", hook + "/deliveries?status=failed&status=held", "INVALID_FIELD_TYPE",
			"Field status must be of type pending|retrying|succeeded|failed|held" + once},
		{"stats window", hook + "/stats?window=24h&window=1h", "INVALID_FIELD_TYPE", "Field window must be of type whole hours from 1h to 7d" + once},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertError(t, e.do(t, http.MethodGet, tt.path, key, nil), http.StatusBadRequest, tt.code, tt.msg)
		})
	}
	t.Run("parameters a route does not read", func(t *testing.T) {
		listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks?x=1&x=2&type=a&type=b", key, nil))
		data(t, e.do(t, http.MethodGet, hook+"?page=1&page=2", key, nil), http.StatusOK)
	})
}
