package nodeagent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// stateFiles keep a pod's container records in its directory
// (Pods.Dir/<pod uid>/), so an agent restarted without its control plane
// knows what ran, how often it restarted and what finished for good (edge
// autonomy): a Never pod that completed is not run again.
//
// The records are written in place, to the two files in turn, each record
// stamped with a generation and a CRC-32C of its state: a write torn by a
// crash leaves the other file, one generation older. No file is created,
// renamed or removed per write. Writing a new file and renaming it over
// the old one made a fifth of an agent restart's time: ext4 allocates
// inodes slowly while many were freed recently, and writes back a file
// renamed over another at once.
var stateFiles = [2]string{"state.json", "state.1.json"}

// podState is the records.
type podState struct {
	StartTime  *metav1.Time               `json:"startTime,omitempty"`
	Containers map[string]ContainerRecord `json:"containers"`
	// Static: the pod is a static pod (its manifest's; see
	// Pods.RemoveStaticOrphans).
	Static bool `json:"static,omitempty"`
	// Handler is the runtime handler of the pod's class (see
	// Pods.runtimeHandler); "" until it is known.
	Handler string `json:"handler,omitempty"`
	// DeadlineExceeded: the pod ran past its activeDeadlineSeconds and
	// failed; its containers do not run again.
	DeadlineExceeded bool `json:"deadlineExceeded,omitempty"`
	// gen is the generation loadPodState read: 0 for none or for an
	// earlier agent's state.json.
	gen uint64
}

// stateRecord is what a state file holds. A file without a generation is
// the plain podState an earlier agent wrote to state.json.
type stateRecord struct {
	Generation uint64          `json:"generation"`
	CRC32C     uint32          `json:"crc32c"`
	State      json.RawMessage `json:"state"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// stateWriter writes one pod's records.
type stateWriter struct {
	dir string
	gen uint64 // of the last record written or read: the next goes to the other file
}

// save writes st over the older of the two files.
func (w *stateWriter) save(st podState) error {
	state, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if w.gen == 0 {
		if err := os.MkdirAll(w.dir, 0o700); err != nil {
			return err
		}
		// The first record goes to the second file. The first file is
		// created now, empty (or left as an earlier agent wrote it), so that
		// the save after an agent restart overwrites a file instead of
		// allocating one: with hundreds of pods restarting at once, ext4's
		// inode allocation was a tenth of the agent's CPU.
		f, err := os.OpenFile(filepath.Join(w.dir, stateFiles[0]), os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		f.Close()
	}
	b, err := json.Marshal(stateRecord{Generation: w.gen + 1, CRC32C: crc32.Checksum(state, castagnoli), State: state})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(w.dir, stateFiles[(w.gen+1)%2]), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(b, 0)
	if err == nil {
		err = f.Truncate(int64(len(b)))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	w.gen++
	return nil
}

// loadPodState reads the newest intact records a previous run of the agent
// saved. A record that says Running is what the previous agent knew: the
// worker attaches to the container if the runtime kept it (a
// runtime.Detached), and otherwise marks it lost. No file: no records.
func loadPodState(dir string) (podState, error) {
	st := podState{Containers: map[string]ContainerRecord{}}
	var errs []error
	found := false
	for _, name := range stateFiles {
		one, err := readStateFile(filepath.Join(dir, name))
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			errs = append(errs, err)
		case !found || one.gen > st.gen:
			st, found = one, true
		}
	}
	if !found && len(errs) > 0 {
		return st, errors.Join(errs...)
	}
	if st.Containers == nil {
		st.Containers = map[string]ContainerRecord{}
	}
	for name, rec := range st.Containers {
		rec.Name = name
		st.Containers[name] = rec
	}
	return st, nil
}

// lost ends the run of a container that was running when the previous
// agent stopped and that no runtime kept: it ends in
// ReasonContainerStatusUnknown (exit 137) at now, and its restart policy
// decides, without back-off, whether it runs again.
func (rec *ContainerRecord) lost(now time.Time) {
	rec.Running = false
	rec.Last = &Termination{ExitCode: 137, Reason: ReasonContainerStatusUnknown,
		Message:   "the node agent stopped while the container was running",
		StartedAt: rec.StartedAt, FinishedAt: now}
}

// readStateFile reads one state file. The record is the file's first JSON
// value: bytes after it are the end of a longer, older record whose
// truncation a crash prevented.
func readStateFile(path string) (podState, error) {
	var st podState
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	if len(b) == 0 { // created ahead by save, never written
		return st, fmt.Errorf("%s: empty: %w", path, fs.ErrNotExist)
	}
	var rec stateRecord
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&rec); err != nil {
		return st, fmt.Errorf("%s: %w", path, err)
	}
	if rec.Generation == 0 { // an earlier agent's plain podState: generation 0
		return st, json.Unmarshal(b, &st)
	}
	if crc32.Checksum(rec.State, castagnoli) != rec.CRC32C {
		return st, fmt.Errorf("%s: generation %d is torn (checksum mismatch)", path, rec.Generation)
	}
	if err := json.Unmarshal(rec.State, &st); err != nil {
		return st, fmt.Errorf("%s: %w", path, err)
	}
	st.gen = rec.Generation
	return st, nil
}

// removePodDir forgets a pod that is gone for good, once its containers
// have stopped: its directory, with its state, its logs and its volumes
// (secrets included), as the kubelet removes a deleted pod's.
func removePodDir(dir string) error { return os.RemoveAll(dir) }
