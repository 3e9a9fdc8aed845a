package testproc

import (
	"fmt"
	"net"
	"strings"
)

// FreePort returns a TCP port on 127.0.0.1 that nothing listened on a
// moment ago. etcd, kube-apiserver and Prometheus cannot be told to pick
// their own port (0) and report it, so the caller starts them on this one
// and retries with another when the process's log shows AddrInUse.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("releasing loopback port %d: %w", port, err)
	}
	return port, nil
}

// AddrInUse reports whether a process's log says it lost a race for its
// port.
func AddrInUse(log string) bool {
	return strings.Contains(log, "address already in use")
}
