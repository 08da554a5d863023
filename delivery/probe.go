package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrUnreachable is wrapped by Probe when no HTTP answer came back from a webhook URL.
var ErrUnreachable = errors.New("webhook url unreachable")

const defaultProbeTimeout = 5 * time.Second

// Probe makes one real HEAD request to url, sending userAgent, bounded by ctx and timeout
// (default 5s). Any HTTP answer counts as reachable whatever its status, since receivers
// often reject HEAD or unsigned requests; DNS failure, refused connection, TLS failure,
// timeout or a blocked address yield an error wrapping ErrUnreachable (and, if blocked,
// ErrBlockedAddress). The error message never contains the URL's path or query.
func Probe(ctx context.Context, client *http.Client, url, userAgent string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = defaultProbeTimeout
	}
	// The probe's connection is closed, not pooled: a delivery must make its own DNS lookup
	// and connect-time address check even when the API and the workers share one client.
	header := http.Header{"User-Agent": []string{userAgent}, "Connection": []string{"close"}}
	res := attempt(ctx, client, http.MethodHead, url, header, nil, timeout)
	if res.Err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, res.Err)
	}
	return nil
}
