// Package deployment is the Deployment controller: it rolls a Deployment's
// pod template out through ReplicaSets, as Kubernetes' DeploymentController
// does, so kubectl's client-side rollout commands (status, history, undo,
// pause, resume, restart) and scale work unchanged.
//
// It owns, for every Deployment:
//   - its ReplicaSets, named <deployment>-<pod-template-hash>, the hash
//     (ComputeHash: fnv32a of the template and collisionCount) added as
//     the pod-template-hash label to the ReplicaSet's selector and
//     template; a hash collision bumps status.collisionCount;
//   - adopting orphan ReplicaSets that match its selector and releasing
//     owned ones that no longer do;
//   - the rollout: RollingUpdate (maxSurge rounded up, maxUnavailable
//     rounded down, both zero meaning one unavailable) or Recreate (old
//     ReplicaSets to zero, wait until their pods are gone, then the new
//     one); proportional scaling when replicas change mid-rollout; nothing
//     but scaling while spec.paused;
//   - revision history: deployment.kubernetes.io/revision on the
//     ReplicaSets and the Deployment (a rolled-back-to ReplicaSet gets the
//     next revision and keeps its former ones in revision-history),
//     desired-replicas and max-replicas, the Deployment's other
//     annotations (kubernetes.io/change-cause among them) copied to the new
//     ReplicaSet, and deleting the oldest zero-sized ReplicaSets beyond
//     revisionHistoryLimit;
//   - the status: replicas, updated, ready, available, unavailable and
//     terminating replicas, observedGeneration, collisionCount, and the
//     Available, Progressing (NewReplicaSetCreated, FoundNewReplicaSet,
//     ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded,
//     DeploymentPaused, DeploymentResumed) and ReplicaFailure conditions;
//   - Events ScalingReplicaSet, ReplicaSetCreateError and SelectingAll.
//
// Two deliberate differences from Kubernetes: the surge and unavailability
// limits are computed from what the ReplicaSets can have running
// (max(spec, status) replicas; min(available, spec)) so they hold for the
// pods themselves while ReplicaSet controllers catch up; and the
// Deployment's revision annotation is written with a metadata patch
// (resourceVersion-guarded) because this API server's /status keeps
// metadata, where Kubernetes' takes annotations through /status.
//
// Decisions are pure functions in util.go; the Controller does the I/O.
package deployment
