package registry_test

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Benchmarks of the registry's hot paths, on the real redis-server only: each request
// authenticates (Authenticate: its key and its rate limit), each publish runs one script (PublishEvent), a drain takes and
// finishes its deliveries a batch at a time (DrainBatch; a take alone, of 1 and of 16: Take),
// and a retry fires its timer, is taken and finished alone (RetryRound).

type benchEnv struct {
	store *registry.Store
	rdb   redis.UniversalClient
	tid   string
	eid   string
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	rdb := registrytest.Client(b)
	s := registrytest.Store(b, rdb)
	tn, err := s.CreateTenant(b.Context(), "bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	ep, err := s.CreateEndpoint(b.Context(), tn.ID, registry.NewEndpoint{URL: "https://hooks.example.test/bench",
		Events: []string{registry.EventScanCompleted}, Secret: newSecret(b)})
	if err != nil {
		b.Fatal(err)
	}
	return &benchEnv{store: s, rdb: rdb, tid: tn.ID, eid: ep.ID}
}

// startCounting runs the command in WEBHOOKD_BENCH_COUNT_CMD, when set, once a benchmark's
// set-up is done: testdata/profile/instructions.sh zeroes redis-server's instruction counts
// there, so that they count the benchmark's ops alone.
func (be *benchEnv) startCounting(b *testing.B) {
	b.Helper()
	cmd := os.Getenv("WEBHOOKD_BENCH_COUNT_CMD")
	if cmd == "" {
		return
	}
	if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
		b.Fatalf("%s: %v: %s", cmd, err, out)
	}
}

// redisMicros is the CPU time redis-server has used (user and system, from INFO cpu): the
// benchmarks report it per op as redis-cpu-µs/op, which a script's change or a round trip
// fewer moves even where wall time on a shared machine hides it.
func (be *benchEnv) redisMicros(b *testing.B) int64 {
	b.Helper()
	info, err := be.rdb.Info(b.Context(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		name, v, _ := strings.Cut(line, ":")
		if name == "used_cpu_sys" || name == "used_cpu_user" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("INFO cpu %q: %v", line, err)
			}
			total += f
		}
	}
	return int64(total * 1e6)
}

func (be *benchEnv) reportRedis(b *testing.B, start int64, ops int) {
	b.ReportMetric(float64(be.redisMicros(b)-start)/float64(ops), "redis-cpu-µs/op")
}

func BenchmarkAuthenticate(b *testing.B) {
	be := newBenchEnv(b)
	_, plain, err := be.store.CreateAPIKey(b.Context(), registry.NewKeyParams{TenantID: be.tid, Scopes: registry.Scopes})
	if err != nil {
		b.Fatal(err)
	}
	be.startCounting(b)
	start := be.redisMicros(b)
	for b.Loop() {
		if _, _, err := be.store.Authenticate(b.Context(), plain, 1<<30); err != nil {
			b.Fatal(err)
		}
	}
	be.reportRedis(b, start, b.N)
}

func BenchmarkPublishEvent(b *testing.B) {
	be := newBenchEnv(b)
	benchPublishAlone(b, be, func() *registry.KeyCheck { return nil })
}

// BenchmarkPublishChecked is BenchmarkPublishEvent carrying its key's check (KeyCheck), as an
// API publish makes it once its process has read the key: the whole request's round trip,
// authentication included.
func BenchmarkPublishChecked(b *testing.B) {
	be := newBenchEnv(b)
	_, plain, err := be.store.CreateAPIKey(b.Context(), registry.NewKeyParams{TenantID: be.tid, Scopes: registry.Scopes})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := be.store.Authenticate(b.Context(), plain, 1<<30); err != nil {
		b.Fatal(err)
	}
	benchPublishAlone(b, be, func() *registry.KeyCheck {
		_, check, ok := be.store.KnownKey(plain)
		if !ok {
			b.Fatal("the key is not known")
		}
		check.Limit = 1 << 30
		return check
	})
}

