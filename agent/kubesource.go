package agent

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// The node label and annotations NVIDIA's mig-manager uses, and Tessera's.
const (
	// ConfigLabel selects a named config of the layouts file.
	ConfigLabel = "nvidia.com/mig.config"
	// StateLabel reports pending, success or failed for it.
	StateLabel = "nvidia.com/mig.config.state"
	// ReasonAnnotation says why the state is not success (Tessera's
	// addition; mig-manager users read it in `kubectl describe node`).
	ReasonAnnotation = "tessera.dev/mig-config-reason"
)

// DefaultLayoutsPath is where the DaemonSet mounts the layouts ConfigMap,
// as NVIDIA's mig-manager does.
const DefaultLayoutsPath = "/etc/tessera/layouts/config.yaml"

// KubeSource is the desired state from the agent's own Node object: the
// nvidia.com/mig.config label names a config of the layouts file (mounted
// from a ConfigMap, exactly as mig-manager reads it), and the
// tessera.dev/mig-layout annotation holds explicit per-GPU layouts that win
// over it. It watches only its node (an informer with a field selector),
// re-reads the layouts file every Poll, and as a Reporter writes
// nvidia.com/mig.config.state back to the node, patching nothing else and
// no other node.
type KubeSource struct {
	client      kubernetes.Interface
	node        string
	layoutsPath string
	poll        time.Duration
	log         *slog.Logger

	// patchMu serializes Report and correctDrift, each from its check to
	// its patch, so neither writes a state the other has replaced.
	patchMu sync.Mutex

	mu         sync.Mutex
	lister     func() (*corev1.Node, error) // set once Run's informer syncs
	reported   bool                         // Report has patched the node
	lastState  string                       // what Report last wrote
	lastReason string
	patchedRV  uint64 // the node's resourceVersion after that patch
}

// KubeSourceOptions configures a KubeSource.
type KubeSourceOptions struct {
	// LayoutsPath is the layouts file; default DefaultLayoutsPath.
	LayoutsPath string
	// Poll is how often the layouts file is checked; default 2 seconds.
	Poll time.Duration
	// Logger receives the source's logs; nil discards them.
	Logger *slog.Logger
}

// NewKubeSource returns a source watching node through client.
func NewKubeSource(client kubernetes.Interface, node string, opts KubeSourceOptions) (*KubeSource, error) {
	if node == "" {
		return nil, errors.New("kubernetes source: the node name is empty (set --node-name, or TESSERA_NODE_NAME from the downward API)")
	}
	if opts.LayoutsPath == "" {
		opts.LayoutsPath = DefaultLayoutsPath
	}
	if opts.Poll <= 0 {
		opts.Poll = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &KubeSource{client: client, node: node, layoutsPath: opts.LayoutsPath, poll: opts.Poll, log: opts.Logger}, nil
}

// Run implements Source.
func (s *KubeSource) Run(ctx context.Context, out chan<- Desired) error {
	factory := informers.NewSharedInformerFactoryWithOptions(s.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.node).String()
		}))
	nodes := factory.Core().V1().Nodes()
	inf := nodes.Informer()
	changed := make(chan struct{}, 1)
	signal := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { signal() },
		UpdateFunc: func(any, any) { signal() },
		DeleteFunc: func(any) { signal() },
	}); err != nil {
		return fmt.Errorf("watch node %s: %w", s.node, err)
	}
	lister := nodes.Lister()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("watch node %s: the informer did not sync", s.node)
	}
	s.mu.Lock()
	s.lister = func() (*corev1.Node, error) { return lister.Get(s.node) }
	s.mu.Unlock()
	s.log.Info("watching node", "node", s.node, "layouts", s.layoutsPath)

	ticker := time.NewTicker(s.poll)
	defer ticker.Stop()
	last := "\x00"
	for {
		d := s.read(ctx)
		s.correctDrift(ctx)
		if d.Revision != last {
			select {
			case out <- d:
				last = d.Revision
			case <-ctx.Done():
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-ticker.C:
		}
	}
}

