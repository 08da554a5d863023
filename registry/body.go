package registry

import (
	"bytes"
	"slices"
	"strconv"
	"time"

	"github.com/klauspost/compress/zstd"
)

// An event's body is kept without the parts of its envelope that its record holds or that are
// the same for every event, and compressed above a size. A body as delivery.EventBody writes it,
//
//	{"id":"<id>","type":"<type>","timestamp":"<RFC 3339, ns>","data":<data>}
//
// is kept as elidedMark, the timestamp in ns (after the time a UUIDv7 id names, else since the
// Unix epoch), "|" and the data: its record's id and type give the rest back, byte for byte
// (about 100 bytes of Redis memory an event). What is kept of
// the data (or a body of another form, kept whole) is then compressed with zstd
// (klauspost/compress) when it is at least compressFrom bytes and compressing saves a tenth or
// more: a scan report's JSON shrinks to a third or less, and the body is most of what a large
// event keeps for the retention period. The forms are told apart by their first bytes: '{' (a
// body as published), zstd's frame magic, or elidedMark; none of them starts another. Only Go
// reads bodies (the drain's Take, event reads); the scripts pass them through.

// compressFrom is the smallest body that is compressed.
const compressFrom = 1024

// elidedMark starts a body kept without its envelope's head.
const elidedMark = 0x01

var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	// The encoder and decoder are safe for concurrent EncodeAll and DecodeAll calls.
	bodyEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithLowerEncoderMem(true))
	bodyDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(64<<20), zstd.WithDecoderLowmem(true))
)

// envelopeHead is how the body of event id of type typ begins, up to its timestamp's value;
// dataHead comes between the timestamp and the data.
func envelopeHead(id, typ string) []byte {
	return []byte(`{"id":"` + id + `","type":"` + typ + `","timestamp":"`)
}

const dataHead = `","data":`

// keptBody is the body of event id of type typ as kept in Redis.
func keptBody(id, typ string, body []byte) []byte {
	rest, ok := bytes.CutPrefix(body, envelopeHead(id, typ))
	ts, data, found := bytes.Cut(rest, []byte(dataHead))
	data, closed := bytes.CutSuffix(data, []byte("}"))
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if !ok || !found || !closed || err != nil || timestamp(t.UnixNano()) != string(ts) {
		return compressed(body)
	}
	kept := strconv.AppendInt([]byte{elidedMark}, t.UnixNano()-idNanos(id), 10)
	return append(append(kept, '|'), compressed(data)...)
}

// readBody is the body of event id of type typ as published, from its kept form. A compressed
// body that does not decompress (never written by keptBody) is returned as kept.
func readBody(id, typ string, kept []byte) []byte {
	rest, ok := bytes.CutPrefix(kept, []byte{elidedMark})
	ns, data, found := bytes.Cut(rest, []byte("|"))
	n, err := strconv.ParseInt(string(ns), 10, 64)
	if !ok || !found || err != nil {
		return decompressed(kept)
	}
	return slices.Concat(envelopeHead(id, typ), []byte(timestamp(n+idNanos(id))), []byte(dataHead), decompressed(data), []byte("}"))
}

// idNanos is the time a UUIDv7 event id names in Unix ns; 0 for another id.
func idNanos(id string) int64 {
	ms, _ := eventTime(id)
	return ms * int64(time.Millisecond)
}

// timestamp is an envelope's timestamp of Unix time ns, as delivery.EventBody writes it.
func timestamp(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// compressed is b compressed when that is worth it, else b.
func compressed(b []byte) []byte {
	if len(b) < compressFrom {
		return b
	}
	z := bodyEncoder.EncodeAll(b, make([]byte, 0, len(b)/2))
	if len(z) > len(b)-len(b)/10 {
		return b
	}
	return z
}

// decompressed is b decompressed when it is compressed, else b.
func decompressed(b []byte) []byte {
	if !bytes.HasPrefix(b, zstdMagic) {
		return b
	}
	out, err := bodyDecoder.DecodeAll(b, nil)
	if err != nil {
		return b
	}
	return out
}
