package registry

import (
	"encoding/json"
	"slices"
	"sort"
)

func contains(list []string, s string) bool { return slices.Contains(list, s) }

// dedupe keeps the first occurrence of each value, in order.
func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func nonNil(in []string) []string {
	if in == nil {
		return []string{}
	}
	return in
}

func sortKeys(keys []*APIKey) {
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].CreatedAt.Equal(keys[j].CreatedAt) {
			return keys[i].ID < keys[j].ID
		}
		return keys[i].CreatedAt.Before(keys[j].CreatedAt)
	})
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
