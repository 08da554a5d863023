package registry

import (
	"embed"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts of the delivery state machine live in lua/, one file each, with a block that
// says what each KEYS and ARGV entry is. Each runs atomically inside one tenant's hash tag and
// is run by one Go method, which its variable sits above.

//go:embed lua/*.lua
var luaFiles embed.FS

// luaPreamble comes before every script: the constants, key functions, entry encodings and
// helpers the scripts share.
var luaPreamble = "local LEASE = " + strconv.FormatInt(DrainLease.Milliseconds(), 10) + "\n" +
	luaKeys + luaEncodings + luaQueueEntry + luaTypeCodes + mustRead("prelude") + "\n"

func mustRead(name string) string {
	b, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic("registry: missing script " + name)
	}
	return string(b)
}

// script builds a script of the files lua/<name>.lua, in order, after the preamble.
func script(names ...string) *redis.Script {
	body := luaPreamble
	for _, n := range names {
		body += mustRead(n) + "\n"
	}
	return redis.NewScript(body)
}
