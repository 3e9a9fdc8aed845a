package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tessera-gpu/tessera/internal/httpserve"
)

// DefaultStatusAddress is where the agent serves /status and /healthz: on
// loopback, so only the node itself can read it unless configured
// otherwise.
const DefaultStatusAddress = "127.0.0.1:9471"

// StatusHandler serves the agent's status over HTTP:
//
//	GET /status   the latest Inventory as JSON
//	GET /healthz  200 "ok" while the reconciler runs and has passed within
//	              maxAge, 503 with the reason otherwise
func StatusHandler(a *Agent, maxAge time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(a.Inventory())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := a.Healthy(maxAge); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// ServeStatus serves StatusHandler on addr until ctx is done. ready, if not
// nil, receives the address actually bound (addr may have port 0).
func ServeStatus(ctx context.Context, a *Agent, addr string, maxAge time.Duration, ready func(net.Addr)) error {
	return httpserve.Serve(ctx, "status server", addr, StatusHandler(a, maxAge), ready)
}

// FetchStatus reads the Inventory from an agent's status server at addr
// ("127.0.0.1:9471" or a URL).
func FetchStatus(ctx context.Context, addr string) (Inventory, error) {
	url := addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	url = strings.TrimSuffix(url, "/") + "/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Inventory{}, fmt.Errorf("status %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Inventory{}, fmt.Errorf("status %s: %w (is the agent running? its address is --status-address)", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return Inventory{}, fmt.Errorf("status %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	var inv Inventory
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&inv); err != nil {
		return Inventory{}, fmt.Errorf("status %s: decode: %w", url, err)
	}
	return inv, nil
}

// WriteStatus prints an Inventory for people: the state, the desired
// source, one row per GPU with its layouts desired and applied, the slices,
// held-back work and errors.
func WriteStatus(w io.Writer, inv Inventory) error {
	node := inv.Node
	if node == "" {
		node = "(this node)"
	}
	state := string(inv.State)
	if state == "" {
		state = "nothing desired (observing only)"
	}
	fmt.Fprintf(w, "node:     %s\n", node)
	fmt.Fprintf(w, "state:    %s\n", state)
	if inv.Reason != "" {
		fmt.Fprintf(w, "reason:   %s\n", inv.Reason)
	}
	if d := inv.Desired; d != nil {
		fmt.Fprintf(w, "desired:  %s\n", d.Source)
		if d.Config != "" {
			fmt.Fprintf(w, "config:   %s\n", d.Config)
		}
		if len(d.Explicit) > 0 {
			fmt.Fprintf(w, "explicit: GPUs %s (annotation %s wins over the config)\n", joinInts(d.Explicit), LayoutAnnotation)
		}
	}
	if !inv.ObservedAt.IsZero() {
		fmt.Fprintf(w, "observed: %s (version %d)\n", inv.ObservedAt.Format(time.RFC3339), inv.Version)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GPU\tMODEL\tMIG\tSYNC\tAPPLIED\tDESIRED")
	for _, g := range inv.GPUs {
		model := g.Model
		if model == "" {
			model = g.Name
		}
		mig := "off"
		switch {
		case g.MigEnabled && g.MigPending:
			mig = "on"
		case g.MigEnabled:
			mig = "on (off after reset)"
		case g.MigPending:
			mig = "off (on after reset)"
		}
		sync := "-"
		if g.Selected {
			sync = "yes"
			if !g.InSync {
				sync = "no"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", g.Index, model, mig, sync, g.Applied, dash(g.Desired))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if slices := inv.Slices(); len(slices) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SLICE\tGPU\tPROFILE\tPLACEMENT\tBUSY\tHEALTHY")
		for _, s := range slices {
			busy := "no"
			switch {
			case s.Busy && s.Allocated:
				busy = fmt.Sprintf("yes (pod; pids %v)", s.Processes)
			case s.Busy:
				busy = fmt.Sprintf("yes (pids %v)", s.Processes)
			case s.Allocated:
				busy = "yes (allocated to a pod)"
			}
			healthy := "yes"
			if !s.Healthy {
				healthy = "no (" + s.Unhealthy + ")"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", s.UUID, s.GPUIndex, s.Profile, s.Placement, busy, healthy)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(inv.HeldBack) > 0 {
		since := ""
		if !inv.HeldSince.IsZero() {
			since = " since " + inv.HeldSince.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "\nheld back%s:\n", since)
		for _, h := range inv.HeldBack {
			fmt.Fprintf(w, "  %s: %s\n", h.Op, h.Reason)
		}
	}
	if len(inv.PendingReset) > 0 {
		fmt.Fprintf(w, "\nwaiting for a GPU reset or reboot: GPUs %s\n", joinInts(inv.PendingReset))
	}
	if inv.LastError != "" {
		fmt.Fprintf(w, "\nlast error: %s\n", inv.LastError)
	}
	for _, n := range inv.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
