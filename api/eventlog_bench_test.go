package api_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/redis/go-redis/v9"
)

// benchEvents is how many events the event-log benchmark stores for its tenant: benchScans
// scans of two events each (scan.started, then how it ended).
const (
	benchEvents = 1_000_000
	benchScans  = benchEvents / 2
)

// BenchmarkListEvents1M measures GET /api/v1/events through the API server (srv.Serve on
// loopback, the same server the binary runs, with authentication and rate limiting) on a
// redis-server of its own holding 1,000,000 events for one tenant. One op is one request; the
// figures are per request. The scanId sub-benchmark is the target: a scan's events from the
// day hashes of the scan index, at most 5 ms p99.
//
//	go test -run '^$' -bench 'ListEvents1M/(scanId|type_first|all_first)' -benchtime 20000x ./api/
//	go test -run '^$' -bench 'ListEvents1M/(type_last|all_page|all_last)' -benchtime 20x ./api/
//
// The events are loaded with pipelined writes of the keys the publish script writes; the
// setup first checks, against events published through Store.PublishEvent, that the loader
// writes exactly what the script does (but the monthly usage counter).
func BenchmarkListEvents1M(b *testing.B) {
	rs := registrytest.StartServer(b)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, PoolSize: 32})
	b.Cleanup(func() { rdb.Close() })
	e := newEnv(b, withRedis(rdb))
	tid := e.tenant(b, 0)
	key, _ := e.key(b, registry.NewKeyParams{TenantID: tid, RateLimitPerMinute: 1 << 30})
	checkLoaderLayout(b, e, tid)

	start := time.Now()
	loadEvents(b, rdb, tid, benchEvents)
	mem, _ := rdb.Info(b.Context(), "memory").Result()
	b.Logf("loaded %d events in %s; redis %s", benchEvents, time.Since(start).Round(time.Millisecond),
		infoField(mem, "used_memory_human"))
	// A real publish beside the loaded events: scan 0 then has three.
	r := benchGet(b, e, key, "POST", "/api/v1/events", fmt.Sprintf(`{"type":"scan.completed","data":{"scanId":%q,"scanType":"zap"}}`,
		benchScan(0)))
	if r.status != http.StatusAccepted {
		b.Fatalf("publish = %d %s", r.status, r.body)
	}
	if r := benchGet(b, e, key, "GET", "/api/v1/events?scanId="+benchScan(0), ""); !strings.Contains(string(r.body), `"total":3`) {
		b.Fatalf("scan 0's events = %d %.300s, want 3", r.status, r.body)
	}

	b.Run("scanId", func(b *testing.B) {
		measure(b, e, key, func(rnd *rand.Rand) (string, string) {
			return "/api/v1/events?scanId=" + benchScan(1+rnd.IntN(benchScans-1)), `"total":2`
		})
	})
	b.Run("type first page", func(b *testing.B) {
		measure(b, e, key, func(*rand.Rand) (string, string) {
			return "/api/v1/events?type=scan.started", `"total":500000`
		})
	})
	b.Run("all first page", func(b *testing.B) {
		measure(b, e, key, func(*rand.Rand) (string, string) { return "/api/v1/events", `"total":1000001` })
	})
	// Deep pages: what one request costs the further it reaches into the history.
	for _, q := range []struct{ name, query, total string }{
		{"type last page", "type=scan.started&page=5000&limit=100", "500000"},
		{"all page 1000 of 100", "page=1000&limit=100", "1000001"},
		{"all last page", "page=10001&limit=100", "1000001"},
	} {
		b.Run(q.name, func(b *testing.B) {
			measure(b, e, key, func(*rand.Rand) (string, string) {
				return "/api/v1/events?" + q.query, `"total":` + q.total
			})
		})
	}
}

