package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// orderedSide is one of the ordered scenario's two measurements: an endpoint created with
// ordering (label "ordered", "scan") or without (label "unordered", the default).
type orderedSide struct {
	label, ordering string
}

var orderedSides = []orderedSide{{"ordered", "scan"}, {"unordered", ""}}

// sideResult is what one side measured, with its Redis commands per delivery by command.
type sideResult struct {
	r     *runResult
	calls map[string]float64
}

// ordered measures an endpoint ordered by scan against one without ordering, in the same run
// and with the same load: --events/2 scans, each its scan.started then its scan.completed or
// scan.failed, with at most --scans open at once. Each side gets a fresh Redis database,
// webhookd process (same settings), tenant and receiver; which side goes first alternates
// from run to run, so a drift of the shared machine does not always favour the same one.
func (b *bench) ordered(ctx context.Context) (*runResult, error) {
	sides := slices.Clone(orderedSides)
	if b.orderedRuns%2 == 1 {
		slices.Reverse(sides)
	}
	b.orderedRuns++
	got := make(map[string]sideResult, len(sides))
	for _, s := range sides {
		b.logf("ordered: measuring the %s endpoint", s.label)
		res, err := b.orderedSide(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("%s endpoint: %w", s.label, err)
		}
		got[s.label] = res
	}
	r := &runResult{}
	r.note("%s endpoint measured first", sides[0].label)
	for _, s := range orderedSides {
		r.merge(s.label+" ", got[s.label].r)
	}
	ord, _ := got["ordered"].r.value("delivered/s")
	un, _ := got["unordered"].r.value("delivered/s")
	if un > 0 {
		r.add("ordered ÷ unordered delivered/s", "%", 100*ord/un)
	}
	if d := commandDifference(got["ordered"].calls, got["unordered"].calls); d != "" {
		r.note("redis commands per delivery, ordered − unordered (those that differ by 0.05 or more): %s", d)
	}
	return r, nil
}

// orderedSide runs one side: publishes the scans to one endpoint and checks every delivery
// and, on the ordered endpoint, every scan's receipt order.
func (b *bench) orderedSide(ctx context.Context, s orderedSide) (sideResult, error) {
	e, err := b.setup(ctx, "all", nil)
	if err != nil {
		return sideResult{}, err
	}
	defer e.close(ctx)
	gate := newScanGate(b.opt.Scans, b.stall)
	e.rec.onFirst = gate.received // before the receiver exists: nothing races with it
	if err := e.registerOrdered(ctx, s); err != nil {
		return sideResult{}, err
	}
	return e.measureScans(ctx, gate, s, e.scanPublisher()), nil
}

// measureScans publishes the scans with pub through gate (the recorder's onFirst) and checks
// what the side's receiver got: every delivery once and signed, and each scan's receipt order.
func (e *env) measureScans(ctx context.Context, gate *scanGate, s orderedSide, pub scanPublishFunc) sideResult {
	b := e.b
	before := b.snap(ctx, e.wd)
	sl := publishScans(ctx, max(b.opt.Events/2, 1), b.opt.Publishers, gate, pub)
	b.logf("ordered: %s: %d events of %d scans accepted at %.0f/s; waiting for deliveries", s.label,
		len(sl.load.ids), len(sl.scans), sl.load.rate())
	done := e.await(ctx, len(sl.load.ids))
	after := b.snap(ctx, e.wd)
	t := e.settle(ctx, sl.load.ids, []string{s.label})
	r := &runResult{}
	r.addPhase("publish accepted", "publish round trip", phase{load: sl.load, tally: t, rec: e.rec, before: before, after: after})
	r.addScanLoad(sl, b.opt.Scans)
	r.addOrder(e.rec.order(sl.scans, s.label), s.ordering == "scan")
	e.checkAlive(r)
	if !done {
		r.problem("gave up waiting: %d of %d delivered", t.delivered, t.expected)
	}
	return sideResult{r: r, calls: perDelivery(commandDelta(before, after), t.delivered)}
}

// registerOrdered creates the side's endpoint on a new receiver, with its ordering.
func (e *env) registerOrdered(ctx context.Context, s orderedSide) error {
	rcv, err := e.receiver(receiverConfig{})
	if err != nil {
		return err
	}
	ep, err := e.api.createEndpoint(ctx, rcv.URL(s.label), allEvents, s.ordering)
	if ep.ID != "" {
		e.endpoints = append(e.endpoints, ep.ID)
	}
	if err != nil {
		return fmt.Errorf("register endpoint %s: %w", s.label, err)
	}
	rcv.expect(s.label, ep.Secret, 200)
	return nil
}

// scanPublisher publishes scan events through the API.
func (e *env) scanPublisher() scanPublishFunc {
	return func(ctx context.Context, typ, scanID string, sentAt time.Time, seq int) (string, error) {
		p, err := e.api.publishEvent(ctx, typ, scanID, sentAt, seq)
		return p.ID, err
	}
}

// addOrder adds the receipt order of the scans' callbacks and their latencies. On an ordered
// endpoint a scan whose second callback arrived first is a problem; on the other it is the
// figure ordering exists to bring to 0.
func (r *runResult) addOrder(t orderTally, ordered bool) {
	r.add("scans checked for receipt order", "", float64(t.checked))
	r.add("scans received out of order", "", float64(t.outOfOrder))
	r.addLatency("first callback latency", t.first)
	r.addLatency("second callback latency", t.second)
	// A gap is negative when the second callback came first: its low end matters too.
	r.addQuantiles("second − first receipt", t.gaps, []quantile{{"p1", 0.01}, {"p50", 0.50}, {"p99", 0.99}})
	if ordered && t.outOfOrder > 0 {
		r.problem("%d of %d scans received their second callback before their first on the ordered endpoint",
			t.outOfOrder, t.checked)
	}
}

// merge adds other's figures, notes and problems to r, each prefixed.
func (r *runResult) merge(prefix string, other *runResult) {
	for _, f := range other.Figures {
		r.add(prefix+f.Name, f.Unit, f.Value)
	}
	for _, n := range other.Notes {
		r.note("%s%s", prefix, n)
	}
	for _, p := range other.Problems {
		r.problem("%s%s", prefix, p)
	}
}

// perDelivery divides each command count by deliveries.
func perDelivery(calls map[string]int64, deliveries int) map[string]float64 {
	out := make(map[string]float64, len(calls))
	if deliveries == 0 {
		return out
	}
	for k, n := range calls {
		out[k] = float64(n) / float64(deliveries)
	}
	return out
}

// commandDifference lists a − b per command, largest difference first, leaving out those
// that differ by less than 0.05, and the total.
func commandDifference(a, b map[string]float64) string {
	diff := make(map[string]float64)
	total := 0.0
	for k, v := range a {
		diff[k] = v - b[k]
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			diff[k] = -v
		}
	}
	names := slices.SortedFunc(maps.Keys(diff), func(x, y string) int {
		return cmp.Or(cmp.Compare(math.Abs(diff[y]), math.Abs(diff[x])), cmp.Compare(x, y))
	})
	var parts []string
	for _, k := range names {
		total += diff[k]
		if math.Abs(diff[k]) >= 0.05 {
			parts = append(parts, fmt.Sprintf("%s %+.2f", k, diff[k]))
		}
	}
	if len(diff) == 0 {
		return ""
	}
	return fmt.Sprintf("total %+.2f: %s", total, strings.Join(parts, ", "))
}
