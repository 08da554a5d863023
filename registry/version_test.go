package registry_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/redis/go-redis/v9"
)

func TestCheckVersionRealServer(t *testing.T) {
	v, err := registry.CheckVersion(t.Context(), registrytest.Client(t))
	if err != nil {
		t.Fatalf("CheckVersion on the real redis-server: %v", err)
	}
	if !strings.Contains(v, ".") {
		t.Errorf("CheckVersion = %q, want a dotted version", v)
	}
}

// TestCheckVersionFakeServer talks to a tiny RESP server that claims a given version, so the
// refusal of old servers is proven end to end through go-redis.
func TestCheckVersionFakeServer(t *testing.T) {
	cases := []struct {
		version string
		tooOld  bool
	}{
		{"6.0.9", true},
		{"5.0.14", true},
		{"6.1.99", true},
		{"6.2.0", false},
		{"6.2.14", false},
		{"6.10.1", false}, // numeric, not lexical, comparison
		{"7.0.15", false},
		{"7.4.2", false},
	}
	for _, c := range cases {
		t.Run(c.version, func(t *testing.T) {
			info := "# Server\r\nredis_version:" + c.version + "\r\nredis_git_sha1:00000000\r\nredis_mode:standalone\r\n"
			v, err := registry.CheckVersion(t.Context(), fakeRedisClient(t, info))
			if v != c.version {
				t.Errorf("CheckVersion version = %q, want %q", v, c.version)
			}
			if !c.tooOld {
				if err != nil {
					t.Errorf("CheckVersion(%s) = %v, want accepted", c.version, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckVersion(%s) accepted an old server", c.version)
			}
			for _, want := range []string{"too old", c.version, registry.MinRedisVersion} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("CheckVersion(%s) error %q does not mention %q", c.version, err, want)
				}
			}
		})
	}
	t.Run("INFO server refused (the embedded Redis)", func(t *testing.T) {
		m := miniredis.RunT(t)
		c := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { c.Close() })
		_, err := registry.CheckVersion(t.Context(), c)
		if err == nil || !strings.Contains(err.Error(), "redis-server") || !strings.Contains(err.Error(), "embedded") {
			t.Errorf("CheckVersion on miniredis = %v, want an error saying redis-server is needed", err)
		}
	})
	t.Run("no version", func(t *testing.T) {
		_, err := registry.CheckVersion(t.Context(), fakeRedisClient(t, "# Server\r\nredis_mode:standalone\r\n"))
		if err == nil || !strings.Contains(err.Error(), "redis_version") {
			t.Errorf("CheckVersion without redis_version = %v, want an error naming redis_version", err)
		}
	})
}

// fakeRedisClient starts a RESP server on 127.0.0.1:0 that answers INFO with info, PING with
// PONG and every other command (HELLO, CLIENT SETINFO, ...) with an error, and returns a client on it.
func fakeRedisClient(t *testing.T, info string) redis.UniversalClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveFakeRedis(c, info)
		}
	}()
	c := redis.NewClient(&redis.Options{Addr: l.Addr().String(), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

func serveFakeRedis(c net.Conn, info string) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		args, err := readRESPCommand(r)
		if err != nil {
			return
		}
		switch strings.ToUpper(args[0]) {
		case "INFO":
			_, err = fmt.Fprintf(c, "$%d\r\n%s\r\n", len(info), info)
		case "PING":
			_, err = io.WriteString(c, "+PONG\r\n")
		default:
			_, err = fmt.Fprintf(c, "-ERR unknown command '%s'\r\n", args[0])
		}
		if err != nil {
			return
		}
	}
}

// readRESPCommand reads one command: an array of bulk strings.
func readRESPCommand(r *bufio.Reader) ([]string, error) {
	n, err := readRESPLength(r, '*')
	if err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, errors.New("empty command")
	}
	args := make([]string, 0, n)
	for range n {
		size, err := readRESPLength(r, '$')
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args = append(args, string(buf[:size]))
	}
	return args, nil
}

func readRESPLength(r *bufio.Reader, kind byte) (int, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 3 || line[0] != kind {
		return 0, fmt.Errorf("want %c, got %q", kind, line)
	}
	return strconv.Atoi(strings.TrimSuffix(line[1:], "\r\n"))
}
