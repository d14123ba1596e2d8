// Package runtime is the contract between the node agent and the runtimes
// that run its containers: wasm (runtime/wasm, wazero in process) and OCI
// images through containerd and runc (runtime/containerd). The agent speaks
// only these types;
// everything a runtime needs comes in a ContainerSpec, and everything it
// learns comes back as an ExitStatus in Kubernetes terms.
//
// What a runtime does not do: fetch or verify module downloads (the agent
// hands a wasm runtime a local file whose digest it has checked; an image
// runtime pulls its image itself, through containerd), restart containers,
// keep logs (it writes to the io.Writers it is given) or talk to the API.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Runtime starts and stops containers of one kind. Implementations are safe
// for concurrent use by many goroutines.
type Runtime interface {
	// Info describes the runtime for the Node's nodeInfo and for matching
	// RuntimeClass handlers. It does not change during the runtime's life.
	Info() Info

	// Prepare checks that the module can run here and makes it ready to
	// start (for wasm: decodes, validates and compiles it) without running
	// it. A module that can never run here — not wasm, importing functions
	// the runtime does not provide, not a WASI command — gives an
	// *InvalidModuleError; a file whose bytes do not match m.Digest gives an
	// error wrapping ErrDigestMismatch. Preparing an already prepared module
	// is cheap. Start prepares on its own; Prepare lets the agent report
	// InvalidModule before a pod's containers are created.
	Prepare(ctx context.Context, m Module) error

	// Start starts one container and returns at once with its handle; the
	// guest runs until it exits, its handle's Stop is called, or the Runtime
	// is closed. ctx bounds only the start (preparing the module), not the
	// guest's life. Errors are returned for a spec that cannot start at all
	// (missing mount directory, invalid module, closed runtime); anything
	// that goes wrong once the guest is running is reported by the handle.
	Start(ctx context.Context, spec ContainerSpec) (Container, error)

	// Close stops every running container without grace, waits for them to
	// exit (or for ctx), and frees the runtime's resources. Start fails after
	// Close. Close is idempotent.
	Close(ctx context.Context) error
}

// Container is the handle of one started container. Its methods are safe for
// concurrent use.
type Container interface {
	// ID is the ContainerSpec.ID it was started with.
	ID() string

	// Done is closed exactly once, when the guest has exited and its
	// resources are released; from then on Exit returns its status.
	Done() <-chan struct{}

	// Exit returns the exit status and true once Done is closed, and the zero
	// ExitStatus and false while the guest runs. Every call after Done
	// returns the same status.
	Exit() (ExitStatus, bool)

	// Stop terminates the guest, even one in an infinite loop, and waits up
	// to gracePeriod for it to be gone. It returns nil when the guest has
	// exited (now or before), and an error if it still runs when gracePeriod
	// is over; a gracePeriod <= 0 asks and does not wait (the caller watches
	// Done). Calling Stop again is harmless.
	//
	// Runtimes without a way to ask a guest to finish (WASI preview 1 has no
	// signals) terminate it at once: the grace period is then only the bound
	// on how long Stop blocks. A container that exits because of Stop reports
	// ExitCodeKilled with ReasonError, as Kubernetes does for a SIGKILL.
	Stop(gracePeriod time.Duration) error
}

// Execer is a Container that can run another process beside its own, in
// its environment: what exec probes and `kubectl exec` need. Image
// runtimes implement it; a wasm guest has no processes to add.
type Execer interface {
	// Exec runs argv in the running container, with the container's
	// environment, user and working directory, and returns once it exited:
	// its exit code and the first MaxExecOutput bytes of its stdout and
	// stderr together. ctx ending kills the process; Exec then returns
	// ctx's error. A container that is not running is an error.
	Exec(ctx context.Context, argv []string) (ExecResult, error)
}

// Networked is a Container with a network namespace of its own (runc):
// the node reaches the container's loopback interface, where tcpSocket and
// httpGet probes knock, by entering it.
type Networked interface {
	// NetNS returns the path of the running container's network namespace
	// (/proc/PID/ns/net of its process).
	NetNS(ctx context.Context) (string, error)
}

// ExecResult is how a process Exec ran ended.
type ExecResult struct {
	ExitCode int32  `json:"exitCode"`
	Output   []byte `json:"output,omitempty"`
}

// MaxExecOutput is how much of an exec'd process's output Exec keeps, the
// kubelet's bound on a probe's output (10 KiB).
const MaxExecOutput = 10 << 10

