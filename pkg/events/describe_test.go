package events_test

import (
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/events"
)

func TestDescribe(t *testing.T) {
	meta := events.Meta{ID: "e-1", Source: "/test", Time: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), App: "shop"}
	must := func(ev cloudevents.Event, err error) cloudevents.Event {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	long := "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	purl := "pkg:oci/shop@" + strings.ReplaceAll(long, ":", "%3A") + "?repository_url=registry.example/shop"
	other := cloudevents.New()
	other.SetType("dev.example.unknown")
	tests := []struct {
		name string
		ev   cloudevents.Event
		want string
	}{
		{"commit", must(events.NewCommit(meta, events.Commit{Repository: "github.com/acme/shop", SHA: "0123456789abcdef"})),
			"commit 0123456789ab merged to github.com/acme/shop"},
		{"short sha prints whole", must(events.NewCommit(meta, events.Commit{Repository: "github.com/acme/shop", SHA: "abc"})),
			"commit abc merged to github.com/acme/shop"},
		{"artifact", must(events.NewArtifactPushed(meta, events.Artifact{Purl: "pkg:oci/shop", Repository: "demo/shop", Digest: long, Tag: "v1"})),
			"image pushed: demo/shop@sha256:0123456789ab (v1)"},
		{"short digest prints whole", must(events.NewArtifactPushed(meta, events.Artifact{Purl: "pkg:oci/shop", Repository: "demo/shop", Digest: "sha256:ab"})),
			"image pushed: demo/shop@sha256:ab"},
		{"digest without algorithm", must(events.NewArtifactPushed(meta, events.Artifact{Purl: "pkg:oci/shop", Repository: "demo/shop", Digest: "x"})),
			"image pushed: demo/shop@x"},
		{"image scan", must(events.NewScanFinished(meta, events.Scan{Target: "pkg:oci/shop@" + strings.ReplaceAll(long, ":", "%3A") + "?repository_url=registry.example/shop", TargetKind: "image", Environment: "prod", Outcome: "pass"})),
			"image scan of shop@sha256:0123456789ab: pass, no findings"},
		{"source scan", must(events.NewScanFinished(meta, events.Scan{Target: "fc05a38cdb38d8bfeb62f1ed07d8ae4c0e98e90a", TargetKind: "source", Environment: "prod", Outcome: "blocked",
			Reason: "aws-access-key-id (CRITICAL) in deploy/prod.env:2", Counts: map[string]int{"HIGH": 1, "CRITICAL": 2}})),
			"source scan of commit fc05a38cdb38: blocked, 2 critical, 1 high"},
		{"stage checks", must(events.NewScanFinished(meta, events.Scan{Target: purl, TargetKind: "stage", Environment: "staging", Outcome: "blocked", Counts: map[string]int{"high": 1}})),
			"checks of shop@sha256:0123456789ab in staging: blocked, 1 high"},
		{"dast report", must(events.NewScanFinished(meta, events.Scan{Target: purl, TargetKind: "dast", Environment: "staging", Outcome: "pass"})),
			"DAST report on shop@sha256:0123456789ab in staging: pass, no findings"},
		{"stage deployment", must(events.NewStageDeployed(meta, events.StageDeployment{App: "shop", Stage: "staging", Environment: "staging", ArtifactID: purl,
			URL: "http://127.0.0.1:9001", VerdictID: "e-0"})),
			"shop@sha256:0123456789ab deployed to staging (http://127.0.0.1:9001), to be checked there"},
		{"unknown type", other, "dev.example.unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := events.Describe(tt.ev); got != tt.want {
				t.Errorf("Describe = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFormatCounts(t *testing.T) {
	if got := events.FormatCounts(map[string]int{"HIGH": 2, "critical": 1, "low": 0, "weird": 1}); got != "1 critical, 2 high, 1 weird" {
		t.Errorf("FormatCounts = %q", got)
	}
}
