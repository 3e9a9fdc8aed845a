//go:build unix

package deviceplugin

import (
	"fmt"
	"io/fs"
	"syscall"
)

// inode returns the file's inode number, which changes when the kubelet
// deletes and recreates its socket even within one clock tick.
func inode(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("/%d", st.Ino)
	}
	return ""
}
