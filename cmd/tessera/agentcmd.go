package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tessera-gpu/tessera/agent"
	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/migconfig"
	"github.com/tessera-gpu/tessera/podresources"
)

// agentOptions are the flags of `tessera agent`.
type agentOptions struct {
	source        string
	agentConfig   string
	layoutsFile   string
	nodeName      string
	kubeconfig    string
	backend       string
	simState      string
	policy        string
	busyTimeout   time.Duration
	busyPoll      time.Duration
	resync        time.Duration
	poll          time.Duration
	preApplyHook  string
	postApplyHook string
	hookTimeout   time.Duration
	statusAddress string
	logFormat     string
	logLevel      string

	devicePlugin       bool
	migStrategy        string
	devicePluginDir    string
	deviceListStrategy string
	cdiKind            string
	ignoredXids        []uint
	podResources       string
	recoverAfter       time.Duration

	metrics metricsOptions
}

func newAgentCommand() *cobra.Command {
	o := &agentOptions{}
	cat := migconfig.Builtin()
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: keep the MIG layout as desired and publish the node's slices",
		Long: `Run the node agent, Tessera's replacement for NVIDIA's mig-manager. It keeps
this node's MIG layout equal to the desired state and publishes what the node
has. It reconciles at start, whenever the desired state changes, every
--resync, and after errors with capped exponential backoff; an agent stopped
at any point converges when it starts again.

Where the desired state comes from (--source):
  file        --agent-config (default /etc/tessera/agent.yaml) names a layout
              file in mig-parted's format and the config to apply:
                  layouts: layouts.yaml
                  config: all-balanced
              Both files are re-read when they change and on SIGHUP.
  kubernetes  this node's nvidia.com/mig.config label names a config of
              --layouts-file (the ConfigMap NVIDIA's mig-manager reads), and
              the tessera.dev/mig-layout annotation can give explicit per-GPU
              layouts that win over it. The agent writes
              nvidia.com/mig.config.state (pending, success, failed) back.

A change that must destroy a MIG instance with processes on it follows
--busy-policy: wait (hold that part back, apply the rest, retry until
--busy-timeout), fail (change nothing) or force. A layout that cannot be
applied is refused before the first NVML call.

The status is served on --status-address (loopback by default): GET /status
(JSON) and /healthz; 'tessera agent status' prints it as a table.

Prometheus metrics are served on --metrics-address (GET /metrics): per GPU
(utilisation, memory, power, temperature, SM clock, MIG mode, ECC and Xid
counts) and per slice (memory, profile, placement, health, processes, and
DCGM's engine activity when DCGM is installed), labelled with the pod that
owns each slice (from the kubelet's pod-resources API). Triton servers
(--triton-target, the triton list of --agent-config, and on Kubernetes the
pods owning slices here) are scraped and re-exported per model with request,
failure and inference rates, pending requests and the average queue, compute
and end-to-end time per request over --triton-window.`,
		Example: `  tessera agent --source file --agent-config /etc/tessera/agent.yaml
  tessera agent --source kubernetes --node-name "$NODE_NAME"
  tessera agent --backend sim:h100-80gb:2 --agent-config ./agent.yaml --status-address 127.0.0.1:9471
  tessera agent --triton-target http://127.0.0.1:8002/metrics --metrics-address :9472
  tessera agent status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), o, cat, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.source, "source", "file", "where the desired state comes from: file or kubernetes")
	f.StringVar(&o.agentConfig, "agent-config", agent.DefaultConfigPath, "with --source file: the agent configuration file (layouts, config)")
	f.StringVar(&o.layoutsFile, "layouts-file", agent.DefaultLayoutsPath, "with --source kubernetes: the layout file the nvidia.com/mig.config label selects from")
	f.StringVar(&o.nodeName, "node-name", "", "this node's name (default: the host name; on Kubernetes set it from the downward API)")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "with --source kubernetes: kubeconfig file (default: in-cluster config, else $KUBECONFIG)")
	f.StringVar(&o.backend, "backend", "nvml", backendUsage(cat))
	f.StringVar(&o.simState, "sim-state", "", "with a sim: backend, keep the simulated node's state in this file")
	f.StringVar(&o.policy, "busy-policy", string(agent.PolicyWait), "when a change must destroy a busy MIG instance: wait, fail or force")
	f.DurationVar(&o.busyTimeout, "busy-timeout", 10*time.Minute, "with --busy-policy wait: how long to wait before the state turns failed")
	f.DurationVar(&o.busyPoll, "busy-poll", 5*time.Second, "how often held-back work is retried")
	f.DurationVar(&o.resync, "resync", time.Minute, "period of reconcile passes when nothing changes")
	f.DurationVar(&o.poll, "poll", 2*time.Second, "how often the configuration and layout files are checked for changes")
	f.StringVar(&o.preApplyHook, "pre-apply-hook", "", "shell command run before an apply that changes something; if it fails nothing is changed")
	f.StringVar(&o.postApplyHook, "post-apply-hook", "", "shell command run after such an apply ($TESSERA_RESULT says how it went)")
	f.DurationVar(&o.hookTimeout, "hook-timeout", 5*time.Minute, "time limit of each hook run")
	f.StringVar(&o.statusAddress, "status-address", agent.DefaultStatusAddress, `address of the status server (/status, /healthz); "" turns it off`)
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.BoolVar(&o.devicePlugin, "device-plugin", true, "advertise the slices to the kubelet as nvidia.com/* resources (waits for the kubelet's socket; harmless without a kubelet)")
	f.StringVar(&o.migStrategy, "mig-strategy", string(deviceplugin.StrategyMixed), "how slices become resources, as NVIDIA's device plugin: mixed (nvidia.com/mig-<profile>), single (nvidia.com/gpu) or none (whole GPUs)")
	f.StringVar(&o.devicePluginDir, "device-plugin-dir", "/var/lib/kubelet/device-plugins/", "the kubelet's device-plugin folder (holds kubelet.sock)")
	f.StringVar(&o.deviceListStrategy, "device-list-strategy", string(deviceplugin.ListEnvVar), "how a container gets its devices: envvar (NVIDIA_VISIBLE_DEVICES), cdi-annotations or cdi-cri")
	f.StringVar(&o.cdiKind, "cdi-kind", "nvidia.com/gpu", "with a cdi-* device list strategy: the CDI vendor/class of device names")
	f.UintSliceVar(&o.ignoredXids, "ignored-xids", toUints(deviceplugin.DefaultIgnoredXids()), "Xids that do not make a slice unhealthy (application errors)")
	f.DurationVar(&o.recoverAfter, "health-recover-after", 5*time.Minute, "a slice hit by a critical Xid is probed through NVML this long after its last Xid, and healthy again if NVML answers")
	f.StringVar(&o.podResources, "pod-resources-socket", podresources.DefaultSocket, `the kubelet's pod-resources socket: slices allocated to pods are never re-laid out; "" turns it off`)
	o.metrics.addFlags(f)
	cmd.AddCommand(newAgentStatusCommand())
	return cmd
}