// Module names a module file on local disk. The agent has fetched it and
// checked that its sha256 matches Digest; runtimes key compiled code by
// Digest and recheck the bytes once when they first compile it.
type Module struct {
	// Path is the file's local path.
	Path string
	// Digest is "sha256:" followed by 64 lowercase hex digits.
	Digest string
}

// ContainerSpec is everything a runtime needs to start one container.
type ContainerSpec struct {
	// ID names this container instance in errors; the agent makes it unique
	// (e.g. namespace/pod/container/restartCount).
	ID string

	// Module is the program to run, for runtimes that run modules (wasm).
	// Image runtimes ignore it.
	Module Module

	// Image is the OCI image reference to run, for runtimes that run images
	// (runc, through containerd), as a Kubernetes container's image:
	// "busybox", "docker.io/library/busybox:1.36",
	// "registry.example/app@sha256:<hex>". Module runtimes ignore it.
	Image string

	// Command, for image runtimes, replaces the image's ENTRYPOINT, and Args
	// then replaces its CMD, exactly as a Kubernetes container's command
	// and args do: both empty runs ENTRYPOINT+CMD, Args alone runs
	// ENTRYPOINT+Args, Command alone runs Command. Module runtimes ignore
	// Command (the agent folds it into Args).
	Command []string

	// Args is the guest's argv including argv[0]. For wasm, the module is
	// the program, so the agent passes the container name as argv[0]
	// followed by the container's command and args. For an image it is the
	// container's args only (see Command).
	Args []string

	// Env is the guest's environment, in order.
	Env []EnvVar

	// Hostname is the pod's hostname, as the kubelet computes it. Image
	// runtimes make it the container's hostname (its UTS namespace's);
	// module runtimes have none to set (the agent puts it in Env as
	// HOSTNAME for every runtime, as Kubernetes' container runtimes do).
	Hostname string

	// HostNetwork, for image runtimes, runs the container in the node's
	// network namespace (a pod's spec.hostNetwork), with the node's
	// /etc/hosts and /etc/resolv.conf; NetworkGroup is then ignored.
	// Module runtimes ignore it.
	HostNetwork bool

	// NetworkGroup, for image runtimes, names the network namespace the
	// container joins: containers of one group (a pod's) share it, as in a
	// Kubernetes pod, and reach each other on localhost. The runtime makes
	// it, with its loopback up, for the group's first container and
	// removes it with the last. Empty: a namespace of the container's own.
	// Module runtimes ignore it.
	NetworkGroup string

	// Mounts are host directories the guest sees at GuestPath (configMap,
	// secret and emptyDir volumes; for wasm, WASI preopened directories).
	Mounts []Mount

	// MemoryLimit is the most linear memory the guest may use, in bytes
	// (resources.limits.memory; for an image, the container's cgroup memory
	// limit); 0 means the runtime's default. A guest that needs more exits
	// with ReasonOOMKilled.
	MemoryLimit int64

	// Stdout and Stderr receive the guest's output (the container log); nil
	// discards it. They are written from one goroutine at a time, so one
	// writer may serve as both. A Detached runtime writes the output to Log
	// itself; given a Log, it ignores them (runtime/containerd takes
	// writers only for a spec without a Log, whose container then does not
	// outlive it).
	Stdout, Stderr io.Writer

	// Log is the container's log file, for Detached runtimes: their
	// containers outlive the agent, so no writer of the agent's can take
	// their output.
	Log LogFile
}

// LogFile is a container log on the node's disk in the format of
// nodeagent/podlogs (the kubelet's CRI log format, rotated).
type LogFile struct {
	// Path is the current file.
	Path string `json:"path"`
	// MaxFileBytes and MaxFiles bound its disk use (podlogs.Options).
	MaxFileBytes int64 `json:"maxFileBytes,omitempty"`
	MaxFiles     int   `json:"maxFiles,omitempty"`
}

