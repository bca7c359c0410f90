package cluster

import (
	"bytes"
	"strings"
)

// Slots is the number of hash slots of the keyspace, as in Redis Cluster.
const Slots = 16384

// crcTables are the tables of CRC16/XMODEM (polynomial 0x1021, initial
// value 0, no reflection): the CRC16 Redis Cluster hashes keys with.
// crcTables[0] is the classic byte-at-a-time table, the one Redis writes out
// by hand in src/crc16.c; crcTables[k][v] is the CRC of the byte v followed
// by k zero bytes. With them crc16 folds eight bytes per step from eight
// independent lookups ("slicing by 8"), about three times as fast on long
// keys as one dependent lookup per byte. TestCRC16Check pins the standard
// check value; TestCRC16Slicing compares with the byte-at-a-time loop.
var crcTables = func() (t [8][256]uint16) {
	for i := range t[0] {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[0][i] = crc
	}
	for k := 1; k < len(t); k++ {
		for i := range t[k] {
			prev := t[k-1][i]
			t[k][i] = prev<<8 ^ t[0][prev>>8]
		}
	}
	return t
}()

func crc16[T ~string | ~[]byte](b T) uint16 {
	var crc uint16
	t := &crcTables
	for len(b) >= 8 {
		crc = t[7][byte(crc>>8)^b[0]] ^ t[6][byte(crc)^b[1]] ^
			t[5][b[2]] ^ t[4][b[3]] ^ t[3][b[4]] ^ t[2][b[5]] ^
			t[1][b[6]] ^ t[0][b[7]]
		b = b[8:]
	}
	for i := 0; i < len(b); i++ {
		crc = crc<<8 ^ t[0][byte(crc>>8)^b[i]]
	}
	return crc
}

// KeySlot returns the hash slot of key, in [0, Slots): Redis Cluster's rule
// exactly. If key holds a '{' followed later by a '}' with at least one
// byte between the first '{' and the first '}' after it, only those bytes
// are hashed (the hash tag), so "{user1}.name" and "{user1}.mail" share a
// slot; otherwise the whole key is. The hash is CRC16/XMODEM, taken mod
// Slots. "{}", "{}{a}" and "a{" have no tag; "{{a}}" has the tag "{a".
func KeySlot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	return int(crc16(key) & (Slots - 1))
}

// KeySlotBytes is KeySlot for a key held in a byte slice (a RESP argument);
// it does not allocate.
func KeySlotBytes(key []byte) int {
	if s := bytes.IndexByte(key, '{'); s >= 0 {
		if e := bytes.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	return int(crc16(key) & (Slots - 1))
}
