package sampleimage

import (
	"encoding/json"
	"fmt"
	"time"
)

// DistributionEnvelope renders a manifest push the way CNCF Distribution
// notifies its endpoints (media type
// application/vnd.docker.distribution.events.v2+json): an envelope with one
// push event. host is the registry host clients pull from, id the event id,
// at its time. The in-memory registry sends no notifications itself; tests
// post this from RegistryOptions.OnManifestPut.
func (p ManifestPut) DistributionEnvelope(host, id string, at time.Time) ([]byte, error) {
	type descriptor struct {
		MediaType  string `json:"mediaType"`
		Digest     string `json:"digest"`
		Size       int64  `json:"size"`
		Length     int64  `json:"length"`
		Repository string `json:"repository"`
		URL        string `json:"url"`
		Tag        string `json:"tag,omitempty"`
	}
	type event struct {
		ID        string     `json:"id"`
		Timestamp time.Time  `json:"timestamp"`
		Action    string     `json:"action"`
		Target    descriptor `json:"target"`
		Request   struct {
			ID        string `json:"id"`
			Addr      string `json:"addr"`
			Host      string `json:"host"`
			Method    string `json:"method"`
			UserAgent string `json:"useragent"`
		} `json:"request"`
		Actor  struct{}          `json:"actor"`
		Source map[string]string `json:"source"`
	}
	ev := event{
		ID:        id,
		Timestamp: at.UTC(),
		Action:    "push",
		Target: descriptor{
			MediaType:  p.MediaType,
			Digest:     p.Digest,
			Size:       p.Size,
			Length:     p.Size,
			Repository: p.Repository,
			URL:        fmt.Sprintf("http://%s/v2/%s/manifests/%s", host, p.Repository, p.Digest),
		},
		Source: map[string]string{"addr": host},
	}
	if p.Reference != p.Digest {
		ev.Target.Tag = p.Reference
	}
	ev.Request.ID = id
	ev.Request.Addr = "127.0.0.1"
	ev.Request.Host = host
	ev.Request.Method = "PUT"
	ev.Request.UserAgent = "go-containerregistry"
	b, err := json.Marshal(struct {
		Events []event `json:"events"`
	}{[]event{ev}})
	if err != nil {
		return nil, fmt.Errorf("encode notification: %w", err)
	}
	return b, nil
}