// Detached is a Runtime whose containers run in a process of their own that
// outlives the agent's, as containers outlive a kubelet restart: an agent
// that restarts finds its containers again with Attach instead of starting
// them anew. It writes each container's output to ContainerSpec.Log.
//
// It keeps a container's exit status after the container ended until
// Remove, so an agent that was away when a container ended still learns
// how.
type Detached interface {
	Runtime

	// Attach returns the handle of the container started with id, running
	// or ended and not yet removed, and false when the runtime holds none.
	Attach(ctx context.Context, id string) (Container, bool, error)

	// Remove forgets the container id, stopping it first if it runs.
	// Removing an unknown id is not an error.
	Remove(ctx context.Context, id string) error

	// IDs lists the containers the runtime holds, running or ended.
	IDs(ctx context.Context) ([]string, error)

	// Detach lets go of the containers, which go on running, and frees
	// what this side of the runtime holds. Unlike Close, it stops nothing;
	// the handles of running containers are not closed, and every method
	// fails afterwards.
	Detach() error
}

// EnvVar is one environment variable. Name must not contain '='.
type EnvVar struct {
	Name, Value string
}

// Mount makes the host directory HostPath visible to the guest at GuestPath
// (an absolute guest path). ReadOnly mounts refuse every write.
type Mount struct {
	HostPath  string
	GuestPath string
	ReadOnly  bool
}

// ExitStatus is how a container ended, in the terms of Kubernetes'
// ContainerStateTerminated.
type ExitStatus struct {
	// ExitCode is the guest's exit code, or one of the ExitCode constants
	// when the runtime ended it.
	ExitCode int32
	// Reason is ReasonCompleted, ReasonError or ReasonOOMKilled.
	Reason string
	// Message explains a runtime-made exit (a trap, an OOM kill, a stop);
	// empty when the guest simply exited. At most MaxMessageBytes long.
	Message string
	// StartedAt is when Start handed the guest to its goroutine; FinishedAt
	// when it was gone.
	StartedAt, FinishedAt time.Time
}

// Reasons, exactly as Kubernetes writes them in containerStatuses.
const (
	ReasonCompleted = "Completed" // exit code 0
	ReasonError     = "Error"     // any other exit, a trap, a stop
	ReasonOOMKilled = "OOMKilled" // the guest needed more memory than its limit
)

// Exit codes the runtime reports when the guest did not choose one. They
// follow the shell's 128+signal convention that Kubernetes users know.
const (
	ExitCodeTrap   int32 = 134 // the guest trapped (like SIGABRT; wasmtime uses it too)
	ExitCodeKilled int32 = 137 // Stop, Close or the memory limit ended the guest (like SIGKILL)
)

// MaxMessageBytes bounds ExitStatus.Message, like Kubernetes' termination
// message.
const MaxMessageBytes = 4096

// Info describes a runtime.
type Info struct {
	// Name is the RuntimeClass handler it serves: "wasm" or "runc".
	Name string
	// Version is the engine and its version, e.g. "wazero v1.12.0", for
	// nodeInfo.containerRuntimeVersion.
	Version string
	// Mode says how code runs: for wasm "compiler" or "interpreter".
	Mode string
}

// ErrDigestMismatch is wrapped by errors for a module file whose bytes do not
// have the digest it was given under: the agent's copy is corrupt and must be
// fetched again (Kubernetes' ErrImagePull), the module itself may be fine.
var ErrDigestMismatch = errors.New("module digest mismatch")

// ErrImagePull is wrapped by errors for an image an image runtime could not
// get: unknown, not found, registry unreachable or refusing (the pod's
// waiting reason ErrImagePull).
var ErrImagePull = errors.New("image pull failed")

// InvalidModuleError says a module can never run on this runtime (the pod's
// waiting reason InvalidModule). Err says why in words meant for the user.
type InvalidModuleError struct {
	Digest string
	Err    error
}

func (e *InvalidModuleError) Error() string {
	return fmt.Sprintf("invalid module %s: %v", e.Digest, e.Err)
}

func (e *InvalidModuleError) Unwrap() error { return e.Err }

// Exited is the end of a Container handle: embedded, it gives the handle
// Done and Exit. Make it with MakeExited; the handle calls Finish once,
// when the container has ended.
type Exited struct {
	done   chan struct{}
	status ExitStatus // set before done is closed
}

// MakeExited returns an Exited of a container that runs.
func MakeExited() Exited { return Exited{done: make(chan struct{})} }

// Done implements Container.
func (e *Exited) Done() <-chan struct{} { return e.done }

// Exit implements Container.
func (e *Exited) Exit() (ExitStatus, bool) {
	select {
	case <-e.done:
		return e.status, true
	default:
		return ExitStatus{}, false
	}
}

// Finish records how the container ended and closes Done. It must be
// called once.
func (e *Exited) Finish(es ExitStatus) {
	e.status = es
	close(e.done)
}
