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
	errNotObject     = errors.New("not an object")
	errNotArray      = errors.New("not an array")
)

// strictDecoders reuses jsontext decoders: one walks every body, and its buffers are most of
// what a walk allocates.
var strictDecoders = sync.Pool{New: func() any { return new(jsontext.Decoder) }}

// checkStrict walks the whole object b once and returns its fields as found in b and its names
// in document order. jsontext (github.com/go-json-experiment/json, what encoding/json/v2 is
// built from) refuses a name twice in one object, comparing names after unescaping ("a" and
// "\u0061" are the same name), data after the top-level value, and text that is not UTF-8,
// whether as sent or once escapes are read: a \u escape of a surrogate must be the high half of
// a pair whose low half follows at once ("\ud83d\ude00" is one character; "\ud800", "\udc00"
// and "\ud83dx" are refused).
func checkStrict(b []byte) (map[string]json.RawMessage, []string, error) {
	dec := strictDecoders.Get().(*jsontext.Decoder)
	defer strictDecoders.Put(dec)
	dec.Reset(bytes.NewReader(b), jsontext.AllowInvalidUTF8(false))
	fields, names := map[string]json.RawMessage{}, []string(nil)
	start := int64(-1) // where the value of the last name starts, until it is read
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, nil, strictError(err)
		}
		top, n := false, int64(0) // whether the token is in the top-level object, at position n
		if dec.StackDepth() == 1 {
			var k jsontext.Kind
			k, n = dec.StackIndex(1)
			top = k == '{'
		}
		switch tok.Kind() {
		case '"':
			// A string at depth 1 in the top-level object at an odd position is a name.
			if top && n%2 == 1 {
				names, start = append(names, tok.String()), dec.InputOffset()
			}
		case '0':
			// Float clamps to ±MaxFloat64; a number past it must be refused, one at it kept.
			if _, err := strconv.ParseFloat(tok.String(), 64); err != nil {
				return nil, nil, errNumberRange
			}
		}
		if top && n%2 == 0 && start >= 0 { // the last name's value is read
			fields[names[len(names)-1]] = valueAt(b, start, dec.InputOffset())
			start = -1
		}
		if dec.StackDepth() == 0 {
			break
		}
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, nil, errTrailingData
	}
	return fields, names, nil
}

// valueAt is the value that ends at end in b, read from start: the ':' after a name or the ','
// after an element before it, and any space, are left out. Appending to it leaves b as it is.
func valueAt(b []byte, start, end int64) json.RawMessage {
	v := bytes.TrimLeft(b[start:end], " \t\r\n:,")
	return v[:len(v):len(v)]
}

// checkedFields returns the fields of an object inside a document that checkStrict already
// walked, as found in b, and its names in document order; each value is skipped, not walked.
func checkedFields(b []byte) (map[string]json.RawMessage, []string, error) {
	dec := strictDecoders.Get().(*jsontext.Decoder)
	defer strictDecoders.Put(dec)
	dec.Reset(bytes.NewReader(b))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, nil, errNotObject
	}
	fields, names := map[string]json.RawMessage{}, []string(nil)
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, nil, err
		}
		name, start := tok.String(), dec.InputOffset()
		if _, err := dec.ReadValue(); err != nil {
			return nil, nil, err
		}
		names = append(names, name)
		fields[name] = valueAt(b, start, dec.InputOffset())
	}
	return fields, names, nil
}

// checkedElements returns the elements of an array inside a document that checkStrict already
// walked, as found in b.
func checkedElements(b []byte) ([]json.RawMessage, error) {
	dec := strictDecoders.Get().(*jsontext.Decoder)
	defer strictDecoders.Put(dec)
	dec.Reset(bytes.NewReader(b))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		return nil, errNotArray
	}
	var out []json.RawMessage
	for k := dec.PeekKind(); k != ']' && k != 0; k = dec.PeekKind() {
		start := dec.InputOffset()
		if _, err := dec.ReadValue(); err != nil {
			return nil, err
		}
		out = append(out, valueAt(b, start, dec.InputOffset()))
	}
	return out, nil
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
