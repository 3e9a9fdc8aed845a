package dcgm

import (
	"math"

	"github.com/tessera-gpu/tessera/metrics"
)

// sample is one field value DCGM returned (dcgmFieldValue_v2), copied
// out of go-dcgm's type so the conversion is testable without cgo.
type sample struct {
	// EntityID is the FE_GPU_I entity the value belongs to.
	EntityID uint
	// FieldID is the DCGM field ID.
	FieldID uint16
	// Type is the DCGM field type: 'd' (double) or 'i' (int64).
	Type byte
	// Status is the DCGM return code for this value; 0 is OK.
	Status int
	// Int is the value when Type is 'i'.
	Int int64
	// Float is the value when Type is 'd'.
	Float float64
}

// value returns the sample as a float64, or NaN when DCGM has no value:
// a non-OK status, a blank sentinel (DCGM_FP64_BLANK / DCGM_INT64_BLANK
// and the NOT_FOUND, NOT_SUPPORTED, NOT_PERMISSIONED values above them),
// a type other than double or int64, or a value that is not finite.
func (s sample) value() float64 {
	if s.Status != statusOK {
		return math.NaN()
	}
	switch s.Type {
	case typeDouble:
		if math.IsNaN(s.Float) || math.IsInf(s.Float, 0) || s.Float >= fp64Blank {
			return math.NaN()
		}
		return s.Float
	case typeInt64:
		if s.Int >= int64Blank {
			return math.NaN()
		}
		return float64(s.Int)
	}
	return math.NaN()
}

// blankProfile is a Profile with every field blank.
func blankProfile() metrics.Profile {
	return metrics.Profile{GraphicsEngineActive: math.NaN(), SMActive: math.NaN(), DRAMActive: math.NaN()}
}

// profilesFrom turns the samples read for a plan's entities into
// Profiles keyed by slice UUID. A field without a usable sample is NaN;
// a slice whose GPU instance has no usable field at all is left out.
// notWatched reports that DCGM answered DCGM_ST_NOT_WATCHED for some
// value, so the group must be watched anew.
func profilesFrom(samples []sample, p plan) (profiles map[string]metrics.Profile, notWatched bool) {
	byEntity := make(map[uint]*metrics.Profile, len(p.entities))
	for _, s := range samples {
		if s.Status == statusNotWatched {
			notWatched = true
		}
		if _, wanted := p.slices[s.EntityID]; !wanted {
			continue
		}
		prof, ok := byEntity[s.EntityID]
		if !ok {
			b := blankProfile()
			prof = &b
			byEntity[s.EntityID] = prof
		}
		v := s.value()
		switch s.FieldID {
		case fieldGREngineActive:
			prof.GraphicsEngineActive = v
		case fieldSMActive:
			prof.SMActive = v
		case fieldDRAMActive:
			prof.DRAMActive = v
		}
	}

	profiles = make(map[string]metrics.Profile)
	for entity, prof := range byEntity {
		if math.IsNaN(prof.GraphicsEngineActive) && math.IsNaN(prof.SMActive) && math.IsNaN(prof.DRAMActive) {
			continue
		}
		for _, uuid := range p.slices[entity] {
			profiles[uuid] = *prof
		}
	}
	return profiles, notWatched
}
