package registry

import (
	"bytes"

	"github.com/klauspost/compress/zstd"
)

// An event's body is kept without the part of its envelope its record already holds, and
// compressed above a size. A body that begins as delivery.EventBody writes it,
// {"id":"<id>","type":"<type>","timestamp":"…, is kept from its timestamp on, after the byte
// elidedMark: the record's id and type give the rest back, byte for byte (about 70 bytes of
// Redis memory an event). What is kept is then compressed with zstd (klauspost/compress) when
// it is at least compressFrom bytes and compressing saves a tenth or more: a scan report's
// JSON shrinks to a third or less, and the body is most of what a large event keeps for the
// retention period. The forms are told apart by their first bytes: '{' (a body as published),
// zstd's frame magic, or elidedMark; none of them starts another. Only Go reads bodies (the
// drain's Take, event reads); the scripts pass them through.

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

// envelopeHead is how the body of event id of type typ begins, up to its timestamp's value.
func envelopeHead(id, typ string) []byte {
	return []byte(`{"id":"` + id + `","type":"` + typ + `","timestamp":"`)
}

// keptBody is the body of event id of type typ as kept in Redis.
func keptBody(id, typ string, body []byte) []byte {
	if rest, ok := bytes.CutPrefix(body, envelopeHead(id, typ)); ok {
		return append([]byte{elidedMark}, compressed(rest)...)
	}
	return compressed(body)
}

// readBody is the body of event id of type typ as published, from its kept form. A kept body
// that does not decompress (never written by keptBody) is returned as kept.
func readBody(id, typ string, kept []byte) []byte {
	if rest, ok := bytes.CutPrefix(kept, []byte{elidedMark}); ok {
		return append(envelopeHead(id, typ), decompressed(rest)...)
	}
	return decompressed(kept)
}

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
