package bus

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
)

// maxDeliveriesSubject is where the server announces a message that reached
// a consumer's MaxDeliver without being acknowledged.
const maxDeliveriesSubject = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + StreamName + ".*"

// maxDeliveries is the server's advisory (io.nats.jetstream.advisory.v1.max_deliver).
type maxDeliveries struct {
	Type       string `json:"type"`
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// RecordMaxDeliveries dead-letters every RAMPART message the server gives up
// on: a consumer that let the last allowed delivery time out without a
// decision (a handler that hung, a process that died) would otherwise drop
// it silently. Consumers of this bus dead-letter their own last failed
// attempt; this catches what they could not. It runs until ctx ends.
func (b *Bus) RecordMaxDeliveries(ctx context.Context) error {
	sub, err := b.nc.Subscribe(maxDeliveriesSubject, func(m *nats.Msg) {
		var adv maxDeliveries
		if err := json.Unmarshal(m.Data, &adv); err != nil || adv.StreamSeq == 0 {
			b.log.Warn("unreadable max-deliveries advisory", "data", string(m.Data))
			return
		}
		if err := b.deadLetterStored(ctx, adv); err != nil {
			b.log.Error("dead-letter after max deliveries", "consumer", adv.Consumer, "seq", adv.StreamSeq, "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe to max-deliveries advisories: %w", err)
	}
	go func() {
		<-ctx.Done()
		_ = sub.Unsubscribe()
	}()
	return nil
}

func (b *Bus) deadLetterStored(ctx context.Context, adv maxDeliveries) error {
	s, err := b.js.Stream(ctx, StreamName)
	if err != nil {
		return err
	}
	msg, err := s.GetMsg(ctx, adv.StreamSeq)
	if err != nil {
		return fmt.Errorf("read message %d: %w", adv.StreamSeq, err)
	}
	reason := fmt.Sprintf("not acknowledged after %d deliveries (the server's max-deliveries advisory)", adv.Deliveries)
	return b.publishDeadLetter(ctx, adv.Consumer, msg.Subject, adv.StreamSeq, msg.Header, msg.Data, reason)
}
