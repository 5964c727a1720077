package hooks

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
)

// DistributionMediaType is the Content-Type of CNCF Distribution's
// notification envelope.
const DistributionMediaType = "application/vnd.docker.distribution.events.v2+json"

// manifestMediaTypes are the pushes that count: image manifests and indexes,
// Docker and OCI. Layer and config blob pushes are ignored.
var manifestMediaTypes = map[string]bool{
	"application/vnd.docker.distribution.manifest.v2+json":      true,
	"application/vnd.docker.distribution.manifest.list.v2+json": true,
	"application/vnd.oci.image.manifest.v1+json":                true,
	"application/vnd.oci.image.index.v1+json":                   true,
	// Schema 1 is long deprecated; it still counts, so that such a push is
	// scanned (and fails into an error verdict) rather than silently skipped.
	"application/vnd.docker.distribution.manifest.v1+json":      true,
	"application/vnd.docker.distribution.manifest.v1+prettyjws": true,
}

// distributionEnvelope mirrors distribution/notifications.Envelope, with only
// the fields the scanner reads.
type distributionEnvelope struct {
	Events []struct {
		ID        string    `json:"id"`
		Timestamp time.Time `json:"timestamp"`
		Action    string    `json:"action"`
		Target    struct {
			MediaType  string `json:"mediaType"`
			Digest     string `json:"digest"`
			Repository string `json:"repository"`
			URL        string `json:"url"`
			Tag        string `json:"tag"`
		} `json:"target"`
		Request struct {
			ID   string `json:"id"`
			Host string `json:"host"`
		} `json:"request"`
		Actor struct {
			Name string `json:"name"`
		} `json:"actor"`
	} `json:"events"`
}

// ParseDistribution decodes a Distribution notification envelope and returns
// its manifest and index pushes, in envelope order. Pulls, deletes, mounts
// and blob pushes are skipped; an envelope with nothing else is ErrIgnored.
// The registry host is the request's Host (what clients pull from), or the
// host of the target URL.
func ParseDistribution(contentType string, body []byte) ([]ArtifactPush, error) {
	if mt := webhook.MediaType(contentType); mt != DistributionMediaType {
		return nil, fmt.Errorf("%w: content type %q, want %s", ErrUnsupported, contentType, DistributionMediaType)
	}
	var env distributionEnvelope
	if err := webhook.Decode(body, &env, false); err != nil {
		return nil, err
	}
	if env.Events == nil {
		return nil, fmt.Errorf("%w: events: missing", ErrMalformed)
	}

	var pushes []ArtifactPush
	for i, ev := range env.Events {
		field := fmt.Sprintf("events[%d]", i)
		if ev.Action != "push" {
			continue
		}
		mt := ev.Target.MediaType
		isManifest := manifestMediaTypes[mt] ||
			(mt == "" && strings.Contains(ev.Target.URL, "/manifests/"))
		if !isManifest {
			continue
		}

		if err := checkRepository(field+".target.repository", ev.Target.Repository); err != nil {
			return nil, err
		}
		if err := checkDigest(field+".target.digest", ev.Target.Digest); err != nil {
			return nil, err
		}
		if err := checkTag(field+".target.tag", ev.Target.Tag); err != nil {
			return nil, err
		}
		host := ev.Request.Host
		if host == "" && ev.Target.URL != "" {
			if u, err := url.Parse(ev.Target.URL); err == nil {
				host = u.Host
			}
		}
		if host == "" {
			return nil, fmt.Errorf("%w: %s: no registry host in request.host or target.url", ErrMalformed, field)
		}
		if err := checkHost(field+".request.host", host); err != nil {
			return nil, err
		}

		pushes = append(pushes, ArtifactPush{
			ID: stableID(SourceDistribution, host, ev.ID, ev.Request.ID,
				ev.Target.Repository, ev.Target.Digest, ev.Target.Tag),
			Source:     SourceDistribution,
			Registry:   host,
			Repository: ev.Target.Repository,
			Digest:     ev.Target.Digest,
			Tag:        ev.Target.Tag,
			MediaType:  mt,
			PushedAt:   ev.Timestamp,
			Actor:      ev.Actor.Name,
		})
	}
	if len(pushes) == 0 {
		return nil, fmt.Errorf("%w: no manifest pushes among %d events", ErrIgnored, len(env.Events))
	}
	return pushes, nil
}