func (o *agentOptions) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, withStatus(exitUsage, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel))
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, withStatus(exitUsage, fmt.Errorf("--log-format %q: want text or json", o.logFormat))
}

func runAgent(ctx context.Context, o *agentOptions, cat *migconfig.Catalog, stderr io.Writer) error {
	log, err := o.logger(stderr)
	if err != nil {
		return err
	}
	policy, err := agent.ParsePolicy(o.policy)
	if err != nil {
		return withStatus(exitUsage, err)
	}
	if o.nodeName == "" {
		if o.nodeName, err = os.Hostname(); err != nil {
			return fmt.Errorf("node name: %w (set --node-name)", err)
		}
	}

	var (
		src    agent.Source
		reload func()
		client kubernetes.Interface
	)
	switch o.source {
	case "file":
		fs := agent.NewFileSource(o.agentConfig, o.poll)
		src, reload = fs, fs.Reload
	case "kubernetes":
		cfg, err := kubeConfig(o.kubeconfig)
		if err != nil {
			return err
		}
		if client, err = kubernetes.NewForConfig(cfg); err != nil {
			return fmt.Errorf("kubernetes client: %w", err)
		}
		ks, err := agent.NewKubeSource(client, o.nodeName, agent.KubeSourceOptions{LayoutsPath: o.layoutsFile, Poll: o.poll, Logger: log})
		if err != nil {
			return withStatus(exitUsage, err)
		}
		src = ks
	default:
		return withStatus(exitUsage, fmt.Errorf("unknown --source %q: want file or kubernetes", o.source))
	}

	// Every flag is checked before anything starts.
	var dpOpts deviceplugin.Options
	if o.devicePlugin {
		if dpOpts, err = o.devicePluginOptions(log); err != nil {
			return err
		}
	}
	withMetrics := o.metrics.address != ""
	if withMetrics {
		if err := o.metrics.check(); err != nil {
			return err
		}
	}
	// SIGHUP is caught from here on: its default action would end the
	// process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	b, err := openBackend(ctx, cat, o.backend, o.simState, log)
	if err != nil {
		return err
	}
	// Every goroutine that uses the node ends before NVML shuts down.
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		if err := b.close(); err != nil {
			log.Error("close", "error", err)
		}
	}()

	a := agent.New(b.node, src, agent.Options{
		Catalog:     b.cat,
		NodeName:    o.nodeName,
		Policy:      policy,
		BusyTimeout: o.busyTimeout,
		BusyPoll:    o.busyPoll,
		Resync:      o.resync,
		Hooks:       agent.Hooks{PreApply: o.preApplyHook, PostApply: o.postApplyHook, Timeout: o.hookTimeout},
		Logger:      log,
	})
	var mr *metricsRuntime
	if withMetrics {
		if mr, err = newMetricsRuntime(ctx, &o.metrics, b.node, log); err != nil {
			return err
		}
		defer mr.close(log) // after wg.Wait: nothing collects any more
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // runs before wg.Wait: the goroutines see ctx done
	errc := make(chan error, 4)
	running := 0
	start := func(f func() error) {
		running++
		wg.Add(1)
		go func() { defer wg.Done(); errc <- f() }()
	}
	background := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	start(func() error { return a.Run(ctx) })
	if o.statusAddress != "" {
		start(func() error {
			return agent.ServeStatus(ctx, a, o.statusAddress, 3*o.resync+time.Minute, func(addr net.Addr) {
				log.Info("status server", "address", addr.String())
			})
		})
	}
	background(func() { notifySystemd(ctx, a, b, log) })
	allocated := []func(map[string]podresources.Owner){func(owners map[string]podresources.Owner) { a.SetAllocated(podresources.IDs(owners)) }}
	var health chan deviceplugin.HealthEvent
	var observeXid func(gpu.XidEvent)
	if o.devicePlugin {
		dpOpts.Probe = b.node.ProbeDevice
		dpOpts.OnHealth = a.SetUnhealthy
		if mr != nil {
			dpOpts.OnHealth = func(unhealthy map[string]string) {
				a.SetUnhealthy(unhealthy)
				mr.collector.SetUnhealthy(unhealthy)
			}
		}
		dp := deviceplugin.New(dpOpts)
		health = make(chan deviceplugin.HealthEvent, 64)
		invs, unsubscribe := a.Subscribe()
		start(func() error {
			defer unsubscribe()
			return dp.Run(ctx, invs, health)
		})
		allocated = append(allocated, func(owners map[string]podresources.Owner) { dp.SetAllocated(podresources.IDs(owners)) })
	}
	if mr != nil {
		observeXid = mr.collector.ObserveXid
		allocated = append(allocated, mr.collector.SetOwners, mr.targets.setOwners)
		start(func() error { return mr.serve(ctx, o.nodeName, o.metrics.address, log) })
		background(func() { mr.scraper.Run(ctx, o.metrics.tritonInterval) })
		background(func() {
			var pods podLister
			if client != nil && o.metrics.tritonDiscovery {
				var err error
				if pods, err = nodePods(ctx, client, o.nodeName); err != nil {
					log.Warn("Triton pods are not discovered; only listed targets are scraped", "error", err)
				}
			}
			mr.refreshTargets(ctx, o, a, pods, log)
		})
	}
	if health != nil || observeXid != nil {
		background(func() { watchHealth(ctx, b, health, observeXid, log) })
	}
	if o.podResources != "" {
		background(func() { watchAllocations(ctx, o.podResources, allocated, log) })
	}

	log.Info("agent started", "node", o.nodeName, "source", o.source, "backend", o.backend, "policy", string(policy))
	var firstErr error
	for running > 0 {
		select {
		case <-hup:
			log.Info("SIGHUP: reloading the desired state")
			if reload != nil {
				reload()
			}
			a.Trigger()
		case err := <-errc:
			running--
			if err != nil && firstErr == nil {
				firstErr = err
				cancel()
			}
			if err == nil && ctx.Err() == nil {
				cancel()
			}
		}
	}
	log.Info("agent stopped")
	return firstErr
}

