package triton

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/tessera-gpu/tessera/podresources"
)

// Target is one Triton metrics endpoint and the labels copied onto every
// series scraped from it (empty ones are exported as "").
type Target struct {
	// URL of the metrics page, e.g. http://10.0.0.7:8002/metrics. It
	// identifies the target: SetTargets keeps the state of a URL it
	// already had.
	URL string
	// Slice is the MIG device UUID(s) the server runs on, comma-joined
	// if several.
	Slice string
	// MigProfile is the slice's MIG profile, e.g. "1g.10gb".
	MigProfile string
	// GPU is the index of the parent GPU.
	GPU string
	// Pod, Namespace and Container are the Kubernetes owner of the slice.
	Pod, Namespace, Container string
}

// Pod annotations that PodTargets reads.
const (
	// AnnotationMetricsPort is the port of the pod's Triton metrics
	// endpoint (default DefaultMetricsPort).
	AnnotationMetricsPort = "tessera.dev/metrics-port"
	// AnnotationMetricsPath is the path of the pod's Triton metrics
	// endpoint (default DefaultMetricsPath).
	AnnotationMetricsPath = "tessera.dev/metrics-path"
)

// Defaults of the metrics endpoint: Triton's --metrics-port and path.
const (
	DefaultMetricsPort = 8002
	DefaultMetricsPath = "/metrics"
)

// Pod is the part of a Kubernetes pod that PodTargets needs.
type Pod struct {
	Namespace, Name, IP string
	Annotations         map[string]string
}

// SliceInfo describes a device the agent knows: the MIG profile of a slice
// and the index of its parent GPU.
type SliceInfo struct {
	MigProfile, GPU string
}

// PodTargets turns the pods that own devices into scrape targets: one
// target per pod (not per container) that owns at least one device in
// owners (keyed by device ID, the MIG UUID for slices, as
// podresources.List returns it) and has an IP. Pods without devices or
// without an IP yet are skipped silently; a pod whose annotations are
// invalid is skipped and reported in the returned errors, one per pod.
//
// The URL is http://IP:port/path with the port from AnnotationMetricsPort
// and the path from AnnotationMetricsPath (IPv6 addresses bracketed). Slice
// is the pod's device IDs, sorted and comma-joined; MigProfile and GPU are
// the distinct values from slices for those devices (sorted, comma-joined;
// empty for devices slices does not know); Container is the distinct
// owning containers, sorted and comma-joined. Targets are sorted by URL;
// a pod whose URL another pod already has (host-network pods) is reported
// as an error.
func PodTargets(pods []Pod, owners map[string]podresources.Owner, slices map[string]SliceInfo) ([]Target, []error) {
	type owned struct{ devices, containers []string }
	byPod := map[[2]string]*owned{}
	for id, o := range owners {
		k := [2]string{o.Namespace, o.Pod}
		if byPod[k] == nil {
			byPod[k] = &owned{}
		}
		byPod[k].devices = append(byPod[k].devices, id)
		byPod[k].containers = append(byPod[k].containers, o.Container)
	}

	var targets []Target
	var errs []error
	for _, p := range pods {
		own := byPod[[2]string{p.Namespace, p.Name}]
		if own == nil || p.IP == "" {
			continue
		}
		u, err := podURL(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err))
			continue
		}
		var profiles, gpus []string
		for _, id := range own.devices {
			if si, ok := slices[id]; ok {
				profiles = append(profiles, si.MigProfile)
				gpus = append(gpus, si.GPU)
			}
		}
		targets = append(targets, Target{
			URL:        u,
			Slice:      joinDistinct(own.devices),
			MigProfile: joinDistinct(profiles),
			GPU:        joinDistinct(gpus),
			Pod:        p.Name,
			Namespace:  p.Namespace,
			Container:  joinDistinct(own.containers),
		})
	}
	sort.SliceStable(targets, func(i, j int) bool { return targets[i].URL < targets[j].URL })
	out := targets[:0]
	for i, t := range targets {
		if i > 0 && t.URL == targets[i-1].URL {
			errs = append(errs, fmt.Errorf("pod %s/%s: metrics URL %s is also pod %s/%s's; skipped",
				t.Namespace, t.Pod, t.URL, targets[i-1].Namespace, targets[i-1].Pod))
			continue
		}
		out = append(out, t)
	}
	return out, errs
}

// podURL builds the metrics URL of a pod from its IP and annotations.
func podURL(p Pod) (string, error) {
	addr, err := netip.ParseAddr(p.IP)
	if err != nil {
		return "", fmt.Errorf("IP %q: not an IP address", p.IP)
	}
	port := DefaultMetricsPort
	if v, ok := p.Annotations[AnnotationMetricsPort]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("annotation %s=%q: not a port number (1-65535)", AnnotationMetricsPort, v)
		}
		port = n
	}
	path := DefaultMetricsPath
	if v, ok := p.Annotations[AnnotationMetricsPath]; ok {
		path = strings.TrimSpace(v)
	}
	ref, err := url.ParseRequestURI(path)
	if err != nil || ref.Scheme != "" || ref.Host != "" || !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("annotation %s=%q: not an absolute path", AnnotationMetricsPath, path)
	}
	u := url.URL{
		Scheme:   "http",
		Host:     net.JoinHostPort(addr.String(), strconv.Itoa(port)),
		Path:     ref.Path,
		RawPath:  ref.RawPath,
		RawQuery: ref.RawQuery,
	}
	return u.String(), nil
}

// joinDistinct sorts the non-empty values, drops duplicates and joins them
// with commas.
func joinDistinct(vs []string) string {
	vs = append([]string(nil), vs...)
	sort.Strings(vs)
	out := vs[:0]
	for i, v := range vs {
		if v == "" || (i > 0 && v == vs[i-1]) {
			continue
		}
		out = append(out, v)
	}
	return strings.Join(out, ",")
}
