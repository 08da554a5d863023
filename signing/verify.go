package signing

import (
	"crypto/hmac"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Verify checks a received webhook against secret. Only the webhook-* header
// names are read: accepting vendor aliases (svix-*) as well would let a
// request carry two conflicting sets and have the receiver pick either.
//
// now is a parameter so that callers and tests control the replay window;
// the timestamp must lie within Tolerance of it in either direction. Entries
// of versions other than v1 are skipped, so a sender may add new schemes
// without breaking receivers that only know v1.
func Verify(secret string, header http.Header, body []byte, now time.Time) error {
	// The secret is checked first: a misconfigured receiver should learn so
	// from the first request, not only from the well-formed ones.
	key, err := ParseSecret(secret)
	if err != nil {
		return err
	}
	msgID, tsText, sigs, err := requiredHeaders(header)
	if err != nil {
		return err
	}
	unix, err := parseTimestamp(tsText)
	if err != nil {
		return err
	}
	if err := checkTolerance(unix, now); err != nil {
		return err
	}
	var want [sigLen]byte
	base64.StdEncoding.Encode(want[:], key.sum(msgID, unix, body))
	if !anyEntryMatches(sigs, want[:]) {
		return ErrNoMatch
	}
	return nil
}

// requiredHeaders returns the three header values, treating an empty value as
// missing because an empty id or signature can never be valid.
func requiredHeaders(h http.Header) (msgID, ts, sigs string, err error) {
	msgID, ts, sigs = h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	for _, v := range [...]struct{ name, value string }{
		{HeaderID, msgID}, {HeaderTimestamp, ts}, {HeaderSignature, sigs},
	} {
		if v.value == "" {
			return "", "", "", fmt.Errorf("%w: %s", ErrMissingHeaders, v.name)
		}
	}
	return msgID, ts, sigs, nil
}

// parseTimestamp accepts only the canonical decimal form. Forms such as
// "+123" or "0123" parse to the same number but are not what the sender
// signed, and accepting them would make the signed content ambiguous.
func parseTimestamp(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	var buf [20]byte
	if err != nil || string(strconv.AppendInt(buf[:0], n, 10)) != s {
		return 0, ErrInvalidTimestamp
	}
	return n, nil
}

// checkTolerance refuses timestamps further than Tolerance from now; both
// bounds are inclusive, matching the reference libraries. It compares whole
// seconds, the header's resolution, in integers: a time.Time built from an
// attacker's huge timestamp would overflow and look old instead of new.
func checkTolerance(unix int64, now time.Time) error {
	nowUnix := now.Unix()
	tol := uint64(Tolerance / time.Second)
	// The unsigned difference is exact whenever the operands are ordered.
	switch {
	case unix < nowUnix && uint64(nowUnix)-uint64(unix) > tol:
		return fmt.Errorf("%w: %ds old, tolerance %s",
			ErrTimestampTooOld, uint64(nowUnix)-uint64(unix), Tolerance)
	case unix > nowUnix && uint64(unix)-uint64(nowUnix) > tol:
		return fmt.Errorf("%w: %ds ahead, tolerance %s",
			ErrTimestampTooNew, uint64(unix)-uint64(nowUnix), Tolerance)
	}
	return nil
}

// anyEntryMatches reports whether a space-separated "version,signature" entry
// of header is v1 with a signature equal to want. The comparison is constant
// time so that a forger cannot learn the expected signature byte by byte;
// lengths are public, so entries of the wrong length are skipped early.
func anyEntryMatches(header string, want []byte) bool {
	for rest := header; rest != ""; {
		var entry string
		entry, rest, _ = strings.Cut(rest, " ")
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != versionV1 || len(sig) != len(want) {
			continue
		}
		var got [sigLen]byte
		copy(got[:], sig)
		if hmac.Equal(got[:], want) {
			return true
		}
	}
	return false
}
