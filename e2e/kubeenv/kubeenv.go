// Package kubeenv runs a real, private Kubernetes control plane for
// end-to-end tests: etcd and kube-apiserver, built from the pinned releases
// by e2e/scripts/components.sh, listening on 127.0.0.1 only, with their state
// in a temporary folder that is removed afterwards.
//
// There is no kube-controller-manager, kube-scheduler or kubelet: objects are
// stored and validated by the real API server, and nothing acts on them
// unless the test does. The admission plugins that would wait for those
// controllers (ServiceAccount, TaintNodesByCondition) are off, so pods can be
// created without a default ServiceAccount and new nodes carry no not-ready
// taint. Authorization is RBAC; the admin token is in system:masters.
//
// A test calls Start and uses RESTConfig with client-go, or Kubectl with
// Kubeconfig:
//
//	env := kubeenv.Start(t)
//	cs := kubernetes.NewForConfigOrDie(env.RESTConfig())
package kubeenv

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/tessera-gpu/tessera/e2e/internal/testproc"
)

// AdminUser is the user name the Env's token authenticates as; its group is
// system:masters, so RBAC allows it everything.
const AdminUser = "tessera-e2e-admin"

// KeepEnvVar names the environment variable that, when set, makes Start
// keep the control plane's folder (logs, data, kubeconfig) of a failed test.
const KeepEnvVar = testproc.KeepEnvVar

// Options adjust Launch. The zero value is a working default.
type Options struct {
	// BinDir is the folder holding kube-apiserver, kubectl and etcd; empty
	// means $TESSERA_E2E_BIN, else DefaultBinDir().
	BinDir string
	// Dir is where the Env keeps its data, certificates, logs and
	// kubeconfig; empty means a new temporary folder, removed by Stop.
	// A Dir given here is left in place.
	Dir string
	// ReadyTimeout bounds the wait for etcd and for kube-apiserver's /readyz,
	// each; zero means 60 s.
	ReadyTimeout time.Duration
	// APIServerFlags are appended to kube-apiserver's command line, after
	// Launch's own flags, so they override them.
	APIServerFlags []string
}

// Env is a running control plane. Its fields are read-only.
type Env struct {
	// BinDir is the folder the component binaries came from.
	BinDir string
	// Kubectl is the path of the kubectl binary matching the API server.
	Kubectl string
	// Kubeconfig is the path of a kubeconfig file for the admin user, with
	// the API server's certificate as its CA.
	Kubeconfig string
	// Host is the API server's URL, https://127.0.0.1:<port>.
	Host string
	// EtcdURL is etcd's client URL, http://127.0.0.1:<port>.
	EtcdURL string
	// Token is the admin user's bearer token.
	Token string
	// CAData is the PEM the API server's serving certificate verifies with.
	CAData []byte
	// Dir holds the Env's data, certificates, logs and kubeconfig.
	Dir string

	removeDir bool
	etcd      *testproc.Process
	apiserver *testproc.Process
}

// Start launches a control plane for the test, failing it with the reason
// (including how to build missing binaries) if it cannot, and stops it and
// removes its files when the test ends. When the test has failed, the last
// lines of each component's log are logged first, and the files are kept if
// $TESSERA_E2E_KEEP is set.
func Start(t testing.TB) *Env {
	t.Helper()
	return StartWithOptions(t, Options{})
}

// StartWithOptions is Start with Options.
func StartWithOptions(t testing.TB, opts Options) *Env {
	t.Helper()
	ctx, cancel := testproc.TestContext(t)
	defer cancel()
	env, err := Launch(ctx, opts)
	if err != nil {
		t.Fatalf("kubeenv: %v", err)
	}
	testproc.Cleanup(t, "kubeenv", func() {
		t.Logf("kubeenv: etcd log (%s), last lines:\n%s", env.etcd.LogPath, env.etcd.LogTail(20))
		t.Logf("kubeenv: kube-apiserver log (%s), last lines:\n%s", env.apiserver.LogPath, env.apiserver.LogTail(40))
	}, env.Dir, &env.removeDir, env.Stop)
	return env
}

