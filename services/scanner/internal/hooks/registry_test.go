package hooks_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/services/scanner/internal/hooks"
)

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// edit returns the testdata payload with old replaced by new (once).
func edit(tb testing.TB, name, old, new string) []byte {
	tb.Helper()
	s := string(readTestdata(tb, name))
	if !strings.Contains(s, old) {
		tb.Fatalf("%s does not contain %q", name, old)
	}
	return []byte(strings.Replace(s, old, new, 1))
}

const (
	distCT = "application/vnd.docker.distribution.events.v2+json"
	digest = "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf"
)

func TestParseDistribution(t *testing.T) {
	pushes, err := hooks.ParseDistribution(distCT, readTestdata(t, "distribution_push.json"))
	if err != nil {
		t.Fatalf("ParseDistribution: %v", err)
	}
	// The layer push and the pull are skipped; the manifest and the index count.
	if len(pushes) != 2 {
		t.Fatalf("got %d pushes, want 2: %+v", len(pushes), pushes)
	}
	p := pushes[0]
	want := hooks.ArtifactPush{
		ID:         p.ID,
		Source:     hooks.SourceDistribution,
		Registry:   "registry.example.com:5000",
		Repository: "team/app",
		Digest:     digest,
		Tag:        "v1.4.2",
		MediaType:  "application/vnd.oci.image.manifest.v1+json",
		PushedAt:   time.Date(2026, 8, 14, 9, 12, 44, 612004113, time.UTC),
		Actor:      "ci",
	}
	if p != want {
		t.Errorf("push = %+v\nwant %+v", p, want)
	}
	if !strings.HasPrefix(p.ID, "distribution-") || len(p.ID) != len("distribution-")+32 {
		t.Errorf("ID = %q", p.ID)
	}
	if p.Ref() != "registry.example.com:5000/team/app@"+digest {
		t.Errorf("Ref = %q", p.Ref())
	}
	if got := p.PURL(); got != "pkg:oci/app@sha256%3Afea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf?repository_url=registry.example.com%3A5000/team/app&tag=v1.4.2" {
		t.Errorf("PURL = %q", got)
	}
	if pushes[1].Tag != "" || pushes[1].MediaType != "application/vnd.oci.image.index.v1+json" || pushes[1].ID == p.ID {
		t.Errorf("index push = %+v", pushes[1])
	}

	// A redelivery is the same event: same ID.
	again, err := hooks.ParseDistribution(distCT+"; charset=utf-8", readTestdata(t, "distribution_push.json"))
	if err != nil || again[0].ID != p.ID {
		t.Errorf("redelivery: ID %q, err %v; want %q", again[0].ID, err, p.ID)
	}
}

