package delivery

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TestShardSlots checks the slots shard names were chosen by against a Redis Cluster's own.
func TestShardSlots(t *testing.T) {
	if !registrytest.OnCluster() {
		t.Skip("needs the cluster (WEBHOOKD_TEST_CLUSTER=1)")
	}
	node := registrytest.SharedCluster(t).Node(0)
	for _, key := range append(NewShards(16).Names(), Queue, "a", "{x}y", "wh:{t:0a}:ep:1") {
		want, err := node.ClusterKeySlot(t.Context(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := registry.KeySlot(key); int64(got) != want {
			t.Errorf("KeySlot(%q) = %d, CLUSTER KEYSLOT says %d", key, got, want)
		}
	}
}

func TestShardNames(t *testing.T) {
	if got := NewShards(1).Names(); !slices.Equal(got, []string{Queue}) {
		t.Errorf("one shard: %q, want [%q]", got, Queue)
	}
	for _, n := range []int{2, 3, 16, MaxQueueShards} {
		names := NewShards(n).Names()
		if len(names) != n {
			t.Fatalf("NewShards(%d) has %d names", n, len(names))
		}
		if again := NewShards(n).Names(); !slices.Equal(names, again) {
			t.Errorf("NewShards(%d) names differ between calls: %q, %q", n, names, again)
		}
		seen := map[string]bool{}
		for i, q := range names {
			// Shard i's slot lies in its own n-th of the slots: on masters splitting the range
			// evenly, the shards spread evenly.
			lo, hi := i*registry.ClusterSlots/n, (i+1)*registry.ClusterSlots/n
			if s := registry.KeySlot(q); s < lo || s >= hi {
				t.Errorf("shard %d of %d, %q, has slot %d, outside [%d, %d)", i, n, q, s, lo, hi)
			}
			if seen[q] || !IsQueue(q) {
				t.Errorf("shard %q: repeated or not recognised as a queue", q)
			}
			seen[q] = true
		}
	}
	for _, q := range []string{"default", "webhookdx", "critical"} {
		if IsQueue(q) {
			t.Errorf("IsQueue(%q) = true", q)
		}
	}
}

// TestShardsOfSpreads: endpoint ids spread over the shards within 10% of even, and the
// same id always gets the same shard.
func TestShardsOfSpreads(t *testing.T) {
	s := NewShards(16)
	count := map[string]int{}
	const ids = 64000
	for i := range ids {
		id := uuid.NewString() // as endpoint ids are made
		if i < 100 && s.Of(id) != NewShards(16).Of(id) {
			t.Fatalf("Of(%q) is not stable", id)
		}
		count[s.Of(id)]++
	}
	for q, n := range count {
		if want := ids / 16; n < want*9/10 || n > want*11/10 {
			t.Errorf("shard %s got %d of %d ids, want %d±10%%", q, n, ids, want)
		}
	}
	if len(count) != 16 {
		t.Errorf("ids landed on %d shards, want 16", len(count))
	}
}

func TestSpread(t *testing.T) {
	qs := []string{"a", "b", "c", "d", "e"}
	for _, tc := range []struct {
		servers int
		want    []string // each server's queues, joined
	}{
		{1, []string{"abcde"}},
		{2, []string{"ace", "bd"}},
		{5, []string{"a", "b", "c", "d", "e"}},
		{6, []string{"abcde", "abcde", "abcde", "abcde", "abcde", "abcde"}}, // fewer queues than servers
	} {
		t.Run(strconv.Itoa(tc.servers), func(t *testing.T) {
			var got []string
			for _, m := range spread(qs, tc.servers) {
				got = append(got, fmt.Sprint(slices.Concat(slices.Sorted(maps.Keys(m)))))
			}
			var want []string
			for _, w := range tc.want {
				var parts []string
				for _, r := range w {
					parts = append(parts, string(r))
				}
				want = append(want, fmt.Sprint(parts))
			}
			if !slices.Equal(got, want) {
				t.Errorf("spread over %d servers = %v, want %v", tc.servers, got, want)
			}
		})
	}
}

// TestChangingShardCountLosesNothing queues work under one shard count (drains, and retry
// timers far enough ahead to outlive the worker that queued them), then runs the service and a
// worker under another: every delivery arrives, each event once more after its one failure, the
// old shards drain, and a later start forgets them.
func TestChangingShardCountLosesNothing(t *testing.T) {
	for _, tc := range []struct{ from, to int }{{1, 4}, {4, 1}, {3, 5}} {
		t.Run(fmt.Sprintf("%d to %d", tc.from, tc.to), func(t *testing.T) {
			st := newStack(t)
			st.setShards(t, tc.from)
			ok, okEP := st.receiver(t, deliverytest.Status(200), registry.EventScanCompleted)
			flaky, flakyEP := st.receiver(t, failFirst(), registry.EventScanCompleted)
			var evids []string
			publish := func(n int) {
				for range n {
					evids = append(evids, st.publish(t, registry.EventScanCompleted, nil).ID)
				}
			}
			publish(20)
			stop := st.worker(t, WorkerConfig{Policy: RetryPolicy{InitialInterval: 2 * time.Second,
				MaxInterval: 2 * time.Second, Multiplier: 1}})
			eventually(t, "the first attempts at the flaky endpoint", func() bool { return flaky.Count() >= 20 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			publish(5) // drains queued on the old shards, with no worker
			before := queueNames(t, st)
			st.setShards(t, tc.to)
			publish(10)
			st.worker(t, WorkerConfig{})
			st.deliveredOnce(t, ok, okEP.ID, evids...)
			for _, id := range evids {
				if d := st.waitStatus(t, flakyEP.ID, id, registry.DeliverySucceeded); d.AttemptCount != 2 {
					t.Errorf("delivery of %s to the flaky endpoint has %d attempts, want 2", id, d.AttemptCount)
				}
			}
			if n := flaky.Count(); n != 2*len(evids) {
				t.Errorf("the flaky endpoint got %d requests, want %d (each event failed once, then once more)",
					n, 2*len(evids))
			}
			// A later start serves the current shards only: drained old ones are deleted.
			st.worker(t, WorkerConfig{})
			current := NewShards(tc.to).Names()
			eventually(t, "the old shards to be forgotten", func() bool {
				for _, q := range queueNames(t, st) {
					if !slices.Contains(current, q) {
						return false
					}
				}
				return true
			})
			t.Logf("queues before the change %q, after %q", before, queueNames(t, st))
		})
	}
}

// setShards makes the stack's service, and the workers it starts from now on, use n shards.
func (st *stack) setShards(t *testing.T, n int) {
	t.Helper()
	st.shards = n
	var err error
	st.svc, err = NewService(ServiceConfig{Store: st.store, Enqueuer: NewEnqueuer(st.rdb),
		QueueShards: n})
	if err != nil {
		t.Fatal(err)
	}
}

// queueNames lists the webhookd queues asynq knows, sorted.
func queueNames(t *testing.T, st *stack) []string {
	t.Helper()
	infos, err := QueueInfos(st.rdb)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(infos))
}

// failFirst answers 500 to the first request of each event (by webhook-id), 200 after.
func failFirst() deliverytest.Responder {
	var mu sync.Mutex
	seen := map[string]bool{}
	return func(_ int, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		id := r.Header.Get("webhook-id")
		if !seen[id] {
			seen[id] = true
			w.WriteHeader(http.StatusInternalServerError)
		}
	}
}

// TestQueueInfosSkipsAQueueDeletedMeanwhile: a retired shard that its worker deletes between
// the listing of the queues and the reading of its own figures (metrics, the dashboard and
// Backlog all read them) is left out, not an error.
func TestQueueInfosSkipsAQueueDeletedMeanwhile(t *testing.T) {
	st := newStack(t)
	old, current := NewShards(2).Names(), NewShards(1).Names()
	enq := asynq.NewClientFromRedisClient(st.rdb)
	for _, q := range []string{old[0], current[0]} {
		if _, err := enq.Enqueue(asynq.NewTask("noop", nil), asynq.Queue(q)); err != nil {
			t.Fatal(err)
		}
	}
	rdb := st.newClient()
	rdb.AddHook(deleteBeforeRead{queue: old[0], insp: asynq.NewInspectorFromRedisClient(st.rdb), t: t})
	infos, err := QueueInfos(rdb)
	if err != nil {
		t.Fatalf("QueueInfos = %v, want the queues still there", err)
	}
	if _, ok := infos[current[0]]; !ok || len(infos) != 1 {
		t.Errorf("QueueInfos read %v, want %s alone", slices.Sorted(maps.Keys(infos)), current[0])
	}
}

// deleteBeforeRead injects the race: it deletes queue right before asynq checks that it
// exists to read its figures.
type deleteBeforeRead struct {
	queue string
	insp  *asynq.Inspector
	t     *testing.T
}

func (h deleteBeforeRead) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h deleteBeforeRead) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h deleteBeforeRead) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); cmd.Name() == "sismember" && len(args) == 3 && args[2] == h.queue {
			if err := h.insp.DeleteQueue(h.queue, true); err != nil {
				h.t.Errorf("deleting %s: %v", h.queue, err)
			}
		}
		return next(ctx, cmd)
	}
}
