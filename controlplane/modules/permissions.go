package modules

// ReadSubjects returns the subjects a NATS user must be allowed to publish to
// for Bind, Resolve, Stat, Open and List, and no more (each one is needed:
// the JetStream API requests that bind the bucket, read metadata by direct
// get, create and delete the ordered consumers that read chunks and
// listings, and answer their flow control). With them and a subscribe
// permission on its inbox (_INBOX.> or the connection's custom inbox
// prefix) a client reads the module store but cannot change it: writes
// publish to $O.WASMFLEET_MODULES.> and purge through the stream API.
// TestReadOnlyPermissions proves both.
func ReadSubjects() []string {
	return []string{
		"$JS.API.STREAM.INFO." + Stream,
		"$JS.API.DIRECT.GET." + Stream + ".>",
		"$JS.API.CONSUMER.CREATE." + Stream + ".>",
		"$JS.API.CONSUMER.DELETE." + Stream + ".>",
		"$JS.FC." + Stream + ".>",
	}
}
