package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"regexp"
	"testing"
)

// TestAttackKey checks that each key of the attack is one the manager accepts on its own:
// IDs that are user IDs, distinct across keys, within 4 MiB unpacked, and that two packed
// keys fit a ConfigMap's 1 MiB.
func TestAttackKey(t *testing.T) {
	userID := regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
	seen := map[string]int{}
	for _, k := range []int{0, attackConfigMaps*attackKeys - 1} {
		packed, err := attackKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if len(packed) > (1<<20)/attackKeys-1024 {
			t.Errorf("key %d: %d bytes packed; %d keys would not fit a ConfigMap", k, len(packed), attackKeys)
		}
		z, err := gzip.NewReader(bytes.NewReader(packed))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(z)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) > 4<<20 {
			t.Errorf("key %d: %d bytes unpacked, more than the 4 MiB the manager reads of a key", k, len(raw))
		}
		lines := bufio.NewScanner(bytes.NewReader(raw))
		n := 0
		for ; lines.Scan(); n++ {
			id := lines.Text()
			if !userID.MatchString(id) {
				t.Fatalf("key %d, line %d: %q is not a user ID", k, n+1, id)
			}
			if prev, ok := seen[id]; ok {
				t.Fatalf("key %d: %q is in key %d too", k, id, prev)
			}
			seen[id] = k
		}
		if n != attackIDs {
			t.Errorf("key %d: %d IDs, want %d", k, n, attackIDs)
		}
	}
}
