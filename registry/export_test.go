package registry

import "context"

// QueuedItem is Store.QueuedItem, for the package's external tests.
func QueuedItem(ctx context.Context, s *Store, tid, eid, did string) (QueueItem, bool, error) {
	return s.QueuedItem(ctx, tid, eid, did)
}