// read builds the desired state from the cached node and the layouts file.
func (s *KubeSource) read(ctx context.Context) Desired {
	d := Desired{Source: "node " + s.node}
	n, err := s.getNode(ctx)
	if err != nil {
		if apierrors.IsNotFound(err) {
			err = fmt.Errorf("node %s does not exist", s.node)
		}
		d.Err = err
		d.Revision = "error:" + err.Error()
		return d
	}
	config, hasConfig := n.Labels[ConfigLabel]
	explicit, hasExplicit := n.Annotations[LayoutAnnotation]
	h := sha256.New()
	fmt.Fprintf(h, "%t\x00%s\x00%t\x00%s\x00", hasConfig, config, hasExplicit, explicit)
	var errs []error
	if hasConfig {
		d.Source = fmt.Sprintf("node %s label %s=%s (layouts %s)", s.node, ConfigLabel, config, s.layoutsPath)
		d.Config = config
		if config == "" {
			errs = append(errs, fmt.Errorf("label %s is empty; set it to a config of %s", ConfigLabel, s.layoutsPath))
		} else {
			f, data, err := ReadLayouts(s.layoutsPath, config)
			h.Write(data)
			if err != nil {
				errs = append(errs, err)
			}
			d.File = f
		}
	}
	if hasExplicit {
		if hasConfig {
			d.Source += " and annotation " + LayoutAnnotation
		} else {
			d.Source = fmt.Sprintf("node %s annotation %s", s.node, LayoutAnnotation)
		}
		f, err := ParseExplicit("annotation "+LayoutAnnotation, explicit)
		if err != nil {
			errs = append(errs, err)
		}
		d.Explicit = f
	}
	d.Revision = revision(h)
	d.Err = errors.Join(errs...)
	return d
}

// getNode returns the node from the informer's cache, or from the API
// server before the cache has synced.
func (s *KubeSource) getNode(ctx context.Context) (*corev1.Node, error) {
	s.mu.Lock()
	lister := s.lister
	s.mu.Unlock()
	if lister != nil {
		return lister()
	}
	return s.client.CoreV1().Nodes().Get(ctx, s.node, metav1.GetOptions{})
}

// Report implements Reporter: it sets nvidia.com/mig.config.state and the
// reason annotation to the Inventory's state (removing the reason on
// success, and both when nothing is desired). It patches only when the
// state or reason differs from what it last wrote: the informer's cache may
// lag behind its own patches, so the cache is not what it compares with.
func (s *KubeSource) Report(ctx context.Context, inv Inventory) error {
	state, reason := string(inv.State), inv.Reason
	if inv.State == StateFailed && inv.LastError != "" {
		reason += ": " + inv.LastError
	}
	if len(reason) > 1024 {
		reason = reason[:1021] + "..."
	}
	if inv.State == StateSuccess || state == "" {
		reason = ""
	}
	s.patchMu.Lock()
	defer s.patchMu.Unlock()
	s.mu.Lock()
	same := s.reported && s.lastState == state && s.lastReason == reason
	s.mu.Unlock()
	if same {
		return nil
	}
	return s.patchState(ctx, state, reason)
}

// patchState writes the state label and reason annotation ("" removes
// them) and remembers what it wrote.
func (s *KubeSource) patchState(ctx context.Context, state, reason string) error {
	var labelValue, reasonValue any // nil removes the key
	if state != "" {
		labelValue = state
	}
	if reason != "" {
		reasonValue = reason
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels":      map[string]any{StateLabel: labelValue},
		"annotations": map[string]any{ReasonAnnotation: reasonValue},
	}})
	if err != nil {
		return fmt.Errorf("encode node patch: %w", err)
	}
	n, err := s.client.CoreV1().Nodes().Patch(ctx, s.node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "tessera-agent"})
	if err != nil {
		return fmt.Errorf("patch node %s: %w", s.node, err)
	}
	rv, _ := strconv.ParseUint(n.ResourceVersion, 10, 64)
	s.mu.Lock()
	s.reported, s.lastState, s.lastReason, s.patchedRV = true, state, reason, rv
	s.mu.Unlock()
	s.log.Info("reported state", "node", s.node, "state", state, "reason", reason)
	return nil
}

// correctDrift writes the state again when someone else changed or removed
// the state label after the agent wrote it: the label is kept level with
// the agent's state, not only written on changes. A cached node older than
// the agent's own patch is not drift (the cache lags its own writes).
func (s *KubeSource) correctDrift(ctx context.Context) {
	s.patchMu.Lock()
	defer s.patchMu.Unlock()
	s.mu.Lock()
	reported, state, reason, patched := s.reported, s.lastState, s.lastReason, s.patchedRV
	s.mu.Unlock()
	if !reported || patched == 0 {
		return
	}
	n, err := s.getNode(ctx)
	if err != nil {
		return
	}
	rv, err := strconv.ParseUint(n.ResourceVersion, 10, 64)
	if err != nil || rv <= patched {
		return
	}
	have, ok := n.Labels[StateLabel]
	if (state == "" && !ok) || (state != "" && have == state) {
		return
	}
	s.log.Info("state label changed by someone else; writing it again", "node", s.node, "found", have, "state", state)
	if err := s.patchState(ctx, state, reason); err != nil {
		s.log.Warn("restore state label", "error", err)
	}
}
