package registrytest

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Dump reads every key of the database (SCAN, then TYPE) with its contents: a string's value,
// a hash's fields and values, the members of lists, sets and sorted sets (with their scores),
// and a stream's entry ids, fields and values. It fails the test on any other type, so a
// scan for leaked secrets cannot skip a kind of value it does not know.
func Dump(tb testing.TB, rdb redis.UniversalClient) map[string][]string {
	tb.Helper()
	ctx := tb.Context()
	out := map[string][]string{}
	iter := rdb.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			tb.Fatalf("TYPE %s: %v", k, err)
		}
		if typ == "none" {
			continue // expired or deleted between SCAN and TYPE
		}
		vals, err := dumpValue(tb, rdb, k, typ)
		if err != nil {
			tb.Fatalf("read %s %s: %v", typ, k, err)
		}
		out[k] = vals
	}
	if err := iter.Err(); err != nil {
		tb.Fatalf("SCAN: %v", err)
	}
	return out
}

func dumpValue(tb testing.TB, rdb redis.UniversalClient, k, typ string) ([]string, error) {
	ctx := tb.Context()
	var vals []string
	switch typ {
	case "string":
		v, err := rdb.Get(ctx, k).Result()
		return []string{v}, err
	case "hash":
		m, err := rdb.HGetAll(ctx, k).Result()
		for f, v := range m {
			vals = append(vals, f, v)
		}
		return vals, err
	case "list":
		return rdb.LRange(ctx, k, 0, -1).Result()
	case "set":
		return rdb.SMembers(ctx, k).Result()
	case "zset":
		zs, err := rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		for _, z := range zs {
			vals = append(vals, z.Member.(string), strconv.FormatFloat(z.Score, 'f', -1, 64))
		}
		return vals, err
	case "stream":
		xs, err := rdb.XRange(ctx, k, "-", "+").Result()
		for _, x := range xs {
			vals = append(vals, x.ID)
			for f, v := range x.Values {
				vals = append(vals, f, v.(string))
			}
		}
		return vals, err
	}
	tb.Fatalf("key %s has type %s, which Dump does not read", k, typ)
	return nil, nil
}

// CheckKeysHashedOnly fails the test if any key or value of db (from Dump) holds the secret
// part of one of the plain API keys (the last 32 characters; in any letter case), or if a
// key's SHA-256 hash is stored nowhere.
func CheckKeysHashedOnly(tb testing.TB, db map[string][]string, plains ...string) {
	tb.Helper()
	if len(db) == 0 {
		tb.Fatal("the database is empty: nothing was scanned")
	}
	for _, plain := range plains {
		secret := strings.ToLower(plain[len(plain)-32:])
		sum := sha256.Sum256([]byte(plain))
		hash, sawHash := hex.EncodeToString(sum[:]), false
		for k, vals := range db {
			for _, v := range append([]string{k}, vals...) {
				if strings.Contains(strings.ToLower(v), secret) {
					tb.Errorf("Redis key %s holds the secret part of an API key: %q", k, v)
				}
				sawHash = sawHash || strings.Contains(v, hash)
			}
		}
		if !sawHash {
			tb.Errorf("the SHA-256 hash %s of a key is stored nowhere", hash)
		}
	}
}
