package registry

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Key functions, for the package's external tests that look at Redis from outside.
var (
	DrainKeyOf    = drainKey
	DeliveryKeyOf = deliveryKey
	QueueKeyOf    = endpointQueueKey
)

// EventMinuteKeyOf is the key of the minute hash an event id's record is kept in.
func EventMinuteKeyOf(tb testing.TB, tid, evid string) string {
	h, ok := eventMinute(evid)
	if !ok {
		tb.Fatalf("%s is no UUIDv7 event id", evid)
	}
	return eventMinuteKey(tid, h)
}

// EventFieldOf is a UUIDv7 event's field in its minute's hash.
func EventFieldOf(evid string) string { return eventField(evid) }

// LaneFieldOf is a lane's compact field in a day's scan index.
func LaneFieldOf(lane string) string { return laneField(lane) }

// TypeCodes are the event types compact records name by a code.
var TypeCodes = typeCodes

// KeptFieldOf is a kept delivery's field in its minute's hash.
func KeptFieldOf(did string) string { return keptField(did) }

// KeptKeyOf is the key of the hash that keeps the first-attempt successes created at created.
func KeptKeyOf(tid string, created time.Time) string {
	return keptKey(tid, created.UnixMilli()/minuteMs)
}

// Key functions of the records the compatibility tests write as an earlier version did.
var (
	EventKeyOf       = eventKey
	LegacyEventKeyOf = legacyEventKey
	IdempotencyKeyOf = idempotencyKey
	EventsKeyOf      = eventsKey
	ScanEventsKeyOf  = scanEventsKey
)

// ScanIndexKeyOf is the key of a tenant's scan index of one day.
var ScanIndexKeyOf = scanIndexKey

// PageOf is Store.pageOf with its score range as strings.
func (s *Store) PageOf(ctx context.Context, keys []string, min, max string, pg Page) ([]string, int, error) {
	return s.pageOf(ctx, keys, scoreRange{min, max}, pg)
}

// ShallowPage is how deep a union's page may end and still be read from the top of each set.
const ShallowPage = shallowPage

// AuthWaiting is how many Authenticate calls naming key kid wait for the next group.
func (s *Store) AuthWaiting(kid string, defaultPerMinute int) int {
	return s.auth.inLine(authSubject(kid, defaultPerMinute))
}

// PublishWaiting is how many PublishEvents calls of tenant tid with that quota wait for the
// next group.
func (s *Store) PublishWaiting(tid string, quota int64) int {
	return s.publishes.inLine(publishSubject(tid, quota, false))
}

// SetGroupWait sets how long a group may run before the calls in line behind it go alone.
func (s *Store) SetGroupWait(d time.Duration) { s.auth.wait, s.publishes.wait = d, d }

// SetGroupMax sets the most events one group of publishes holds.
func (s *Store) SetGroupMax(n int) { s.publishes.max = n }

// GroupMax is the most events one group of publishes holds.
const GroupMax = groupMax

// ScriptBytesOf runs the scripts' bytesOf on hex through rdb.
func ScriptBytesOf(ctx context.Context, rdb redis.Scripter, hex string) (string, error) {
	return redis.NewScript(withLibrary(luaPreamble, "return bytesOf(ARGV[1])\n")).Run(ctx, rdb, nil, hex).Text()
}
