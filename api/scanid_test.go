package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const scanIDMsg = "must be of type non-blank string of at most 200 characters"

// TestScanIDMustBeFindable: publish refuses a data.scanId that GET /api/v1/events?scanId= could
// never find (empty or only white space) or that is longer than the portal's search takes (200
// characters), on its own and in a batch; nothing is stored.
func TestScanIDMustBeFindable(t *testing.T) {
	e, key, _ := validationEnv(t)
	for name, id := range map[string]string{
		"empty": "", "a space": " ", "white space": " \t\n\r ", "no-break space": "\u00a0",
		"201 characters": strings.Repeat("s", 201), "201 characters, not ASCII": strings.Repeat("é", 201),
	} {
		t.Run(name, func(t *testing.T) {
			body := map[string]any{"type": "scan.completed", "data": map[string]any{"scanId": id, "scanType": "zap"}}
			r := e.do(t, http.MethodPost, "/api/v1/events", key, body)
			assertError(t, r, http.StatusBadRequest, "INVALID_FIELD_TYPE", "Field data.scanId "+scanIDMsg)
			batch := map[string]any{"events": []any{
				map[string]any{"type": "scan.started", "data": map[string]any{"scanId": "s", "scanType": "zap"}}, body}}
			r = e.do(t, http.MethodPost, "/api/v1/events/batch", key, batch)
			assertError(t, r, http.StatusBadRequest, "INVALID_FIELD_TYPE", "Field events[1].data.scanId "+scanIDMsg)
		})
	}
	if u := usage(t, e, key); u["eventsPublished"] != float64(0) {
		t.Errorf("eventsPublished = %v, want 0", u["eventsPublished"])
	}
}

// TestAcceptedScanIDIsFound: every scanId publish accepts, the longest and ones with spaces
// inside or around included, finds its event through GET /api/v1/events?scanId=.
func TestAcceptedScanIDIsFound(t *testing.T) {
	e, key, _ := validationEnv(t)
	for name, id := range map[string]string{
		"200 characters": strings.Repeat("s", 200), "200 characters, not ASCII": strings.Repeat("é", 199) + "😀",
		"spaces": " scan 1 ", "a plus": "a+b", "one character": "x",
	} {
		t.Run(name, func(t *testing.T) {
			body := map[string]any{"type": "scan.completed", "data": map[string]any{"scanId": id, "scanType": "zap"}}
			ev := data(t, e.do(t, http.MethodPost, "/api/v1/events", key, body), http.StatusAccepted)["id"]
			items, pg := listData(t, e.do(t, http.MethodGet, "/api/v1/events?scanId="+url.QueryEscape(id), key, nil))
			if len(items) != 1 || items[0].(map[string]any)["id"] != ev || pg["total"] != float64(1) {
				t.Errorf("events of scan %q = %v (total %v), want the one published, %v", id, items, pg["total"], ev)
			}
		})
	}
}
