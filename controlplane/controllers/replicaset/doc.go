// Package replicaset is the ReplicaSet controller: it keeps spec.replicas
// pods matching each ReplicaSet's selector, as Kubernetes'
// ReplicaSetController does. It is also the ReplicationController
// controller (NewForReplicationControllers), as Kubernetes' replication
// manager: the same logic on ReplicationControllers converted to
// ReplicaSets (RCToRS, their map selector as matchLabels) and back
// (RSToRC) for their status, with owner references, events (source
// replication-controller) and adoption naming the ReplicationController
// (kinds.go).
//
// It owns, for every ReplicaSet:
//   - creating missing pods from the template (controller.PodFromTemplate,
//     controller owner reference), in slow-start batches of 1, 2, 4, … so a
//     create that fails (quota, admission) stops the burst at once;
//   - deleting surplus pods, preferring (as Kubernetes' ActivePods order)
//     unscheduled over scheduled, pending over running, not ready over
//     ready, lower pod-deletion-cost, pods doubled up on a node, more
//     recently ready, more restarts, newer;
//   - adopting orphan pods that match the selector and releasing owned pods
//     that no longer match (strategic-merge patches of ownerReferences, as
//     Kubernetes' PodControllerRefManager);
//   - the status: replicas, fullyLabeledReplicas, readyReplicas,
//     availableReplicas (minReadySeconds honoured, with a requeue when the
//     next pod becomes available), terminatingReplicas, observedGeneration
//     and the ReplicaFailure condition when creates or deletes fail;
//   - Events SuccessfulCreate, FailedCreate, SuccessfulDelete, FailedDelete.
//
// Pods being deleted (deletionTimestamp set) and finished pods (Succeeded,
// Failed) do not count as replicas. controller.Expectations keep a worker
// from acting again before its informer cache has seen its own creates and
// deletes; deletions are tracked per pod so a pod deleted by someone else
// does not satisfy them.
//
// The decisions (which pods to delete, the status, the batches) are pure
// functions in decide.go; the Controller does the I/O.
package replicaset
