package main

import "testing"

// TestIdleSmoke runs the idle scenario through the real binary: its event arrives once, the
// costs of the idle window are measured, and the idle process's servers wait to be woken
// rather than poll (asynq's polling alone, four servers every 10 ms, is about 380 script
// calls a second).
func TestIdleSmoke(t *testing.T) {
	r, _ := smokeRun(t, "idle")
	for name, want := range map[string]float64{"delivered": 1, "lost": 0, "duplicated": 0} {
		if got, ok := r.value(name); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, name := range []string{"webhookd CPU, idle", "redis-server CPU, idle", "redis commands/s, idle"} {
		if _, ok := r.value(name); !ok {
			t.Errorf("%s not measured", name)
		}
	}
	if got, ok := r.value("redis EVALSHA/s, idle"); !ok || got <= 0 || got > 100 {
		t.Errorf("redis EVALSHA/s, idle = %v (present %v), want a few a second", got, ok)
	}
}
