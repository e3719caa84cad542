package config

import (
	"fmt"
	"sort"

	"k8s.io/component-base/featuregate"
)

// ContainerCheckpoint gates the kubelet checkpoint API (beta and on by default
// in the kubelet since 1.30).
const ContainerCheckpoint featuregate.Feature = "ContainerCheckpoint"

// UserNamespacesSupport gates hostUsers: false; GA and locked on in the
// kubelet since 1.36, so a configuration that names it keeps working and
// one that turns it off is refused, as by the kubelet.
const UserNamespacesSupport featuregate.Feature = "UserNamespacesSupport"

// knownGates are the kubelet feature gates knode implements. An unknown gate is
// an error, as in the kubelet, so a typo never silently changes nothing.
var knownGates = map[featuregate.Feature]featuregate.FeatureSpec{
	ContainerCheckpoint:   {Default: true, PreRelease: featuregate.Beta},
	UserNamespacesSupport: {Default: true, PreRelease: featuregate.GA, LockToDefault: true},
}

// FeatureGates is the set of gates in force for one agent.
type FeatureGates struct {
	gate featuregate.MutableFeatureGate
}

// NewFeatureGates returns gates at their defaults with overrides applied.
func NewFeatureGates(overrides map[string]bool) (*FeatureGates, error) {
	g := featuregate.NewFeatureGate()
	if err := g.Add(knownGates); err != nil {
		return nil, fmt.Errorf("register feature gates: %w", err)
	}
	if len(overrides) > 0 {
		if err := g.SetFromMap(overrides); err != nil {
			return nil, fmt.Errorf("feature gates: %w", err)
		}
	}
	return &FeatureGates{gate: g}, nil
}

// Enabled reports whether the gate is on.
func (f *FeatureGates) Enabled(name featuregate.Feature) bool { return f.gate.Enabled(name) }

// Map returns every known gate and its value, for /configz and logs.
func (f *FeatureGates) Map() map[string]bool {
	out := make(map[string]bool, len(knownGates))
	for name := range knownGates {
		out[string(name)] = f.gate.Enabled(name)
	}
	return out
}

// KnownGates lists the gate names knode understands, sorted.
func KnownGates() []string {
	names := make([]string, 0, len(knownGates))
	for name := range knownGates {
		names = append(names, string(name))
	}
	sort.Strings(names)
	return names
}
