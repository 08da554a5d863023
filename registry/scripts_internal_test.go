package registry

import (
	"strings"
	"testing"
)

// TestWithLibrary: a script gets the definitions it calls, directly or through another, in the
// library's order with their comments; not those only a comment names, nor the rest.
func TestWithLibrary(t *testing.T) {
	defs := splitDefs(`-- the library's head
local A = 1
-- b uses A
local function b()
  -- inside b

  return A
end
local c, d = {}, {}
local function unused() return c end
-- e mentions unused only here
local function e() return d end
`)
	if len(defs) != 5 {
		t.Fatalf("split into %d definitions, want 5: %q", len(defs), defs)
	}
	got := withLibrary(defs, "return b() + e() -- not unused()\n")
	want := "-- the library's head\nlocal A = 1\n-- b uses A\nlocal function b()\n  -- inside b\n\n  return A\nend\n" +
		"local c, d = {}, {}\n-- e mentions unused only here\nlocal function e() return d end\n\nreturn b() + e() -- not unused()\n"
	if got != want {
		t.Errorf("withLibrary =\n%s\nwant\n%s", got, want)
	}
}

// TestScriptsCarryWhatTheyCall: every helper a script calls is defined before it runs (a
// missing one would fail only when its line runs), a script that writes later (addLater,
// setLater) flushes, and a script does not carry the whole preamble.
func TestScriptsCarryWhatTheyCall(t *testing.T) {
	all := map[string]bool{}
	for _, d := range luaPreamble {
		for _, n := range d.names {
			all[n] = true
		}
	}
	full := 0
	for _, d := range luaPreamble {
		full += len(d.text)
	}
	for _, names := range deliveryScripts(t) {
		var body strings.Builder
		for _, n := range names {
			body.WriteString(mustRead(n) + "\n")
		}
		src := withLibrary(luaPreamble, body.String())
		defined := map[string]bool{}
		for _, d := range splitDefs(src[:len(src)-body.Len()]) {
			for _, n := range d.names {
				defined[n] = true
			}
		}
		for id := range identifiers(src) {
			if all[id] && !defined[id] {
				t.Errorf("script %v calls %s but does not define it", names, id)
			}
		}
		ids := identifiers(src)
		if (ids["addLater"] || ids["setLater"]) && !strings.Contains(body.String(), "flush()") {
			t.Errorf("script %v writes through addLater or setLater but never calls flush", names)
		}
		if lib := len(src) - body.Len(); lib > full*3/4 {
			t.Errorf("script %v carries %d of the preamble's %d bytes", names, lib, full)
		}
	}
}

// deliveryScripts lists the files of lua/ that script builds, as it is called for them.
func deliveryScripts(t *testing.T) [][]string {
	entries, err := luaFiles.ReadDir("lua")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, e := range entries {
		switch name := strings.TrimSuffix(e.Name(), ".lua"); name {
		case "prelude", "health", "gcra", "authenticate": // libraries, and the rate limits' own
		case "finish":
			out = append(out, []string{"health", name})
		default:
			out = append(out, []string{name})
		}
	}
	return out
}