// measure runs one request per op, from path (and the text its answer must hold), and
// reports the p50 and p99 of the request times.
func measure(b *testing.B, e *env, key string, path func(*rand.Rand) (string, string)) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var times []time.Duration
	for b.Loop() {
		p, want := path(rnd)
		t0 := time.Now()
		r := benchGet(b, e, key, "GET", p, "")
		times = append(times, time.Since(t0))
		if r.status != http.StatusOK || !strings.Contains(string(r.body), want) {
			b.Fatalf("GET %s = %d %.300s, want 200 with %s", p, r.status, r.body, want)
		}
	}
	slices.Sort(times)
	pct := func(q float64) float64 {
		i := min(len(times)-1, int(float64(len(times))*q))
		return float64(times[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "max-ms")
}

// benchGet makes one request with key and reads the whole answer.
func benchGet(b *testing.B, e *env, key, method, path, body string) response {
	req, err := http.NewRequestWithContext(b.Context(), method, e.base+path, strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("X-API-Key", key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.http.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		b.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: out}
}

// benchScan is the scan id of scan i, in UUID form.
func benchScan(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

// benchEvent is event i of the loaded set: scan i/2's start (even i) or end (odd i), created
// 2 s after event i-1, the last a minute ago.
func benchEvent(i, n int) registry.NewEvent {
	ends := []string{registry.EventScanCompleted, registry.EventScanCompleted, registry.EventScanFailed,
		registry.EventScanCancelled}
	typ := registry.EventScanStarted
	if i%2 == 1 {
		typ = ends[(i/2)%len(ends)]
	}
	at := time.UnixMilli(time.Now().Add(-time.Minute).UnixMilli()).Add(-2 * time.Second * time.Duration(n-i)).UTC()
	id := fmt.Sprintf("evt_%032x", i)
	scan := benchScan(i / 2)
	body, err := delivery.EventBody(id, typ, at, []byte(`{"scanId":"`+scan+`","scanType":"zap"}`))
	if err != nil {
		panic(err)
	}
	return registry.NewEvent{ID: id, Type: typ, CreatedAt: at, Body: body, ScanID: scan}
}

// retention is the store's default, which the API under test runs with.
const retention = 30 * 24 * time.Hour

// writeEvent queues on p the writes of lua/publish.lua for an event of a tenant without
// endpoints whose id is hex but no UUIDv7 (registry/doc.go): the event (a string of its own,
// its body kept without the envelope's fixed parts, registry/body.go), its index by type (the
// id's 16 bytes) and its scan's entry in the day's scan index (the lane's 10 bytes), not the
// monthly counter. scanSoFar is the scan's entry with this event: its events' 16 bytes each,
// oldest first.
func writeEvent(ctx context.Context, p redis.Pipeliner, tid string, ev registry.NewEvent, scanSoFar string) {
	tag := "wh:{t:" + tid + "}"
	at := ev.CreatedAt.UnixMilli()
	_, data, _ := strings.Cut(string(ev.Body), `"data":`)
	body := fmt.Sprintf("\x01%d|%s", ev.CreatedAt.UnixNano(), strings.TrimSuffix(data, "}"))
	p.Set(ctx, tag+":ev:"+ev.ID, fmt.Sprintf("%s|%d|%s||%s", ev.Type, at, registry.LaneOf(ev.ScanID), body), retention)
	p.ZAdd(ctx, tag+":evts:"+ev.Type, redis.Z{Score: float64(at), Member: idBytes(ev.ID)})
	day := ev.CreatedAt.Unix() / 86400
	sk := fmt.Sprintf("%s:scans:%d", tag, day)
	lane, _ := hex.DecodeString(registry.LaneOf(ev.ScanID))
	p.HSet(ctx, sk, string(lane), scanSoFar)
}

// idBytes is the 16 bytes of a hex event id.
func idBytes(id string) string {
	b, _ := hex.DecodeString(id[len("evt_"):])
	return string(b)
}

// benchScanSoFar is scan i/2's entry in its day's scan index once event i is written.
func benchScanSoFar(i, n int) string {
	if i%2 == 0 {
		return idBytes(benchEvent(i, n).ID)
	}
	return idBytes(benchEvent(i-1, n).ID) + idBytes(benchEvent(i, n).ID)
}

// loadEvents writes n events with four pipelines at once, a thousand events each.
func loadEvents(b *testing.B, rdb *redis.Client, tid string, n int) {
	const batch = 1000
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for from := range next {
				_, err := rdb.Pipelined(b.Context(), func(p redis.Pipeliner) error {
					for i := from; i < min(from+batch, n); i++ {
						writeEvent(b.Context(), p, tid, benchEvent(i, n), benchScanSoFar(i, n))
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for from := 0; from < n; from += batch {
		select {
		case next <- from:
		case err := <-errs:
			b.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// checkLoaderLayout publishes a few events through Store.PublishEvent and writes the same
// events with writeEvent, and fails unless both wrote the same keys with the same values and
// lifetimes, but the monthly usage counter, which the loader leaves out.
func checkLoaderLayout(b *testing.B, e *env, tid string) {
	ctx := b.Context()
	var evs []registry.NewEvent
	for i := range 4 { // two scans, each a start and an end
		evs = append(evs, benchEvent(i, 4))
	}
	base := registrytest.Dump(b, e.rdb)
	for _, ev := range evs {
		if _, err := e.store.PublishEvent(ctx, tid, ev); err != nil {
			b.Fatal(err)
		}
	}
	published := newKeys(b, e, base)
	for k := range published {
		if err := e.rdb.Del(ctx, k).Err(); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ev := range evs {
			writeEvent(ctx, p, tid, ev, benchScanSoFar(i, len(evs)))
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	loaded := newKeys(b, e, base)
	usage := "wh:{t:" + tid + "}:usage:" + evs[0].CreatedAt.Format("2006-01")
	if _, ok := published[usage]; !ok {
		b.Errorf("PublishEvent wrote %v, without the usage counter %s", slices.Sorted(maps.Keys(published)), usage)
	}
	delete(published, usage)
	if !reflect.DeepEqual(published, loaded) {
		b.Fatalf("the loader's writes differ from PublishEvent's:\npublished %v\nloaded    %v", published, loaded)
	}
	for k := range loaded {
		if err := e.rdb.Del(ctx, k).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// keyState is a key's sorted values and its lifetime in hours.
type keyState struct {
	vals []string
	ttlH int
}

// newKeys returns the keys that are not in base, with their values and lifetimes.
func newKeys(b *testing.B, e *env, base map[string][]string) map[string]keyState {
	out := map[string]keyState{}
	for k, v := range registrytest.Dump(b, e.rdb) {
		if _, ok := base[k]; ok || strings.HasPrefix(k, "rate:") {
			continue
		}
		ttl, err := e.rdb.TTL(b.Context(), k).Result()
		if err != nil {
			b.Fatal(err)
		}
		slices.Sort(v)
		out[k] = keyState{vals: v, ttlH: int(ttl.Round(time.Hour) / time.Hour)}
	}
	return out
}

// infoField is one field of an INFO section.
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return name + "=" + v
		}
	}
	return name + "=?"
}
