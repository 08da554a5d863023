package registry_test

import (
	"slices"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
)

// TestScanIndex: a scan's events are listed from the day indexes, newest first, across days,
// with its events stored in the earlier formats (a sorted set; ids as text, as an id that is
// not hex still is); retracted events leave it, and a trim makes
// each day's index expire after the retention period of its day.
func TestScanIndex(t *testing.T) {
	eachBackend(t, registry.Config{Retention: 72 * time.Hour}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		legacy := e.legacyEvent(t, tn.ID, "scan-x", "legacy-key", "h", 0)
		e.clock.Advance(time.Minute)
		publish := func(scan string) string {
			b := e.newBatch(1, "")
			b.Events[0].ID = "evt_" + e.clock.Now().Format("20060102150405.000000000")
			b.Events[0].CreatedAt, b.Events[0].ScanID = e.clock.Now(), scan
			if _, err := e.store.PublishEvents(ctx, tn.ID, b); err != nil {
				t.Fatal(err)
			}
			return b.Events[0].ID
		}
		x1 := publish("scan-x")
		publish("scan-y")
		e.clock.Advance(24 * time.Hour)
		x2 := publish("scan-x")
		list := func(f registry.EventFilter) []string {
			f.ScanID = "scan-x"
			evs, total, err := e.store.ListEvents(ctx, tn.ID, f, registry.Page{Page: 1, Limit: 10})
			if err != nil || total != len(evs) {
				t.Fatalf("ListEvents(%+v) = %d of %d, %v", f, len(evs), total, err)
			}
			var ids []string
			for _, ev := range evs {
				ids = append(ids, ev.ID)
			}
			return ids
		}
		if got, want := list(registry.EventFilter{}), []string{x2, x1, legacy}; !slices.Equal(got, want) {
			t.Errorf("scan-x's events = %v, want %v (newest first, over two days and both formats)", got, want)
		}
		if got, want := list(registry.EventFilter{Since: e.clock.Now().Add(-time.Hour)}), []string{x2}; !slices.Equal(got, want) {
			t.Errorf("scan-x's events of the last hour = %v, want %v", got, want)
		}
		if got, want := list(registry.EventFilter{Until: e.clock.Now().Add(-time.Hour)}), []string{x1, legacy}; !slices.Equal(got, want) {
			t.Errorf("scan-x's events until an hour ago = %v, want %v", got, want)
		}
		today := registry.ScanIndexKeyOf(tn.ID, e.clock.Now().Unix()/86400)
		if ttl := e.rdb.TTL(ctx, today).Val(); ttl != -time.Nanosecond {
			t.Errorf("today's scan index has a TTL (%v) before a trim; publishing sets none", ttl)
		}
		if _, err := e.store.TrimIndexes(ctx, tn.ID); err != nil {
			t.Fatalf("TrimIndexes: %v", err)
		}
		endOfRetention := time.Unix((e.clock.Now().Unix()/86400+1)*86400, 0).Add(72 * time.Hour)
		for key, want := range map[string]time.Time{today: endOfRetention,
			registry.ScanIndexKeyOf(tn.ID, e.clock.Now().Unix()/86400-1): endOfRetention.Add(-24 * time.Hour)} {
			if at := e.rdb.ExpireTime(ctx, key).Val(); !time.Unix(int64(at/time.Second), 0).Equal(want) {
				t.Errorf("after a trim, %s expires at %v (%d), want %v", key, time.Unix(int64(at/time.Second), 0), at, want)
			}
		}

		t.Run("a retracted batch leaves the index", func(t *testing.T) {
			b := e.newBatch(2, "")
			b.Events[0].ScanID, b.Events[1].ScanID = "scan-x", "scan-x"
			sb, err := e.store.PublishEvents(ctx, tn.ID, b)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(list(registry.EventFilter{})); n != 5 {
				t.Fatalf("scan-x has %d events after the batch, want 5", n)
			}
			compact := registry.LaneFieldOf(registry.LaneOf("scan-x"))
			if v := e.rdb.HGet(ctx, today, compact).Val(); len(v) != 32 {
				t.Errorf("today's compact entry of scan-x = %q, want the batch's two ids, 16 bytes each", v)
			}
			if ok, err := e.store.RetractEvents(ctx, tn.ID, "", sb); !ok || err != nil {
				t.Fatalf("RetractEvents = %v, %v", ok, err)
			}
			if got, want := list(registry.EventFilter{}), []string{x2, x1, legacy}; !slices.Equal(got, want) {
				t.Errorf("scan-x's events after the retraction = %v, want %v", got, want)
			}
			if v, _ := e.rdb.HGet(ctx, today, registry.LaneOf("scan-x")).Result(); v != x2 {
				t.Errorf("today's entry of scan-x = %q, want %q alone", v, x2)
			}
			if e.rdb.HExists(ctx, today, compact).Val() {
				t.Errorf("today's compact entry of scan-x is left after the retraction")
			}
		})
	})
}

// TestScriptBytesOf: the scripts write an id's 16 bytes and a lane's 10 as Go does, on each
// backend (Redis packs them with its struct library; the embedded server has none).
func TestScriptBytesOf(t *testing.T) {
	evid := "evt_ff93a1b2c3d47e5f8a9b0c1d2e3f4a00"
	lane := registry.LaneOf("scan-42")
	cases := map[string]string{evid[4:]: registry.EventFieldOf(evid), lane: registry.LaneFieldOf(lane),
		"00000000ffffffff0000000180000000": registry.EventFieldOf("evt_00000000ffffffff0000000180000000")}
	for _, b := range registrytest.Backends() {
		rdb := b.Client(t)
		for hex, want := range cases {
			got, err := registry.ScriptBytesOf(t.Context(), rdb, hex)
			if err != nil || got != want {
				t.Errorf("%s: bytesOf(%s) = %x, %v; want %x", b.Name, hex, got, err, want)
			}
		}
	}
}
