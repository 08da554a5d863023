package registry

import "testing"

// idBytes reads "evt_" and 32 lowercase hex digits, and nothing else; idOfBytes gives the id back.
func TestIDBytes(t *testing.T) {
	id := "evt_0193a1b2c3d47e5f8a9b0c1d2e3f4a5b"
	b, ok := idBytes(id)
	if !ok || len(b) != 16 || idOfBytes(b) != id {
		t.Fatalf("idBytes(%q) = %q, %t; idOfBytes gives %q", id, b, ok, idOfBytes(b))
	}
	if ms, ok := eventTime(id); !ok || ms != 0x0193a1b2c3d4 {
		t.Errorf("eventTime(%q) = %d, %t; want %d", id, ms, ok, 0x0193a1b2c3d4)
	}
	for _, bad := range []string{"evt_0193A1B2C3D47E5F8A9B0C1D2E3F4A5B", "evt_0193a1b2c3d47e5f8a9b0c1d2e3f4a5g",
		"evt_0193a1b2c3d47e5f8a9b0c1d2e3f4a5", "xyz_0193a1b2c3d47e5f8a9b0c1d2e3f4a5b", "scan-42", ""} {
		if b, ok := idBytes(bad); ok {
			t.Errorf("idBytes(%q) = %q, want refused", bad, b)
		}
		if _, ok := eventTime(bad); ok {
			t.Errorf("eventTime(%q) read a time", bad)
		}
	}
	if _, ok := eventTime("evt_0193a1b2c3d46e5f8a9b0c1d2e3f4a5b"); ok {
		t.Error("eventTime read a time from an id that is no UUIDv7")
	}
}
