package registry

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// An attempt is kept in Redis (a delivery record's first, the list of the later ones) as
//
//	"number startedAtUnixNano durationMs statusCode len(error) " + error + responseBody
//
// A receiver's usual short answer keeps it under Redis's 64-byte limit for a compactly
// encoded (listpack) hash value, so the record of a delivery that succeeded at once stays
// compact for the whole retention period; JSON took twice that and made the record a hash
// table. finish.lua renumbers logged attempts by their leading number. Attempts written
// before this encoding are JSON (they start with '{') and are read as well.

// encodeAttempt is an attempt as kept in Redis.
func encodeAttempt(a *Attempt) string {
	b := make([]byte, 0, 48+len(a.Error)+len(a.ResponseBody))
	for _, n := range [...]int64{int64(a.Number), a.StartedAt.UnixNano(), a.DurationMs, int64(a.StatusCode),
		int64(len(a.Error))} {
		b = strconv.AppendInt(b, n, 10)
		b = append(b, ' ')
	}
	return string(append(append(b, a.Error...), a.ResponseBody...))
}

// decodeAttempt reads an attempt kept in Redis, in either encoding; false when v is neither.
func decodeAttempt(v string) (Attempt, bool) {
	var a Attempt
	if strings.HasPrefix(v, "{") {
		return a, json.Unmarshal([]byte(v), &a) == nil
	}
	f := strings.SplitN(v, " ", 6)
	if len(f) != 6 {
		return a, false
	}
	var n [5]int64
	for i := range n {
		x, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return a, false
		}
		n[i] = x
	}
	if n[4] < 0 || n[4] > int64(len(f[5])) {
		return a, false
	}
	a.Number, a.StartedAt, a.DurationMs, a.StatusCode = int(n[0]), time.Unix(0, n[1]).UTC(), n[2], int(n[3])
	a.Error, a.ResponseBody = f[5][:n[4]], f[5][n[4]:]
	return a, true
}
