// Package delivery sends webhook events to tenants' endpoints and decides what each
// attempt means.
//
// NewHTTPClient builds the only client allowed to talk to tenant URLs: it checks every
// resolved address right before connecting, so neither a hostile hostname nor a DNS answer
// that changes after validation can reach private or internal networks. Probe uses it when
// an endpoint is registered; Send uses it for each delivery attempt, and Classify turns the
// attempt's result into an Outcome. RetryPolicy holds the stateless backoff schedule that
// asynq applies between attempts.
//
// Errors carried in a Result or returned by Probe are meant to be stored and shown to the
// tenant, so they never contain a URL's path or query or any header value: those may hold
// tokens and signatures.
package delivery
