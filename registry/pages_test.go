package registry_test

import (
	"cmp"
	"fmt"
	"slices"
	"testing"

	"github.com/cert-ix/webhookd/registry"
	"github.com/redis/go-redis/v9"
)

// Every page of a union of sorted sets, shallow or deep, in a score range or not, is the
// page of the union sorted as Redis sorts one set: highest score first, then greatest member.
// Scores repeat (many members created in one millisecond), and one set is empty.
func TestPagesOfAUnion(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		keys := []string{"{u}:a", "{u}:b", "{u}:c", "{u}:empty"}
		var all []redis.Z
		for i := range 2600 {
			z := redis.Z{Score: float64(1_700_000_000_000 + i/7), Member: fmt.Sprintf("m%05d", (i*7919)%100000)}
			all = append(all, z)
			e.rdb.ZAdd(ctx, keys[i%3], z)
		}
		slices.SortFunc(all, func(a, b redis.Z) int {
			return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(b.Member.(string), a.Member.(string)))
		})
		for _, r := range []struct{ min, max string }{{"-inf", "+inf"}, {"1700000000000050", "(1700000000000350"}} {
			var want []string
			for _, z := range all {
				if inRange(z.Score, r.min, r.max) {
					want = append(want, z.Member.(string))
				}
			}
			for _, limit := range []int{100, 7} {
				var got []string
				for page := 1; ; page++ {
					ids, total, err := e.store.PageOf(ctx, keys, r.min, r.max, registry.Page{Page: page, Limit: limit})
					if err != nil || total != len(want) {
						t.Fatalf("page %d of %v: total %d, %v; want %d", page, r, total, err, len(want))
					}
					if len(ids) == 0 {
						break
					}
					got = append(got, ids...)
				}
				if !slices.Equal(got, want) {
					t.Errorf("range %v, limit %d: pages differ from the sorted union (%d members, want %d)",
						r, limit, len(got), len(want))
				}
			}
		}
		if len(all) < 2*registry.ShallowPage {
			t.Fatalf("%d members do not reach the deep pages", len(all))
		}
	})
}

// inRange reports whether score is within min and max as ZRANGE BYSCORE takes them (this
// test's forms: "-inf", "+inf", "N", "(N").
func inRange(score float64, min, max string) bool {
	var lo, hi float64
	switch min {
	case "-inf":
		lo = score
	default:
		fmt.Sscan(min, &lo)
	}
	if max == "+inf" {
		return score >= lo
	}
	fmt.Sscan(max[1:], &hi)
	return score >= lo && score < hi
}
