package controller

import (
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// WriteStatus writes obj's status with update and returns what was
// written. On a 409 it reads the latest object with get and, when that has
// obj's uid and generation (only metadata or status moved since), retries
// with obj's status copied onto it by withStatus: a status computed for a
// generation still holds, and a client that keeps writing labels or
// annotations must not keep it from ever being written. A spec change
// ends the retries; the sync it causes computes the new status.
func WriteStatus[T metav1.Object](obj T, update func(T) (T, error), get func() (T, error), withStatus func(latest, from T)) (T, error) {
	cur := obj
	var out T
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		if out, err = update(cur); !apierrors.IsConflict(err) {
			return err
		}
		latest, gerr := get()
		if gerr != nil || latest.GetUID() != obj.GetUID() || latest.GetGeneration() != obj.GetGeneration() {
			return err
		}
		withStatus(latest, obj)
		cur = latest
		return err
	})
	return out, err
}
