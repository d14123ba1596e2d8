// Package controller holds what every wasmfleet controller shares: the
// rate-limited workqueue loop (Queue), wake-ups that queue a key at a
// later time of an injectable clock (Wakeups), expectations that keep a
// controller from acting twice on a cache that has not caught up with its
// own writes (Expectations), building pods from templates for an owner
// (PodFromTemplate, ControllerOf), resolving controller references
// (Resolve), keeping a workload's templates as ControllerRevisions for
// kubectl rollout history and undo (Revisions, TemplatePatch), and sending
// a controller's events to the API while it runs (RecordEvents).
//
// A controller is a constructor taking a client and a shared informer
// factory, and a Run(ctx, workers) method that blocks until ctx ends (the
// Controller interface); the controller manager starts them under leader
// election.
package controller
