package registry_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/cert-ix/webhookd"

// moduleRoot walks up from the test's working directory to the directory holding go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's working directory")
		}
		dir = parent
	}
}

// goList runs `go list args...` in the module root and returns its non-empty output lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", append([]string{"list"}, args...)...)
	cmd.Dir = moduleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// nonStandardDeps lists pkg and every package it depends on that is not in the standard library.
func nonStandardDeps(t *testing.T, pkg string) []string {
	t.Helper()
	return goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg)
}

// allowedImports is STYLE.md's table: which of webhookd's packages each package may import.
// cmd/ wires everything; the test helper packages import only what they help with. A package
// missing here fails the test until its place in the graph is decided.
var allowedImports = map[string][]string{
	"signing":               nil,
	"registry":              nil,
	"registry/registrytest": {"registry"},
	"delivery":              {"registry", "signing"},
	"delivery/deliverytest": {"signing"},
	"api":                   {"registry", "delivery", "api/portal"},
	"api/portal":            nil,
	"cmd/webhookd":          {"*"},
	"cmd/webhookbench":      {"*"},
}

// TestImportDirection keeps the package graph the way STYLE.md draws it: for every package of
// the module, each import of ours is one its row allows.
func TestImportDirection(t *testing.T) {
	lines := goList(t, "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...")
	if len(lines) < len(allowedImports) {
		t.Fatalf("go list ./... = %v: the listing is not what this test assumes", lines)
	}
	for _, line := range lines {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		allowed, known := allowedImports[pkg]
		if !known {
			t.Errorf("package %s has no row in allowedImports: decide which of ours it may import", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			dep, ours := strings.CutPrefix(imp, module+"/")
			if ours && !slices.Contains(allowed, dep) && !slices.Contains(allowed, "*") {
				t.Errorf("%s imports %s; STYLE.md allows it %v", pkg, dep, allowed)
			}
		}
	}
	t.Run("signing is stdlib only", func(t *testing.T) {
		deps := nonStandardDeps(t, "./signing")
		if !slices.Equal(deps, []string{module + "/signing"}) {
			t.Errorf("signing depends on non-standard packages: %v", deps)
		}
	})
	t.Run("api uses no Redis or queue client directly", func(t *testing.T) {
		imports := goList(t, "-f", `{{join .Imports "\n"}}`, "./api")
		if !slices.Contains(imports, module+"/registry") {
			t.Fatalf("api imports %v, lacking registry: the listing is not what this test assumes", imports)
		}
		for _, imp := range imports {
			for _, banned := range []string{"github.com/redis/go-redis", "github.com/hibiken/asynq"} {
				if imp == banned || strings.HasPrefix(imp, banned+"/") {
					t.Errorf("api imports %s directly", imp)
				}
			}
		}
	})
}
