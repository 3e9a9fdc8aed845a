// Package deviceplugin advertises a node's MIG slices to the kubelet as
// extended resources, exactly as NVIDIA's k8s-device-plugin names them
// (nvidia.com/mig-1g.10gb, nvidia.com/gpu), so existing pod specs move over
// unchanged.
//
// A Manager runs one v1beta1 device plugin per resource, each a gRPC server
// on its own socket in the kubelet's device-plugin folder, fed by the node
// agent's Inventory: a re-layout reaches the kubelet as a new device list
// within the same pass, with no restart; a profile that appears gets its
// server and one whose last slice disappears is withdrawn; a restarted
// kubelet (a new kubelet.sock) gets every plugin registered again.
//
// Allocate returns NVIDIA_VISIBLE_DEVICES with the MIG UUIDs (or CDI names)
// and refuses unknown and unhealthy devices; GetPreferredAllocation packs
// allocations onto the GPUs that already hold the most, so whole GPUs stay
// free for re-layout. Critical Xids mark only the slices of the instance
// they name (or the whole GPU) unhealthy; application Xids are ignored.
package deviceplugin
