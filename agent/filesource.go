package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tessera-gpu/tessera/migconfig"
	"go.yaml.in/yaml/v3"
)

// DefaultConfigPath is where the agent's file source looks by default.
const DefaultConfigPath = "/etc/tessera/agent.yaml"

// Config is the agent's configuration file (/etc/tessera/agent.yaml): which
// layout file to read and which of its configs the node should have.
//
//	layouts: layouts.yaml   # mig-parted format; relative to this file
//	config: all-balanced    # a key of its mig-configs; empty: observe only
type Config struct {
	// Layouts is the layout file's path, relative to the config file's
	// folder unless absolute.
	Layouts string `yaml:"layouts"`
	// Config is the selected config name; empty means nothing is desired
	// and the agent only observes.
	Config string `yaml:"config"`
	// Triton lists Triton servers whose metrics the agent scrapes and
	// re-exports (see package metrics/triton); on Kubernetes the pods that
	// own slices are found without being listed.
	Triton []TritonTarget `yaml:"triton"`
}

// TritonTarget is a Triton server named in the agent configuration.
type TritonTarget struct {
	// URL is its metrics page, e.g. http://127.0.0.1:8002/metrics.
	URL string `yaml:"url"`
	// Slice is the MIG device UUID the server runs on, if any; its
	// profile and GPU then label the server's metrics.
	Slice string `yaml:"slice"`
}

// ParseConfig parses an agent configuration file; name is used in errors.
// Unknown keys are errors, so a typo does not pass silently.
func ParseConfig(name string, data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			msgs := make([]string, len(te.Errors))
			for i, m := range te.Errors {
				m = strings.Replace(m, " in type agent.Config", " (the keys are layouts, config and triton)", 1)
				m = strings.Replace(m, " into agent.Config", "; want a mapping with the keys layouts, config and triton", 1)
				msgs[i] = name + ":" + strings.TrimPrefix(m, "line ")
			}
			return Config{}, errors.New(strings.Join(msgs, "\n"))
		}
		return Config{}, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	for i, t := range c.Triton {
		u, err := url.Parse(t.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Config{}, fmt.Errorf("%s: triton[%d].url %q: want an http:// or https:// URL of a metrics page", name, i, t.URL)
		}
	}
	if c.Config != "" && c.Layouts == "" {
		return Config{}, fmt.Errorf("%s: config %q is selected but no layouts file is named (add \"layouts: PATH\")", name, c.Config)
	}
	return c, nil
}

// FileSource is the desired state from the agent's configuration file and
// the layout file it names, for systemd and bare-metal nodes. Both files are
// read at start, checked for changes every Poll (a write, a rename, a
// ConfigMap's symlink swap all show), and read again on Reload (SIGHUP).
type FileSource struct {
	// Path is the agent configuration file.
	Path string
	// Poll is how often the files are checked; default 2 seconds.
	Poll time.Duration

	reload chan struct{}
}

// NewFileSource returns a source reading the configuration file at path.
func NewFileSource(path string, poll time.Duration) *FileSource {
	if poll <= 0 {
		poll = 2 * time.Second
	}
	return &FileSource{Path: path, Poll: poll, reload: make(chan struct{}, 1)}
}

// Reload makes Run read the files again and send the desired state even if
// it has not changed. It never blocks.
func (s *FileSource) Reload() {
	select {
	case s.reload <- struct{}{}:
	default:
	}
}

// Run implements Source.
func (s *FileSource) Run(ctx context.Context, out chan<- Desired) error {
	ticker := time.NewTicker(s.Poll)
	defer ticker.Stop()
	last := "\x00" // never a revision
	force := true
	for {
		d := s.read()
		if force || d.Revision != last {
			select {
			case out <- d:
				last = d.Revision
			case <-ctx.Done():
				return nil
			}
		}
		force = false
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-s.reload:
			force = true
		}
	}
}

// read reads both files into a Desired; problems become Desired.Err.
func (s *FileSource) read() Desired {
	d := Desired{Source: "file " + s.Path}
	data, err := os.ReadFile(s.Path)
	if err != nil {
		d.Err = fmt.Errorf("read agent config: %w", err)
		d.Revision = "error:" + d.Err.Error()
		return d
	}
	h := sha256.New()
	h.Write(data)
	cfg, err := ParseConfig(s.Path, data)
	if err != nil {
		d.Err, d.Revision = err, revision(h)
		return d
	}
	if cfg.Config == "" {
		d.Revision = revision(h)
		return d
	}
	path := cfg.Layouts
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(s.Path), path)
	}
	d.Source = fmt.Sprintf("file %s (layouts %s)", s.Path, path)
	d.Config = cfg.Config
	f, layoutData, err := ReadLayouts(path, cfg.Config)
	h.Write(layoutData)
	d.Revision = revision(h)
	if err != nil {
		d.Err = err
		return d
	}
	d.File = f
	return d
}

// ReadLayouts reads and parses a layout file in mig-parted's format and
// checks that it has config (when not empty). It returns the bytes read, so
// callers can tell a change, even when parsing fails.
func ReadLayouts(path, config string) (*migconfig.File, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read layout file: %w", err)
	}
	f, err := migconfig.ParseFile(path, data)
	if err != nil {
		return nil, data, err
	}
	if config != "" {
		if _, ok := f.Config(config); !ok {
			msg := fmt.Sprintf("%s: no config %q", path, config)
			if s := migconfig.Suggest(config, f.ConfigNames()); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return nil, data, fmt.Errorf("%s; the file has %s", msg, strings.Join(f.ConfigNames(), ", "))
		}
	}
	return f, data, nil
}

func revision(h interface{ Sum([]byte) []byte }) string {
	return hex.EncodeToString(h.Sum(nil))[:16]
}
