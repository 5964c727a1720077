package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
)

// Structured encodes ev in the CloudEvents JSON format.
func Structured(ev cloudevents.Event) ([]byte, error) {
	return json.Marshal(ev)
}

// ParseStructured reads structured-mode CloudEvents JSON: one event, a JSON
// array (the CloudEvents batch format) or JSON lines. Each event must decode;
// the error names the first that does not by its position (1-based) and, when
// it has one, its id.
func ParseStructured(data []byte) ([]cloudevents.Event, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: no events in input", ErrMalformed)
	}
	var raws []json.RawMessage
	if trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &raws); err != nil {
			return nil, fmt.Errorf("%w: batch: %v", ErrMalformed, err)
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		for {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("%w: event %d (line %d): %v", ErrMalformed, len(raws)+1, lineOf(trimmed, dec.InputOffset()), err)
			}
			raws = append(raws, raw)
		}
	}
	out := make([]cloudevents.Event, 0, len(raws))
	for i, raw := range raws {
		ev, err := decodeStructured(raw)
		if err != nil {
			var probe struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(raw, &probe)
			return nil, fmt.Errorf("event %d (id %q): %w", i+1, probe.ID, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// lineOf is the 1-based line number of byte offset off in data.
func lineOf(data []byte, off int64) int {
	sc := bufio.NewScanner(bytes.NewReader(data[:min(int(off), len(data))]))
	n := 0
	for sc.Scan() {
		n++
	}
	return max(n, 1)
}
