package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver/validation"
)

// The Priority admission, as Kubernetes' Priority plugin does it: a new
// pod gets the priority and preemption policy of the PriorityClass it
// names (403 when there is none), or of the cluster's global default
// class, or priority 0; at most one class is the global default; the
// system classes cannot be deleted.

// priorityClassOf keeps a priority class for the cache.
func priorityClassOf(value []byte) *schedulingv1.PriorityClass {
	pc := &schedulingv1.PriorityClass{}
	if json.Unmarshal(value, pc) != nil {
		return nil
	}
	return pc
}

// listPriorityClasses returns every priority class.
func (s *Server) listPriorityClasses(ctx context.Context) ([]*schedulingv1.PriorityClass, error) {
	pcs, err := s.priorityClasses.list(ctx, s.store, "priorityclasses", "")
	if err != nil {
		return nil, storageError(err, schedulingv1.Resource("priorityclasses"), "")
	}
	return pcs, nil
}

// admitPriority sets a new pod's priority and preemption policy from its
// class, or from the global default class when it names none.
func (s *Server) admitPriority(ctx context.Context, admName string, pod *corev1.Pod) error {
	pcs, err := s.listPriorityClasses(ctx)
	if err != nil {
		return err
	}
	var (
		priority int32
		policy   = new(corev1.PreemptLowerPriority)
		class    *schedulingv1.PriorityClass
	)
	for _, pc := range pcs {
		switch {
		case pod.Spec.PriorityClassName != "":
			if pc.Name == pod.Spec.PriorityClassName {
				class = pc
			}
		case pc.GlobalDefault && (class == nil || pc.Value < class.Value):
			// Two defaults (from a race between servers): the lowest, as
			// Kubernetes picks.
			class = pc
		}
	}
	switch {
	case class != nil:
		pod.Spec.PriorityClassName = class.Name
		priority, policy = class.Value, class.PreemptionPolicy
	case pod.Spec.PriorityClassName != "":
		return podRejected(admName, "no PriorityClass with name %v was found", pod.Spec.PriorityClassName)
	}
	if pod.Spec.Priority != nil && *pod.Spec.Priority != priority {
		return podRejected(admName, "the integer value of priority (%d) must not be provided in pod spec; priority admission controller computed %d from the given PriorityClass name", *pod.Spec.Priority, priority)
	}
	pod.Spec.Priority = &priority
	if policy != nil {
		if p := pod.Spec.PreemptionPolicy; p != nil && *p != *policy {
			return podRejected(admName, "the string value of PreemptionPolicy (%s) must not be provided in pod spec; priority admission controller computed %s from the given PriorityClass name", *p, *policy)
		}
		pod.Spec.PreemptionPolicy = new(*policy)
	}
	return nil
}

// keepPriority gives an updated pod the priority admission set on its
// creation, when the update leaves it out (a manifest replaced as
// written), as the plugin does.
func keepPriority(pod, old *corev1.Pod) {
	if pod.Spec.Priority == nil {
		pod.Spec.Priority = old.Spec.Priority
	}
	if pod.Spec.PreemptionPolicy == nil {
		pod.Spec.PreemptionPolicy = old.Spec.PreemptionPolicy
	}
}

// admitPriorityClass refuses a second global default class.
func (s *Server) admitPriorityClass(ctx context.Context, pc *schedulingv1.PriorityClass) error {
	if !pc.GlobalDefault {
		return nil
	}
	pcs, err := s.listPriorityClasses(ctx)
	if err != nil {
		return err
	}
	for _, other := range pcs {
		if other.GlobalDefault && other.Name != pc.Name {
			return apierrors.NewForbidden(schedulingv1.Resource("priorityclasses"), pc.Name,
				fmt.Errorf("PriorityClass %v is already marked as default. Only one default can exist", other.Name))
		}
	}
	return nil
}

// refuseSystemPriorityClassDelete is the priority classes' registry's
// refusal to delete a system class.
func refuseSystemPriorityClassDelete(info *reqInfo) error {
	if info.res.gvr.Resource == "priorityclasses" && validation.IsSystemPriorityClass(info.name) {
		return apierrors.NewForbidden(schedulingv1.Resource("priorityclasses"), info.name, errors.New("this is a system priority class and cannot be deleted"))
	}
	return nil
}