// benchPublishAlone publishes one event at a time, each with an idempotency key and the key
// check checked makes (nil for none).
func benchPublishAlone(b *testing.B, be *benchEnv, checked func() *registry.KeyCheck) {
	body := eventBody("evt_bench", registry.EventScanCompleted)
	now := time.Now()
	i := 0
	be.startCounting(b)
	start := be.redisMicros(b)
	for b.Loop() {
		i++
		_, err := be.store.PublishEvents(b.Context(), be.tid, registry.NewBatch{Events: []registry.NewEvent{{
			ID: newEventID(), Type: registry.EventScanCompleted, CreatedAt: now, Body: body}},
			IdempotencyKey: "idem-" + strconv.Itoa(i), Key: checked()})
		if err != nil {
			b.Fatal(err)
		}
	}
	be.reportRedis(b, start, b.N)
}

// BenchmarkPublishBatch is a batch publish of 100 events to one endpoint, as
// POST /api/v1/events/batch makes it; one op is the batch.
func BenchmarkPublishBatch(b *testing.B) {
	be := newBenchEnv(b)
	body := eventBody("evt_bench", registry.EventScanCompleted)
	now := time.Now()
	be.startCounting(b)
	start := be.redisMicros(b)
	for b.Loop() {
		batch := registry.NewBatch{Events: make([]registry.NewEvent, 100)}
		for i := range batch.Events {
			batch.Events[i] = registry.NewEvent{ID: newEventID(), Type: registry.EventScanCompleted, CreatedAt: now,
				Body: body, ScanID: uuid.NewString()}
		}
		if _, err := be.store.PublishEvents(b.Context(), be.tid, batch); err != nil {
			b.Fatal(err)
		}
	}
	be.reportRedis(b, start, b.N)
}

// BenchmarkRetryRound is the Redis work of one retry of a delivery that fails again: its
// timer fires (Due), its drain takes it (Take) and records the failure (Finish). One op is one
// retry.
func BenchmarkRetryRound(b *testing.B) {
	be := newBenchEnv(b)
	id := "evt_bench_retry"
	st, err := be.store.PublishEvent(b.Context(), be.tid, registry.NewEvent{ID: id, Type: registry.EventScanCompleted,
		CreatedAt: time.Now(), Body: eventBody(id, registry.EventScanCompleted)})
	if err != nil {
		b.Fatal(err)
	}
	if len(st.Drains) != 1 {
		b.Fatalf("publish scheduled drains %v, want one", st.Drains)
	}
	n := st.Drains[0].N
	did := registry.DeliveryID(id, be.eid)
	start := be.redisMicros(b)
	for b.Loop() {
		items, _, err := be.store.Take(b.Context(), registry.TakeRequest{TenantID: be.tid, EndpointID: be.eid,
			N: n, Limit: 1})
		if err != nil || len(items) != 1 {
			b.Fatalf("Take = %d items, %v", len(items), err)
		}
		it := items[0]
		fin, err := be.store.Finish(b.Context(), registry.FinishRequest{TenantID: be.tid, EndpointID: be.eid,
			Streak: registry.StreakRule{Threshold: 1 << 30}, Outcomes: []registry.Outcome{{Item: it,
				Outcome: registry.OutcomeFailure, Status: registry.DeliveryRetrying, NextAttemptAt: time.Now(),
				Attempt: &registry.Attempt{Number: 1, StartedAt: time.Now(), DurationMs: 42, StatusCode: 500}}}})
		if err != nil || fin.Statuses[0] != registry.DeliveryRetrying {
			b.Fatalf("Finish = %+v, %v", fin, err)
		}
		if _, err := be.store.Due(b.Context(), be.tid, registry.Retry{DeliveryID: did, EndpointID: be.eid,
			Generation: it.Generation, Run: it.Run + 1}); err != nil {
			b.Fatal(err)
		}
	}
	be.reportRedis(b, start, b.N)
}

