package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"strconv"

	"github.com/cert-ix/webhookd/registry"
	"github.com/google/uuid"
)

// net/http answers some requests before any handler runs: a request line or header it cannot
// parse, a path with bad percent-encoding, a control character in a header value, headers over
// the limit, an unknown transfer coding or Expect value. It writes those answers as plain text
// straight to the connection, and neither Handler, ErrorLog nor ConnState can change them. This
// file is the one place that does: it wraps each accepted connection and replaces such an answer
// with the error envelope before it reaches the client.
//
// Written for the net/http of Go 1.26 (server.go, conn.serve and response.sendExpectationFailed):
// those answers are each one Write of "HTTP/1.1 <status>" followed at once by the headers below,
// an order no response of a handler can have (net/http writes handler headers sorted, so
// Connection would come first), or a 417, which no route answers. TestUnparsableRequestsGetTheEnvelope
// fails if a later Go writes them otherwise.
const plainErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// envelopeListener wraps each accepted connection in an envelopeConn.
type envelopeListener struct {
	net.Listener
	log *slog.Logger
}

func (l envelopeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &envelopeConn{Conn: c, log: l.log}, nil
}

// envelopeConn replaces net/http's own plain-text error answers with the error envelope.
type envelopeConn struct {
	net.Conn
	log *slog.Logger
}

func (c *envelopeConn) Write(p []byte) (int, error) {
	code, ok := serverRefusal(p)
	if !ok {
		return c.Conn.Write(p)
	}
	rid := uuid.NewString()
	c.log.Info("request refused by the HTTP parser", "requestId", rid, "code", string(code),
		"remoteIp", remoteIP(c.RemoteAddr()))
	if _, err := c.Conn.Write(envelopeResponse(code, rid)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite lets net/http half-close the connection after a refusal, as it does unwrapped.
func (c *envelopeConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// serverRefusal reports whether p is an answer net/http wrote itself, and the code that
// replaces it: HEADERS_TOO_LARGE for its 431, MALFORMED_REQUEST for anything else.
func serverRefusal(p []byte) (registry.Code, bool) {
	const proto = "HTTP/1.1 "
	if len(p) < len(proto)+3 || !bytes.HasPrefix(p, []byte(proto)) {
		return "", false
	}
	status := string(p[len(proto) : len(proto)+3])
	if status == "417" {
		return registry.CodeMalformedRequest, true
	}
	line := bytes.IndexByte(p, '\r')
	if line < 0 || !bytes.HasPrefix(p[line:], []byte(plainErrorHeaders)) {
		return "", false
	}
	if status == "431" {
		return registry.CodeHeadersTooLarge, true
	}
	return registry.CodeMalformedRequest, true
}

// envelopeResponse is a whole HTTP/1.1 answer carrying the error envelope of code; the
// connection closes after it, as net/http's own answer would.
func envelopeResponse(code registry.Code, rid string) []byte {
	status, msg := render(code, nil)
	body, _ := json.Marshal(ErrorBody{Success: false, Error: msg, Code: string(code), RequestID: rid})
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 " + strconv.Itoa(status) + " " + statusText(status) + "\r\n")
	b.WriteString("Connection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n")
	b.WriteString("Content-Type: application/json\r\nX-Request-Id: " + rid + "\r\n\r\n")
	b.Write(body)
	return b.Bytes()
}

func statusText(status int) string {
	if status == 431 {
		return "Request Header Fields Too Large"
	}
	return "Bad Request"
}

func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return a.String()
}
