package nodeagent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/wasmfleet/wasmfleet/nodeagent/podlogs"
	"github.com/wasmfleet/wasmfleet/runtime"
)

// Bounds of a termination message, the kubelet's: the end of the
// container's terminationMessagePath file (MaxContainerTerminationMessageLength),
// or of its log (MaxContainerTerminationMessageLogLines and ...LogLength).
const (
	terminationFileBytes = 4 << 10
	terminationLogLines  = 80
	terminationLogBytes  = 2048
)

// terminationFile is the host file behind container's
// terminationMessagePath (guestPath) in run attempt.
func terminationFile(podDir, container string, attempt int32, guestPath string) string {
	return filepath.Join(podDir, "termination", container, strconv.Itoa(int(attempt)), path.Base(guestPath))
}

// terminationMount makes, as the kubelet does, an empty host file for c's
// terminationMessagePath in run attempt and returns its mount: the file
// itself for runc; for wasm, whose guests see directories only, its
// directory at the path's. None when the path is unset, or (for wasm)
// its directory is the root or meets a mount of c's volumes.
func terminationMount(podDir string, c *corev1.Container, attempt int32, handler string, mounts []runtime.Mount) (runtime.Mount, bool, error) {
	p := c.TerminationMessagePath
	if p == "" || !path.IsAbs(p) {
		return runtime.Mount{}, false, nil
	}
	file := terminationFile(podDir, c.Name, attempt, p)
	m := runtime.Mount{HostPath: file, GuestPath: path.Clean(p)}
	if handler != RuntimeClassRunc {
		m = runtime.Mount{HostPath: filepath.Dir(file), GuestPath: path.Dir(m.GuestPath)}
		if m.GuestPath == "/" {
			return runtime.Mount{}, false, nil
		}
	}
	if slices.ContainsFunc(mounts, func(v runtime.Mount) bool {
		return v.GuestPath == m.GuestPath || strings.HasPrefix(v.GuestPath, m.GuestPath+"/") || strings.HasPrefix(m.GuestPath, v.GuestPath+"/")
	}) {
		return runtime.Mount{}, false, nil
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return runtime.Mount{}, false, err
	}
	if err := os.WriteFile(file, nil, 0o666); err != nil {
		return runtime.Mount{}, false, err
	}
	// Writable by the container's user, whoever it is.
	if err := os.Chmod(file, 0o666); err != nil {
		return runtime.Mount{}, false, err
	}
	return m, true, nil
}

// pruneTermination removes the termination files of container's runs
// before attempt (their messages are in its records).
func pruneTermination(podDir, container string, attempt int32) error {
	dir := filepath.Join(podDir, "termination", container)
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var errs []error
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && n < int(attempt) {
			errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// terminationMessage is the message of run attempt of container name that
// ended as es, as the kubelet makes it: the runtime's, followed after ": "
// by what the container wrote to its terminationMessagePath (its last
// 4 KiB) or, for a container whose terminationMessagePolicy is
// FallbackToLogsOnError, that failed and wrote nothing there, by the end
// of its log (the first 2 KiB of its last 80 lines).
func terminationMessage(pod *corev1.Pod, name string, es runtime.ExitStatus, podDir string, attempt int32) string {
	var c *corev1.Container
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		if i := slices.IndexFunc(cs, func(c corev1.Container) bool { return c.Name == name }); i >= 0 {
			c = &cs[i]
		}
	}
	if c == nil {
		return es.Message
	}
	written := ""
	if c.TerminationMessagePath != "" {
		var err error
		if written, err = readTail(terminationFile(podDir, name, attempt, c.TerminationMessagePath), terminationFileBytes); err != nil {
			written = fmt.Sprintf("Error on reading termination log %s: %v", c.TerminationMessagePath, err)
		}
	}
	if written == "" && es.ExitCode != 0 && c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
		var tail bytes.Buffer
		if err := podlogs.Read(context.Background(), logPath(podDir, name, attempt), podlogs.ReadOptions{Tail: terminationLogLines}, &tail); err == nil {
			written = string(tail.Bytes()[:min(tail.Len(), terminationLogBytes)])
		}
	}
	switch {
	case written == "":
		return es.Message
	case es.Message == "":
		return written
	}
	return es.Message + ": " + written
}

// readTail returns the last max bytes of file ("" when it does not exist).
func readTail(file string, max int64) (string, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return "", err
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, max))
	return string(b), err
}