// devicePluginOptions checks the device plugin's flags.
func (o *agentOptions) devicePluginOptions(log *slog.Logger) (deviceplugin.Options, error) {
	strategy, err := deviceplugin.ParseStrategy(o.migStrategy)
	if err != nil {
		return deviceplugin.Options{}, withStatus(exitUsage, err)
	}
	list, err := deviceplugin.ParseListStrategy(o.deviceListStrategy)
	if err != nil {
		return deviceplugin.Options{}, withStatus(exitUsage, err)
	}
	ignored := make([]uint64, len(o.ignoredXids))
	for i, x := range o.ignoredXids {
		ignored[i] = uint64(x)
	}
	return deviceplugin.Options{
		Strategy: strategy, PluginDir: o.devicePluginDir, ListStrategy: list, CDIKind: o.cdiKind,
		IgnoredXids: ignored, RecoverAfter: o.recoverAfter, Logger: log.With("component", "device-plugin"),
	}, nil
}

// watchHealth watches NVML's Xid events, watching again after a failure,
// and hands each to health (the device plugin's health events) and observe
// (the metrics' Xid counter), either of which may be nil.
func watchHealth(ctx context.Context, b *backend, health chan<- deviceplugin.HealthEvent, observe func(gpu.XidEvent), log *slog.Logger) {
	xids := make(chan gpu.XidEvent, 64)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case x := <-xids:
				log.Warn("Xid", "gpu", x.GPUIndex, "uuid", x.GPUUUID, "xid", x.Xid, "gi", x.GPUInstanceID, "ci", x.ComputeInstanceID)
				if observe != nil {
					observe(x)
				}
				if health == nil {
					continue
				}
				select {
				case health <- deviceplugin.HealthEvent{GPUIndex: x.GPUIndex, GPUInstanceID: x.GPUInstanceID, ComputeInstanceID: x.ComputeInstanceID, Xid: x.Xid}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	for {
		err := b.node.WatchXids(ctx, xids)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, gpu.ErrNoXidGPU) {
			log.Warn("no GPU reports Xid events; slice health is not watched", "error", err)
			return
		}
		log.Error("watching Xid events; retrying in 5s", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// watchAllocations reads the kubelet's pod-resources API every 2 seconds
// and tells the sinks (the agent, the device plugin, the metrics) which
// devices pods hold and whose they are.
func watchAllocations(ctx context.Context, socket string, sinks []func(map[string]podresources.Owner), log *slog.Logger) {
	lastErr := ""
	podresources.Poll(ctx, socket, deviceplugin.ResourcePrefix, 2*time.Second, func(owners map[string]podresources.Owner) {
		if lastErr != "" {
			log.Info("pod-resources API reachable", "socket", socket)
			lastErr = ""
		}
		for _, sink := range sinks {
			sink(owners)
		}
	}, func(err error) {
		if err.Error() != lastErr {
			lastErr = err.Error()
			log.Debug("pod-resources API unavailable; allocations unknown", "error", err)
		}
	})
}

func toUints(v []uint64) []uint {
	out := make([]uint, len(v))
	for i, x := range v {
		out[i] = uint(x)
	}
	return out
}

// notifySystemd tells systemd (Type=notify) that the agent is ready once
// its first pass has published, and keeps its status line current. It also
// saves a simulated node's state after every change. Without
// $NOTIFY_SOCKET the notifications are no-ops.
func notifySystemd(ctx context.Context, a *agent.Agent, b *backend, log *slog.Logger) {
	ch, stop := a.Subscribe()
	defer stop()
	ready := false
	for {
		select {
		case <-ctx.Done():
			_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
			return
		case inv := <-ch:
			msg := "STATUS=" + statusLine(inv)
			if !ready {
				msg = daemon.SdNotifyReady + "\n" + msg
				ready = true
			}
			if _, err := daemon.SdNotify(false, msg); err != nil {
				log.Warn("sd_notify", "error", err)
			}
			if b.sim != nil && b.statePath != "" {
				if data, err := b.sim.MarshalJSON(); err == nil {
					if err := writeFileAtomic(b.statePath, data); err != nil {
						log.Warn("save simulated state", "error", err)
					}
				}
			}
		}
	}
}

// statusLine is one line for systemctl status.
func statusLine(inv agent.Inventory) string {
	s := string(inv.State)
	if s == "" {
		s = "observing (nothing desired)"
	}
	if inv.Desired != nil && inv.Desired.Config != "" {
		s += ", config " + inv.Desired.Config
	}
	s += fmt.Sprintf(", %d GPUs, %d slices", len(inv.GPUs), len(inv.Slices()))
	if inv.Reason != "" && inv.State != agent.StateSuccess {
		s += ": " + inv.Reason
	}
	return strings.ReplaceAll(s, "\n", " ")
}

// kubeConfig returns the REST config: the kubeconfig file when given, else
// the in-cluster config, else $KUBECONFIG or ~/.kube/config.
func kubeConfig(path string) (*rest.Config, error) {
	if path != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err == nil {
		return cfg, nil
	}
	if !errors.Is(err, rest.ErrNotInCluster) {
		return nil, fmt.Errorf("in-cluster config: %w", err)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("not in a cluster and no usable kubeconfig (give --kubeconfig): %w", err)
	}
	return cfg, nil
}

func newAgentStatusCommand() *cobra.Command {
	var address, output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print a running agent's status: GPUs, layouts desired and applied, slices, held-back work, errors",
		Long: `Print the status of the agent running on this node, read from its status
server: the state, where the desired layout comes from, each GPU's layout
desired and applied, the slices, held-back work and the last error.

Exit status: 0 when the node has its desired layout (or nothing is desired),
3 when the state is pending or failed, 1 when the agent cannot be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "table", "json", "yaml":
			default:
				return withStatus(exitUsage, fmt.Errorf("unknown output format %q: want table, json or yaml", output))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			inv, err := agent.FetchStatus(ctx, address)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "table" {
				err = agent.WriteStatus(out, inv)
			} else {
				err = writeStructured(out, output, inv)
			}
			if err != nil {
				return err
			}
			if inv.State == agent.StateFailed || inv.State == agent.StatePending {
				return withStatus(exitNotInSync, fmt.Errorf("the node is not in its desired layout: %s", inv.State))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&address, "status-address", agent.DefaultStatusAddress, "the agent's status server address")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}
