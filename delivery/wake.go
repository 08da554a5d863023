package delivery

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Idle asynq servers wait to be woken instead of polling. asynq finds work by polling: a
// server makes one dequeue script call per queue it serves and, when all come back empty,
// sleeps TaskCheckInterval and polls again, 100 rounds a second per server at 10 ms. Here a
// server whose last round found nothing makes its next one only once it is woken or IdleWait
// has passed (idler, a go-redis hook on the server's own client). It is woken:
//
//   - when a task is queued to run now by an Enqueuer of NewEnqueuer, which publishes the
//     task's queue on wakeChannel; every worker process subscribes (Worker.Run) and wakes one
//     of its servers of that queue that waits, which wakes another when it finds a task, so a
//     burst spreads over the servers and a lone task costs two dequeues, not one per server.
//     One process's wakes coalesce: while one is being published, those that follow are
//     published next, together;
//   - when asynq's forwarder, which every second moves tasks that have come due (retry timers,
//     asynq's own retries) to their queue, moved some (seen by the same hook): as for a wake
//     from the channel, one server of the queue that waits;
//   - when RecoverDeadWorkers has put tasks back on their queue.
//
// Whatever else puts a task on a queue (asynqmon, a wake lost while Redis was out of reach) is
// found within IdleWait. The pause after an empty round (TaskCheckInterval) is short, 1 ms: the
// round after it waits anyway, and a task queued during the pause would wait it out.

// wakeChannel is the Redis channel of wakes: a message is a comma-separated list of queues.
const wakeChannel = "webhookd:wake"

// NewEnqueuer is the Enqueuer of webhookd's processes: asynq's client on rdb, which wakes the
// idle workers of a task's queue once the task is queued to run now.
func NewEnqueuer(rdb redis.UniversalClient) Enqueuer {
	return &wakingEnqueuer{Client: asynq.NewClientFromRedisClient(rdb), wakes: &wakeSender{rdb: rdb}}
}

type wakingEnqueuer struct {
	*asynq.Client
	wakes *wakeSender
}

func (e *wakingEnqueuer) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	info, err := e.Client.EnqueueContext(ctx, t, opts...)
	if err == nil && info.State == asynq.TaskStatePending {
		e.wakes.wake(info.Queue)
	}
	return info, err
}

// wakeSender publishes wakes from a goroutine of its own, so that no caller waits for them:
// the queues to wake that come in while one wake is published go out together in the next.
type wakeSender struct {
	rdb     redis.UniversalClient
	mu      sync.Mutex
	queues  map[string]bool // to wake next
	sending bool
}

// wakeTimeout bounds one publish of a wake; a lost one is made up for by IdleWait.
const wakeTimeout = 5 * time.Second

func (s *wakeSender) wake(queue string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queues == nil {
		s.queues = map[string]bool{}
	}
	s.queues[queue] = true
	if !s.sending {
		s.sending = true
		go s.send()
	}
}

// send publishes the queues to wake until there are none left.
func (s *wakeSender) send() {
	for {
		s.mu.Lock()
		queues := slices.Sorted(maps.Keys(s.queues))
		clear(s.queues)
		s.sending = len(queues) > 0
		s.mu.Unlock()
		if len(queues) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), wakeTimeout)
		_ = s.rdb.Publish(ctx, wakeChannel, strings.Join(queues, ",")).Err()
		cancel()
	}
}

// idlers are a worker process's asynq servers, by the queues they serve.
type idlers map[string][]*idler

// wake wakes, for each queue in msg (a message on wakeChannel), one of its servers that waits;
// when none does, it wakes them all, so that none waits after the round it is in.
func (is idlers) wake(msg string) {
	for q := range strings.SplitSeq(msg, ",") {
		if !is.wakeWaiting(q) {
			for _, i := range is[q] {
				i.wake()
			}
		}
	}
}

// wakeWaiting wakes one server of queue q that waits to be woken; false when none does. A
// server that finds a task wakes the next (idler.dequeue), so a burst spreads over them while a
// single task costs two dequeues, not one per server.
func (is idlers) wakeWaiting(q string) bool {
	for _, i := range is[q] {
		if i.idle.Load() {
			i.wake()
			return true
		}
	}
	return false
}

// listen wakes the servers as wakes arrive on sub, until sub is closed.
func (is idlers) listen(sub *redis.PubSub) {
	for m := range sub.Channel() {
		is.wake(m.Payload)
	}
}

// idler is the go-redis hook of one asynq server's client: it makes the server's next round of
// dequeues wait after a round that found every queue empty, until the server is woken, wait has
// passed or the worker stops.
type idler struct {
	queues   int // how many queues a round polls
	idleWait time.Duration
	stopping <-chan struct{}

	peers idlers // the process's servers, by queue

	mu    sync.Mutex
	woken chan struct{} // closed at a wake, then replaced
	idle  atomic.Bool   // waiting in wait

	// Used by the server's one dequeuing goroutine only.
	empty int           // dequeues in a row that found nothing
	since chan struct{} // woken as it was before the first of them
}

func newIdler(queues int, idleWait time.Duration, stopping <-chan struct{}) *idler {
	return &idler{queues: queues, idleWait: idleWait, stopping: stopping, woken: make(chan struct{})}
}

func (i *idler) wake() {
	i.mu.Lock()
	defer i.mu.Unlock()
	close(i.woken)
	i.woken = make(chan struct{})
}

func (i *idler) current() chan struct{} {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.woken
}

// dequeue runs one of the server's dequeue calls, on queue q, after waiting if the last round
// found nothing. When it finds a task, it wakes a server of q that waits: there may be more.
func (i *idler) dequeue(ctx context.Context, cmd redis.Cmder, q string, next redis.ProcessHook) error {
	if i.empty >= i.queues {
		i.wait()
		i.empty = 0
	}
	if i.empty == 0 {
		i.since = i.current()
	}
	err := next(ctx, cmd)
	switch {
	case errors.Is(err, redis.Nil):
		i.empty++
	case err == nil:
		i.empty = 0
		i.peers.wakeWaiting(q)
	default:
		i.empty = 0
	}
	return err
}

// wait waits for a wake since the empty round began, the wait or the worker's stop.
func (i *idler) wait() {
	t := time.NewTimer(i.idleWait)
	defer t.Stop()
	i.idle.Store(true)
	defer i.idle.Store(false)
	select {
	case <-i.since:
	case <-t.C:
	case <-i.stopping:
	}
}

func (i *idler) DialHook(next redis.DialHook) redis.DialHook { return next }

func (i *idler) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch script, q := asynqScriptOf(cmd); script {
		case asynqDequeue:
			return i.dequeue(ctx, cmd, q, next)
		case asynqForward:
			err := next(ctx, cmd)
			if c, ok := cmd.(*redis.Cmd); ok {
				if n, _ := c.Int(); n > 0 {
					i.peers.wake(q) // a waiting server of q, this one or another: this one may be busy
				}
			}
			return err
		}
		return next(ctx, cmd)
	}
}

func (i *idler) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// idleConnOpt gives the Redis client of one asynq server its idler.
type idleConnOpt struct {
	asynq.RedisConnOpt
	idler *idler
}

func (o idleConnOpt) MakeRedisClient() any {
	c := o.RedisConnOpt.MakeRedisClient()
	if u, ok := c.(redis.UniversalClient); ok {
		u.AddHook(o.idler)
	}
	return c
}