// BenchmarkDrainBatch is a drain's Redis work for a batch of 16 queued deliveries (a drain's
// drainBatch): one Take (with the event bodies and the endpoint) and one Finish recording 16
// first attempts that succeeded. The queue holds all of the run's deliveries from the start
// (published in batches of 80, before the clock starts). It reports redis-server's CPU for
// each step per delivery, less what an INFO round trip costs it (measured beside each op).
func BenchmarkDrainBatch(b *testing.B) {
	be := newBenchEnv(b)
	const batch = 16
	now := time.Now()
	body := eventBody("evt_bench", registry.EventScanCompleted)
	n := be.queue(b, b.N*batch, now, body)
	be.startCounting(b)
	var info, take, finish int64
	for range b.N {
		t0 := be.redisMicros(b)
		t1 := be.redisMicros(b)
		items, _, err := be.store.Take(b.Context(), registry.TakeRequest{TenantID: be.tid, EndpointID: be.eid, N: n,
			Limit: batch})
		if err != nil || len(items) != batch {
			b.Fatalf("Take = %d items, %v", len(items), err)
		}
		t2 := be.redisMicros(b)
		req := registry.FinishRequest{TenantID: be.tid, EndpointID: be.eid, Streak: registry.StreakRule{Threshold: 1 << 30}}
		for _, it := range items {
			req.Outcomes = append(req.Outcomes, registry.Outcome{Item: it, Outcome: registry.OutcomeSuccess,
				Status:  registry.DeliverySucceeded,
				Attempt: &registry.Attempt{Number: 1, StartedAt: now, DurationMs: 3, StatusCode: 200}})
		}
		if _, err := be.store.Finish(b.Context(), req); err != nil {
			b.Fatal(err)
		}
		t3 := be.redisMicros(b)
		info, take, finish = info+t1-t0, take+t2-t1, finish+t3-t2
	}
	b.StopTimer()
	per := float64(b.N * batch)
	b.ReportMetric(float64(take-info)/per, "take-redis-µs/delivery")
	b.ReportMetric(float64(finish-info)/per, "finish-redis-µs/delivery")
}

// BenchmarkTake is one take of 1 and of 16 deliveries from the head of a queue, with their
// events' records and the endpoint. Nothing records them, so every take reads the same ones:
// the two sizes set a take's fixed cost apart from its cost per delivery
// (testdata/profile/instructions.sh counts both). A drain under a flood of single events takes
// a few deliveries at a time, and pays the fixed cost for those few.
func BenchmarkTake(b *testing.B) {
	for _, limit := range []int{1, 16} {
		b.Run(strconv.Itoa(limit), func(b *testing.B) {
			be := newBenchEnv(b)
			n := be.queue(b, 64, time.Now(), eventBody("evt_bench", registry.EventScanCompleted))
			be.startCounting(b)
			for b.Loop() {
				items, _, err := be.store.Take(b.Context(), registry.TakeRequest{TenantID: be.tid, EndpointID: be.eid,
					N: n, Limit: limit})
				if err != nil || len(items) != limit {
					b.Fatalf("Take = %d items, %v", len(items), err)
				}
			}
		})
	}
}

// queue publishes count events to the bench's endpoint in batches of 80 and returns the
// number of the drain they scheduled.
func (be *benchEnv) queue(b *testing.B, count int, now time.Time, body []byte) int64 {
	b.Helper()
	var n int64
	for i := 0; i < count; i += 80 {
		nb := registry.NewBatch{Events: make([]registry.NewEvent, min(80, count-i))}
		for j := range nb.Events {
			nb.Events[j] = registry.NewEvent{ID: newEventID(), Type: registry.EventScanCompleted, CreatedAt: now, Body: body}
		}
		sb, err := be.store.PublishEvents(b.Context(), be.tid, nb)
		if err != nil {
			b.Fatal(err)
		}
		if len(sb.Drains) == 1 {
			n = sb.Drains[0].N
		}
	}
	return n
}
