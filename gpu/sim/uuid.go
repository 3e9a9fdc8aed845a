package sim

import (
	"encoding/binary"
	"fmt"
)

// mix hashes its inputs with splitmix64 steps; it is the only source of
// "randomness" in the simulation, so runs are reproducible.
func mix(vals ...uint64) uint64 {
	h := uint64(0x9E3779B97F4A7C15)
	for _, v := range vals {
		h = splitmix(h ^ v)
	}
	return h
}

func splitmix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

// formatUUID formats 128 bits from two hashes as an RFC 4122 version-4
// UUID.
func formatUUID(hi, lo uint64) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	b[6] = b[6]&0x0F | 0x40
	b[8] = b[8]&0x3F | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// gpuUUID returns the UUID of GPU index on a node with the given seed.
func gpuUUID(seed uint64, index int) string {
	return "GPU-" + formatUUID(mix(seed, 0x475055, uint64(index), 1), mix(seed, 0x475055, uint64(index), 2))
}

// migUUID returns the UUID of the serial-th MIG device created on a node.
func migUUID(seed uint64, gpuIndex int, serial uint64) string {
	return "MIG-" + formatUUID(mix(seed, 0x4d4947, uint64(gpuIndex), serial, 1), mix(seed, 0x4d4947, uint64(gpuIndex), serial, 2))
}

// shuffledIDs returns 0..n-1 in a deterministic order derived from key.
func shuffledIDs(n int, key uint64) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(mix(key, uint64(i)) % uint64(i+1))
		ids[i], ids[j] = ids[j], ids[i]
	}
	return ids
}
