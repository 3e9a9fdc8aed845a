// Package agent is Tessera's node agent: it keeps one node's MIG layout equal
// to the desired state and publishes what the node has.
//
// An Agent is level-triggered, like a Kubernetes controller. Every pass
// observes the GPUs through gpu.Node, resolves the desired state from a
// Source against what it observed (refusing an impossible layout before any
// NVML call), applies migconfig.DiffNode's operations with a busy policy
// (wait, fail or force), observes again, and publishes an Inventory. It
// keeps no record of earlier applies that the GPUs do not show, so an agent
// killed at any point — even between two NVML calls of one apply —
// converges on its next pass.
//
// Sources: FileSource reads /etc/tessera/agent.yaml and the layout file it
// names (systemd and bare metal); KubeSource watches the agent's own Node
// for NVIDIA's nvidia.com/mig.config label and Tessera's
// tessera.dev/mig-layout annotation, and writes nvidia.com/mig.config.state
// back, so the agent replaces NVIDIA's mig-manager in place. Any other
// Source (the scheduler's channel) plugs in the same way.
//
// Subscribers (the device plugin, metrics, status) receive every new
// Inventory version over a channel that never blocks the reconciler.
package agent
