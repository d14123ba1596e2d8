package nodeagent

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// stateFile keeps a pod's container records in its directory
// (Pods.Dir/<pod uid>/state.json), so an agent restarted without its
// control plane knows what ran, how often it restarted and what finished
// for good (edge autonomy): a Never pod that completed is not run again.
const stateFile = "state.json"

// podState is what stateFile holds.
type podState struct {
	StartTime  *metav1.Time               `json:"startTime,omitempty"`
	Containers map[string]ContainerRecord `json:"containers"`
}

// savePodState writes the records atomically.
func savePodState(dir string, st podState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateFile))
}

// loadPodState reads the records a previous run of the agent saved, as of
// now: a container that was running then stopped with that agent, so its
// run ends in ReasonContainerStatusUnknown (exit 137) at now and its
// restart policy decides, without back-off, whether it runs again. No
// file: no records.
func loadPodState(dir string, now time.Time) (podState, error) {
	st := podState{Containers: map[string]ContainerRecord{}}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return podState{Containers: map[string]ContainerRecord{}}, err
	}
	if st.Containers == nil {
		st.Containers = map[string]ContainerRecord{}
	}
	for name, rec := range st.Containers {
		rec.Name = name
		if rec.Running {
			rec.Running = false
			rec.Last = &Termination{ExitCode: 137, Reason: ReasonContainerStatusUnknown,
				Message:   "the node agent stopped while the container was running",
				StartedAt: rec.StartedAt, FinishedAt: now}
		}
		st.Containers[name] = rec
	}
	return st, nil
}

// removePodState forgets a pod that is gone for good.
func removePodState(dir string) error {
	err := os.Remove(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
