package demo

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Failure is a fault the demo injects into the canary.
type Failure string

// The faults the watcher must catch.
const (
	Fail5xx    Failure = "5xx"    // a fifth of the canary's requests fail
	FailMemory Failure = "memory" // the canary's memory grows to 3× stable
	FailSIEM   Failure = "siem"   // the SIEM raises an alert for the app
)

// Inject makes the running canary fail in the given way.
func (e *Env) Inject(ctx context.Context, f Failure, alertID string) error {
	switch f {
	case Fail5xx:
		return e.get(ctx, e.work.canary.URL()+"/admin/fail?ratio=0.2")
	case FailMemory:
		return e.get(ctx, e.work.canary.URL()+"/admin/grow?mb=64")
	case FailSIEM:
		body, _ := json.Marshal(map[string]any{
			"id": alertID, "app": App, "severity": "high", "title": "Outbound connection to a known C2 host",
			"occurredAt": time.Now().UTC(), "source": "demo-siem",
		})
		secret, err := e.secret("siem.secret")
		if err != nil {
			return err
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		return e.post(ctx, "/hooks/siem", body, map[string]string{"X-Rampart-Signature": "sha256=" + hex.EncodeToString(mac.Sum(nil))})
	}
	return fmt.Errorf("no failure %q", f)
}

// Alert sends an Alertmanager v4 webhook with one firing alert about the
// canary, as Alertmanager would, and returns the ids of the anomalies the
// watcher published (or had published for the same alert before).
func (e *Env) Alert(ctx context.Context, fingerprint string, startsAt time.Time) ([]string, error) {
	body, _ := json.Marshal(map[string]any{
		"version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0, "status": "firing",
		"receiver": "rampart", "groupLabels": map[string]string{"alertname": "HighErrorRate"},
		"commonLabels": map[string]string{"alertname": "HighErrorRate", "app": App}, "commonAnnotations": map[string]string{},
		"externalURL": "http://alertmanager.local",
		"alerts": []map[string]any{{
			"status": "firing", "labels": map[string]string{"alertname": "HighErrorRate", "app": App, "track": "canary"},
			"annotations": map[string]string{"summary": "canary error rate above SLO"}, "startsAt": startsAt.UTC(),
			"endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus.local/graph", "fingerprint": fingerprint,
		}},
	})
	token, err := e.secret("alertmanager.token")
	if err != nil {
		return nil, err
	}
	var resp struct {
		Published  []string `json:"published"`
		Duplicates []string `json:"duplicates"`
	}
	err = e.postJSON(ctx, "/hooks/alertmanager", body, map[string]string{"Authorization": "Bearer " + token}, &resp)
	return append(resp.Published, resp.Duplicates...), err
}

// Promote ends the rollout's current pause now (the operator API).
func (e *Env) Promote(ctx context.Context, rolloutID string) error {
	token, err := os.ReadFile(filepath.Join(e.dataDir, "deployer", "operator.token"))
	if err != nil {
		return err
	}
	return e.post(ctx, "/deployer/rollouts/"+rolloutID+"/promote", []byte("{}"),
		map[string]string{"Authorization": "Bearer " + strings.TrimSpace(string(token))})
}

func (e *Env) secret(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(e.dataDir, "watcher", name))
	return strings.TrimSpace(string(b)), err
}

func (e *Env) get(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	return do(e.Mesh.HTTPClient, req, nil)
}

func (e *Env) post(ctx context.Context, path string, body []byte, headers map[string]string) error {
	return e.postJSON(ctx, path, body, headers, nil)
}

// postAs posts body with its content type.
func (e *Env) postAs(ctx context.Context, path string, body []byte, contentType string, headers map[string]string) error {
	h := map[string]string{"Content-Type": contentType}
	for k, v := range headers {
		h[k] = v
	}
	return e.postJSON(ctx, path, body, h, nil)
}

// postJSON posts body to the mesh's HTTP path and decodes the answer into out.
func (e *Env) postJSON(ctx context.Context, path string, body []byte, headers map[string]string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.Mesh.HTTPURL()+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers { // may replace the content type
		req.Header.Set(k, v)
	}
	return do(e.Mesh.HTTPClient, req, out)
}

func do(hc *http.Client, req *http.Request, out any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(msg))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// waitWatcherLive waits until the watcher counts a live canary: before that,
// an alert about the canary would match nothing live.
func (e *Env) waitWatcherLive(ctx context.Context, timeout time.Duration) error {
	return waitUntil(ctx, timeout, "the watcher to see the live canary", func() bool {
		resp, err := e.Mesh.HTTPClient.Get(e.Mesh.HTTPURL() + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "rampart_watcher_live_canaries") && !strings.HasSuffix(line, " 0") {
				return true
			}
		}
		return false
	})
}
