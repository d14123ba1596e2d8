package nodelink

// JoinPath is where the API server mounts linkserver.JoinHandler (without
// its own authentication: the handler checks the join token itself).
const JoinPath = "/join"

// MaxJoinBody bounds a join request body.
const MaxJoinBody = 64 << 10

// JoinRequest is the body of POST /join, which takes the cluster join
// token as "Authorization: Bearer <token>".
type JoinRequest struct {
	NodeName string `json:"nodeName"`
}

// JoinResponse is the answer to a successful join: the node's NATS
// credentials. NATSPassword is shown once; the control plane keeps only
// its hash.
type JoinResponse struct {
	NodeName     string `json:"nodeName"`
	NATSURL      string `json:"natsURL"`
	NATSUser     string `json:"natsUser"`
	NATSPassword string `json:"natsPassword"`
	// NATSInboxPrefix is the inbox prefix the node must use
	// (nats.CustomInboxPrefix); other inboxes are not readable for it.
	NATSInboxPrefix string `json:"natsInboxPrefix"`
	// ConsumerName is the only consumer the node may create on Stream.
	ConsumerName string `json:"consumerName"`
	// Stream is the events stream; FilterSubject the consumer's filter.
	Stream        string `json:"stream"`
	FilterSubject string `json:"filterSubject"`
}
