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

// TestImportDirection keeps the package graph the way STYLE.md draws it.
func TestImportDirection(t *testing.T) {
	t.Run("signing is stdlib only", func(t *testing.T) {
		deps := nonStandardDeps(t, "./signing")
		if !slices.Equal(deps, []string{module + "/signing"}) {
			t.Errorf("signing depends on non-standard packages: %v", deps)
		}
	})
	t.Run("registry imports nothing of ours", func(t *testing.T) {
		deps := nonStandardDeps(t, "./registry")
		if !slices.Contains(deps, "github.com/redis/go-redis/v9") {
			t.Fatalf("go list -deps ./registry = %v lacks go-redis: the listing is not what this test assumes", deps)
		}
		for _, d := range deps {
			if (d == module || strings.HasPrefix(d, module+"/")) && d != module+"/registry" {
				t.Errorf("registry depends on %s", d)
			}
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
