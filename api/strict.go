package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// The one strict reading of request bodies. encoding/json accepts what RFC 8259 leaves to the
// reader: a name twice in one object (it keeps the last), numbers no float64 can hold (it keeps
// them as written) and a \u escape of half a UTF-16 surrogate pair (it reads U+FFFD). A receiver
// reading the first of two names, parsing 1e400 or keeping "\ud800" as sent would then see
// another event than the one validated here, so all three are INVALID_JSON, anywhere in the
// document, as is text that is not UTF-8: a lone surrogate is no character, and UTF-8 cannot
// carry it.

var (
	errDuplicateName = errors.New("duplicate object name")
	errNumberRange   = errors.New("number outside float64")
	errTrailingData  = errors.New("data after the top-level value")
)

// strictDecoders reuses jsontext decoders: one walks every body, and its buffers are most of
// what a walk allocates.
var strictDecoders = sync.Pool{New: func() any { return new(jsontext.Decoder) }}

// checkStrict walks the whole document b once and returns the names of its top-level object
// in document order. jsontext (github.com/go-json-experiment/json, what encoding/json/v2 is
// built from) refuses a name twice in one object, comparing names after unescaping ("a" and
// "\u0061" are the same name), data after the top-level value, and text that is not UTF-8,
// whether as sent or once escapes are read: a \u escape of a surrogate must be the high half of
// a pair whose low half follows at once ("\ud83d\ude00" is one character; "\ud800", "\udc00"
// and "\ud83dx" are refused).
func checkStrict(b []byte) ([]string, error) {
	dec := strictDecoders.Get().(*jsontext.Decoder)
	defer strictDecoders.Put(dec)
	dec.Reset(bytes.NewReader(b), jsontext.AllowInvalidUTF8(false))
	var names []string
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, strictError(err)
		}
		switch tok.Kind() {
		case '"':
			// A string at depth 1 in the top-level object at an odd position is a name.
			if k, n := dec.StackIndex(1); dec.StackDepth() == 1 && k == '{' && n%2 == 1 {
				names = append(names, tok.String())
			}
		case '0':
			// Float clamps to ±MaxFloat64; a number past it must be refused, one at it kept.
			if _, err := strconv.ParseFloat(tok.String(), 64); err != nil {
				return nil, errNumberRange
			}
		}
		if dec.StackDepth() == 0 {
			break
		}
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, errTrailingData
	}
	return names, nil
}

// strictError tells a repeated name from other syntax errors (both are INVALID_JSON).
func strictError(err error) error {
	if errors.Is(err, jsontext.ErrDuplicateName) {
		return errDuplicateName
	}
	return err
}

// canonicalHash is the SHA-256 (hex) of a strictly valid document in one canonical form:
// object names sorted, no insignificant space, strings escaped one way, numbers as written.
// Two requests with the same hash say the same thing, however their JSON was laid out.
func canonicalHash(b []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	canon, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), nil
}
