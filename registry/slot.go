package registry

import "strings"

// ClusterSlots is the number of Redis Cluster hash slots.
const ClusterSlots = 16384

// KeySlot is Redis Cluster's hash slot of key, as the cluster specification defines it:
// CRC16 (XMODEM) of its hash tag (the first non-empty {...}, else the whole key) modulo
// 16384. Tests check it against CLUSTER KEYSLOT.
func KeySlot(key string) int { return int(crc16(HashTag(key)) % ClusterSlots) }

// HashTag returns the part of key Redis Cluster hashes: the first non-empty {...}, else all of it.
func HashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// crc16 is the CRC-16/XMODEM Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
