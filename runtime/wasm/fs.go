package wasm

import (
	"fmt"
	"io/fs"
	"os"
	"path"

	"github.com/tetratelabs/wazero"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// fsConfig turns mounts into WASI preopens. Host directories must exist;
// guest paths must be absolute.
func fsConfig(mounts []runtime.Mount) (wazero.FSConfig, error) {
	cfg := wazero.NewFSConfig()
	for _, m := range mounts {
		if !path.IsAbs(m.GuestPath) {
			return nil, fmt.Errorf("mount %s: guest path must be absolute", m.GuestPath)
		}
		fi, err := os.Stat(m.HostPath)
		if err != nil {
			return nil, fmt.Errorf("mount %s at %s: %w", m.HostPath, m.GuestPath, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("mount %s at %s: not a directory", m.HostPath, m.GuestPath)
		}
		var fsys experimentalsys.FS = noSymlinkFS{sysfs.DirFS(m.HostPath)}
		if m.ReadOnly {
			fsys = readOnlyFS{&sysfs.ReadFS{FS: fsys}}
		}
		cfg = cfg.(sysfs.FSConfig).WithSysFSMount(fsys, path.Clean(m.GuestPath))
	}
	return cfg, nil
}

// noSymlinkFS refuses to create symlinks. wazero's DirFS follows symlinks on
// the host, so a guest that could create one in a writable mount (an
// emptyDir) could reach any host file through it.
type noSymlinkFS struct {
	experimentalsys.FS
}

// Symlink implements experimentalsys.FS.
func (noSymlinkFS) Symlink(_, _ string) experimentalsys.Errno {
	return experimentalsys.EPERM
}

// readOnlyFS is wazero's ReadFS, which refuses writes to files, renames and
// removals, made to also refuse opening with O_CREAT or O_TRUNC (ReadFS
// passes those on when the access mode is read-only, and the host would
// create or truncate the file) and to say EROFS, "read-only file system",
// where ReadFS says ENOSYS.
type readOnlyFS struct {
	*sysfs.ReadFS
}

// writeFlags are the open flags that would change a file or a directory.
const writeFlags = experimentalsys.O_WRONLY | experimentalsys.O_RDWR | experimentalsys.O_CREAT |
	experimentalsys.O_TRUNC | experimentalsys.O_APPEND | experimentalsys.O_EXCL

// OpenFile implements experimentalsys.FS.
func (r readOnlyFS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	if flag&writeFlags != 0 {
		if flag&experimentalsys.O_DIRECTORY != 0 {
			return nil, experimentalsys.EISDIR
		}
		return nil, experimentalsys.EROFS
	}
	return r.ReadFS.OpenFile(p, flag, perm)
}
