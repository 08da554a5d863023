package registry

import (
	"bytes"

	"github.com/klauspost/compress/zstd"
)

// An event's body is kept as published, or compressed with zstd (klauspost/compress) when it
// is at least compressFrom bytes and compressing saves a tenth or more: a scan report's JSON
// shrinks to a third or less, and the body is most of what a large event keeps for the
// retention period. A kept body is told apart by its first bytes, zstd's frame magic, which a
// body (a JSON object, so '{') never starts with. Only Go reads bodies (the drain's Take, event
// reads); the scripts pass them through.

// compressFrom is the smallest body that is compressed.
const compressFrom = 1024

var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	// The encoder and decoder are safe for concurrent EncodeAll and DecodeAll calls.
	bodyEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithLowerEncoderMem(true))
	bodyDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(64<<20), zstd.WithDecoderLowmem(true))
)

// keptBody is body as kept in Redis.
func keptBody(body []byte) []byte {
	if len(body) < compressFrom {
		return body
	}
	z := bodyEncoder.EncodeAll(body, make([]byte, 0, len(body)/2))
	if len(z) > len(body)-len(body)/10 {
		return body
	}
	return z
}

// readBody is a kept body as published. A compressed body that does not decompress (never
// written by keptBody) is returned as kept.
func readBody(kept []byte) []byte {
	if !bytes.HasPrefix(kept, zstdMagic) {
		return kept
	}
	body, err := bodyDecoder.DecodeAll(kept, nil)
	if err != nil {
		return kept
	}
	return body
}