// Launch starts etcd and kube-apiserver on free loopback ports and returns
// once the API server's /readyz passes. ctx bounds the start only; the
// processes run until Stop. On error nothing is left running.
func Launch(ctx context.Context, opts Options) (_ *Env, err error) {
	binDir, err := FindBinaries(opts.BinDir)
	if err != nil {
		return nil, err
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	env := &Env{BinDir: binDir, Kubectl: filepath.Join(binDir, "kubectl"), Dir: opts.Dir}
	if env.Dir == "" {
		env.Dir, err = os.MkdirTemp("", "tessera-kubeenv-")
		if err != nil {
			return nil, fmt.Errorf("creating the control plane's folder: %w", err)
		}
		env.removeDir = true
	} else if err := os.MkdirAll(env.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the control plane's folder: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, env.Stop())
		}
	}()

	if err := env.startEtcd(ctx, opts.ReadyTimeout); err != nil {
		return nil, err
	}
	files, err := env.writeAuthFiles()
	if err != nil {
		return nil, err
	}
	if err := env.startAPIServer(ctx, opts, files); err != nil {
		return nil, err
	}
	if err := env.writeKubeconfig(); err != nil {
		return nil, err
	}
	return env, nil
}

// Stop kills the API server, then etcd, by PID and removes the Env's folder
// if Launch created it. It is safe to call more than once.
func (e *Env) Stop() error {
	var errs []error
	for _, p := range []*testproc.Process{e.apiserver, e.etcd} {
		if p != nil {
			errs = append(errs, p.Stop())
		}
	}
	if e.removeDir && e.Dir != "" {
		if err := os.RemoveAll(e.Dir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", e.Dir, err))
		}
	}
	return errors.Join(errs...)
}

// RESTConfig returns a new client-go configuration for the admin user, with
// client-side rate limits raised for tests.
func (e *Env) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            e.Host,
		BearerToken:     e.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), e.CAData...)},
		QPS:             200,
		Burst:           400,
	}
}

// KubectlCommand returns a kubectl command for args, set up to use the Env's
// kubeconfig and a discovery cache inside the Env's folder.
func (e *Env) KubectlCommand(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"--kubeconfig=" + e.Kubeconfig, "--cache-dir=" + filepath.Join(e.Dir, "kubectl-cache")}, args...)
	cmd := exec.CommandContext(ctx, e.Kubectl, full...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig)
	return cmd
}

// startEtcd starts etcd on two free loopback ports, retrying with new ports
// if it loses a race for one, and waits for its /health.
func (e *Env) startEtcd(ctx context.Context, timeout time.Duration) error {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		clientPort, err := testproc.FreePort()
		if err != nil {
			return err
		}
		peerPort, err := testproc.FreePort()
		if err != nil {
			return err
		}
		clientURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
		peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
		dataDir := filepath.Join(e.Dir, "etcd")
		if err := os.RemoveAll(dataDir); err != nil {
			return fmt.Errorf("clearing etcd's data dir: %w", err)
		}
		p, err := testproc.Start("etcd", filepath.Join(e.BinDir, "etcd"), filepath.Join(e.Dir, "etcd.log"),
			"--name=tessera-e2e",
			"--data-dir="+dataDir,
			"--listen-client-urls="+clientURL,
			"--advertise-client-urls="+clientURL,
			"--listen-peer-urls="+peerURL,
			"--initial-advertise-peer-urls="+peerURL,
			"--initial-cluster=tessera-e2e="+peerURL,
			"--unsafe-no-fsync",
			"--log-level=warn",
		)
		if err != nil {
			return err
		}
		e.etcd = p
		e.EtcdURL = clientURL
		client := &http.Client{Timeout: 2 * time.Second}
		err = waitFor(ctx, p, timeout, "etcd's /health at "+clientURL, func() (bool, error) {
			body, ok, err := get(client, clientURL+"/health", "")
			return ok && strings.Contains(body, `"health":"true"`), err
		})
		client.CloseIdleConnections()
		if err == nil {
			return nil
		}
		lastErr = err
		if !p.Exited() || !testproc.AddrInUse(p.LogTail(30)) {
			return err
		}
	}
	return fmt.Errorf("etcd kept losing its port to other programs: %w", lastErr)
}

// authFiles are the paths of the API server's credentials.
type authFiles struct {
	tokens, saKey, saPub string
}

