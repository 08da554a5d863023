package delivery

import (
	"sync"
	"testing"
	"time"
)

// Every job runs; goroutines that finish wait for the next job only while fewer than max
// others wait, take it when one comes, and all end when stop is closed.
func TestGoroutines(t *testing.T) {
	stop := make(chan struct{})
	g := newGoroutines(2, stop)
	release := make(chan struct{})
	var ran sync.WaitGroup
	ran.Add(5)
	for range 5 { // five jobs at once: five goroutines
		g.run(func() { <-release; ran.Done() })
	}
	close(release)
	ran.Wait()
	waitIdle(t, g, 2) // three ended, two wait

	ran.Add(2)
	g.run(func() { ran.Done() })
	g.run(func() { ran.Done() })
	ran.Wait()
	waitIdle(t, g, 2)

	close(stop)
	waitIdle(t, g, 0)
	ran.Add(1)
	g.run(func() { ran.Done() }) // after stop a job still runs, on a goroutine that then ends
	ran.Wait()
	waitIdle(t, g, 0)
}

func waitIdle(t *testing.T, g *goroutines, want int32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for g.idle.Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines wait for a job, want %d", g.idle.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}
