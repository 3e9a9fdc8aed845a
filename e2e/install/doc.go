// Package install holds end-to-end tests of `make install`: the systemd unit
// it installs passes `systemd-analyze verify`, the default /etc/tessera
// files it installs parse and validate, the installed agent starts as the
// unit starts it and tells systemd it is ready, and a second install keeps
// the operator's edits. It has no non-test code.
package install
