package registry

import (
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Embedded is an in-process Redis (miniredis) for running webhookd with nothing installed.
// Its data lives in memory only. TTLs advance from a ticker rather than ClockTTL(true), which
// would scan every key on every command.
type Embedded struct {
	m    *miniredis.Miniredis
	addr string // kept so Addr still answers after Close (miniredis panics then)
	stop chan struct{}
	once sync.Once
}

// StartEmbedded starts an in-process Redis listening on addr (e.g. "127.0.0.1:0").
func StartEmbedded(addr string) (*Embedded, error) {
	m := miniredis.NewMiniRedis()
	m.ClockTTL(false)
	if err := m.StartAddr(addr); err != nil {
		return nil, err
	}
	e := &Embedded{m: m, addr: m.Addr(), stop: make(chan struct{})}
	go e.tick(100 * time.Millisecond)
	return e, nil
}

func (e *Embedded) tick(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-e.stop:
			return
		case now := <-t.C:
			e.m.FastForward(now.Sub(last))
			last = now
		}
	}
}

// Addr returns host:port of the embedded server.
func (e *Embedded) Addr() string { return e.addr }

// Close stops the server; its data is gone.
func (e *Embedded) Close() {
	e.once.Do(func() {
		close(e.stop)
		e.m.Close()
	})
}