// writeAuthFiles writes the static admin token file and a service-account
// RSA key pair made here, so no openssl is needed.
func (e *Env) writeAuthFiles() (authFiles, error) {
	f := authFiles{
		tokens: filepath.Join(e.Dir, "tokens.csv"),
		saKey:  filepath.Join(e.Dir, "sa.key"),
		saPub:  filepath.Join(e.Dir, "sa.pub"),
	}
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return f, fmt.Errorf("making the admin token: %w", err)
	}
	e.Token = hex.EncodeToString(tok)
	line := fmt.Sprintf("%s,%s,%s,system:masters\n", e.Token, AdminUser, AdminUser)
	if err := os.WriteFile(f.tokens, []byte(line), 0o600); err != nil {
		return f, fmt.Errorf("writing the token file: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return f, fmt.Errorf("making the service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return f, fmt.Errorf("encoding the service-account public key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	if err := os.WriteFile(f.saKey, keyPEM, 0o600); err != nil {
		return f, fmt.Errorf("writing the service-account key: %w", err)
	}
	if err := os.WriteFile(f.saPub, pubPEM, 0o644); err != nil {
		return f, fmt.Errorf("writing the service-account public key: %w", err)
	}
	return f, nil
}

// startAPIServer starts kube-apiserver on a free loopback port, retrying with
// a new port if it loses a race for it, and waits for /readyz.
func (e *Env) startAPIServer(ctx context.Context, opts Options, files authFiles) error {
	certDir := filepath.Join(e.Dir, "certs")
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := testproc.FreePort()
		if err != nil {
			return err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		host := "https://" + addr
		args := []string{
			"--etcd-servers=" + e.EtcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			// Endpoints may not hold loopback addresses, so the default
			// reconciler would log an error every few seconds.
			"--endpoint-reconciler-type=none",
			"--secure-port=" + strconv.Itoa(port),
			"--cert-dir=" + certDir,
			"--token-auth-file=" + files.tokens,
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + files.saPub,
			"--service-account-signing-key-file=" + files.saKey,
			"--service-cluster-ip-range=10.0.0.0/24",
			"--authorization-mode=RBAC",
			"--allow-privileged=true",
			"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
		}
		args = append(args, opts.APIServerFlags...)
		p, err := testproc.Start("kube-apiserver", filepath.Join(e.BinDir, "kube-apiserver"),
			filepath.Join(e.Dir, "kube-apiserver.log"), args...)
		if err != nil {
			return err
		}
		e.apiserver = p
		e.Host = host
		var client *http.Client
		err = waitFor(ctx, p, opts.ReadyTimeout, "kube-apiserver's /readyz at "+host, func() (bool, error) {
			if client == nil {
				// The server writes its self-signed certificate before it
				// listens, so once it accepts connections the file is
				// complete; trust exactly that certificate.
				conn, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					return false, nil
				}
				conn.Close()
				ca, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
				if err != nil {
					return false, fmt.Errorf("reading the API server's certificate: %w", err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(ca) {
					return false, fmt.Errorf("no certificate in %s", filepath.Join(certDir, "apiserver.crt"))
				}
				e.CAData = ca
				client = &http.Client{
					Timeout:   2 * time.Second,
					Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
				}
			}
			body, ok, err := get(client, host+"/readyz", e.Token)
			return ok && strings.TrimSpace(body) == "ok", err
		})
		if client != nil {
			client.CloseIdleConnections()
		}
		if err == nil {
			return nil
		}
		lastErr = err
		if !p.Exited() || !testproc.AddrInUse(p.LogTail(30)) {
			return err
		}
		if rmErr := os.RemoveAll(certDir); rmErr != nil {
			return fmt.Errorf("clearing the API server's cert dir: %w", rmErr)
		}
	}
	return fmt.Errorf("kube-apiserver kept losing its port to other programs: %w", lastErr)
}

// writeKubeconfig writes a kubeconfig for the admin user to e.Kubeconfig.
func (e *Env) writeKubeconfig() error {
	e.Kubeconfig = filepath.Join(e.Dir, "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["tessera-e2e"] = &clientcmdapi.Cluster{Server: e.Host, CertificateAuthorityData: e.CAData}
	cfg.AuthInfos[AdminUser] = &clientcmdapi.AuthInfo{Token: e.Token}
	cfg.Contexts["tessera-e2e"] = &clientcmdapi.Context{Cluster: "tessera-e2e", AuthInfo: AdminUser}
	cfg.CurrentContext = "tessera-e2e"
	if err := clientcmd.WriteToFile(*cfg, e.Kubeconfig); err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	return nil
}

// waitFor polls ready every 100 ms until it returns true, p exits, ctx ends
// or timeout passes. Errors from ready are only reported if it never passes.
func waitFor(ctx context.Context, p *testproc.Process, timeout time.Duration, what string, ready func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		ok, err := ready()
		if ok {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-p.Done():
			return p.ExitError()
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last probe error: %v); last lines of %s:\n%s",
				what, ctx.Err(), lastErr, p.LogPath, p.LogTail(30))
		case <-tick.C:
		}
	}
}

// get fetches url with an optional bearer token and returns the body and
// whether the status was 200.
func get(c *http.Client, url, token string) (string, bool, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", false, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", false, err
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), false, fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), true, nil
}
