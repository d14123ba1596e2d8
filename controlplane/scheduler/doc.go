// Package scheduler places pods on nodes, as kube-scheduler does: it owns
// the decision which node an unscheduled pod runs on and the pods/binding
// call that records it.
//
// The package has two halves.
//
// The core (Core, Snapshot, FitError) is pure: Core.Schedule filters the
// nodes of a Snapshot for one pod (node ready and not cordoned, taints and
// tolerations, nodeSelector and required node affinity, host ports,
// requested resources, runtime class, image architectures, topology spread
// constraints with whenUnsatisfiable DoNotSchedule), scores the feasible ones
// (least allocated, balanced allocation, preferred node affinity,
// PreferNoSchedule taints, topology spread with ScheduleAnyway; kube's
// default weights) and picks the best, breaking ties at random. Like
// kube-scheduler it stops filtering once enough feasible nodes are found
// (percentageOfNodesToScore, adaptive) and rotates where it starts, so large
// clusters cost a bounded amount per pod. A pod that fits nowhere gets a
// *FitError whose message is Kubernetes' ("0/5 nodes are available: ...").
//
// The loop (Scheduler) feeds the core from shared informers: a Snapshot
// kept up to date incrementally by node and pod events, a scheduling queue
// (an active queue ordered by priority, and waiting pods retried after a
// back-off of 1 s doubling to 10 s, sooner when nodes or pods change), and a
// pool of binders so that the loop never waits for an HTTP round trip: a
// decided pod is "assumed" on its node in the snapshot at once, bound
// asynchronously, and forgotten and requeued if binding fails. It records
// the Scheduled and FailedScheduling events and the PodScheduled=False
// condition kube-scheduler records.
//
// Image architectures come from an ImageArchitectures that must answer
// from memory (package imagearch reads them from the images' registries in
// the background and caches them). When it is also an ImageLookups, the
// loop holds a runc pod whose images are being looked up for the first
// time back in the queue, outside the core, and retries it as soon as the
// lookups end, rather than place it blind; wasm pods, and runc pods whose
// images are cached, never wait.
//
// Leader election is not part of this package; wrap Run.
package scheduler
