package hooks

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
)

// Harbor event types the scanner acts on; every other type is ErrIgnored.
const (
	HarborPushArtifact      = "PUSH_ARTIFACT"          // default payload format
	HarborCloudEventsPushed = "harbor.artifact.pushed" // CloudEvents format
)

// harborEventData mirrors Harbor's notifier model.EventData for artifact
// events (src/pkg/notifier/model/event.go).
type harborEventData struct {
	Resources []struct {
		Digest      string `json:"digest"`
		Tag         string `json:"tag"`
		ResourceURL string `json:"resource_url"`
	} `json:"resources"`
	Repository *struct {
		Name         string `json:"name"`
		Namespace    string `json:"namespace"`
		RepoFullName string `json:"repo_full_name"`
	} `json:"repository"`
}

// harborDefault is Harbor's "Default" webhook payload (model.Payload).
type harborDefault struct {
	Type      string           `json:"type"`
	OccurAt   int64            `json:"occur_at"`
	Operator  string           `json:"operator"`
	EventData *harborEventData `json:"event_data"`
}

// harborCloudEvent is Harbor's "CloudEvents" payload, structured mode
// (src/pkg/notifier/formats/cloudevents.go): the event data plus the
// requestid and operator extensions.
type harborCloudEvent struct {
	SpecVersion     string           `json:"specversion"`
	ID              string           `json:"id"`
	Source          string           `json:"source"`
	Type            string           `json:"type"`
	Time            time.Time        `json:"time"`
	DataContentType string           `json:"datacontenttype"`
	RequestID       string           `json:"requestid"`
	Operator        string           `json:"operator"`
	Data            *harborEventData `json:"data"`
}

// ParseHarbor decodes a Harbor webhook, in either payload format, chosen by
// Content-Type: application/json is the Default format,
// application/cloudevents+json the CloudEvents one. Only artifact pushes
// count; other event types are ErrIgnored.
func ParseHarbor(contentType string, body []byte) ([]ArtifactPush, error) {
	switch mt := webhook.MediaType(contentType); mt {
	case "application/json":
		return parseHarborDefault(body)
	case "application/cloudevents+json":
		return parseHarborCloudEvent(body)
	default:
		return nil, fmt.Errorf("%w: content type %q, want application/json (Harbor Default) or application/cloudevents+json (Harbor CloudEvents)", ErrUnsupported, contentType)
	}
}

func parseHarborDefault(body []byte) ([]ArtifactPush, error) {
	var p harborDefault
	if err := webhook.Decode(body, &p, false); err != nil {
		return nil, err
	}
	if p.Type == "" {
		return nil, fmt.Errorf("%w: type: missing", ErrMalformed)
	}
	if p.Type != HarborPushArtifact {
		return nil, fmt.Errorf("%w: Harbor event %s", ErrIgnored, p.Type)
	}
	var at time.Time
	if p.OccurAt > 0 {
		at = time.Unix(p.OccurAt, 0).UTC()
	}
	return harborPushes(SourceHarbor, "event_data", p.EventData, at, p.Operator,
		p.Type, strconv.FormatInt(p.OccurAt, 10))
}

func parseHarborCloudEvent(body []byte) ([]ArtifactPush, error) {
	var ce harborCloudEvent
	if err := webhook.Decode(body, &ce, false); err != nil {
		return nil, err
	}
	if ce.SpecVersion != "1.0" {
		return nil, fmt.Errorf("%w: specversion: %q, want 1.0", ErrMalformed, ce.SpecVersion)
	}
	if ce.ID == "" || ce.Source == "" || ce.Type == "" {
		return nil, fmt.Errorf("%w: id, source and type are required CloudEvents attributes", ErrMalformed)
	}
	if !strings.HasPrefix(ce.Type, "harbor.") {
		return nil, fmt.Errorf("%w: CloudEvents type %q is not a Harbor event", ErrUnsupported, ce.Type)
	}
	if ce.Type != HarborCloudEventsPushed {
		return nil, fmt.Errorf("%w: Harbor event %s", ErrIgnored, ce.Type)
	}
	if ce.DataContentType != "" && webhook.MediaType(ce.DataContentType) != "application/json" {
		return nil, fmt.Errorf("%w: datacontenttype %q, want application/json", ErrMalformed, ce.DataContentType)
	}
	// Harbor mints a fresh CloudEvents id when it formats a delivery, so the
	// stable id uses the push's request id and time instead.
	return harborPushes(SourceHarborCloudEvents, "data", ce.Data, ce.Time.UTC(), ce.Operator,
		ce.Type, ce.Source, ce.RequestID, ce.Time.UTC().Format(time.RFC3339Nano))
}

// harborPushes validates the event data shared by both formats. The registry
// host comes from each resource_url (Harbor's external URL host), which is
// host/namespace/repo:tag or host/namespace/repo@digest.
func harborPushes(source, field string, data *harborEventData, at time.Time, operator string, idParts ...string) ([]ArtifactPush, error) {
	if data == nil {
		return nil, fmt.Errorf("%w: %s: missing", ErrMalformed, field)
	}
	if data.Repository == nil {
		return nil, fmt.Errorf("%w: %s.repository: missing", ErrMalformed, field)
	}
	repo := data.Repository.RepoFullName
	if err := checkRepository(field+".repository.repo_full_name", repo); err != nil {
		return nil, err
	}
	if len(data.Resources) == 0 {
		return nil, fmt.Errorf("%w: %s.resources: no artifacts", ErrMalformed, field)
	}

	pushes := make([]ArtifactPush, 0, len(data.Resources))
	for i, r := range data.Resources {
		rf := fmt.Sprintf("%s.resources[%d]", field, i)
		if err := checkDigest(rf+".digest", r.Digest); err != nil {
			return nil, err
		}
		tag := r.Tag
		if tag == r.Digest { // Harbor repeats the digest as the tag for pushes by digest
			tag = ""
		}
		if err := checkTag(rf+".tag", tag); err != nil {
			return nil, err
		}
		host, rest, ok := strings.Cut(r.ResourceURL, "/")
		if !ok || host == "" {
			return nil, fmt.Errorf("%w: %s.resource_url: %q has no registry host", ErrMalformed, rf, r.ResourceURL)
		}
		if err := checkHost(rf+".resource_url", host); err != nil {
			return nil, err
		}
		if rest != repo && !strings.HasPrefix(rest, repo+":") && !strings.HasPrefix(rest, repo+"@") {
			return nil, fmt.Errorf("%w: %s.resource_url: %q is not in repository %s", ErrMalformed, rf, r.ResourceURL, repo)
		}
		parts := append([]string{host, repo, r.Digest, tag}, idParts...)
		pushes = append(pushes, ArtifactPush{
			ID:         stableID(source, parts...),
			Source:     source,
			Registry:   host,
			Repository: repo,
			Digest:     r.Digest,
			Tag:        tag,
			PushedAt:   at,
			Actor:      operator,
		})
	}
	return pushes, nil
}