func TestParseDistributionErrors(t *testing.T) {
	const file = "distribution_push.json"
	tests := []struct {
		name    string
		ct      string
		body    []byte
		wantErr error
		wantMsg string
	}{
		{"wrong content type", "application/json", readTestdata(t, file), hooks.ErrUnsupported, `content type "application/json"`},
		{"empty body", distCT, nil, hooks.ErrMalformed, "empty body"},
		{"not JSON", distCT, []byte(`{"events": [}`), hooks.ErrMalformed, "invalid JSON at byte 1"}, // byte 12 or 13: encoding/json reports it differently under GOEXPERIMENT=jsonv2
		{"truncated", distCT, readTestdata(t, file)[:200], hooks.ErrMalformed, "truncated"},
		{"trailing data", distCT, append(readTestdata(t, file), []byte(`{"events":[]}`)...), hooks.ErrMalformed, "data after the JSON value"},
		{"events not a list", distCT, []byte(`{"events": {}}`), hooks.ErrMalformed, "events: expected"},
		{"no events field", distCT, []byte(`{}`), hooks.ErrMalformed, "events: missing"},
		{"only layers and pulls", distCT, []byte(`{"events":[{"action":"push","target":{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + digest + `","repository":"a"}},{"action":"pull","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json"}}]}`), hooks.ErrIgnored, "no manifest pushes among 2 events"},
		{"bad digest", distCT, edit(t, file, `"digest": "sha256:fea8895f`, `"digest": "sha256:XYZ8895f`), hooks.ErrMalformed, "events[1].target.digest"},
		{"bad repository", distCT, edit(t, file, `"repository": "team/app",
        "url": "https://registry.example.com:5000/v2/team/app/manifests/sha256:fea8`, `"repository": "Team/App",
        "url": "https://registry.example.com:5000/v2/team/app/manifests/sha256:fea8`), hooks.ErrMalformed, `events[1].target.repository: "Team/App"`},
		{"bad tag", distCT, edit(t, file, `"tag": "v1.4.2"`, `"tag": "-v1"`), hooks.ErrMalformed, "events[1].target.tag"},
		{"bad host", distCT, edit(t, file, `"host": "registry.example.com:5000",
        "method": "PUT",
        "useragent": "go-containerregistry/v0.21.9"
      },
      "actor": {"name": "ci"},
      "source": {"addr": "registry-0:5000", "instanceID": "a53db899-3b4b-4a62-a067-8dd013beaca4"}
    },
    {
      "id": "5d7a`, `"host": "evil.example.com/../x",
        "method": "PUT",
        "useragent": "go-containerregistry/v0.21.9"
      },
      "actor": {"name": "ci"},
      "source": {"addr": "registry-0:5000", "instanceID": "a53db899-3b4b-4a62-a067-8dd013beaca4"}
    },
    {
      "id": "5d7a`), hooks.ErrMalformed, "events[1].request.host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pushes, err := hooks.ParseDistribution(tt.ct, tt.body)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
			if pushes != nil {
				t.Errorf("pushes returned with an error: %+v", pushes)
			}
		})
	}
}

func TestParseDistributionHostFromURL(t *testing.T) {
	body := []byte(`{"events":[{"id":"1","action":"push","target":{"digest":"` + digest + `","repository":"app","url":"http://127.0.0.1:5000/v2/app/manifests/` + digest + `"}}]}`)
	pushes, err := hooks.ParseDistribution(distCT, body)
	if err != nil {
		t.Fatal(err)
	}
	if pushes[0].Registry != "127.0.0.1:5000" {
		t.Errorf("Registry = %q", pushes[0].Registry)
	}
}

func TestParseHarbor(t *testing.T) {
	def, err := hooks.ParseHarbor("application/json", readTestdata(t, "harbor_push_default.json"))
	if err != nil {
		t.Fatalf("Default format: %v", err)
	}
	want := hooks.ArtifactPush{
		ID:         def[0].ID,
		Source:     hooks.SourceHarbor,
		Registry:   "harbor.example.com",
		Repository: "team/app",
		Digest:     "sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c",
		Tag:        "v1.4.2",
		PushedAt:   time.Unix(1786612364, 0).UTC(),
		Actor:      "robot$team+ci",
	}
	if len(def) != 1 || def[0] != want {
		t.Errorf("Default = %+v\nwant %+v", def, want)
	}

	ce, err := hooks.ParseHarbor("application/cloudevents+json", readTestdata(t, "harbor_push_cloudevents.json"))
	if err != nil {
		t.Fatalf("CloudEvents format: %v", err)
	}
	want.Source, want.Tag, want.ID = hooks.SourceHarborCloudEvents, "", ce[0].ID // pushed by digest
	want.PushedAt = time.Date(2026, 8, 14, 9, 12, 44, 0, time.UTC)
	if len(ce) != 1 || ce[0] != want {
		t.Errorf("CloudEvents = %+v\nwant %+v", ce, want)
	}

	// Harbor mints a new CloudEvents id per delivery: the stable id ignores it.
	redelivered, err := hooks.ParseHarbor("application/cloudevents+json",
		edit(t, "harbor_push_cloudevents.json", `"id": "4b2f89a6-548d-4c12-9993-a1f5790b97d2"`, `"id": "0c5e6a1d-9a1b-4b8e-b3f2-2f8a7d6e5c4b"`))
	if err != nil || redelivered[0].ID != ce[0].ID {
		t.Errorf("redelivered CloudEvent: ID %q, err %v; want %q", redelivered[0].ID, err, ce[0].ID)
	}
}

func TestParseHarborErrors(t *testing.T) {
	const def, ce = "harbor_push_default.json", "harbor_push_cloudevents.json"
	tests := []struct {
		name    string
		ct      string
		body    []byte
		wantErr error
		wantMsg string
	}{
		{"unsupported content type", "text/plain", readTestdata(t, def), hooks.ErrUnsupported, "text/plain"},
		{"pull is ignored", "application/json", edit(t, def, "PUSH_ARTIFACT", "PULL_ARTIFACT"), hooks.ErrIgnored, "PULL_ARTIFACT"},
		{"scan completed is ignored", "application/cloudevents+json", edit(t, ce, "harbor.artifact.pushed", "harbor.scan.completed"), hooks.ErrIgnored, "harbor.scan.completed"},
		{"not a Harbor CloudEvent", "application/cloudevents+json", edit(t, ce, "harbor.artifact.pushed", "com.example.thing"), hooks.ErrUnsupported, "com.example.thing"},
		{"CloudEvents spec version", "application/cloudevents+json", edit(t, ce, `"specversion": "1.0"`, `"specversion": "0.3"`), hooks.ErrMalformed, "specversion"},
		{"CloudEvents without id", "application/cloudevents+json", edit(t, ce, `"id": "4b2f89a6-548d-4c12-9993-a1f5790b97d2",`, ``), hooks.ErrMalformed, "required CloudEvents attributes"},
		{"CloudEvents data not JSON", "application/cloudevents+json", edit(t, ce, `"datacontenttype": "application/json"`, `"datacontenttype": "text/xml"`), hooks.ErrMalformed, "datacontenttype"},
		{"missing type", "application/json", edit(t, def, `"type": "PUSH_ARTIFACT",`, ``), hooks.ErrMalformed, "type: missing"},
		{"occur_at a string", "application/json", edit(t, def, `"occur_at": 1786612364`, `"occur_at": "yesterday"`), hooks.ErrMalformed, "occur_at: expected int64"},
		{"no event data", "application/json", []byte(`{"type":"PUSH_ARTIFACT","occur_at":1}`), hooks.ErrMalformed, "event_data: missing"},
		{"no repository", "application/json", []byte(`{"type":"PUSH_ARTIFACT","event_data":{"resources":[]}}`), hooks.ErrMalformed, "event_data.repository: missing"},
		{"no resources", "application/json", edit(t, def, `"resources": [`, `"resources": [], "x": [`), hooks.ErrMalformed, "no artifacts"},
		{"bad digest", "application/json", edit(t, def, `"digest": "sha256:dde8`, `"digest": "md5:dde8`), hooks.ErrMalformed, "event_data.resources[0].digest"},
		{"resource in another repository", "application/json", edit(t, def, `harbor.example.com/team/app:v1.4.2`, `harbor.example.com/other/app:v1.4.2`), hooks.ErrMalformed, "is not in repository team/app"},
		{"resource_url without host", "application/json", edit(t, def, `harbor.example.com/team/app:v1.4.2`, `team`), hooks.ErrMalformed, "has no registry host"},
		{"bad repo_full_name", "application/json", edit(t, def, `"repo_full_name": "team/app"`, `"repo_full_name": "team//app"`), hooks.ErrMalformed, "repo_full_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pushes, err := hooks.ParseHarbor(tt.ct, tt.body)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
			if pushes != nil {
				t.Errorf("pushes returned with an error: %+v", pushes)
			}
		})
	}
}
