package delivery

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/cert-ix/webhookd/registry"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Queue shards. asynq keeps each queue in one Redis Cluster hash slot ({queue} in every key),
// so with one queue a single master carries every task. Shards are N queues: an endpoint's
// drains and retry timers go to the shard its id hashes to, an event's fan-out to its event's,
// a recovery's steps to its recovery's. Every worker serves every shard.
//
// A shard's name is chosen so that its slot lies in the shard's own N-th of the slot range:
// N shards land on different masters as evenly as the masters split the range (as
// `redis-cli --cluster create` does), where names picked at random would pile up by chance.
// With one shard the queue is Queue itself, as before there were shards.

// MaxQueueShards bounds WEBHOOKD_QUEUE_SHARDS: each shard costs every idle asynq server one
// dequeue call per poll.
const MaxQueueShards = 256

// Shards is the set of queues tasks are spread over.
type Shards struct {
	names []string
}

// NewShards names n shards (n is clamped to 1..MaxQueueShards).
func NewShards(n int) Shards {
	n = min(max(n, 1), MaxQueueShards)
	if n == 1 {
		return Shards{names: []string{Queue}}
	}
	names := make([]string, n)
	for i := range n {
		names[i] = shardName(i, n)
	}
	return Shards{names: names}
}

// shardName finds the first name of shard i of n whose hash slot lies in [i, i+1) n-ths of
// the slot range. About n names are tried.
func shardName(i, n int) string {
	lo, hi := i*registry.ClusterSlots/n, (i+1)*registry.ClusterSlots/n
	base := fmt.Sprintf("%s-%dof%d-", Queue, i+1, n)
	for k := 0; ; k++ {
		name := base + strconv.Itoa(k)
		if s := registry.KeySlot(name); s >= lo && s < hi {
			return name
		}
	}
}

// Names lists the shards' queues.
func (s Shards) Names() []string { return slices.Clone(s.names) }

// Of returns the queue of the tasks keyed by key (an endpoint, event or recovery id): FNV-1a
// of the key modulo the number of shards, stable across processes and restarts.
func (s Shards) Of(key string) string {
	if len(s.names) == 1 {
		return s.names[0]
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return s.names[h.Sum32()%uint32(len(s.names))]
}

// IsQueue reports whether name is a queue of webhookd's: the unsharded one or a shard of any N.
func IsQueue(name string) bool {
	return name == Queue || strings.HasPrefix(name, Queue+"-")
}

// servedQueues is what a worker serves: the current shards, then any other webhookd queue that
// still holds tasks (the shards of an earlier WEBHOOKD_QUEUE_SHARDS), so that changing the
// number loses nothing. Empty queues of an earlier number are deleted, which keeps them off the
// dashboard and the metrics; deleting one that just received a task fails and it stays.
func servedQueues(rdb redis.UniversalClient, current Shards) ([]string, error) {
	insp := asynq.NewInspectorFromRedisClient(rdb)
	known, err := insp.Queues()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	served := current.Names()
	for _, q := range known {
		if !IsQueue(q) || slices.Contains(served, q) {
			continue
		}
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			return nil, fmt.Errorf("inspect queue %s: %w", q, err)
		}
		if info.Size > 0 {
			served = append(served, q)
		} else {
			_ = insp.DeleteQueue(q, false)
		}
	}
	return served, nil
}

// spread gives each of n asynq servers its share of the queues: every queue is served by one
// server of a process (each server polls only its own, so an idle process costs one dequeue
// call per queue per poll, not one per queue per server), unless there are fewer queues than
// servers, when every server serves them all.
func spread(queues []string, n int) []map[string]int {
	out := make([]map[string]int, n)
	for i := range out {
		out[i] = map[string]int{}
	}
	for i, q := range queues {
		if len(queues) < n {
			for _, m := range out {
				m[q] = 1
			}
			continue
		}
		out[i%n][q] = 1
	}
	return out
}

// QueueInfos reads every webhookd queue asynq knows: the shards and any of an earlier shard
// count still draining (one deleted, once drained, after the listing is left out).
func QueueInfos(rdb redis.UniversalClient) (map[string]*asynq.QueueInfo, error) {
	insp := asynq.NewInspectorFromRedisClient(rdb)
	names, err := insp.Queues()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	out := map[string]*asynq.QueueInfo{}
	for _, q := range names {
		if !IsQueue(q) {
			continue
		}
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			if queueGone(insp, q) {
				continue // a retired shard, deleted once drained, since the listing
			}
			return nil, fmt.Errorf("inspect queue %s: %w", q, err)
		}
		out[q] = info
	}
	return out, nil
}

// queueGone reports whether q is no longer among asynq's queues (its inspector's error for a
// missing queue is of an internal type).
func queueGone(insp *asynq.Inspector, q string) bool {
	names, err := insp.Queues()
	return err == nil && !slices.Contains(names, q)
}

// Backlog sums the tasks of every webhookd queue by state (QueueInfos): what a test or an
// operator waits on to know the workers have nothing left.
func Backlog(rdb redis.UniversalClient) (asynq.QueueInfo, error) {
	var sum asynq.QueueInfo
	infos, err := QueueInfos(rdb)
	for _, info := range infos {
		sum.Pending += info.Pending
		sum.Active += info.Active
		sum.Scheduled += info.Scheduled
		sum.Retry += info.Retry
		sum.Archived += info.Archived
	}
	return sum, err
}
