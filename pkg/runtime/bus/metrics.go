package bus

import "github.com/prometheus/client_golang/prometheus"

// consumerPending is each durable consumer's backlog as its last delivery
// reported it: the messages on its subjects not yet delivered. It stays
// where it was when deliveries stop, so a stuck consumer keeps its lag.
var consumerPending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "rampart_bus_consumer_pending_messages",
	Help: "Messages not yet delivered to a durable consumer, as of its last delivery, by consumer.",
}, []string{"consumer"})

// Collector is the bus's metrics, for the host's registry.
func Collector() prometheus.Collector { return consumerPending }
