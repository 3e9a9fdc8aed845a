package migconfig

import (
	"fmt"
	"sort"
	"strings"
)

// Catalog maps GPU models to their MIG profile tables, keyed by PCI device
// ID, by NVML product name and by Tessera's short key. A Catalog is
// immutable once built; lookups return pointers into it that callers must
// not modify.
type Catalog struct {
	models     []GPUModel
	byDeviceID map[uint32]int
	byName     map[string]int
	byKey      map[string]int
}

// NewCatalog builds a catalog from models. It refuses duplicate keys, device
// IDs or product names, and profiles whose placements do not fit the
// model's memory-slice axis.
func NewCatalog(models ...GPUModel) (*Catalog, error) {
	c := &Catalog{
		byDeviceID: map[uint32]int{},
		byName:     map[string]int{},
		byKey:      map[string]int{},
	}
	for i, m := range models {
		if err := checkModel(m); err != nil {
			return nil, err
		}
		if _, dup := c.byKey[m.Key]; dup {
			return nil, fmt.Errorf("catalog: duplicate model key %q", m.Key)
		}
		c.byKey[m.Key] = i
		for _, id := range m.DeviceIDs {
			if j, dup := c.byDeviceID[id]; dup {
				return nil, fmt.Errorf("catalog: device ID %#08x belongs to both %s and %s", id, models[j].Key, m.Key)
			}
			c.byDeviceID[id] = i
		}
		for _, n := range append([]string{m.Name}, m.ProductNames...) {
			k := normalizeProductName(n)
			if j, dup := c.byName[k]; dup && j != i {
				return nil, fmt.Errorf("catalog: product name %q belongs to both %s and %s", n, models[j].Key, m.Key)
			}
			c.byName[k] = i
		}
		c.models = append(c.models, m)
	}
	return c, nil
}

func checkModel(m GPUModel) error {
	if m.Key == "" || m.MemorySlices <= 0 || m.MemorySlices > 16 {
		return fmt.Errorf("catalog: model %q: needs a key and 1..16 memory slices", m.Key)
	}
	seenID := map[ProfileID]bool{}
	seenName := map[string]bool{}
	for _, p := range m.Profiles {
		if seenID[p.ID] || seenName[p.Name] {
			return fmt.Errorf("catalog: model %s: duplicate profile %s (ID %d)", m.Key, p.Name, p.ID)
		}
		seenID[p.ID], seenName[p.Name] = true, true
		for _, pl := range p.Placements {
			if pl.Size != p.MemorySlices || pl.Start < 0 || pl.Start+pl.Size > m.MemorySlices {
				return fmt.Errorf("catalog: model %s: profile %s: placement %s does not fit %d memory slices of size %d",
					m.Key, p.Name, pl, m.MemorySlices, p.MemorySlices)
			}
		}
	}
	return nil
}

// normalizeProductName lowercases a product name and drops NVIDIA's
// "NVIDIA " prefix and go-nvml's mock "Mock " prefix, so "NVIDIA
// A100-SXM4-40GB" and "A100-SXM4-40GB" are the same key.
func normalizeProductName(n string) string {
	n = strings.ToLower(strings.TrimSpace(n))
	n = strings.TrimPrefix(n, "mock ")
	n = strings.TrimPrefix(n, "nvidia ")
	return n
}

// Models returns the catalog's models in the order they were given.
func (c *Catalog) Models() []GPUModel { return c.models }

// ByDeviceID returns the model with PCI device ID id (0xDDDDVVVV).
func (c *Catalog) ByDeviceID(id uint32) (*GPUModel, bool) {
	i, ok := c.byDeviceID[id]
	if !ok {
		return nil, false
	}
	return &c.models[i], true
}

// ByName returns the model with the given product name; "NVIDIA " prefixes
// and case do not matter.
func (c *Catalog) ByName(name string) (*GPUModel, bool) {
	i, ok := c.byName[normalizeProductName(name)]
	if !ok {
		return nil, false
	}
	return &c.models[i], true
}

// ByKey returns the model with Tessera's short key ("a100-40gb").
func (c *Catalog) ByKey(key string) (*GPUModel, bool) {
	i, ok := c.byKey[strings.ToLower(key)]
	if !ok {
		return nil, false
	}
	return &c.models[i], true
}

// Keys returns the short keys of every model, sorted.
func (c *Catalog) Keys() []string {
	keys := make([]string, 0, len(c.models))
	for _, m := range c.models {
		keys = append(keys, m.Key)
	}
	sort.Strings(keys)
	return keys
}

// Lookup finds the model of an observed GPU: by PCI device ID first, then
// by product name.
func (c *Catalog) Lookup(g GPUState) (*GPUModel, bool) {
	if m, ok := c.ByDeviceID(g.DeviceID); ok {
		return m, true
	}
	return c.ByName(g.Name)
}

// WithModel returns a new catalog in which m replaces the model with the
// same key (or is added). The agent uses it to let a table read from NVML
// win over the built-in one.
func (c *Catalog) WithModel(m GPUModel) (*Catalog, error) {
	models := make([]GPUModel, 0, len(c.models)+1)
	replaced := false
	for _, old := range c.models {
		if old.Key == m.Key {
			models = append(models, m)
			replaced = true
			continue
		}
		models = append(models, old)
	}
	if !replaced {
		models = append(models, m)
	}
	return NewCatalog(models...)
}
