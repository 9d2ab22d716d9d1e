package events

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// ErrReplication wraps every refused replica setting.
var ErrReplication = errors.New("events: replication")

// Replication says how many copies of the relay's streams and buckets the
// broker keeps.
type Replication struct {
	// Clustered is true when the relay is connected to a NATS cluster
	// (the server reports a cluster name), false for a single server such
	// as the embedded one.
	Clustered bool
	// AllowSingle lets an operator run R1 on a cluster on purpose.
	AllowSingle bool
}

// ReplicationOf reads from the connection whether the server is part of a
// cluster.
func ReplicationOf(nc *nats.Conn, allowSingle bool) Replication {
	return Replication{Clustered: nc.ConnectedClusterName() != "", AllowSingle: allowSingle}
}

// DefaultClusterReplicas is the replica count on a cluster unless set: a
// stream survives the loss of any one node (and keeps a quorum of 2 of 3).
const DefaultClusterReplicas = 3

// maxReplicas is JetStream's limit.
const maxReplicas = 5

// Replicas resolves a configured replica count (0 = automatic) for the
// setting named flag: automatic is 1 on a single server and 3 on a
// cluster. R1 on a cluster is refused unless AllowSingle (losing the node
// that holds an R1 stream loses or stalls everything in it), and more than
// one replica on a single server is refused (it cannot keep them).
func (r Replication) Replicas(flag string, configured int) (int, error) {
	switch {
	case configured < 0 || configured > maxReplicas:
		return 0, fmt.Errorf("%w: --%s %d: replicas are 1 to %d (0 = automatic: 1 on a single server, %d on a cluster)",
			ErrReplication, flag, configured, maxReplicas, DefaultClusterReplicas)
	case configured == 0 && r.Clustered:
		return DefaultClusterReplicas, nil
	case configured == 0:
		return 1, nil
	case configured == 1 && r.Clustered && !r.AllowSingle:
		return 0, fmt.Errorf("%w: --%s 1 on a NATS cluster keeps one copy: losing the node that holds it loses or stalls everything in it; "+
			"leave --%s at 0 (automatic, %d on a cluster) or pass --allow-single-replica to run R1 on purpose",
			ErrReplication, flag, flag, DefaultClusterReplicas)
	case configured > 1 && !r.Clustered:
		return 0, fmt.Errorf("%w: --%s %d needs a NATS cluster, but the server is a single server (the embedded one or one without a cluster block); "+
			"leave --%s at 0 (automatic) or point --nats-url at the cluster",
			ErrReplication, flag, configured, flag)
	}
	return configured, nil
}
