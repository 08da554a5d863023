package registry

import (
	"embed"
	"regexp"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts of the delivery state machine live in lua/, one file each, with a block that
// says what each KEYS and ARGV entry is. Each runs atomically inside one tenant's hash tag (but
// a publish with a key check on a single Redis: keycheck.go) and is run by one Go method, which
// its variable sits above.

//go:embed lua/*.lua
var luaFiles embed.FS

// luaPreamble is what the scripts share: the constants, key functions, entry encodings and
// helpers. A script gets the part of it that it uses (withLibrary).
var luaPreamble = splitDefs("local LEASE = " + strconv.FormatInt(DrainLease.Milliseconds(), 10) + "\n" +
	luaKeys + luaEncodings + luaQueueEntry + luaTypeCodes + mustRead("prelude") + "\n" + mustRead("gcra") + "\n")

func mustRead(name string) string {
	b, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic("registry: missing script " + name)
	}
	return string(b)
}

// script builds a script of the files lua/<name>.lua, in order, after what it uses of the
// preamble.
func script(names ...string) *redis.Script {
	var body strings.Builder
	for _, n := range names {
		body.WriteString(mustRead(n) + "\n")
	}
	return redis.NewScript(withLibrary(luaPreamble, body.String()))
}

// luaDef is one top-level definition of a library of `local` definitions (a function, a
// constant, a table), with the comment above it.
type luaDef struct {
	text  string
	names []string
}

// splitDefs cuts a library into its top-level definitions. A definition starts at a line
// "local ..." at the margin and takes every line up to the next one; comments and blank lines
// at the margin just before a definition are its own.
func splitDefs(lib string) []luaDef {
	var defs []luaDef
	pending := ""
	for _, line := range strings.SplitAfter(lib, "\n") {
		switch trimmed := strings.TrimSpace(line); {
		case strings.HasPrefix(line, "local "):
			defs = append(defs, luaDef{text: pending + line, names: definedNames(line)})
			pending = ""
		case trimmed == "" || strings.HasPrefix(line, "--"):
			pending += line
		case len(defs) == 0:
			panic("registry: a script library must start with a local definition: " + line)
		default:
			defs[len(defs)-1].text += pending + line
			pending = ""
		}
	}
	return defs
}

var luaIdent = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)

// definedNames reads the names a "local" line defines: "local function f(" or "local a, b = ...".
func definedNames(line string) []string {
	rest := strings.TrimPrefix(line, "local ")
	if f, ok := strings.CutPrefix(rest, "function "); ok {
		return luaIdent.FindAllString(f, 1)
	}
	lhs, _, _ := strings.Cut(rest, "=")
	return luaIdent.FindAllString(lhs, -1)
}

// withLibrary is body after the definitions of defs it uses, directly or through another
// definition, in the library's order. Every call of a script makes its definitions again
// (Redis runs a script's text as one function) and collects them as garbage, so a script
// carries only what it calls. Names are matched as Lua identifiers outside comments; a name a
// string happens to spell only brings in a definition the script does not need.
func withLibrary(defs []luaDef, body string) string {
	seen := identifiers(body)
	used := make([]bool, len(defs))
	for grew := true; grew; {
		grew = false
		for i, d := range defs {
			if used[i] || !anyIn(d.names, seen) {
				continue
			}
			used[i], grew = true, true
			for id := range identifiers(d.text) {
				seen[id] = true
			}
		}
	}
	var out strings.Builder
	for i, d := range defs {
		if used[i] {
			out.WriteString(d.text)
		}
	}
	out.WriteString("\n")
	out.WriteString(body)
	return out.String()
}

var luaComment = regexp.MustCompile(`--[^\n]*`)

func identifiers(text string) map[string]bool {
	ids := map[string]bool{}
	for _, id := range luaIdent.FindAllString(luaComment.ReplaceAllString(text, ""), -1) {
		ids[id] = true
	}
	return ids
}

func anyIn(names []string, set map[string]bool) bool {
	for _, n := range names {
		if set[n] {
			return true
		}
	}
	return false
}
